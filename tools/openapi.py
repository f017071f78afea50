"""The API's OpenAPI 3.1 document: Chalice's own route table plus a hand-written description.

    python -m tools.openapi            # (re)write openapi.json in the project root
    python -m tools.openapi --check    # exit 1 when openapi.json is not what the code describes

Paths and methods come from `app.routes`, so a route added to Chalice without a description (or a
description left behind by a removed route) stops the build instead of drifting silently. Limits
and patterns are read from the constants the routes enforce, so the document cannot promise a
range the code does not accept.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DOCUMENT_PATH = os.path.join(PROJECT_DIR, "openapi.json")
OPENAPI_VERSION = "3.1.0"


class DescriptionMismatch(ValueError):
    """The Chalice routes and the hand-written operations disagree; the message lists how."""


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _components() -> dict[str, Any]:
    from chalice_app.api import routes
    from chalice_app.api.cursor import MAX_CURSOR_LENGTH
    from chalice_app.contract import DATE_PATTERN, ID_PATTERN

    date = f"^{DATE_PATTERN.pattern}$"
    ident = f"^{ID_PATTERN.pattern}$"
    error_codes = [
        "invalid_date", "invalid_id", "invalid_limit", "invalid_order", "invalid_sort", "invalid_q",
        "invalid_cursor", "unknown_parameter", "repeated_parameter", "batch_not_found",
        "prediction_not_found", "report_not_found", "not_found", "storage_unavailable", "batch_too_large",
        "not_configured", "internal_error",
        "method_not_allowed", "unsupported_media_type", "bad_request",
    ]
    security_headers = {
        "X-Content-Type-Options": _ref("headers", "X-Content-Type-Options"),
        "Content-Security-Policy": _ref("headers", "Content-Security-Policy"),
    }
    error_content = {"application/json": {"schema": _ref("schemas", "Error")}}

    def error(description: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Cache-Control": _ref("headers", "Cache-Control"), **security_headers, **(extra or {})}
        return {"description": description, "headers": headers, "content": error_content}

    return {
        "schemas": {
            "Date": {"type": "string", "format": "date", "pattern": date, "examples": ["2026-11-23"]},
            "Scalar": {"type": ["string", "number", "boolean", "null"],
                       "description": "A JSON scalar; numbers are always finite."},
            "Model": {
                "type": ["object", "null"],
                "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
            },
            "Prediction": {
                "type": "object",
                "description": "One row of a batch: an id unique in its batch and free-form scalar fields.",
                "required": ["id"],
                "properties": {"id": {"type": "string", "pattern": ident}},
                "additionalProperties": _ref("schemas", "Scalar"),
            },
            "Health": {
                "type": "object",
                "required": ["status", "version", "stage", "cold"],
                "additionalProperties": False,
                "properties": {
                    "status": {"const": "ok"},
                    "version": {"type": "string"},
                    "stage": {"type": "string"},
                    "cold": {"type": "boolean", "description": "true on this container's first invocation"},
                },
            },
            "DateList": {
                "type": "object",
                "required": ["latest", "dates"],
                "additionalProperties": False,
                "properties": {
                    "latest": {"oneOf": [_ref("schemas", "Date"), {"type": "null"}]},
                    "dates": {"type": "array", "items": _ref("schemas", "Date"),
                              "description": "newest first"},
                },
            },
            "Page": {
                "type": "object",
                "required": ["date", "model", "generated_at", "gate", "retracted", "count", "total", "items",
                             "next_cursor"],
                "additionalProperties": False,
                "properties": {
                    "date": _ref("schemas", "Date"),
                    "model": _ref("schemas", "Model"),
                    "generated_at": {"type": ["string", "null"]},
                    "gate": {"enum": ["passed", "forced", None],
                             "description": "the publish gate's verdict: passed, forced (published with --force "
                                            "over a refusal), or null (a batch not stored by the publish command)"},
                    "retracted": {"type": "boolean",
                                  "description": "a retract took this date out of latest (predictions-retract)"},
                    "count": {"type": "integer", "minimum": 0, "description": "items matching q"},
                    "total": {"type": "integer", "minimum": 0, "description": "items in the batch"},
                    "items": {"type": "array", "maxItems": routes.MAX_LIMIT,
                              "items": _ref("schemas", "Prediction")},
                    "next_cursor": {"type": ["string", "null"], "maxLength": MAX_CURSOR_LENGTH,
                                    "description": "pass as `cursor` for the next page; null on the last"},
                },
            },
            "Report": {
                "type": "object",
                "required": ["date", "verdict", "checks"],
                "description": "the publish gate's report (docs/publishing.md), without its profile",
                "properties": {
                    "date": _ref("schemas", "Date"),
                    "previous": {"oneOf": [_ref("schemas", "Date"), {"type": "null"}]},
                    "verdict": {"enum": ["passed", "forced", "refused"]},
                    "forced": {"type": ["object", "null"]},
                    "checks": {"type": "array", "items": {
                        "type": "object", "required": ["rule", "passed", "message"],
                        "properties": {"rule": {"type": "string"}, "passed": {"type": "boolean"},
                                       "message": {"type": "string"}}}},
                    "notes": {"type": "array", "items": {"type": "string"}},
                },
            },
            "PredictionAnswer": {
                "type": "object",
                "required": ["date", "model", "prediction"],
                "additionalProperties": False,
                "properties": {
                    "date": _ref("schemas", "Date"),
                    "model": _ref("schemas", "Model"),
                    "prediction": _ref("schemas", "Prediction"),
                },
            },
            "Error": {
                "type": "object",
                "required": ["error"],
                "additionalProperties": False,
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "additionalProperties": False,
                        "properties": {
                            "code": {"type": "string", "enum": error_codes},
                            "message": {"type": "string", "minLength": 1},
                        },
                    },
                },
            },
        },
        "parameters": {
            "date": {
                "name": "date", "in": "path", "required": True,
                "description": "a batch date (YYYY-MM-DD, a real calendar date) or `latest`",
                "schema": {"type": "string", "pattern": f"^(latest|{DATE_PATTERN.pattern})$"},
                "examples": {"latest": {"value": "latest"}, "dated": {"value": "2026-11-23"}},
            },
            "pid": {
                "name": "pid", "in": "path", "required": True,
                "description": "the prediction's id",
                "schema": {"type": "string", "pattern": ident, "maxLength": 128},
                "examples": {"sample": {"value": "sku-00001"}},
            },
            "limit": {
                "name": "limit", "in": "query", "required": False, "description": "page size",
                "schema": {"type": "integer", "minimum": 1, "maximum": routes.MAX_LIMIT,
                           "default": routes.DEFAULT_LIMIT},
            },
            "cursor": {
                "name": "cursor", "in": "query", "required": False,
                "description": "the `next_cursor` of the previous page (opaque); it pins the batch",
                "schema": {"type": "string", "maxLength": MAX_CURSOR_LENGTH},
            },
            "sort": {
                "name": "sort", "in": "query", "required": False,
                "description": "a field present in the batch; nulls last in both orders",
                "schema": {"type": "string"},
                "examples": {"value": {"value": "value"}},
            },
            "order": {
                "name": "order", "in": "query", "required": False,
                "schema": {"type": "string", "enum": ["asc", "desc"], "default": "asc"},
            },
            "q": {
                "name": "q", "in": "query", "required": False,
                "description": "case-insensitive substring over id and the string fields",
                "schema": {"type": "string", "maxLength": routes.MAX_Q_LENGTH},
            },
            "If-None-Match": {
                "name": "If-None-Match", "in": "header", "required": False,
                "description": "an ETag of an earlier answer (or `*`): a match is a 304 without a body",
                "schema": {"type": "string"},
            },
        },
        "headers": {
            "ETag": {"required": True, "description": "strong tag of the body",
                     "schema": {"type": "string", "pattern": '^"[0-9a-f]{24}"$'}},
            "Cache-Control": {"required": True, "schema": {"type": "string"},
                              "description": "public with max-age on answers (plus s-maxage, how long CloudFront "
                                             "keeps them, where each publish invalidates them), no-store on "
                                             "errors and /health"},
            "Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 0},
                            "description": "seconds before S3 is worth asking again"},
            "X-Predictions-Stale": {"required": False, "schema": {"type": "string", "const": "true"},
                                    "description": "present when S3 failed and the last good copy answered"},
            "X-Content-Type-Options": {"required": True, "schema": {"type": "string", "const": "nosniff"}},
            "Content-Security-Policy": {"required": True, "schema": {"type": "string"}},
        },
        "responses": {
            "NotModified": {
                "description": "the If-None-Match tag still matches; no body",
                "headers": {"ETag": _ref("headers", "ETag"), "Cache-Control": _ref("headers", "Cache-Control"),
                            **security_headers},
            },
            "BadRequest": error("a bad date, id or query parameter; `code` names which"),
            "NotFound": error("no such batch (`batch_not_found`) or id (`prediction_not_found`)"),
            "Unavailable": error("S3 cannot be read and nothing cached can answer (`storage_unavailable`), "
                                 "the batch is over the stage's size limits (`batch_too_large`), "
                                 "the stage names no bucket (`not_configured`), or the origin secret cannot be read "
                                 "(`origin_check_unavailable`)",
                                 {"Retry-After": _ref("headers", "Retry-After")}),
            "InternalError": error("a bug: never a traceback, only `internal_error`"),
            "Forbidden": error("not through the site's CloudFront: the request lacks the origin header CloudFront "
                               "adds (`forbidden`); call the API at `https://<site>/api/...`, not execute-api"),
            "Throttled": error("past the stage's rate and burst (`throttled`), answered by API Gateway before the "
                               "function runs; retry after `Retry-After` seconds",
                               {"Retry-After": _ref("headers", "Retry-After")}),
        },
    }


def _ok(description: str, schema: str, *, etag: bool = True) -> dict[str, Any]:
    headers: dict[str, Any] = {"Cache-Control": _ref("headers", "Cache-Control")}
    if etag:
        headers["ETag"] = _ref("headers", "ETag")
        headers["X-Predictions-Stale"] = _ref("headers", "X-Predictions-Stale")
    headers["X-Content-Type-Options"] = _ref("headers", "X-Content-Type-Options")
    headers["Content-Security-Policy"] = _ref("headers", "Content-Security-Policy")
    return {"description": description, "headers": headers,
            "content": {"application/json": {"schema": _ref("schemas", schema)}}}


def _errors(*statuses: str) -> dict[str, Any]:
    names = {"304": "NotModified", "400": "BadRequest", "403": "Forbidden", "404": "NotFound", "429": "Throttled",
             "500": "InternalError", "503": "Unavailable"}
    # Every route: the origin check (403) and the stage throttle (429) come before any route's own answers.
    return {status: _ref("responses", names[status]) for status in sorted({*statuses, "403", "429"})}


# The hand-written half: one entry per (Chalice path, method). Chalice's path is the key as is,
# since API Gateway and chalice local route exactly these templates.
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("/health", "GET"): {
        "operationId": "health",
        "summary": "Liveness, version, stage and whether this container was cold",
        "responses": {"200": _ok("the service is up", "Health", etag=False), **_errors("500", "503")},
    },
    ("/predictions", "GET"): {
        "operationId": "listDates",
        "summary": "Every published date, newest first, and which one is latest",
        "parameters": [_ref("parameters", "If-None-Match")],
        "responses": {"200": _ok("the dates", "DateList"), **_errors("304", "400", "500", "503")},
    },
    ("/predictions/{date}", "GET"): {
        "operationId": "getBatch",
        "summary": "A page of one batch, optionally sorted and filtered",
        "parameters": [_ref("parameters", name)
                       for name in ("date", "limit", "cursor", "sort", "order", "q", "If-None-Match")],
        "responses": {"200": _ok("batch metadata and a page of items", "Page"),
                      **_errors("304", "400", "404", "500", "503")},
    },
    ("/predictions/{date}/{pid}", "GET"): {
        "operationId": "getPrediction",
        "summary": "One prediction of a batch, by id",
        "parameters": [_ref("parameters", name) for name in ("date", "pid", "If-None-Match")],
        "responses": {"200": _ok("the prediction with its batch's date and model", "PredictionAnswer"),
                      **_errors("304", "400", "404", "500", "503")},
    },
    ("/reports/{date}", "GET"): {
        "operationId": "getReport",
        "summary": "What the publish gate said of a batch",
        "parameters": [_ref("parameters", name) for name in ("date", "If-None-Match")],
        "responses": {"200": _ok("the gate's verdict, its checks with their numbers, its notes", "Report"),
                      **_errors("304", "400", "404", "500", "503")},
    },
}


def app_routes() -> dict[str, list[str]]:
    """Chalice's route table: path template -> methods, as API Gateway will be configured."""
    from app import app

    return {path: sorted(methods) for path, methods in app.routes.items()}


