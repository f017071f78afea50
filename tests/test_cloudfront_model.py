"""tools/cloudfront.py (the distribution read from the template) and the edge's cache rules and
CloudFront Functions runner (tools/edge.py), without servers."""

from __future__ import annotations

import copy
import json

import pytest

from tools.cloudfront import TemplateError, load_distribution, path_pattern_regex
from tools.edge import TEMPLATE_PATH
from tools.edge_cache import Answer, ttl_for
from tools.edge_functions import FunctionRunner, apply_function_response

PARAMS = {"ApiDomain": "127.0.0.1:9", "Stage": "local"}


def template() -> dict:
    with open(TEMPLATE_PATH, encoding="utf-8") as fh:
        return json.load(fh)


def test_behaviours_in_cloudfronts_order_with_their_policies() -> None:
    dist = load_distribution(TEMPLATE_PATH, PARAMS)
    api, default = dist.behaviors
    assert dist.behavior_for("/api/predictions") is api and dist.behavior_for("/API/x") is default
    assert dist.behavior_for("/apix") is default and dist.behavior_for("/") is default
    assert api.origin.domain == "127.0.0.1:9" and not api.origin.is_s3
    assert api.cache.headers.behavior == "none" and api.cache.query.behavior == "all"
    assert api.origin_request.name == "AllViewerExceptHostHeader"
    assert not api.origin_request.headers.picks("Host", header=True)
    assert default.cache.name == "CachingOptimized" and default.cache.min_ttl == 1
    assert default.viewer_response is None and default.origin_response is not None
    assert "def handler" in default.origin_response.source and default.origin_response.handler == "handler"
    assert dist.default_root_object == "index.html" and dist.error_responses == {}


def test_without_an_api_domain_there_is_no_api_behaviour() -> None:
    assert len(load_distribution(TEMPLATE_PATH, {"Stage": "local"}).behaviors) == 1


@pytest.mark.parametrize(("pattern", "path", "hit"), [
    ("/api/*", "/api/", True), ("/api/*", "/api", False), ("api/*", "/api/x/y", True), ("/a?c", "/abc", True),
    ("/a?c", "/ac", False), ("*.jpg", "/x/y.jpg", True), ("/API/*", "/api/x", False), ("/a[b]", "/a[b]", True)])
def test_path_patterns(pattern: str, path: str, hit: bool) -> None:
    assert bool(path_pattern_regex(pattern).fullmatch(path)) is hit


def test_an_unknown_managed_policy_or_intrinsic_is_an_error_never_a_guess() -> None:
    tpl = template()
    config = tpl["Resources"]["Distribution"]["Properties"]["DistributionConfig"]
    config["DefaultCacheBehavior"]["CachePolicyId"] = "00000000-0000-0000-0000-000000000000"
    with pytest.raises(TemplateError, match="cache policy"):
        load_distribution(tpl, PARAMS)
    tpl = template()
    tpl["Resources"]["Distribution"]["Properties"]["DistributionConfig"]["DefaultRootObject"] = {"Fn::Select": [0, []]}
    with pytest.raises(TemplateError, match="Fn::Select"):
        load_distribution(tpl, PARAMS)


def test_custom_error_responses_are_read() -> None:
    tpl = copy.deepcopy(template())
    tpl["Resources"]["Distribution"]["Properties"]["DistributionConfig"]["CustomErrorResponses"] = [
        {"ErrorCode": 403, "ResponsePagePath": "/404.html", "ResponseCode": 404, "ErrorCachingMinTTL": 60}]
    error = load_distribution(tpl, PARAMS).error_response_for(403)
    assert (error.page_path, error.response_code, error.min_ttl) == ("/404.html", 404, 60.0)


@pytest.mark.parametrize(("status", "cache_control", "expected"), [
    (200, None, 86400.0), (200, "max-age=0", 1.0), (200, "no-cache", 1.0), (200, "no-store", 1.0),
    (200, "public, max-age=99999999", 31536000.0), (200, "s-maxage=5, max-age=100", 5.0),
    (403, None, 10.0), (404, "no-store", None), (400, "no-store", 10.0), (503, "max-age=60", 60.0), (201, None, None)])
def test_how_long_the_site_behaviour_keeps_an_answer(status: int, cache_control: str | None, expected: float) -> None:
    default = load_distribution(TEMPLATE_PATH, PARAMS).behaviors[-1]
    headers = [("Cache-Control", cache_control)] if cache_control else []
    assert ttl_for(status, headers, default, None) == expected


def test_the_api_behaviour_honours_no_store() -> None:
    api = load_distribution(TEMPLATE_PATH, PARAMS).behaviors[0]
    assert ttl_for(200, [("Cache-Control", "no-store")], api, None) is None
    assert ttl_for(200, [("Cache-Control", "public, max-age=60")], api, None) == 60.0


def test_a_function_runs_in_node_and_the_runner_survives_its_death() -> None:
    from tools.cloudfront import Function

    function = Function("not-found", "cloudfront-js-2.0",
                        "function handler(event) { var r = event.response; r.statusCode = 404;"
                        " r.body = {encoding: 'text', data: 'Page not found'}; return r; }")
    runner = FunctionRunner()
    try:
        event = {"version": "1.0", "context": {"eventType": "viewer-response"}, "viewer": {"ip": "127.0.0.1"},
                 "request": {"method": "GET", "uri": "/x", "querystring": {}, "headers": {}, "cookies": {}},
                 "response": {"statusCode": 200, "statusDescription": "OK",
                              "headers": {"content-type": {"value": "text/html"}}, "cookies": {}}}
        result = runner.run(function, event)
        answer = apply_function_response(Answer(200, "OK", [("Content-Type", "text/html")], b"<x/>"), result)
        assert answer.status == 404 and b"Page not found" in answer.body
        runner._proc.kill()  # a dead node child is restarted on the next call
        runner._proc.wait()
        assert runner.run(function, event)["statusCode"] == 404
    finally:
        runner.close()


def test_the_templates_lambda_at_edge_runs_in_process() -> None:
    from tools.edge_functions import _edge_handler, apply_origin_response, origin_response_event

    function = load_distribution(TEMPLATE_PATH, PARAMS).behaviors[-1].origin_response
    answer = Answer(403, "Forbidden", [("Content-Type", "application/xml")], b"<Error/>", origin_status=403)
    event = origin_response_event("GET", "/nope.html", "", [], answer, "127.0.0.1", "r")
    result = apply_origin_response(answer, _edge_handler(function)(event, None))
    assert result.status == 404 and b"Page not found" in result.body
    ok = Answer(200, "OK", [("Content-Type", "text/html")], b"<p>page</p>", origin_status=200)
    assert apply_origin_response(ok, _edge_handler(function)(origin_response_event(
        "GET", "/", "", [], ok, "127.0.0.1", "r"), None)) == ok


def test_cloudfront_js_has_no_require() -> None:
    from tools.cloudfront import Function
    from tools.edge_functions import FunctionError

    runner = FunctionRunner()
    try:
        with pytest.raises(FunctionError, match="require is not defined"):
            runner.run(Function("f", "cloudfront-js-2.0", "function handler(e) { require('fs'); }"), {})
    finally:
        runner.close()
