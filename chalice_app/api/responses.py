"""JSON responses: body encoding, ETag / 304, cache headers, the error shape.

Every answer of the API goes through `json_response` or `error_response`, so that every one
carries the same security headers and no error can leak a traceback or unescaped input.
"""

from __future__ import annotations

import hashlib

from chalice import Response

from chalice_app.jsontext import encode

BASE_HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}



class ApiError(Exception):
    """An answer other than 200; raised anywhere in a route, rendered by `error_response`."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def etag_of(body: str) -> str:
    return '"' + hashlib.blake2b(body.encode("utf-8"), digest_size=12).hexdigest() + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison over a list of tags, or '*'."""
    if not if_none_match:
        return False
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


def json_response(payload: object, *, cache_control: str, if_none_match: str | None = None,
                  extra_headers: dict | None = None) -> Response:
    return body_response(encode(payload), cache_control=cache_control, if_none_match=if_none_match,
                         extra_headers=extra_headers)


def body_response(body: str, *, cache_control: str, if_none_match: str | None = None,
                  extra_headers: dict | None = None) -> Response:
    """A 200 (or 304) for an already encoded JSON body."""
    etag = etag_of(body)
    headers = {**BASE_HEADERS, "ETag": etag, "Cache-Control": cache_control, **(extra_headers or {})}
    if etag_matches(if_none_match, etag):
        return Response(body="", status_code=304, headers=headers)
    return Response(body=body, status_code=200, headers=headers)


def error_response(error: ApiError, extra_headers: dict | None = None) -> Response:
    body = encode({"error": {"code": error.code, "message": error.message}})
    headers = {**BASE_HEADERS, "Cache-Control": "no-store", **(extra_headers or {}), **error.headers}
    return Response(body=body, status_code=error.status, headers=headers)
