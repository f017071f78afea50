"""The API (v1): every route, its parameters and its answers. See README "The API"."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from http import HTTPStatus

from chalice import Chalice, Response

from chalice_app import __version__, canary, metrics, site_trigger
from chalice_app.api import container, origin, warmup
from chalice_app.api.cursor import Cursor, CursorError
from chalice_app.api.limits import DEFAULT_LIMIT, MAX_LIMIT, MAX_Q_LENGTH
from chalice_app.api.responses import ApiError, body_response, error_response, json_response
from chalice_app.contract import ID_PATTERN, is_valid_date
from chalice_app.jsontext import encode
from chalice_app.logs import log_event
from chalice_app.store.cache import Answer, BatchNotFound, StoreUnavailable
from chalice_app.warming import scheduled as warmer

app = Chalice(app_name="predictions")
# The API answers JSON only. Chalice's default list of 16 binary media types would be checked
# against every answer and its request's Accept (~15 µs of a ~90 µs by-id) and written into the
# REST API's binaryMediaTypes, which a JSON API has no use for.
app.api.binary_types = []

PAGE_PARAMS = ("limit", "cursor", "sort", "order", "q")
STALE_HEADER = "X-Predictions-Stale"
# A GET has no body, so its Content-Type must not matter: Chalice's default (JSON only) would
# answer a 415 of its own to any other.
GET = {"methods": ["GET"], "content_types": ["*/*"]}
# Codes for the answers Chalice makes itself (405, an exception outside a view), in our shape.
CHALICE_STATUS_CODES = {405: "method_not_allowed", 415: "unsupported_media_type"}


def _query() -> dict[str, str]:
    """Single-valued query parameters; unknown or repeated ones are a 400, not ignored."""
    params = app.current_request.query_params
    if not params:
        return {}
    out = {}
    for name in params:
        if name not in PAGE_PARAMS:
            raise ApiError(400, "unknown_parameter",
                           f"unknown query parameter {name[:40]!r}; accepted: {', '.join(PAGE_PARAMS)}")
        values = params.getlist(name)
        if len(values) > 1:
            raise ApiError(400, "repeated_parameter", f"query parameter {name!r} given {len(values)} times")
        out[name] = values[0]
    return out


def _if_none_match() -> str | None:
    headers = app.current_request.headers
    return headers.get("if-none-match") if headers else None


def _batch_max_age(date: str) -> int:
    """'latest' can move any moment; a dated batch is immutable by contract."""
    cfg = container.settings()
    return cfg.latest_max_age if date == "latest" else cfg.batch_max_age


def _cache_headers(answer: Answer, max_age: int) -> tuple[str, dict]:
    if answer.stale:
        # A stale copy must not be cached for long, by browsers or the edge: S3 may be back in seconds.
        ttl = container.settings().retry_after
        return f"public, max-age={ttl}", {STALE_HEADER: "true"}
    shared = container.edge_max_age()
    return (f"public, max-age={max_age}, s-maxage={shared}" if shared else f"public, max-age={max_age}"), {}


def _check_date(date: str) -> None:
    if date != "latest" and not is_valid_date(date):
        raise ApiError(400, "invalid_date", f"date must be YYYY-MM-DD or 'latest', got {date[:40]!r}")


def api_view(view: Callable[..., Response]) -> Callable[..., Response]:
    """Turn every failure of a route into the API's JSON error shape."""

    @functools.wraps(view)
    def wrapper(*args: str, **kwargs: str) -> Response:
        try:
            if not container.settings().bucket:
                raise ApiError(503, "not_configured", "PREDICTIONS_BUCKET is not set for this stage",
                               {"Retry-After": str(container.settings().retry_after)})
            return view(*args, **kwargs)
        except ApiError as exc:
            return error_response(exc)
        except BatchNotFound as exc:
            what = "no batch has been published yet" if str(exc) == "latest" else f"no batch for {exc}"
            return error_response(ApiError(404, "batch_not_found", what))
        except StoreUnavailable as exc:
            retry = {"Retry-After": str(container.settings().retry_after)}
            if exc.code == "batch_too_large":
                return error_response(ApiError(503, "batch_too_large",
                                               "the batch is larger than this stage is set to serve", retry))
            return error_response(ApiError(503, "storage_unavailable",
                                           "predictions cannot be read right now; retry shortly", retry))
        except Exception as exc:  # noqa: BLE001 - the last line of defence: never a traceback
            log_event("unhandled_error", error=type(exc).__name__, detail=str(exc)[:500])
            return error_response(ApiError(500, "internal_error", "internal error"))

    return wrapper


