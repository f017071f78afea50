"""deploy/api_gateway.py: API Gateway's own answers (gateway responses) in the API's error shape."""

from __future__ import annotations

import json

import pytest

from deploy import api_gateway


@pytest.fixture(scope="module")
def swagger():
    from app import app

    return api_gateway.swagger_for(app)


def test_the_definition_declares_the_routes_and_carries_the_responses(swagger):
    assert set(swagger["paths"]) == {"/health", "/predictions", "/predictions/{date}", "/predictions/{date}/{pid}",
                                     "/reports/{date}"}
    assert all(set(methods) == {"get"} for methods in swagger["paths"].values())
    assert swagger[api_gateway.EXTENSION] == api_gateway.gateway_responses()


def test_an_undeclared_route_is_a_404_in_the_error_shape_not_a_403(swagger):
    status, headers, body = api_gateway.render(swagger, "MISSING_AUTHENTICATION_TOKEN", 403,
                                               "Missing Authentication Token")
    assert status == 404
    assert json.loads(body)["error"]["code"] == "route_not_found"
    assert headers["Cache-Control"] == "no-store" and headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("kind, status", [("ACCESS_DENIED", 403), ("REQUEST_TOO_LARGE", 413)])
def test_other_refusals_keep_their_status_and_api_gateways_message(swagger, kind, status):
    got, _, body = api_gateway.render(swagger, kind, status, 'Say "no"')
    assert got == status
    assert json.loads(body) == {"error": {"code": "request_refused", "message": 'Say "no"'}}


def test_gateway_faults_and_throttling_are_json_too(swagger):
    assert json.loads(api_gateway.render(swagger, "INTEGRATION_TIMEOUT", 504, "Endpoint request timed out")[2])[
        "error"]["code"] == "gateway_error"
    status, _, body = api_gateway.render(swagger, "THROTTLED", 429, "Too Many Requests")
    assert status == 429 and json.loads(body)["error"]["code"] == "throttled"


def test_every_template_is_json_whatever_the_message():
    for kind, entry in api_gateway.gateway_responses().items():
        template = entry["responseTemplates"]["application/json"]
        filled = template.replace("$context.error.messageString", json.dumps('a "quoted" \\ message'))
        assert set(json.loads(filled)["error"]) == {"code", "message"}, kind


def test_without_the_responses_api_gateway_answers_its_bare_message():
    status, _, body = api_gateway.render({"paths": {}}, "MISSING_AUTHENTICATION_TOKEN", 403,
                                         "Missing Authentication Token")
    assert (status, json.loads(body)) == (403, {"message": "Missing Authentication Token"})


def test_chalice_cli_adds_them_to_every_swagger_chalice_generates(monkeypatch):
    from chalice.deploy import swagger

    from deploy import chalice_cli

    monkeypatch.setattr(swagger.SwaggerGenerator, "generate_swagger", swagger.SwaggerGenerator.generate_swagger)
    chalice_cli.install_gateway_responses()
    chalice_cli.install_gateway_responses()  # twice in one process: still added once
    from app import app

    generated = swagger.CFNSwaggerGenerator().generate_swagger(app)
    assert generated[api_gateway.EXTENSION] == api_gateway.gateway_responses()
    assert "/predictions/{date}" in generated["paths"]
