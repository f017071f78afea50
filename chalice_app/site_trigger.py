"""The site function: an EventBridge rule on the stage's batches and pointer runs the site rebuild.

When the model job publishes, it writes the dated batch `{prefix}<date>/predictions.json`, then (for
the newest date) the pointer `{prefix}latest.json`; S3 sends "Object Created" for each to
EventBridge, and this rule invokes a Lambda of its own (`predictions-<stage>-site`) that renders the
site and syncs it (chalice_app/website/rebuild.py). The batch key matters on its own: a backfilled
day older than latest moves no pointer, yet belongs on the site (its pages, the date list, and the
"Change" column of the next date). Both events mean the same thing to the handler: rebuild what
changed, from the store as it is now. Nothing else under the prefix (a report, `_SUCCESS`, a
temporary upload) matches.
`on_cw_event` works with both `chalice deploy` and `chalice package` (on_s3_event does not package).

Like the warmer (chalice_app/warming/scheduled.py), the switch is read at import time from
stage-level environment variables, which Chalice sets before it imports app.py:
`SITE_REBUILD_ENABLED` decides whether the function is registered at all, and the rule's pattern
names the stage's `PREDICTIONS_BUCKET` and `PREDICTIONS_PREFIX`. When it is off (or unset, as in the
unit tests) nothing is registered: no rule, no function, no role.

The API imports this module to register the blueprint: its module level is the standard library
and chalice only; the renderer (jinja2) is imported inside the function, never on the API's path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from chalice import Blueprint

from chalice_app.contract import BATCH_FILE, DEFAULT_PREFIX, REPORT_FILE, normalize_prefix, pointer_key

SITE_FUNCTION = "site"  # Chalice deploys it as {app_name}-{stage}-site


class SiteTriggerConfigError(ValueError):
    """A setting of the site function cannot be used; the message names it."""


def enabled(env: Mapping[str, str]) -> bool:
    value = env.get("SITE_REBUILD_ENABLED", "").strip().lower()
    if value in ("", "false", "0", "no", "off"):
        return False
    if value not in ("true", "1", "yes", "on"):
        raise SiteTriggerConfigError(f"SITE_REBUILD_ENABLED={value!r}: expected true or false")
    return True


def event_pattern(bucket: str, prefix: str) -> dict:
    """EventBridge pattern: S3 'Object Created' of this stage's pointer, of any dated batch
    (`{prefix}*/predictions.json`: EventBridge's `wildcard`, where `*` also spans '/'), or of a batch's
    gate report (`*/report.json`): the publish command writes it after the batch, and its date's pages
    show it, so a backfill's pages get it too."""
    if not bucket.strip():
        raise SiteTriggerConfigError("SITE_REBUILD_ENABLED is true but PREDICTIONS_BUCKET is not set")
    prefix = normalize_prefix(prefix or DEFAULT_PREFIX)
    batches = {"wildcard": f"{_wildcard_literal(prefix)}*/{BATCH_FILE}"}
    reports = {"wildcard": f"{_wildcard_literal(prefix)}*/{REPORT_FILE}"}
    return {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [bucket.strip()]},
                   "object": {"key": [pointer_key(prefix), batches, reports]}},
    }


def _wildcard_literal(text: str) -> str:
    """`text` matched as it is inside an EventBridge wildcard, where '*' and '\\' are special."""
    return text.replace("\\", "\\\\").replace("*", "\\*")


blueprint = Blueprint(__name__)


def rebuild_site(event: Any) -> dict:
    """The function EventBridge invokes (Chalice passes a CloudWatchEvent; its to_dict() is the raw event)."""
    from chalice_app.website import rebuild  # jinja2 and the renderer: only in this function's container

    raw = event.to_dict() if hasattr(event, "to_dict") else event
    return rebuild.handle(raw)


if enabled(os.environ):
    # Rebinding the name matters: Chalice points the Lambda handler at `chalice_app.site_trigger.rebuild_site`.
    rebuild_site = blueprint.on_cw_event(
        event_pattern(os.environ.get("PREDICTIONS_BUCKET", ""), os.environ.get("PREDICTIONS_PREFIX", "")),
        name=SITE_FUNCTION)(rebuild_site)