def _request_id(event: object) -> str | None:
    """API Gateway's request id (the access log's `requestId`); Lambda's where there is none (chalice local)."""
    found = (getattr(event, "context", None) or {}).get("requestId")
    return found or getattr(app.lambda_context, "aws_request_id", None)


@app.middleware("http")
def _count_invocations(event, get_response) -> Response:  # noqa: ANN001 - Chalice middleware
    started = time.perf_counter()
    cold = container.begin_invocation()
    response = get_response(event)
    if "X-Content-Type-Options" not in response.headers:
        response = _in_api_shape(response)
    origin = container.settings().cors_origin
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    date, model_version = container.batch_noted()
    metrics.emit_line(metrics.request_line(
        stage=container.settings().stage, route=getattr(event, "path", None) or "unknown",
        status=response.status_code, latency_ms=(time.perf_counter() - started) * 1000, cold=cold,
        init_duration_ms=container.init_duration_ms() if cold else None, cache_hit=container.cache_hit(),
        request_id=_request_id(event), date=date, model_version=model_version))
    return response


def _in_api_shape(response: Response) -> Response:
    """Chalice's own answers (405, 415, an unhandled error) rewritten as the API's: never its body."""
    status = response.status_code
    code = CHALICE_STATUS_CODES.get(status) or ("internal_error" if status >= 500 else "bad_request")
    extra = {"Allow": response.headers["Allow"]} if "Allow" in response.headers else None
    return error_response(ApiError(status, code, HTTPStatus(status).phrase.lower()), extra)


@app.middleware("http")
def _warm_up(event, get_response) -> Response:  # noqa: ANN001 - Chalice middleware
    """Answer the warmer's events (see chalice_app.api.warmup); registered after _count_invocations,
    so a warm-up is counted, cold-flagged and measured like any request."""
    marker = warmup.marker_of(event)
    if marker is not None:
        return warmup.handle(marker, cold=container.last_cold())
    if warmup.is_warmup_path(event):
        # Only reachable by a direct invoke without the marker: the same 404 as any unknown path.
        return error_response(ApiError(404, "not_found", "no such route"))
    # Only what CloudFront sent (its X-Origin-Verify header), before any route or S3 read: the
    # execute-api URL answers nothing else (chalice_app/api/origin.py). Warm-ups, invoked directly
    # with IAM, are answered above.
    refused = origin.refusal(event.headers)
    if refused is not None:
        status, code, message = refused
        extra = {"Retry-After": str(container.settings().retry_after)} if status == 503 else None
        return error_response(ApiError(status, code, message), extra)
    return get_response(event)


@app.route("/health", **GET)
@api_view
def health() -> Response:
    cfg = container.settings()
    return json_response(
        {"status": "ok", "version": __version__, "stage": cfg.stage, "cold": container.last_cold()},
        cache_control="no-store",
    )


@app.route("/predictions", **GET)
@api_view
def list_dates() -> Response:
    _query_none()
    # One answer from the store, so that `latest` is always one of `dates` (see overview()).
    answer = container.store().overview()
    container.note_cache_hit(answer.hit)
    latest, dates = answer.value
    cache_control, extra = _cache_headers(answer, container.settings().latest_max_age)
    return json_response({"latest": latest, "dates": dates}, cache_control=cache_control,
                         if_none_match=_if_none_match(), extra_headers=extra)


def _query_none() -> None:
    params = app.current_request.query_params
    if params:
        raise ApiError(400, "unknown_parameter", "this route takes no query parameters")


def _page_params(params: dict[str, str], date: str) -> tuple[Cursor, int]:
    raw_limit = params.get("limit", str(DEFAULT_LIMIT))
    # isdigit() alone admits '²' and 5,000-digit strings, which int() rejects: check ASCII and length.
    if not (raw_limit.isascii() and raw_limit.isdigit() and len(raw_limit) <= 4) \
            or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise ApiError(400, "invalid_limit", f"limit must be an integer from 1 to {MAX_LIMIT}")
    order = params.get("order", "asc")
    if order not in ("asc", "desc"):
        raise ApiError(400, "invalid_order", "order must be 'asc' or 'desc'")
    q = params.get("q") or None
    if q is not None and len(q) > MAX_Q_LENGTH:
        raise ApiError(400, "invalid_q", f"q must be at most {MAX_Q_LENGTH} characters")
    wanted = Cursor(date, 0, params.get("sort") or None, order == "desc", q)
    raw_cursor = params.get("cursor")
    if not raw_cursor:
        return wanted, int(raw_limit)
    try:
        cursor = Cursor.decode(raw_cursor)
    except CursorError as exc:
        raise ApiError(400, "invalid_cursor", str(exc)) from None
    # A cursor carries its own view; a request that also names one must name the same.
    for name in ("sort", "q"):
        if name in params and (params[name] or None) != getattr(cursor, name):
            raise ApiError(400, "invalid_cursor", f"cursor was made for a different {name}")
    if "order" in params and wanted.descending != cursor.descending:
        raise ApiError(400, "invalid_cursor", "cursor was made for a different order")
    if date != "latest" and cursor.date != date:
        raise ApiError(400, "invalid_cursor", "cursor was made for another date")
    return cursor, int(raw_limit)


