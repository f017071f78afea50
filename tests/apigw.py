"""Raw API Gateway (REST, proxy integration) events, as Lambda receives them."""

from __future__ import annotations

from urllib.parse import quote

ROUTES = {
    "/health": (),
    "/predictions": (),
    "/predictions/{date}": ("date",),
    "/predictions/{date}/{pid}": ("date", "pid"),
}


def proxy_event(resource: str, path_params: dict | None = None, query: dict | None = None,
                headers: dict | None = None, method: str = "GET") -> dict:
    """The event API Gateway sends for `resource` with these (already decoded) parameters."""
    path = resource
    for name, value in (path_params or {}).items():
        # API Gateway only ever sends valid UTF-8; a generated lone surrogate must not break the helper.
        path = path.replace("{" + name + "}", quote(value.encode("utf-8", "surrogatepass"), safe=""))
    multi = {k: (v if isinstance(v, list) else [v]) for k, v in (query or {}).items()} or None
    single = {k: v[-1] for k, v in multi.items()} if multi else None
    headers = headers or {}
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers or None,
        "multiValueHeaders": {k: [v] for k, v in headers.items()} or None,
        "queryStringParameters": single,
        "multiValueQueryStringParameters": multi,
        "pathParameters": path_params or None,
        "stageVariables": None,
        "body": None,
        "isBase64Encoded": False,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": "/api" + path,
            "stage": "api",
            "requestId": "test-request",
            "identity": {"sourceIp": "203.0.113.7"},
        },
    }
