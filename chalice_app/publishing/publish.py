"""The model job's side of the S3 contract: validate, gate, upload, verify, then move the pointer.

    python -m chalice_app.publishing.publish FILE --date YYYY-MM-DD [--stage S | --bucket B] ...

Exit codes: 0 published (or dry run ok), 2 bad input (nothing uploaded), 3 refused by the gate
(gate.py; nothing uploaded), 1 AWS error.
Not imported by the API: this module may use boto3, which the model job has anyway.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import json
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalice_app.aws_clients import error_code
from chalice_app.config.settings import Settings
from chalice_app.contract import (
    GATE_METADATA,
    MD5_METADATA,
    SHA256_METADATA,
    VALIDATED_MARK,
    VALIDATED_METADATA,
    batch_key,
    document_problem,
    is_valid_date,
    model_problem,
    normalize_prefix,
    pointer_key,
    report_key,
)
from chalice_app.publishing import audit, gate, notify
from chalice_app.publishing.batch_input import (
    InputError,
    InputTooLarge,
    RowError,
    read_batch_input,
    validate_rows,
)
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

GZIP_THRESHOLD_BYTES = 64 * 1024
POINTER_ATTEMPTS = 5
PREVIOUS_TRIES = 7  # earlier dates looked at for the gate's baseline, past retracted ones
POINTER_MAX_BYTES = 64 * 1024  # a pointer is ~200 bytes; a bigger one is not read, only replaced
READ_BACK_CHUNK = 1 << 20
# What S3 answers when a conditional write (If-None-Match / If-Match) loses.
CONDITION_FAILED = ("PreconditionFailed", "412", "ConditionalRequestConflict")


@dataclass(frozen=True)
class PublishResult:
    date: str
    key: str
    count: int
    stored_bytes: int
    raw_bytes: int
    gzipped: bool
    pointer_moved: bool
    dry_run: bool = False
    report: dict | None = None  # the gate's (gate.py), as stored in report.json


Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def build_document(predictions: list[dict], date: str, meta: dict, model_name: str | None,
                   model_version: str | None, generated_at: str | None = None) -> dict:
    """The batch document of the contract, from rows and whatever metadata the file carried."""
    if meta.get("date") not in (None, date):
        raise PublishError(f"the file says date {meta['date']!r} but --date is {date}", EXIT_INPUT)
    found = meta.get("model")
    if found is not None and not isinstance(found, dict):
        raise PublishError(model_problem(found) or "model must be an object", EXIT_INPUT)
    model = dict(found or {})
    if model_name:
        model["name"] = model_name
    if model_version:
        model["version"] = model_version
    if not model.get("name") or not model.get("version"):
        raise PublishError("model name and version are required: pass --model-name and --model-version "
                           "(or put 'model' in a batch document)", EXIT_INPUT)
    doc: dict[str, Any] = {
        "date": date,
        "generated_at": generated_at or meta.get("generated_at") or _utc_now(),
        "model": {"name": model["name"], "version": model["version"]},
    }
    if meta.get("fields") is not None:
        doc["fields"] = meta["fields"]
    doc["predictions"] = predictions
    return doc


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def encode_document(doc: dict) -> tuple[bytes, bytes]:
    """(uncompressed JSON, what to store); the stored form is gzip above the threshold. Each prediction
    is written with its "id" first (the API relies on it for a batch marked VALIDATED_MARK): a row
    that has it elsewhere is reordered in place, one at a time, so that no second copy of the rows
    is ever held (equal as dicts; only the order of its keys changes)."""
    for row in doc.get("predictions") or ():
        if isinstance(row, dict) and "id" in row and next(iter(row)) != "id":
            rest = {key: value for key, value in row.items() if key != "id"}
            pid = row["id"]
            row.clear()
            row["id"] = pid
            row.update(rest)
    raw = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    if len(raw) > GZIP_THRESHOLD_BYTES:
        # mtime=0: the same batch always compresses to the same bytes.
        return raw, gzip.compress(raw, compresslevel=6, mtime=0)
    return raw, raw


def publish_document(client: Any, bucket: str, prefix: str, doc: dict, *, force: bool = False,
                     dry_run: bool = False, progress: Progress = _quiet,
                     rows_validated: bool = False, limits: Settings | None = None,
                     reason: str | None = None, by: str | None = None,
                     gate_config: gate.GateConfig | None = None, events: Any = None,
                     warn: Progress | None = None) -> PublishResult:
    """Validate `doc`, upload it, read it back, then move the pointer if this date is the newest.

    `force` replaces a published batch, publishes a date a retract withdrew (audit.py) and a batch
    the gate refused (gate.py, with `gate_config`: the stage's thresholds); `reason` and `by` are
    recorded in the audit log with every move of the pointer (and every forced publish), and in the
    gate's report, stored beside the batch before the pointer moves. With `events` (an EventBridge
    client), a `Batch Published` event follows (notify.py); `warn` gets what could not be done after
    the batch was stored (default: `progress`).

    `rows_validated=True` skips the row checks when the caller (the CLI) has just made them.
    `limits` (default: the settings' defaults) bounds the batch as the API will read it: its JSON
    (MAX_BATCH_BYTES) and what is stored (MAX_STORED_BYTES). Everything that can refuse a batch
    does so before the upload; after it, every failure is a PublishError that says the batch is
    uploaded, and running the same publish again finishes the job (an identical batch is resumed,
    not refused as existing).
    """
    from botocore.exceptions import ClientError

    limits = limits or Settings()
    problem = document_problem(doc)
    if problem:
        raise PublishError(problem, EXIT_INPUT)
    date = doc["date"]
    rows = doc["predictions"]
    errors = [] if rows_validated else validate_rows(rows, list(range(1, len(rows) + 1)))
    if errors:
        raise PublishError(f"{len(errors)} problem(s), first: {errors[0]}", EXIT_INPUT)
    prefix = normalize_prefix(prefix)
    key = batch_key(prefix, date)
    withdrawn = audit.retraction_of(client, bucket, prefix, date)
    if withdrawn is not None and not force:
        # Otherwise a rerun of the very publish a retract undid would quietly make it latest again.
        raise PublishError(f"{date} was retracted ({_retraction_text(withdrawn)}); publishing it again would "
                           "undo that: pass --force --reason '...' if you mean it; nothing was uploaded",
                           EXIT_INPUT)
    report = _gate_report(client, bucket, prefix, doc, gate_config or gate.GateConfig(), force, reason, by)
    # A refusal's report is its explanation: shown even with --quiet (warn goes to stderr).
    ((warn or progress) if report["verdict"] == "refused" else progress)(gate.render(report))
    if report["verdict"] == "refused":
        raise PublishError(f"the gate refused the batch of {date} ({len(gate.failed(report['checks']))} check(s) "
                           "failed, above); nothing was uploaded: fix the batch, or pass --force --reason '...' "
                           "if it is right", gate.EXIT_GATE)
    raw, body = encode_document(doc)
    if len(raw) > limits.max_batch_bytes:
        raise PublishError(f"the batch is {len(raw):,} bytes of JSON, over the {limits.max_batch_bytes:,} "
                           "the API reads (MAX_BATCH_BYTES); nothing was uploaded", EXIT_INPUT)
    if len(body) > limits.max_stored_bytes:
        raise PublishError(f"the batch stores as {len(body):,} bytes, over the {limits.max_stored_bytes:,} "
                           "the API reads (MAX_STORED_BYTES); nothing was uploaded", EXIT_INPUT)
    if len(rows) > limits.max_batch_items:
        progress(f"warning: {len(rows):,} predictions, over the {limits.max_batch_items:,} the API loads "
                 "(MAX_BATCH_ITEMS): it will answer 503 batch_too_large for this date")
    gzipped = body is not raw
    digest = hashlib.sha256(raw).hexdigest()
    result = PublishResult(date, key, len(rows), len(body), len(raw), gzipped, False, dry_run, report)
    target = f"s3://{bucket}/{key}"
    if dry_run:
        if not force and _stored_digest(client, bucket, key) is not None and not _unfinished(
                client, bucket, prefix, key, date, digest):
            raise PublishError(f"{target} already exists; pass --force to replace it", EXIT_INPUT)
        progress(f"dry run: would upload {_size(len(body))}{' (gzip)' if gzipped else ''} to {target}")
        return result
    progress(f"uploading {_size(len(body))}{f' (gzip of {_size(len(raw))})' if gzipped else ''} to {target}")
    put: dict[str, Any] = {
        "Bucket": bucket, "Key": key, "Body": body, "ContentType": "application/json; charset=utf-8",
        # The digest and the mark let the API skip proving again what was just validated (contract.py).
        "Metadata": {SHA256_METADATA: digest, MD5_METADATA: hashlib.md5(body, usedforsecurity=False).hexdigest(),
                     VALIDATED_METADATA: VALIDATED_MARK, GATE_METADATA: report["verdict"], "count": str(len(rows)),
                     "generated-at": str(doc.get("generated_at", ""))},
    }
    if gzipped:
        put["ContentEncoding"] = "gzip"
    if not force:
        put["IfNoneMatch"] = "*"  # atomic: two jobs racing for one date cannot both win
    try:
        client.put_object(**put)
    except ClientError as exc:
        if error_code(exc) not in CONDITION_FAILED:
            raise
        if not _unfinished(client, bucket, prefix, key, date, digest):
            # A rerun an hour later stamps a new generated_at on the same rows: still the same batch.
            stored_at = (_stored_metadata(client, bucket, key) or {}).get("generated-at")
            same = {**doc, "generated_at": stored_at}
            if not stored_at or stored_at == doc.get("generated_at"):
                raise PublishError(f"{target} already exists; pass --force to replace it", EXIT_INPUT) from None
            raw = encode_document(same)[0]
            if not _unfinished(client, bucket, prefix, key, date, hashlib.sha256(raw).hexdigest()):
                raise PublishError(f"{target} already exists; pass --force to replace it", EXIT_INPUT) from None
            doc, digest = same, hashlib.sha256(raw).hexdigest()
        progress(f"{target} already holds this batch: checking it and the pointer")
    del body, put  # only its digest and size are needed from here on
    try:
        _verify(client, bucket, key, digest, len(raw))
        del raw
        progress(f"verified {target}")
        # Before the pointer: whoever reads a latest batch finds its report.
        client.put_object(Bucket=bucket, Key=report_key(prefix, date), ContentType="application/json",
                          Body=json.dumps(report, ensure_ascii=False, separators=(",", ":")).encode())
        moved, before = _move_pointer(client, bucket, prefix, doc, progress)
        if moved or force:
            audit.record(client, bucket, prefix, "publish-forced" if force else "publish", to=date,
                         from_=before, reason=reason, by=by, pointer_moved=moved, count=len(rows),
                         model=doc.get("model"))
        if moved and withdrawn is not None:
            audit.clear_retracted(client, bucket, prefix, date)
        if events is not None:
            notify.send(events, notify.batch_published(
                bucket, prefix, date=date, key=key, report_key=report_key(prefix, date), count=len(rows),
                model=doc.get("model"), latest=moved, report=report), warn or progress)
    except PublishError as exc:
        raise PublishError(f"{exc} (the batch is uploaded: running the same command again finishes it)",
                           exc.exit_code) from None
    except Exception as exc:  # noqa: BLE001 - whatever failed, say where things stand in one line
        what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise PublishError(f"{target} is uploaded but latest.json was not moved ({what[:300]}); running the "
                           "same command again finishes it", EXIT_AWS) from None
    return PublishResult(date, key, len(rows), result.stored_bytes, result.raw_bytes, gzipped, moved, False, report)


def _unfinished(client: Any, bucket: str, prefix: str, key: str, date: str, digest: str) -> bool:
    """True when a run of this very publish uploaded the batch and failed before the pointer moved:
    the stored batch has this batch's SHA-256 and latest.json names an older date (or nothing)."""
    if _stored_digest(client, bucket, key) != digest:
        return False
    current, _ = _read_pointer(client, bucket, pointer_key(prefix))
    return current is None or current < date


def put_pointer(client: Any, bucket: str, key: str, pointer: dict, etag: str | None) -> None:
    """Write latest.json only if it is still the one read (its ETag), or still absent (etag None)."""
    put: dict[str, Any] = {"Bucket": bucket, "Key": key, "ContentType": "application/json",
                           "CacheControl": "no-cache",
                           "Body": json.dumps(pointer, ensure_ascii=False, separators=(",", ":")).encode()}
    if etag:
        put["IfMatch"] = etag
    else:
        put["IfNoneMatch"] = "*"
    client.put_object(**put)


def _stored_metadata(client: Any, bucket: str, key: str) -> dict[str, str] | None:
    """The metadata a batch was published with, None when there is no batch."""
    from botocore.exceptions import ClientError

    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return head.get("Metadata") or {}


def _stored_digest(client: Any, bucket: str, key: str) -> str | None:
    """The sha256 a batch was published with ('' if it has none), None when there is no batch."""
    metadata = _stored_metadata(client, bucket, key)
    return None if metadata is None else metadata.get(SHA256_METADATA, "")


def _verify(client: Any, bucket: str, key: str, digest: str, size: int) -> None:
    """Read the object back in chunks, inflating as it comes, and compare its SHA-256 and size.

    Bounded: never holds the object, and stops inflating one byte past the expected size.
    """
    response = client.get_object(Bucket=bucket, Key=key)
    gzipped = (response.get("ContentEncoding") or "").lower() == "gzip"
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS) if gzipped else None
    sha, total = hashlib.sha256(), 0
    stream = response["Body"]
    try:
        while total <= size and (chunk := stream.read(READ_BACK_CHUNK)):
            if inflater is not None:
                chunk = inflater.decompress(chunk, size + 1 - total)
                if inflater.unconsumed_tail:  # more output than expected: a mismatch either way
                    chunk += b"x"
            sha.update(chunk)
            total += len(chunk)
    except zlib.error:
        total = -1
    finally:
        stream.close()
    if total != size or sha.hexdigest() != digest or (inflater is not None and not inflater.eof):
        raise PublishError(f"s3://{bucket}/{key} reads back different from what was uploaded; "
                           "the pointer was not moved", EXIT_AWS)


