"""The local edge is CloudFront from deploy/stack.json, and what a user sees through it.

End to end (slow): moto S3 + chalice local + the API Gateway stand-in + the edge, started by
tools.devstack.local_stack, one check per defect found in review (D1-D4: the viewer's Host at API
Gateway, API errors turned into HTML, the API's headers overridden, distribution-wide error pages; D5:
a not-found page from a viewer-response function, which CloudFront never runs on the bucket's 403)
plus the edge cache.
Then the same checks against the template with each defect put back (fast: the edge in-process, the
stand-in in front of a tiny fake API): each check must fail there, which is what proves it would
have caught the defect.
"""

from __future__ import annotations

import copy
import http.client
import http.server
import json
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

from tools import api_gateway_local, devstack
from tools.edge import TEMPLATE_PATH, EdgeServer, start_in_thread

pytestmark = pytest.mark.slow  # moto, sockets or timers in every test: not in make test-fast

API_CSP = "default-src 'none'; frame-ancestors 'none'"
END_DATE = "2026-11-23"


def fetch(base: str, path: str, method: str = "GET", headers: dict | None = None) -> tuple[int, dict, bytes]:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


# ---- what a user must see (each takes a base URL, so both halves of this file use them) ---------


def check_d1_api_is_json(base: str) -> None:
    status, headers, body = fetch(base, "/api/predictions/latest")
    assert status == 200, (status, body[:200])
    assert headers["content-type"].startswith("application/json")
    assert "date" in json.loads(body)


def check_d2_unknown_route_is_the_api_error(base: str) -> None:
    status, headers, body = fetch(base, "/api/no-such-route")
    assert headers["content-type"].startswith("application/json"), (status, body[:200])
    assert set(json.loads(body)["error"]) == {"code", "message"}
    status, headers, _ = fetch(base, "/api/health", "HEAD")  # a method the API does not declare
    assert status == 404 and headers["content-type"].startswith("application/json"), (status, headers)


def check_d3_api_keeps_its_headers(base: str) -> None:
    _, headers, _ = fetch(base, "/api/health")
    assert headers["content-security-policy"] == API_CSP
    assert headers["referrer-policy"] == "no-referrer"


def check_d4_missing_batch_is_the_api_404(base: str) -> None:
    status, headers, body = fetch(base, "/api/predictions/1999-01-01")
    assert status == 404 and headers["content-type"].startswith("application/json"), (status, body[:200])
    assert json.loads(body)["error"]["code"] == "batch_not_found"


def check_d5_missing_page_is_the_404_page(base: str) -> None:
    status, headers, body = fetch(base, "/no/such/page.html")
    assert status == 404 and headers["content-type"].startswith("text/html"), (status, body[:200])
    assert b"Page not found" in body


# ---- end to end ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.LocalStack]:
    log = tmp_path_factory.mktemp("e2e") / "stack.log"
    with devstack.local_stack(days=2, count=20, end_date=END_DATE, site=True, edge=True, log_path=str(log)) as stack:
        yield stack


@pytest.mark.slow
def test_d1_the_api_through_the_edge_is_json(stack: devstack.LocalStack) -> None:
    check_d1_api_is_json(stack.edge_url)


@pytest.mark.slow
def test_d2_an_undeclared_path_or_method_is_the_api_json_error(stack: devstack.LocalStack) -> None:
    check_d2_unknown_route_is_the_api_error(stack.edge_url)


@pytest.mark.slow
def test_d3_the_api_keeps_its_stricter_headers_and_the_site_gets_its_own(stack: devstack.LocalStack) -> None:
    check_d3_api_keeps_its_headers(stack.edge_url)
    _, headers, _ = fetch(stack.edge_url, "/")
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "strict-origin-when-cross-origin"


@pytest.mark.slow
def test_d4_a_missing_batch_is_the_api_json_404(stack: devstack.LocalStack) -> None:
    check_d4_missing_batch_is_the_api_404(stack.edge_url)


