"""The pointer's history: every move of latest.json (publish, forced publish, retract) as one object
in the bucket, and the dates a retract withdrew, so that no publish can quietly undo it.

    predictions-audit --stage S [--limit N] [--json]     (or --bucket B [--prefix P])
    python -m chalice_app.publishing.audit ...

Layout, under the stage's prefix (readers of the S3 contract ignore both: no key of theirs is a
batch key):
- `{prefix}audit/<UTC time>-<action>-<date>.json`, one object per move, named so that listing them
  gives the order they happened in: `{"action", "at", "by", "from", "to", "reason", ...}`. S3 has no
  append; objects that are never rewritten are the log.
- `{prefix}retracted/<date>.json`, for each published date a retract took out of latest (every date
  after `--to`, up to the one that was latest): the retract's record. Publishing such a date again
  needs --force with a reason; a forced publish that moves latest there removes the mark.

Exit codes of the command: 0 shown, 2 bad input, 1 AWS error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from chalice_app.aws_clients import error_code
from chalice_app.contract import date_from_key, retracted_key
from chalice_app.publishing.commands import EXIT_OK, make_client, report_failure, resolve_target

AUDIT_DIR = "audit/"
ACTIONS = ("publish", "publish-forced", "retract")
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
MAX_REASON = 500


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def record(client: Any, bucket: str, prefix: str, action: str, *, to: str, from_: str | None,
           reason: str | None = None, by: str | None = None, **extra: object) -> dict:
    """Append one move of the pointer to the log; returns the entry (with its `key`)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    now = _now()
    entry = {"action": action, "at": now.isoformat(timespec="seconds").replace("+00:00", "Z"), "by": by,
             "from": from_, "to": to, "reason": reason, **extra}
    # Microseconds in the name: two moves in one second still list in order, and never collide.
    key = f"{prefix}{AUDIT_DIR}{now.strftime('%Y%m%dT%H%M%S%fZ')}-{action}-{to}.json"
    client.put_object(Bucket=bucket, Key=key, ContentType="application/json",
                      Body=json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode())
    return {**entry, "key": key}


def read_log(client: Any, bucket: str, prefix: str, limit: int = DEFAULT_LIMIT) -> list[dict]:
    """The newest `limit` entries, newest first."""
    keys: list[str] = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=f"{prefix}{AUDIT_DIR}"):
        keys.extend(obj["Key"] for obj in page.get("Contents", ()) if obj["Key"].endswith(".json"))
    entries = []
    for key in sorted(keys, reverse=True)[:limit]:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        try:
            entry = json.loads(body)
        except ValueError:
            entry = None
        entries.append({**entry, "key": key} if isinstance(entry, dict) else {"key": key, "unreadable": True})
    return entries


def retraction_of(client: Any, bucket: str, prefix: str, date: str) -> dict | None:
    """The record of the retract that withdrew `date`, or None when it stands (or was republished)."""
    from botocore.exceptions import ClientError

    try:
        body = client.get_object(Bucket=bucket, Key=retracted_key(prefix, date))["Body"].read()
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    try:
        found = json.loads(body)
    except ValueError:
        found = None
    # An unreadable mark still marks: refusing needs --force, which is the safe side.
    return found if isinstance(found, dict) else {"reason": "(unreadable retraction record)"}


def mark_retracted(client: Any, bucket: str, prefix: str, dates: list[str], entry: dict) -> None:
    body = json.dumps({k: v for k, v in entry.items() if k != "key"}, ensure_ascii=False,
                      separators=(",", ":")).encode()
    for date in dates:
        client.put_object(Bucket=bucket, Key=retracted_key(prefix, date), Body=body,
                          ContentType="application/json")


def clear_retracted(client: Any, bucket: str, prefix: str, date: str) -> None:
    client.delete_object(Bucket=bucket, Key=retracted_key(prefix, date))


def listed_dates(client: Any, bucket: str, prefix: str) -> list[str]:
    """Every published date under the prefix (its batch key exists), oldest first: one listing."""
    paginator = client.get_paginator("list_objects_v2")
    return sorted(date for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
                  for obj in page.get("Contents", ()) if (date := date_from_key(prefix, obj["Key"])))


def published_between(client: Any, bucket: str, prefix: str, after: str, upto: str) -> list[str]:
    """Published dates d with after < d <= upto."""
    return [date for date in listed_dates(client, bucket, prefix) if after < date <= upto]


def format_entry(entry: dict) -> str:
    """One line a person reads: when, what, from -> to, who, why."""
    if entry.get("unreadable"):
        return f"{entry['key']}: unreadable"
    moved = f"{entry.get('from') or '(none)'} -> {entry.get('to')}"
    by = f" by {entry['by']}" if entry.get("by") else ""
    why = f": {entry['reason']}" if entry.get("reason") else ""
    return f"{entry.get('at')}  {entry.get('action'):<14} {moved}{by}{why}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="predictions-audit",
        description="Show who moved latest.json, when, from which date to which, and why: every publish "
                    "that moved it, every forced publish and every retract, newest first.",
        epilog="Exit codes: 0 shown, 2 bad input, 1 AWS error. Example: predictions-audit --stage prod --limit 50",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--stage", help="bucket and prefix from this stage of .chalice/config.json (default: local)")
    where.add_argument("--bucket", help="the predictions bucket (instead of --stage)")
    p.add_argument("--prefix", help="key prefix (default: the stage's PREDICTIONS_PREFIX or predictions/)")
    p.add_argument("--limit", type=_limit, default=DEFAULT_LIMIT,
                   help=f"how many entries, newest first (default {DEFAULT_LIMIT}, at most {MAX_LIMIT})")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    return p


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_LIMIT}")
    return value


def main(argv: list[str] | None = None, client: Any = None) -> int:
    args = parser().parse_args(argv)
    try:
        bucket, prefix = resolve_target(args.stage, args.bucket, args.prefix)
        entries = read_log(client or make_client(), bucket, prefix, args.limit)
    except Exception as exc:  # noqa: BLE001 - report_failure re-raises what it does not know
        return report_failure(exc)
    if not entries and not args.json:
        print(f"no moves of s3://{bucket}/{prefix}latest.json recorded yet", file=sys.stderr)
    for entry in entries:
        print(json.dumps(entry, ensure_ascii=False) if args.json else format_entry(entry))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