def build_document(routes: Mapping[str, Iterable[str]] | None = None) -> dict[str, Any]:
    """The OpenAPI document for `routes` (default: the app's); every route must be described."""
    from chalice_app import __version__

    routes = app_routes() if routes is None else routes
    wanted = {(path, method.upper()) for path, methods in routes.items() for method in methods}
    missing = sorted(wanted - OPERATIONS.keys())
    extra = sorted(OPERATIONS.keys() - wanted)
    if missing or extra:
        lines = [f"route without a description: {m} {p}" for p, m in missing]
        lines += [f"description of a route Chalice does not have: {m} {p}" for p, m in extra]
        raise DescriptionMismatch("; ".join(lines))
    paths: dict[str, dict[str, Any]] = {}
    for path, method in sorted(wanted):
        paths.setdefault(path, {})[method.lower()] = OPERATIONS[(path, method)]
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Predictions API",
            "version": __version__,
            "description": "Pre-computed daily predictions read from S3. Errors are "
                           '`{"error": {"code", "message"}}`; every answer carries nosniff and a '
                           "restrictive CSP. See the README, \"The API (v1)\".",
        },
        "servers": [{"url": "/api", "description": "the site's domain, behind CloudFront"}],
        "paths": paths,
        "components": _components(),
    }


def render(document: Mapping[str, Any]) -> str:
    """The checked-in text: stable key order and a trailing newline, so diffs stay readable."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.openapi",
                                description="Write (or check) openapi.json from the Chalice routes.")
    p.add_argument("--check", action="store_true", help="exit 1 if the file is missing or out of date")
    p.add_argument("--out", default=DOCUMENT_PATH, help="where the document lives (default: ./openapi.json)")
    args = p.parse_args(argv)
    try:
        text = render(build_document())
    except DescriptionMismatch as exc:
        print(f"openapi: error: {exc}", file=sys.stderr)
        return 1
    if args.check:
        try:
            with open(args.out, encoding="utf-8") as fh:
                current = fh.read()
        except FileNotFoundError:
            current = ""
        if current != text:
            print(f"openapi: {args.out} is out of date: run python -m tools.openapi", file=sys.stderr)
            return 1
        print(f"openapi: {args.out} is up to date")
        return 0
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write(text)
    print(f"openapi: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