@pytest.mark.slow
def test_a_second_identical_api_request_is_served_from_the_edge_cache(stack: devstack.LocalStack) -> None:
    path = f"/api/predictions/{END_DATE}?limit=3"  # a dated batch: cacheable for long
    first = fetch(stack.edge_url, path)
    second = fetch(stack.edge_url, path)
    assert first[0] == second[0] == 200
    assert first[1]["x-cache"] == "Miss from cloudfront"
    assert second[1]["x-cache"] == "Hit from cloudfront"
    assert second[2] == first[2]


@pytest.mark.slow
def test_the_site_root_is_the_default_root_object(stack: devstack.LocalStack) -> None:
    status, headers, body = fetch(stack.edge_url, "/")
    assert status == 200 and headers["content-type"].startswith("text/html") and b"<html" in body


@pytest.mark.slow
def test_a_missing_site_page_or_a_folder_is_the_404_page(stack: devstack.LocalStack) -> None:
    """The bucket's 403 becomes the site's 404 page through the Lambda@Edge origin-response function on
    the site's behaviour (AWS runs those for origin answers of 400 or more; viewer-response ones not)."""
    for path in ("/no/such/page.html", "/d/", "/d", "/d/1999-01-01.html"):
        status, headers, body = fetch(stack.edge_url, path)
        assert status == 404 and headers["content-type"].startswith("text/html"), (path, status)
        assert b"Page not found" in body and b"AccessDenied" not in body
        assert "location" not in headers  # no folder redirects: S3 has none


@pytest.mark.slow
def test_the_chain_is_edge_gateway_chalice_local(stack: devstack.LocalStack) -> None:
    # Straight at the stand-in with another Host: API Gateway's bare 403 (what D1 produced).
    status, _, body = fetch(stack.gateway_url, "/api/health", headers={"Host": "example.cloudfront.net"})
    assert (status, json.loads(body)) == (403, {"message": "Forbidden"})
    assert fetch(stack.gateway_url, "/health")[0] == 403  # outside the stage
    # chalice local itself, as load --direct uses it: with CloudFront's header only (docs/protection.md).
    assert fetch(stack.api_url, "/health", headers=stack.origin_headers)[0] == 200
    assert fetch(stack.api_url, "/health")[0] == 403


# ---- the API's answers stay at the edge until the next publish (docs/api.md) ----------------------


@pytest.fixture(scope="module")
def following(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.LocalStack]:
    """The stack with the site follower (the site function's handler): it invalidates at moto's
    CloudFront, the edge applies it, and chalice local sends s-maxage (EDGE_CACHE=on)."""
    log = tmp_path_factory.mktemp("e2e-follow") / "stack.log"
    with devstack.local_stack(days=2, count=20, end_date=END_DATE, site=True, edge=True, follow=True,
                              log_path=str(log)) as stack:
        yield stack


def _json_date(answer: tuple[int, dict, bytes]) -> str:
    return json.loads(answer[2])["date"]


@pytest.mark.slow
def test_the_edge_keeps_the_api_until_a_publish_then_shows_the_new_batch(following: devstack.LocalStack) -> None:
    import time

    from chalice_app.publishing.sample import make_batch

    stack = following
    assert stack.distribution_id and stack.follower is not None
    latest, listing, dated = "/api/predictions/latest?limit=2", "/api/predictions", f"/api/predictions/{END_DATE}"
    first = {path: fetch(stack.edge_url, path) for path in (latest, listing, dated)}
    assert all(answer[0] == 200 for answer in first.values())
    assert _json_date(first[latest]) == END_DATE
    # Browsers keep today's max-age (0 for latest locally); the edge a day.
    assert first[latest][1]["cache-control"] == "public, max-age=0, s-maxage=86400"
    # Past the browsers' max-age and the API's pointer TTL (2 s locally), the edge still answers itself.
    time.sleep(2.5)
    for path, answer in first.items():
        again = fetch(stack.edge_url, path)
        assert again[1]["x-cache"] == "Hit from cloudfront", path
        assert again[2] == answer[2]
    # The query string is in the key: another page is another answer, from the API.
    assert fetch(stack.edge_url, "/api/predictions/latest?limit=3")[1]["x-cache"] == "Miss from cloudfront"
    # A publish moves the pointer; the follower re-renders and invalidates; the edge applies it.
    new_date = "2026-11-24"
    stack.publish(make_batch(new_date, 20), force=True)
    stack.wait_for_site(new_date, timeout=30)
    deadline = time.monotonic() + 10
    while True:
        after = fetch(stack.edge_url, latest)
        if _json_date(after) == new_date or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert _json_date(after) == new_date
    assert after[1]["x-cache"] == "Miss from cloudfront"
    assert json.loads(fetch(stack.edge_url, listing)[2])["latest"] == new_date
    # A dated batch that did not change is still the edge's copy; the invalidation named the API's paths.
    assert fetch(stack.edge_url, dated)[1]["x-cache"] == "Hit from cloudfront"
    invalidated = stack.follower.results[-1]["invalidated"]
    assert {"/api/predictions", "/api/predictions/latest*", f"/api/predictions/{new_date}*"} <= set(invalidated)
    assert f"/api/predictions/{END_DATE}*" not in invalidated