def _gate_report(client: Any, bucket: str, prefix: str, doc: dict, config: gate.GateConfig, force: bool,
                 reason: str | None, by: str | None) -> dict:
    """The gate's report on `doc` against the newest earlier batch that stands (not retracted)."""
    date = doc["date"]
    mine, samples = gate.profile(doc["predictions"], doc.get("model"))
    previous, theirs, history = _baseline(client, bucket, prefix, date)
    checks, notes = gate.compare(mine, theirs, config, doc["predictions"], samples, history)
    bad = gate.failed(checks)
    verdict = "passed" if not bad else "forced" if force else "refused"
    return {"date": date, "generated_at": doc.get("generated_at"), "previous": previous, "verdict": verdict,
            "forced": {"reason": reason, "by": by} if force else None, "checks": checks, "notes": notes,
            "thresholds": {k: v for k, v in vars(config).items() if k != "fields"}, "rules": config.fields,
            "profile": mine}


def _baseline(client: Any, bucket: str, prefix: str, date: str) -> tuple[str | None, dict | None, list[int]]:
    """(date, profile) of the newest batch before `date` that no retract withdrew (its report's profile,
    or, for a batch published before the gate existed, a profile of the batch itself, read once), and the
    row counts in the reports of the standing batches from it back (up to gate.HISTORY, newest first),
    for the gate's comparison with the batch's own history. One listing, each report read once."""
    from botocore.exceptions import ClientError

    previous: str | None = None
    theirs: dict | None = None
    counts: list[int] = []
    earlier = [d for d in reversed(audit.listed_dates(client, bucket, prefix)) if d < date]
    for n, candidate in enumerate(earlier[: gate.HISTORY + PREVIOUS_TRIES]):
        if len(counts) == gate.HISTORY or (previous is None and n == PREVIOUS_TRIES):
            break  # enough history, or no standing batch among the newest PREVIOUS_TRIES: no baseline
        if audit.retraction_of(client, bucket, prefix, candidate) is not None:
            continue
        profile = None
        try:
            stored = json.loads(client.get_object(Bucket=bucket, Key=report_key(prefix, candidate))["Body"].read())
            profile = stored.get("profile") if isinstance(stored, dict) else None
        except ClientError as exc:
            if error_code(exc) not in ("NoSuchKey", "404"):
                raise
        except ValueError:
            pass  # an unreadable report: for the baseline, the batch is profiled instead
        if isinstance(profile, dict) and isinstance(profile.get("count"), int):
            counts.append(profile["count"])
        if previous is None:
            previous = candidate
            theirs = profile if isinstance(profile, dict) else _profile_batch(client, bucket, prefix, candidate)
    return previous, theirs, counts


