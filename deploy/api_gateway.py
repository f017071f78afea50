"""What API Gateway answers by itself, in the API's own error shape: the gateway responses.

API Gateway answers some requests without calling the function: a path or method no route declares
(403 "Missing Authentication Token"), throttling (429, past the stage's rate and burst), its own faults
(5xx). Left alone those answers
are `{"message": "..."}`, not the documented `{"error": {"code", "message"}}`, and the 403 looks like
a permission problem. The Swagger extension `x-amazon-apigateway-gateway-responses` replaces them; it
lives in the API's definition, so every deployment of the definition carries it.

Three users, one definition: `deploy/chalice_cli.py` adds it to the Swagger Chalice generates (for both
`chalice deploy` and `chalice package`), and the local API Gateway stand-in (tools/) answers with
`render()` from the same table. tests/test_api_gateway.py checks both.
"""

from __future__ import annotations

import copy
import json
from typing import Any

EXTENSION = "x-amazon-apigateway-gateway-responses"
# The API's own error responses carry these too (chalice_app/api/responses.py).
HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}
# response type -> (status, or None to keep API Gateway's own; code; message template).
# $context.error.messageString is API Gateway's message as a quoted JSON string.
TABLE: dict[str, tuple[int | None, str, str]] = {
    # An undeclared path or method. 404 says what happened; 403 would read as "not allowed" and is the
    # status a CloudFront error page is most often attached to.
    "MISSING_AUTHENTICATION_TOKEN": (
        404, "route_not_found",
        '"no API route answers this method and path; the routes are GET /api/health, /api/predictions, '
        '/api/predictions/{date} and /api/predictions/{date}/{id}"'),
    "THROTTLED": (429, "throttled", '"too many requests: retry after a pause"'),
    "DEFAULT_4XX": (None, "request_refused", "$context.error.messageString"),
    "DEFAULT_5XX": (None, "gateway_error", "$context.error.messageString"),
}
# Headers of one response type only. The stage throttle (.chalice/config.json `api_throttle`) refills
# rate_limit tokens a second: a client that waits a second finds some.
EXTRA_HEADERS: dict[str, dict[str, str]] = {"THROTTLED": {"Retry-After": "1"}}


def _template(code: str, message: str) -> str:
    return '{"error": {"code": "' + code + '", "message": ' + message + "}}"


def gateway_responses() -> dict[str, dict[str, Any]]:
    """The Swagger extension's value: one entry per response type of TABLE."""
    found: dict[str, dict[str, Any]] = {}
    for kind, (status, code, message) in TABLE.items():
        entry: dict[str, Any] = {
            # Header values are static strings, quoted as API Gateway's mapping syntax wants.
            "responseParameters": {f"gatewayresponse.header.{name}": f"'{value}'"
                                   for name, value in {**HEADERS, **EXTRA_HEADERS.get(kind, {})}.items()},
            "responseTemplates": {"application/json": _template(code, message)},
        }
        if status is not None:
            entry["statusCode"] = str(status)
        found[kind] = entry
    return found


def add_gateway_responses(swagger: dict[str, Any]) -> dict[str, Any]:
    """`swagger` with the gateway responses added (a copy; Chalice's own keys are kept)."""
    result = copy.deepcopy(swagger)
    result[EXTENSION] = gateway_responses()
    return result


def render(swagger: dict[str, Any], kind: str, default_status: int, message: str) -> tuple[int, dict[str, str], bytes]:
    """What API Gateway sends for a gateway response of type `kind` under this definition.

    Falls back from the type to DEFAULT_4XX/DEFAULT_5XX as API Gateway does; without any entry it is
    API Gateway's bare `{"message": ...}`.
    """
    responses = swagger.get(EXTENSION, {})
    entry = responses.get(kind) or responses.get("DEFAULT_4XX" if default_status < 500 else "DEFAULT_5XX")
    if entry is None:
        return default_status, {"Content-Type": "application/json"}, json.dumps({"message": message}).encode()
    status = int(entry.get("statusCode", default_status))
    headers = {"Content-Type": "application/json"}
    for key, value in entry.get("responseParameters", {}).items():
        headers[key.removeprefix("gatewayresponse.header.")] = value[1:-1]  # a static value is quoted: 'v'
    template = entry.get("responseTemplates", {}).get("application/json", "")
    body = template.replace("$context.error.messageString", json.dumps(message)) \
                   .replace("$context.error.message", message)
    return status, headers, body.encode()


def swagger_for(app: Any) -> dict[str, Any]:
    """The definition API Gateway imports for `app` (a Chalice app): Chalice's Swagger + the responses."""
    from chalice.deploy.swagger import TemplatedSwaggerGenerator

    return add_gateway_responses(TemplatedSwaggerGenerator().generate_swagger(app))