@pytest.mark.slow
def test_errors_and_health_are_not_kept_by_the_edge(following: devstack.LocalStack) -> None:
    """A date published later must not stay a 404 at the edge; /health is always the API's."""
    for path in ("/api/predictions/2026-11-30", "/api/health"):
        fetch(stack_url := following.edge_url, path)
        again = fetch(stack_url, path)
        assert "no-store" in again[1]["cache-control"]
        assert again[1]["x-cache"] != "Hit from cloudfront", path


# ---- defects put back: the same checks fail --------------------------------------------------------


class FakeApi(http.server.BaseHTTPRequestHandler):
    """What chalice local answers for the few routes the checks use, with the API's own headers."""

    seen: ClassVar[list[str]] = []
    HEADERS: ClassVar[dict] = {"Content-Type": "application/json; charset=utf-8", "X-Content-Type-Options": "nosniff",
                               "Content-Security-Policy": API_CSP, "Referrer-Policy": "no-referrer"}

    def do_GET(self) -> None:
        FakeApi.seen.append(self.path)
        if self.path.startswith("/predictions/1999-01-01"):
            self._reply(404, {"error": {"code": "batch_not_found", "message": "no batch for 1999-01-01"}}, "no-store")
        elif self.path == "/health":
            self._reply(200, {"status": "ok"}, "no-store")
        else:
            self._reply(200, {"date": END_DATE, "items": []}, "public, max-age=60")

    def _reply(self, status: int, payload: dict, cache: str) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in {**self.HEADERS, "Cache-Control": cache, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def fake_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(site folder, API Gateway stand-in domain) in front of FakeApi."""
    api = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    threading.Thread(target=api.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    gateway = api_gateway_local.start_in_thread(f"http://127.0.0.1:{api.server_address[1]}")
    site = tmp_path_factory.mktemp("site")
    (site / "index.html").write_text("<!doctype html><title>home</title>")
    (site / "404.html").write_text("<!doctype html><title>Page not found</title><h1>Page not found</h1>")
    yield str(site), gateway.domain
    gateway.stop()
    api.shutdown()
    api.server_close()


def template() -> dict:
    with open(TEMPLATE_PATH, encoding="utf-8") as fh:
        return json.load(fh)


def edge_for(chain: tuple[str, str], tpl: dict) -> EdgeServer:
    site, domain = chain
    return start_in_thread(site, template=tpl, api_domain=domain)


def api_behaviour(tpl: dict) -> dict:
    return tpl["Resources"]["Distribution"]["Properties"]["DistributionConfig"]["CacheBehaviors"]["Fn::If"][1][0]


def test_the_checks_pass_against_the_template_as_it_is(fake_chain: tuple[str, str]) -> None:
    edge = edge_for(fake_chain, template())
    try:
        for check in (check_d1_api_is_json, check_d2_unknown_route_is_the_api_error, check_d3_api_keeps_its_headers,
                      check_d4_missing_batch_is_the_api_404, check_d5_missing_page_is_the_404_page):
            check(edge.url)
    finally:
        edge.stop()


def test_d1_put_back_the_host_in_the_cache_key_is_caught(fake_chain: tuple[str, str]) -> None:
    tpl = template()
    api_behaviour(tpl)["CachePolicyId"] = "4cc15a8a-d715-48a4-82b8-cc0b614638fe"  # UseOriginCacheControlHeaders-QS
    edge = edge_for(fake_chain, tpl)
    try:
        with pytest.raises(AssertionError):
            check_d1_api_is_json(edge.url)
        status, _, body = fetch(edge.url, "/api/predictions/latest")
        assert (status, json.loads(body)) == (403, {"message": "Forbidden"})  # the viewer's Host reached the API
    finally:
        edge.stop()


@pytest.mark.parametrize("code", [403, 404])
def test_d2_d4_put_back_a_distribution_wide_error_page_is_caught(fake_chain: tuple[str, str], code: int) -> None:
    tpl = template()
    config = tpl["Resources"]["Distribution"]["Properties"]["DistributionConfig"]
    config["CustomErrorResponses"] = [{"ErrorCode": c, "ResponsePagePath": "/404.html", "ResponseCode": 404,
                                       "ErrorCachingMinTTL": 60} for c in (403, 404)]
    edge = edge_for(fake_chain, tpl)
    try:
        with pytest.raises(AssertionError):
            check_d2_unknown_route_is_the_api_error(edge.url)
        with pytest.raises(AssertionError):
            check_d4_missing_batch_is_the_api_404(edge.url)
        status, headers, body = fetch(edge.url, "/api/predictions/1999-01-01")
        assert status == 404 and headers["content-type"].startswith("text/html") and b"Page not found" in body
        # With only the 403 mapping the bucket's 403 would have become the page: the cost D4 weighs.
        status, _, body = fetch(edge.url, "/no/such/page.html")
        assert status == 404 and b"Page not found" in body
    finally:
        edge.stop()


@pytest.mark.parametrize("how", ["api policy overrides", "site policy on /api/*"])
def test_d3_put_back_an_overriding_headers_policy_is_caught(fake_chain: tuple[str, str], how: str) -> None:
    tpl = copy.deepcopy(template())
    if how == "site policy on /api/*":
        api_behaviour(tpl)["ResponseHeadersPolicyId"] = {"Ref": "HeadersPolicy"}  # the original defect
    else:
        config = tpl["Resources"]["ApiHeadersPolicy"]["Properties"]["ResponseHeadersPolicyConfig"]
        for spec in config["SecurityHeadersConfig"].values():
            spec["Override"] = True
    edge = edge_for(fake_chain, tpl)
    try:
        with pytest.raises(AssertionError):
            check_d3_api_keeps_its_headers(edge.url)
        _, headers, _ = fetch(edge.url, "/api/health")
        assert headers["content-security-policy"] != API_CSP  # the API's policy is lost
    finally:
        edge.stop()


def test_d5_put_back_a_viewer_response_not_found_function_is_caught(fake_chain: tuple[str, str]) -> None:
    # The first fix tried: a CloudFront Function on viewer-response turning the bucket's 403 into the
    # page. AWS does not invoke viewer-response functions for origin answers of 400 or more.
    tpl = copy.deepcopy(template())
    default = tpl["Resources"]["Distribution"]["Properties"]["DistributionConfig"]["DefaultCacheBehavior"]
    del default["LambdaFunctionAssociations"]
    default["FunctionAssociations"] = [{"EventType": "viewer-response",
                                        "FunctionARN": {"Fn::GetAtt": ["ViewerNotFound", "FunctionARN"]}}]
    tpl["Resources"]["ViewerNotFound"] = {"Type": "AWS::CloudFront::Function", "Properties": {
        "Name": "not-found", "AutoPublish": True, "FunctionConfig": {"Comment": "", "Runtime": "cloudfront-js-2.0"},
        "FunctionCode": "function handler(event) { var r = event.response; if (r.statusCode === 403) {"
                        " r.statusCode = 404; r.body = {encoding: 'text', data: '<h1>Page not found</h1>'}; }"
                        " return r; }"}}
    edge = edge_for(fake_chain, tpl)
    try:
        with pytest.raises(AssertionError):
            check_d5_missing_page_is_the_404_page(edge.url)
        status, _, body = fetch(edge.url, "/no/such/page.html")
        assert status == 403 and b"AccessDenied" in body  # what production would show
    finally:
        edge.stop()