def _profile_batch(client: Any, bucket: str, prefix: str, date: str) -> dict:
    response = client.get_object(Bucket=bucket, Key=batch_key(prefix, date))
    body = response["Body"].read()
    if (response.get("ContentEncoding") or "").lower() == "gzip" or body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    old = json.loads(body)
    return gate.profile(old.get("predictions") or [], old.get("model"))[0]


def _retraction_text(record: dict) -> str:
    parts = [f"on {record['at']}" if record.get("at") else "", f"by {record['by']}" if record.get("by") else "",
             f"to {record['to']}" if record.get("to") else ""]
    said = " ".join(p for p in parts if p)
    return f"{said}: {record.get('reason')}" if said else str(record.get("reason"))


def _move_pointer(client: Any, bucket: str, prefix: str, doc: dict, progress: Progress) -> tuple[bool, str | None]:
    """Point latest.json at this date unless a newer date is already published; returns whether it
    moved and the date it named before (None without a pointer).

    Conditional writes (If-Match on the pointer's ETag) make concurrent publishers safe: the
    pointer can never move backwards because an older job finished last.
    """
    from botocore.exceptions import ClientError

    key = pointer_key(prefix)
    date = doc["date"]
    for _ in range(POINTER_ATTEMPTS):
        current, etag = _read_pointer(client, bucket, key)
        if current is None:
            newest = max(audit.listed_dates(client, bucket, prefix), default=None)
            current = newest if newest != date else None
        if current is not None and current > date:
            hint = ""
            if current > future_limit(Settings().future_date_days):
                hint = (f"; {current} is in the future: if it was published by mistake, "
                        f"predictions-retract --to <an earlier date> --reason ...")
            progress(f"latest stays at {current} (newer than {date}){hint}")
            return False, current
        pointer = {"date": date, "generated_at": doc.get("generated_at"), "model": doc.get("model"),
                   "count": len(doc["predictions"]), "published_at": _utc_now()}
        try:
            put_pointer(client, bucket, key, pointer, etag)
        except ClientError as exc:
            if error_code(exc) in CONDITION_FAILED:
                continue  # another publisher moved it meanwhile: look again
            raise
        progress(f"latest -> {date}")
        return True, current
    raise PublishError(f"s3://{bucket}/{key} kept changing under us; batch {date} is uploaded but "
                       "the pointer was not moved: run again with --force", EXIT_AWS)


