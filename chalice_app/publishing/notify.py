"""The `Batch Published` event: each publish tells EventBridge's default bus what it published and
what the gate said, so that a team can route it (a rule) to Slack, e-mail or a webhook without
polling the bucket. Sent after the batch is stored (and the pointer moved, when it did); a failure to
send is a warning, never a failed publish: the batch is there either way.

    {"source": "predictions.publish", "detail-type": "Batch Published",
     "detail": {"bucket", "prefix", "date", "key", "report", "count", "model", "latest",
                "verdict", "forced", "failed", "notes", "previous"}}
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

SOURCE = "predictions.publish"
DETAIL_TYPE = "Batch Published"
MAX_FAILED_LISTED = 20  # an event's detail stays small: the report has every check


def batch_published(bucket: str, prefix: str, *, date: str, key: str, report_key: str, count: int,
                    model: object, latest: bool, report: dict) -> dict:
    """The PutEvents entry of one publish (the report's summary, not its profile)."""
    failed = [{"rule": c["rule"], "message": c["message"]} for c in report.get("checks", ()) if not c["passed"]]
    detail = {"bucket": bucket, "prefix": prefix, "date": date, "key": key, "report": report_key, "count": count,
              "model": model, "latest": latest, "verdict": report.get("verdict"), "forced": report.get("forced"),
              "failed": failed[:MAX_FAILED_LISTED], "notes": report.get("notes", []),
              "previous": report.get("previous")}
    return {"Source": SOURCE, "DetailType": DETAIL_TYPE, "Detail": json.dumps(detail, ensure_ascii=False)}


def send(events: Any, entry: dict, warn: Callable[[str], None]) -> bool:
    """Put the event on the default bus; False (and one warning line) when EventBridge refused it."""
    try:
        answer = events.put_events(Entries=[entry])
    except Exception as exc:  # noqa: BLE001 - a notification must not fail a publish that succeeded
        warn(f"warning: the {DETAIL_TYPE} event was not sent ({type(exc).__name__}: {str(exc)[:200]}); "
             "the batch is published")
        return False
    if answer.get("FailedEntryCount"):
        first = (answer.get("Entries") or [{}])[0]
        warn(f"warning: EventBridge refused the {DETAIL_TYPE} event ({first.get('ErrorCode')}: "
             f"{first.get('ErrorMessage')}); the batch is published")
        return False
    return True
