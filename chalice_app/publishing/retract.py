"""Move `latest` back to an earlier, already published date, on purpose: the operator's undo.

    predictions-retract --stage S --to YYYY-MM-DD --reason "..."    (or --bucket B [--prefix P])
    python -m chalice_app.publishing.retract ...

Publishing only ever moves the pointer forward, so a batch published under a wrong date (a typo
such as 2062-11-21) would stay latest for good. This command points latest.json at `--to`, which
must name a batch that exists, with a conditional write (If-Match on the pointer's ETag, or
If-None-Match when there is none): if anything moved the pointer since it was read, nothing is
written and the command says so. The pointer records the retraction (from, reason, when, who).
The retracted batch itself stays in the bucket (batches are immutable); the next publish of a new
date after `--to` moves latest forward as usual, but publishing a date the retract withdrew (every
published date after `--to` up to the one that was latest) needs --force and a reason. The retract is
appended to the audit log (chalice_app/publishing/audit.py, `predictions-audit`).

Exit codes: 0 done (or nothing to do), 2 bad input (nothing written), 1 AWS error or a race lost.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from chalice_app.aws_clients import error_code
from chalice_app.contract import batch_key, is_valid_date, pointer_key
from chalice_app.publishing import audit
from chalice_app.publishing.commands import (
    EXIT_AWS,
    EXIT_INPUT,
    EXIT_OK,
    PublishError,
    make_client,
    report_failure,
    resolve_target,
    who,
)
from chalice_app.publishing.publish import CONDITION_FAILED, _read_pointer, _stored_digest, _utc_now, put_pointer

MAX_REASON = audit.MAX_REASON


def retract(client: Any, bucket: str, prefix: str, to: str, reason: str, *, by: str | None = None) -> str | None:
    """Point latest at `to`; returns the date it named before (None if there was no pointer).

    Raises PublishError (exit 2) when `to` has no batch or is not earlier than latest, and
    (exit 1) when the pointer changed between the read and the write.
    """
    if not is_valid_date(to):
        raise PublishError(f"--to must be a real date written YYYY-MM-DD, got {to!r}", EXIT_INPUT)
    reason = " ".join(reason.split())
    if not reason:
        raise PublishError("--reason must say why (it is recorded in latest.json)", EXIT_INPUT)
    if len(reason) > MAX_REASON:
        raise PublishError(f"--reason is longer than {MAX_REASON} characters", EXIT_INPUT)
    target = batch_key(prefix, to)
    if _stored_digest(client, bucket, target) is None:
        raise PublishError(f"s3://{bucket}/{target} does not exist: latest can only name a published "
                           "batch; nothing was changed", EXIT_INPUT)
    key = pointer_key(prefix)
    current, etag = _read_pointer(client, bucket, key)
    if current == to:
        return current
    if current is not None and current < to:
        raise PublishError(f"latest is {current}, earlier than {to}: retract moves latest back; "
                           "publishing moves it forward", EXIT_INPUT)
    pointer = {"date": to, "retracted": {"from": current, "reason": reason, "at": _utc_now(), "by": by}}
    from botocore.exceptions import ClientError

    try:
        put_pointer(client, bucket, key, pointer, etag)
    except ClientError as exc:
        if error_code(exc) in CONDITION_FAILED:
            now, _ = _read_pointer(client, bucket, key)
            raise PublishError(f"s3://{bucket}/{key} changed while retracting (latest is now {now}); "
                               "nothing was written: look, then run again", EXIT_AWS) from None
        raise
    entry = audit.record(client, bucket, prefix, "retract", to=to, from_=current, reason=reason, by=by)
    if current is not None:
        # Every published date the retract took out of latest: a rerun of its publish must not bring it back.
        audit.mark_retracted(client, bucket, prefix, audit.published_between(client, bucket, prefix, to, current),
                             entry)
    return current


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m chalice_app.publishing.retract",
        description="Point latest.json back at an earlier published date (to retract a bad batch, "
                    "such as one published under a mistyped future date). Conditional on the pointer "
                    "not changing meanwhile; the reason, time and user are recorded in latest.json.",
        epilog="Exit codes: 0 done, 2 bad input (nothing written), 1 AWS error or the pointer changed "
               "meanwhile. Example: predictions-retract --stage prod --to 2026-11-30 "
               "--reason 'published 2062-11-21 by mistake (typo)'",
    )
    p.add_argument("--to", required=True, help="the date latest should name, YYYY-MM-DD; its batch must exist")
    p.add_argument("--reason", required=True, help="why, recorded in latest.json")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--stage", help="bucket and prefix from this stage of .chalice/config.json (default: local)")
    where.add_argument("--bucket", help="the predictions bucket (instead of --stage)")
    p.add_argument("--prefix", help="key prefix (default: the stage's PREDICTIONS_PREFIX or predictions/)")
    p.add_argument("--by", help="who retracts, recorded in latest.json (default: the login name)")
    return p


def main(argv: list[str] | None = None, client: Any = None) -> int:
    args = parser().parse_args(argv)
    try:
        bucket, prefix = resolve_target(args.stage, args.bucket, args.prefix)
        by = args.by or who()
        before = retract(client or make_client(), bucket, prefix, args.to, args.reason, by=by)
    except Exception as exc:  # noqa: BLE001 - report_failure re-raises what it does not know
        return report_failure(exc)
    if before == args.to:
        print(f"latest is already {args.to}; nothing was changed")
    else:
        # The one log line of the operation: what, from where, why, when and who.
        print(json.dumps({"event": "latest_retracted", "bucket": bucket, "pointer": pointer_key(prefix),
                          "to": args.to, "from": before, "reason": " ".join(args.reason.split()),
                          "by": by, "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")},
                         ensure_ascii=False))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