def _read_pointer(client: Any, bucket: str, key: str) -> tuple[str | None, str | None]:
    from botocore.exceptions import ClientError

    try:
        response = client.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            return None, None
        raise
    etag = response.get("ETag")
    try:
        text = response["Body"].read(POINTER_MAX_BYTES + 1)
        date = json.loads(text).get("date") if len(text) <= POINTER_MAX_BYTES else None
    except (ValueError, AttributeError, RecursionError):  # not JSON, not an object, absurdly nested
        date = None
    # A corrupt pointer is replaced, not trusted: compare against the listing instead.
    return (date if is_valid_date(date) else None), etag


def today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def future_limit(days: int) -> str:
    """The latest batch date accepted without --allow-future-date: today (UTC) plus `days`."""
    return (today_utc() + dt.timedelta(days=days)).isoformat()


def stage_limits(stage: str | None, bucket: str | None) -> Settings:
    """The limits of the stage whose API will read the batch (the defaults with --bucket)."""
    if bucket:
        return Settings()
    from chalice_app.config.settings import load_settings
    from chalice_app.config.stage_file import stage_environment

    return load_settings(stage_environment(stage or "local"))


def stage_gate(stage: str | None, bucket: str | None) -> gate.GateConfig:
    """The gate's thresholds and rules of the stage (`publish_gate` in its .chalice/config.json entry);
    the defaults with --bucket. A wrong setting is bad input, named."""
    if bucket:
        return gate.GateConfig()
    from chalice_app.config.stage_file import stage_section

    name = stage or "local"
    try:
        return gate.GateConfig.from_mapping(stage_section(name, "publish_gate"), f"stage {name}: publish_gate")
    except ValueError as exc:
        raise PublishError(f"{exc} (.chalice/config.json)", EXIT_INPUT) from None


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m chalice_app.publishing.publish",
        description="Publish one day's predictions to the bucket (the S3 contract v1): validate every "
                    "row, upload the batch, read it back, then move latest.json if this date is the newest.",
        epilog="Exit codes: 0 published, 2 bad input (nothing uploaded), 3 refused by the gate (the report "
               "says which checks failed; nothing uploaded; --force --reason publishes anyway), 1 AWS error. "
               "Example: python -m chalice_app.publishing.publish preds.csv --date 2026-11-23 --stage dev "
               "--model-name demand-forecast --model-version 3.2.0",
    )
    p.add_argument("file", help="the batch: a batch document or bare list (.json), JSON Lines "
                                "(.jsonl/.ndjson) or CSV (.csv); .gz is read too")
    p.add_argument("--date", required=True, help="the batch date, YYYY-MM-DD")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--stage", help="take bucket and prefix from this stage of .chalice/config.json "
                                       "(default: local)")
    where.add_argument("--bucket", help="the predictions bucket (instead of --stage)")
    p.add_argument("--prefix", help="key prefix (default: the stage's PREDICTIONS_PREFIX or predictions/)")
    p.add_argument("--format", choices=("json", "jsonl", "csv"), help="override detection by extension")
    p.add_argument("--model-name", help="model name (required unless the file is a batch document with it)")
    p.add_argument("--model-version", help="model version (required likewise)")
    p.add_argument("--dry-run", action="store_true", help="validate and show what would happen; write nothing")
    p.add_argument("--force", action="store_true",
                   help="replace a batch already published for this date, or publish a date a retract "
                        "withdrew; needs --reason")
    p.add_argument("--reason", help="why --force (recorded in the audit log: predictions-audit)")
    p.add_argument("--by", help="who publishes, recorded in the audit log (default: the login name)")
    p.add_argument("--max-bytes", type=_byte_count, metavar="N",
                   help="refuse a file of more than N bytes once decompressed, before reading it whole "
                        "(default: the stage's MAX_BATCH_BYTES, 64 MiB unless set; the batch's JSON must "
                        "fit the stage's MAX_BATCH_BYTES whatever N is)")
    p.add_argument("--allow-future-date", action="store_true",
                   help="accept a --date more than FUTURE_DATE_DAYS (default 2) after today (UTC)")
    p.add_argument("--quiet", action="store_true", help="no progress lines, only the result")
    return p


