"""openapi.json is checked in: it must match Chalice's routes, the generator, and OpenAPI 3 itself."""

from __future__ import annotations

import json
import os

import pytest

from app import app
from chalice_app.api import routes
from chalice_app.contract import ID_PATTERN
from tools import openapi

from helpers import PROJECT_DIR

DOCUMENT = os.path.join(PROJECT_DIR, "openapi.json")
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture(scope="module")
def document() -> dict:
    with open(DOCUMENT, encoding="utf-8") as fh:
        return json.load(fh)


def resolve(document: dict, node: dict) -> dict:
    while "$ref" in node:
        *_, kind, name = node["$ref"].split("/")
        node = document["components"][kind][name]
    return node


def parameters(document: dict, path: str) -> dict[str, dict]:
    found = [resolve(document, p) for p in document["paths"][path]["get"].get("parameters", [])]
    return {p["name"]: p for p in found}


def test_every_chalice_route_and_method_is_documented_and_nothing_else(document):
    chalice = {(path, method.lower()) for path, methods in app.routes.items() for method in methods}
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops
                  if method in HTTP_METHODS}
    assert documented == chalice


def test_the_checked_in_file_is_what_the_generator_writes():
    with open(DOCUMENT, encoding="utf-8") as fh:
        checked_in = fh.read()
    assert checked_in == openapi.render(openapi.build_document()), "run: python -m tools.openapi"


def test_the_document_is_valid_openapi_3(document):
    try:
        from openapi_spec_validator import validate
    except ImportError:  # schemathesis parses and validates the document as well
        import schemathesis

        schemathesis.openapi.from_dict(document).validate()
        return
    validate(document)


def test_a_route_without_a_description_stops_the_generator():
    with pytest.raises(openapi.DescriptionMismatch, match="route without a description: GET /new"):
        openapi.build_document({**openapi.app_routes(), "/new": ["GET"]})


def test_a_description_without_a_route_stops_the_generator():
    kept = {path: methods for path, methods in openapi.app_routes().items() if path != "/health"}
    with pytest.raises(openapi.DescriptionMismatch, match="does not have: GET /health"):
        openapi.build_document(kept)


def test_check_mode_reports_a_stale_file(tmp_path, capsys):
    stale = tmp_path / "openapi.json"
    stale.write_text("{}\n")
    assert openapi.main(["--check", "--out", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert openapi.main(["--out", str(stale)]) == 0
    assert openapi.main(["--check", "--out", str(stale)]) == 0


def test_limit_is_documented_with_the_range_the_code_enforces(document):
    limit = parameters(document, "/predictions/{date}")["limit"]["schema"]
    assert (limit["type"], limit["minimum"], limit["maximum"], limit["default"]) == (
        "integer", 1, routes.MAX_LIMIT, routes.DEFAULT_LIMIT)
    assert (routes.MAX_LIMIT, routes.DEFAULT_LIMIT) == (500, 50)


def test_order_is_an_enum_and_q_is_bounded(document):
    params = parameters(document, "/predictions/{date}")
    assert params["order"]["schema"]["enum"] == ["asc", "desc"]
    assert params["q"]["schema"]["maxLength"] == routes.MAX_Q_LENGTH
    assert set(params) == {*routes.PAGE_PARAMS, "date", "If-None-Match"}


def test_date_and_id_patterns_are_anchored_and_match_the_contract(document):
    import re

    date = re.compile(parameters(document, "/predictions/{date}")["date"]["schema"]["pattern"])
    pid = re.compile(parameters(document, "/predictions/{date}/{pid}")["pid"]["schema"]["pattern"])
    for good in ("latest", "2026-11-23"):
        assert date.search(good)
    for bad in ("2026-11-23x", "x2026-11-23", "latest/..", "20261123"):
        assert not date.search(bad)
    assert pid.pattern == f"^{ID_PATTERN.pattern}$"
    assert pid.search("sku-00001") and not pid.search("../latest.json")


@pytest.mark.parametrize("path", ["/predictions", "/predictions/{date}", "/predictions/{date}/{pid}"])
def test_answers_document_etag_cache_control_and_304(document, path):
    responses = document["paths"][path]["get"]["responses"]
    ok = resolve(document, responses["200"])
    assert {"ETag", "Cache-Control", "X-Predictions-Stale", "X-Content-Type-Options"} <= set(ok["headers"])
    assert "content" not in resolve(document, responses["304"])
    assert {"400", "503"} <= set(responses)


def test_503_documents_retry_after_and_every_error_the_error_shape(document):
    for name in ("BadRequest", "NotFound", "Unavailable", "InternalError"):
        answer = document["components"]["responses"][name]
        assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
        assert "X-Content-Type-Options" in answer["headers"]
    assert "Retry-After" in document["components"]["responses"]["Unavailable"]["headers"]


def test_error_codes_in_the_document_cover_every_code_the_routes_raise(document):
    import inspect
    import re

    from chalice_app.api import responses as responses_module

    source = inspect.getsource(routes) + inspect.getsource(responses_module)
    raised = set(re.findall(r'ApiError\(\d{3}, "([a-z_]+)"', source))
    documented = set(document["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"])
    assert len(raised) >= 10, raised  # the pattern still finds the routes' codes
    assert raised <= documented, raised - documented
