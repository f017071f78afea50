"""The API side of a warm-up: what a warm-up event is, and what the API does with one.

A warm-up is recognised only by MARKER inside `requestContext`. API Gateway builds
requestContext itself, so no client on the internet can set it; and PATH is not a Chalice route,
so API Gateway has no resource for it and answers a request to it with the same 403 as for any
unknown path, before Lambda runs. Only a principal allowed lambda:InvokeFunction (the warmer's
role) can send a warm-up. See docs/warming.md.

Only the standard library is imported at module level: the warmer imports this module for
`build_event`, and the API imports it on every cold start.
"""

from __future__ import annotations

import time
from typing import Any

MARKER = "predictionsWarmup"
PATH = "/_warmup"
# A warm-up holds its container at most this long, whatever the event asks: a bound on what a
# mistaken or hostile warmer configuration can cost.
MAX_HOLD_MS = 1000


def build_event(*, hold_ms: int, run_id: str, index: int, of: int) -> dict:
    """The API-Gateway-shaped proxy event the warmer sends: a GET of PATH carrying MARKER."""
    return {
        "resource": PATH,
        "path": PATH,
        "httpMethod": "GET",
        "headers": {"User-Agent": "predictions-warmer"},
        "multiValueHeaders": {"User-Agent": ["predictions-warmer"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "body": None,
        "isBase64Encoded": False,
        "requestContext": {
            "resourcePath": PATH,
            "httpMethod": "GET",
            "path": PATH,
            "stage": "warmer",
            "requestId": f"warmup-{run_id}-{index}",
            MARKER: {"run": run_id, "index": index, "of": of, "hold_ms": hold_ms},
        },
    }


def marker_of(request: Any) -> dict | None:
    """The warm-up marker of a Chalice request, or None for every ordinary request."""
    context = getattr(request, "context", None)
    marker = context.get(MARKER) if isinstance(context, dict) else None
    return marker if isinstance(marker, dict) else None


def is_warmup_path(request: Any) -> bool:
    return getattr(request, "path", None) == PATH


def hold_ms(marker: dict) -> int:
    value = marker.get("hold_ms")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(min(max(value, 0), MAX_HOLD_MS))


def handle(marker: dict, *, cold: bool, started: float | None = None) -> Any:
    """Preload the latest pointer, batch and date listing; hold; report what this container did.

    200 when the cache is ready (or nothing is published yet, so there is nothing to load);
    503 when S3 could not be read or the stage has no bucket, so the warmer counts a failure.
    """
    # Imported here: the warmer's Lambda imports this module and must not pull in the store.
    from chalice_app.api import container, origin
    from chalice_app.jsontext import encode
    from chalice_app.logs import log_event
    from chalice_app.store.cache import BatchNotFound, StoreUnavailable

    started = time.monotonic() if started is None else started
    report: dict[str, Any] = {"warmup": True, "cold": cold, "container": container.container_id(),
                              "run": str(marker.get("run", ""))[:64], "latest": None, "preloaded": False}
    status = 200
    try:
        cfg = container.settings()
        report["stage"] = cfg.stage
        if not cfg.bucket:
            status, report["error"] = 503, {"code": "not_configured", "message": "PREDICTIONS_BUCKET is not set"}
        else:
            store = container.store()
            store.dates()
            try:
                batch = store.resolve("latest").value
                report.update(latest=batch.date, generated_at=batch.generated_at, preloaded=True, items=len(batch))
            except BatchNotFound:
                pass  # nothing published yet: the listing is cached, there is no batch to load
        # The origin secret too, so the container's first request through CloudFront does not read it.
        # A warm-up itself needs no header: only a principal allowed lambda:InvokeFunction sends one.
        try:
            report["origin_secret"] = origin.accepted_values() is not None
        except origin.SecretUnavailable:
            report["origin_secret"] = False  # logged (origin_secret_unavailable); requests get a 503
    except StoreUnavailable as exc:
        status, report["error"] = 503, {"code": "storage_unavailable", "message": str(exc)[:200]}
    except Exception as exc:  # noqa: BLE001 - a warm-up must answer, so the warmer can count it
        log_event("warmup_error", error=type(exc).__name__, detail=str(exc)[:500])
        status, report["error"] = 500, {"code": "internal_error", "message": type(exc).__name__}
    hold = hold_ms(marker)
    remaining = hold / 1000 - (time.monotonic() - started)
    if remaining > 0:
        # Busy until the other N-1 invocations have arrived, so Lambda must give each its own container.
        time.sleep(remaining)
    report["held_ms"] = hold
    return _response(status, encode(report))


def _response(status: int, body: str) -> Any:
    from chalice import Response

    from chalice_app.api.responses import BASE_HEADERS

    return Response(body=body, status_code=status, headers={**BASE_HEADERS, "Cache-Control": "no-store"})