def _byte_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of bytes, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: list[str] | None = None, client: Any = None, events: Any = None) -> int:
    """The command. `client` (S3) and `events` (EventBridge) replace the ones made from the environment;
    with a `client` given and no `events`, no event is sent (tests that only look at the bucket)."""
    args = parser().parse_args(argv)
    say: Progress = _quiet if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    limit_source = "--max-bytes"
    try:
        if not is_valid_date(args.date):
            raise PublishError(f"--date must be a real date written YYYY-MM-DD, got {args.date!r}", EXIT_INPUT)
        reason = " ".join((args.reason or "").split()) or None
        if args.force and not reason:
            raise PublishError("--force needs --reason '...': why is recorded in the audit log "
                               "(predictions-audit); nothing was uploaded", EXIT_INPUT)
        if reason and len(reason) > audit.MAX_REASON:
            raise PublishError(f"--reason is longer than {audit.MAX_REASON} characters", EXIT_INPUT)
        bucket, prefix = resolve_target(args.stage, args.bucket, args.prefix)
        limits = stage_limits(args.stage, args.bucket)
        # --max-bytes bounds the input only: the batch itself must stay readable by the stage's API.
        max_bytes = args.max_bytes or limits.max_batch_bytes
        if args.max_bytes is None:
            limit_source = (f"MAX_BATCH_BYTES of stage {args.stage or 'local'}" if not args.bucket
                            else "the default MAX_BATCH_BYTES") + "; --max-bytes changes it"
        if args.date > future_limit(limits.future_date_days) and not args.allow_future_date:
            raise PublishError(f"--date {args.date} is more than {limits.future_date_days} day(s) after today "
                               f"({today_utc().isoformat()} UTC); a typo here would pin latest there. "
                               "Pass --allow-future-date if you mean it", EXIT_INPUT)
        parsed = read_batch_input(args.file, args.format, progress=lambda n: say(f"read {n:,} rows"),
                                  max_bytes=max_bytes, max_depth=limits.max_json_depth)
        if parsed.errors:
            _report_rows(args.file, parsed.errors)
            return EXIT_INPUT
        say(f"{args.file}: {len(parsed.predictions):,} valid predictions")
        doc = build_document(parsed.predictions, args.date, parsed.meta, args.model_name, args.model_version)
        del parsed
        if events is None and client is None:
            events = make_client("events")
        result = publish_document(client or make_client(), bucket, prefix, doc, force=args.force,
                                  dry_run=args.dry_run, progress=say, rows_validated=True, limits=limits,
                                  reason=reason, by=args.by or who(), gate_config=stage_gate(args.stage, args.bucket),
                                  events=events, warn=lambda m: print(m, file=sys.stderr, flush=True))
    except InputTooLarge as exc:
        print(f"error: {exc} ({limit_source}); nothing was uploaded", file=sys.stderr)
        return EXIT_INPUT
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except Exception as exc:  # noqa: BLE001 - report_failure re-raises what it does not know
        return report_failure(exc)
    verb = "would publish" if result.dry_run else "published"
    tail = " (now latest)" if result.pointer_moved else ""
    print(f"{verb} {result.date}: {result.count:,} predictions to s3://{bucket}/{result.key}{tail}")
    return EXIT_OK


def _report_rows(path: str, errors: list[RowError]) -> None:
    for error in errors:
        print(f"{path}: {error}", file=sys.stderr)
    print(f"error: {len(errors)} problem(s) in {path}; nothing was uploaded", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