@app.route("/predictions/{date}", **GET)
@api_view
def get_batch(date: str) -> Response:
    _check_date(date)
    cursor, limit = _page_params(_query(), date)
    store = container.store()
    # A cursor pins its batch, so a walk of 'latest' survives a newer batch being published.
    answer = store.resolve(cursor.date)
    container.note_cache_hit(answer.hit)
    batch = answer.value
    if cursor.sort is not None and cursor.sort not in batch.field_names:
        known = ", ".join(sorted(batch.field_names)[:20])
        raise ApiError(400, "invalid_sort", f"sort must be a field of this batch ({known})")
    view = batch.view(cursor.sort, cursor.descending, cursor.q)
    start = cursor.offset
    if start > len(view):
        raise ApiError(400, "invalid_cursor", "cursor points past the end of this batch")
    end = start + limit
    next_cursor = None
    if end < len(view):
        next_cursor = Cursor(batch.date, end, cursor.sort, cursor.descending, cursor.q).encode()
    container.note_batch(batch.date, batch.model)
    cache_control, extra = _cache_headers(answer, _batch_max_age(date))
    # Assembled from text: each item's JSON is encoded once per batch (see Batch.items_json).
    # Latest is never a retracted date (a retract moves it away): only a dated request asks.
    retracted = cursor.date != "latest" and store.retracted(batch.date)
    head = encode({**batch.metadata(), "retracted": retracted, "count": len(view), "total": len(batch)})
    body = f'{head[:-1]},"items":{batch.items_json(view[start:end])},"next_cursor":{encode(next_cursor)}}}'
    return body_response(body, cache_control=cache_control, if_none_match=_if_none_match(),
                         extra_headers=extra)


@app.route("/predictions/{date}/{pid}", **GET)
@api_view
def get_prediction(date: str, pid: str) -> Response:
    _check_date(date)
    if ID_PATTERN.fullmatch(pid) is None:
        raise ApiError(400, "invalid_id", "id must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
    _query_none()
    answer = container.store().resolve(date)
    container.note_cache_hit(answer.hit)
    batch = answer.value
    prediction = batch.item_json(pid)
    if prediction is None:
        raise ApiError(404, "prediction_not_found", f"no prediction {pid!r} in the batch of {batch.date}")
    container.note_batch(batch.date, batch.model)
    cache_control, extra = _cache_headers(answer, _batch_max_age(date))
    # Assembled from text, as a page is: the item's JSON and the head are encoded once per batch.
    return body_response(f'{batch.head_json()[:-1]},"prediction":{prediction}}}', cache_control=cache_control,
                         if_none_match=_if_none_match(), extra_headers=extra)


@app.route("/reports/{date}", **GET)
@api_view
def get_report(date: str) -> Response:
    """What the publish gate said of a batch (docs/publishing.md), without the profile it keeps for the
    next day's gate."""
    _check_date(date)
    _query_none()
    store = container.store()
    if date == "latest":
        latest = store.latest_date()
        if latest.value is None:
            raise ApiError(404, "report_not_found", "no batch has been published yet")
        date = latest.value
    try:
        answer = store.report(date)
    except BatchNotFound:
        raise ApiError(404, "report_not_found", f"no gate report for {date}: no batch, or one the publish "
                                                "command did not store") from None
    container.note_cache_hit(answer.hit)
    cache_control, extra = _cache_headers(answer, container.settings().batch_max_age)
    return json_response(answer.value, cache_control=cache_control, if_none_match=_if_none_match(),
                         extra_headers=extra)


# The warmer's scheduled function lives on a blueprint so that its Lambda handler is
# chalice_app.warming.scheduled.warm_api (app.py stays a few lines); registered only when the stage turns it on.
app.register_blueprint(warmer.blueprint)
# The site function (EventBridge rule on the latest pointer), the same way: chalice_app/site_trigger.py.
app.register_blueprint(site_trigger.blueprint)
# The pre-traffic hook of canary deploys, the same way: chalice_app/canary.py.
app.register_blueprint(canary.blueprint)
container.mark_ready()
