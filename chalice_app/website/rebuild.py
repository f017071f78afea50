"""The site follows the publish: render what changed, sync it, invalidate it, then mark it done.

`handle(event)` is what the site function (chalice_app/site_trigger.py) runs for an EventBridge
"Object Created" event of `{prefix}latest.json` or of a dated batch `{prefix}<date>/predictions.json`
(a backfill of a missed day moves no pointer); `make run` calls the same `handle` with the same kind
of event when it sees the local pointer move (tools/devstack.py), with a folder as the site.

One rebuild:
1. Read what the site is built from: the pointer's identity (ETag and LastModified, one HEAD), every
   dated batch's ETag (one LIST) and a hash of the templates and renderer code. If the live site's
   done-mark (metadata of manifest.json) records exactly these, stop: a duplicate or late event
   changes nothing. The site is always built from the *current* store, never from the event, so
   events that arrive out of order or together converge on the same site.
2. Render with the same renderer as build_site.py (same bytes for the same batches), keeping the
   pages of a date whose fingerprint (its batch, the batch its "Change" column compares with, the
   templates and code: build.date_fingerprint) is the one the done-mark records for it.
3. Upload only files whose content changed (assets, new pages, live pages), then delete pages no
   longer built (chalice_app/website/sync.py).
4. Invalidate the changed HTML paths: every page that differs from the last *finished* build's
   manifest, so pages uploaded by an attempt that failed later are invalidated by the next one; and
   the API's answers that may have changed (latest, the date list, each date written since the last
   finished rebuild: sync.api_invalidation_paths), which CloudFront keeps until the next publish,
   no sooner than the API's pointer TTL after the newest write.
5. Last, write manifest.json with the done-mark (the pointer, the inputs digest, the fingerprints).

Any failure before step 5 leaves the previous done-mark, so the next attempt does the work again;
the handler tries ATTEMPTS times, then logs `site_rebuild_failed` with EMF `SiteBuildFailures` and
raises, so Lambda retries the event. One rebuild at a time per stage: the function's reserved
concurrency is 1 (.chalice/config.json).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from chalice_app import metrics
from chalice_app.contract import pointer_key
from chalice_app.logs import log_event
from chalice_app.website import render
from chalice_app.website.build import (
    api_changed_dates,
    api_date_of,
    api_watermark,
    date_fingerprint,
    inputs_digest,
    read_state,
    site_fingerprint,
    source_files,
    write_state,
)
from chalice_app.website.render import render_site, select_dates
from chalice_app.website.serving import cache_control_for, content_type_for
from chalice_app.website.sync import (
    MANIFEST,
    SyncPlan,
    api_invalidation_paths,
    apply_sync,
    digests,
    invalidation_paths,
    plan_sync,
    remote_files,
)
from chalice_app.website.view import DEFAULT_DAYS

# User metadata of manifest.json, written only when a rebuild finished (the done-mark):
POINTER_MARK = "pointer"  # the pointer the live site was built from (ETag@LastModified)
INPUTS_MARK = "inputs"  # build.inputs_digest: every batch's ETag, the templates and code, the window
FINGERPRINTS_MARK = "fingerprints"  # build.date_fingerprint of each of the manifest's "dates", in order
API_MARK = "api-since"  # build.api_watermark: the newest write under the prefix this rebuild saw
UNKNOWN = "-"  # a date whose fingerprint is unknown: its pages are always rendered again
ATTEMPTS = 3
BACKOFF_SECONDS = (1.0, 4.0)  # before the 2nd and 3rd attempt
MAX_DAYS = 90

Progress = Callable[[str], None]


class RebuildConfigError(ValueError):
    """A setting of the site function cannot be used; the message names it."""


@dataclass(frozen=True)
class SiteSettings:
    bucket: str  # the stage's site bucket ("" when the site is a local folder)
    distribution_id: str  # "" : no invalidation (local, or a site without a distribution)
    days: int


def site_settings(env: Mapping[str, str]) -> SiteSettings:
    raw = env.get("SITE_DAYS", "").strip() or str(DEFAULT_DAYS)
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_DAYS:
        raise RebuildConfigError(f"SITE_DAYS={raw!r}: expected a whole number from 1 to {MAX_DAYS}")
    return SiteSettings(env.get("SITE_BUCKET", "").strip(), env.get("SITE_DISTRIBUTION_ID", "").strip(), int(raw))


def encode_fingerprints(dates: list[str], fingerprints: Mapping[str, str | None]) -> str:
    """The fingerprints of `dates`, in their order, for the manifest's metadata (dates are in its body)."""
    return " ".join(fingerprints.get(date) or UNKNOWN for date in dates)


def decode_fingerprints(manifest: Mapping[str, Any] | None, text: str | None) -> dict[str, str]:
    """date -> fingerprint, from the manifest's "dates" and its metadata; {} when they do not agree."""
    dates = manifest.get("dates") if manifest else None
    values = (text or "").split()
    if not isinstance(dates, list) or len(values) != len(dates):
        return {}
    return {date: value for date, value in zip(dates, values, strict=True) if value != UNKNOWN}


# -- where the site lives --------------------------------------------------------------------------


def _headers(key: str) -> dict[str, Any]:
    return {"ContentType": content_type_for(key), "CacheControl": cache_control_for(key)}


class S3Site:
    """The stage's site bucket (behind CloudFront)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client, self.bucket = client, bucket

    def __str__(self) -> str:
        return f"s3://{self.bucket}"

    def state(self) -> dict[str, str]:
        """The done-mark of the live site (one HEAD); {} when there is no manifest yet."""
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=MANIFEST)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return {}
            raise
        return dict(head.get("Metadata", {}))

    def mark(self) -> str | None:
        return self.state().get(POINTER_MARK)

    def files(self) -> dict[str, str]:
        return remote_files(self.client, self.bucket)

    def manifest(self) -> tuple[dict | None, dict[str, str]]:
        """The live manifest and, from its done-mark, each date's fingerprint."""
        from botocore.exceptions import ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=MANIFEST)
            body = answer["Body"].read()
        except ClientError:
            return None, {}
        doc = _parsed(body)
        return doc, decode_fingerprints(doc, answer.get("Metadata", {}).get(FINGERPRINTS_MARK))

    def apply(self, files: dict[str, bytes], plan: SyncPlan, progress: Progress) -> None:
        apply_sync(self.client, self.bucket, files.__getitem__, plan, _headers, progress)

    def commit(self, manifest: bytes, mark: dict[str, str], progress: Progress) -> None:
        self.client.put_object(Bucket=self.bucket, Key=MANIFEST, Body=manifest, Metadata=mark, **_headers(MANIFEST))
        progress("manifest.json written: the rebuild is done")


class DirSite:
    """A folder the local edge serves (make run): each file replaced atomically, the done-mark in a file
    beside it (build.state_path; build_site.py writes it too). tools/devstack.py sets `_mark` to the
    pointer the folder was first built from."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        state = read_state(self.root)
        self._mark: str | None = state.get(POINTER_MARK)
        self._inputs: str | None = state.get(INPUTS_MARK)
        self._api: str | None = state.get(API_MARK)
        found = state.get(FINGERPRINTS_MARK)
        self._fingerprints: dict[str, str] = {
            k: v for k, v in found.items() if isinstance(v, str)} if isinstance(found, dict) else {}

    def __str__(self) -> str:
        return self.root

    def state(self) -> dict[str, str]:
        found = {POINTER_MARK: self._mark, INPUTS_MARK: self._inputs, API_MARK: self._api}
        return {k: v for k, v in found.items() if v is not None}

    def mark(self) -> str | None:
        return self._mark

    def files(self) -> dict[str, str]:
        from chalice_app.website.sync import local_files

        return local_files(self.root) if os.path.isdir(self.root) else {}

    def manifest(self) -> tuple[dict | None, dict[str, str]]:
        try:
            with open(os.path.join(self.root, MANIFEST), "rb") as fh:
                doc = _parsed(fh.read())
        except OSError:
            return None, {}
        return doc, (dict(self._fingerprints) if doc else {})

    def _write(self, key: str, body: bytes) -> None:
        target = os.path.join(self.root, *key.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        staging = f"{target}.{os.getpid()}.tmp"
        with open(staging, "wb") as fh:
            fh.write(body)
        os.chmod(staging, 0o644)
        os.replace(staging, target)

    def apply(self, files: dict[str, bytes], plan: SyncPlan, progress: Progress) -> None:
        for key in plan.uploads:
            self._write(key, files[key])
        for key in plan.deletes:
            path = os.path.join(self.root, *key.split("/"))
            os.remove(path)
            folder = os.path.dirname(path)
            while folder != self.root and not os.listdir(folder):
                os.rmdir(folder)
                folder = os.path.dirname(folder)
        progress(f"wrote {len(plan.uploads)}, deleted {len(plan.deletes)} file(s) in {self.root}")

    def commit(self, manifest: bytes, mark: dict[str, str], progress: Progress) -> None:
        self._write(MANIFEST, manifest)
        self._mark, self._inputs = mark.get(POINTER_MARK), mark.get(INPUTS_MARK)
        self._api = mark.get(API_MARK)
        self._fingerprints = decode_fingerprints(_parsed(manifest), mark.get(FINGERPRINTS_MARK))
        write_state(self.root, {POINTER_MARK: self._mark, INPUTS_MARK: self._inputs, API_MARK: self._api,
                                FINGERPRINTS_MARK: self._fingerprints})
        progress("manifest.json written: the rebuild is done")


def _parsed(body: bytes) -> dict | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("files"), dict) else None


# -- one rebuild -----------------------------------------------------------------------------------


def _neighbours(dates: list[str], date: str) -> tuple[str | None, str | None]:
    pos = dates.index(date)
    return (dates[pos - 1] if pos > 0 else None, dates[pos + 1] if pos + 1 < len(dates) else None)


def reusable(live: dict | None, live_fingerprints: Mapping[str, str], remote: Mapping[str, str],
             dates: list[str], fingerprints: Mapping[str, str | None]) -> dict[str, dict]:
    """Files of the live site that a render now would give byte for byte: path -> live manifest entry.

    A date's pages are kept only when its fingerprint now is the one the last finished build
    recorded for it: same batch, same batch to compare with, same templates and code. Its first
    page and downloads (d/<date>.html, .csv, .json) also need the same neighbours in the date list
    (the first page links them), and every page of the date still in the bucket; anything else is
    rendered again."""
    if not live or not isinstance(live.get("dates"), list) or not isinstance(live.get("files"), dict):
        return {}
    old = live["dates"]
    keep: dict[str, dict] = {}
    for date in dates:
        now = fingerprints.get(date)
        if now is None or date not in old or live_fingerprints.get(date) != now:
            continue
        own = {path: entry for path, entry in live["files"].items() if isinstance(entry, dict)
               and (path.startswith(f"d/{date}/") or path.startswith(f"d/{date}."))}
        whole = _neighbours(dates, date) == _neighbours(old, date) and all(path in remote for path in own)
        for path, entry in own.items():
            if path in remote and (whole or path.startswith(f"d/{date}/")):
                keep[path] = entry
    return keep


def changed_since(live: dict | None, manifest: dict) -> set[str]:
    """Paths whose content differs from the last finished build's manifest, or that it had and this
    build has not: what CloudFront may still serve an old copy of."""
    new = manifest.get("files", {})
    old = live.get("files") if live else None
    if not isinstance(old, dict):
        return set(new)

    def sha(entry: object) -> object:
        return entry.get("sha256") if isinstance(entry, dict) else None

    return {path for path, entry in new.items() if sha(old.get(path)) != sha(entry)} | (set(old) - set(new))


@dataclass
class RebuildResult:
    site: str
    pointer: str | None
    skipped: bool = False
    latest: str | None = None
    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    invalidated: list[str] = field(default_factory=list)
    invalidation_id: str | None = None
    files: int = 0  # files of the site
    kept: int = 0  # of which not rendered again (pages whose fingerprint did not change)
    ms: float = 0.0

    @property
    def files_changed(self) -> int:
        return len(self.uploaded) + len(self.deleted)

    def summary(self) -> dict:
        out = asdict(self)
        # The log line stays small: counts, and the names only when there are few.
        for name in ("uploaded", "deleted"):
            keys = out.pop(name)
            out[name] = len(keys)
            if len(keys) <= 20:
                out[f"{name}_keys"] = keys
        out["files_changed"] = self.files_changed
        return out


def pointer_mark(client: Any, bucket: str, prefix: str) -> str | None:
    """The identity of the pointer object as it is now (ETag@LastModified); None when there is none.

    A rewrite of the pointer with the same content (a --force republish of the same date) has a new
    LastModified, so it rebuilds; a duplicate event for the same write does not."""
    from botocore.exceptions import ClientError

    try:
        head = client.head_object(Bucket=bucket, Key=pointer_key(prefix))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    modified = head.get("LastModified")
    stamp = modified.isoformat() if hasattr(modified, "isoformat") else str(modified)
    return f"{head.get('ETag', '').strip(chr(34))}@{stamp}"


def rebuild(store: Any, site: Any, *, pointer: str | None, days: int = DEFAULT_DAYS, cloudfront: Any = None,
            distribution_id: str = "", progress: Progress = lambda _: None,
            site_dir: str | None = None, api_settle: float = 0.0,
            sleep: Callable[[float], None] = time.sleep) -> RebuildResult:
    """Bring `site` to the render of `store`'s current batches; see the module docstring.

    The invalidation also names the API's answers that may have changed (sync.api_invalidation_paths),
    sent no sooner than `api_settle` seconds (the API's POINTER_TTL_SECONDS) after the newest write
    under the prefix, so that no API container still answers from what it read before it.

    Raises on any failure, the done-mark not written: calling it again does what is left."""
    started = time.monotonic()
    site_dir = site_dir or render.SITE_DIR  # read now, not at import: the folder may be pointed elsewhere
    result = RebuildResult(str(site), pointer)
    sources = source_files(store)
    code = site_fingerprint(site_dir)
    inputs = inputs_digest(sources, code, days)
    done = site.state()
    if pointer is not None and done.get(POINTER_MARK) == pointer and done.get(INPUTS_MARK) == inputs:
        result.skipped = True
        result.ms = round((time.monotonic() - started) * 1000, 1)
        return result
    live, live_fingerprints = site.manifest()
    remote = site.files()
    dates = select_dates(store, store.resolve("latest").value.date, days)
    fingerprints = {date: date_fingerprint(date, sources.dates, code) for date in dates}
    keep = reusable(live, live_fingerprints, remote, dates, fingerprints)
    files = render_site(store, days, site_dir=site_dir, progress=progress, keep=keep)
    manifest = json.loads(files[MANIFEST])
    result.latest = manifest["latest"]
    result.files, result.kept = len(files) + len(keep), len(keep)
    plan = plan_sync({**{k: remote[k] for k in keep if k not in files}, **digests(files)}, remote)
    result.uploaded, result.deleted = list(plan.uploads), list(plan.deletes)
    # The manifest is the done-mark: written alone, after everything else succeeded.
    plan.uploads = [key for key in plan.uploads if key != MANIFEST]
    site_paths = invalidation_paths(sorted(changed_since(live, manifest) | set(result.uploaded)
                                           | set(result.deleted)))
    # The API's dates: those written since the last finished rebuild, and latest when it is another
    # date (a republish of a retracted date deletes the retract's mark, which no listing shows).
    api_dates = api_changed_dates(sources, done.get(API_MARK))
    api_mark = api_watermark(sources)
    moved = manifest.get("latest") != (live or {}).get("latest")
    if api_dates is not None and moved:
        api_dates.add(manifest["latest"])
    if api_dates and not moved and all(_ahead_of_pointer(sources, date, manifest["latest"]) for date in api_dates):
        # Mid-publish: a batch (and its report) of latest or newer, written after the pointer. The
        # pointer's event comes next and invalidates them with latest: one invalidation per publish, not
        # three. Until then they count as unseen (the mark stays), so a publish that never moves the
        # pointer is caught by the next rebuild.
        api_paths, api_mark = [], done.get(API_MARK, "")
    else:
        api_paths = api_invalidation_paths(api_dates)
    result.invalidated = site_paths if site_paths == ["/*"] else site_paths + api_paths
    site.apply(files, plan, progress)
    if result.invalidated and cloudfront is not None and distribution_id:
        _settle(api_watermark(sources).partition(" ")[0], api_settle, sleep)
        reference = hashlib.sha256(repr((pointer, inputs, result.invalidated)).encode()).hexdigest()[:32]
        answer = cloudfront.create_invalidation(
            DistributionId=distribution_id,
            InvalidationBatch={"Paths": {"Quantity": len(result.invalidated), "Items": result.invalidated},
                               "CallerReference": reference})
        result.invalidation_id = answer["Invalidation"]["Id"]
    fingerprints.update({date: date_fingerprint(date, sources.dates, code) for date in manifest["dates"]
                         if date not in fingerprints})
    mark = {INPUTS_MARK: inputs, FINGERPRINTS_MARK: encode_fingerprints(manifest["dates"], fingerprints),
            API_MARK: api_mark}
    if pointer is not None:
        mark[POINTER_MARK] = pointer
    site.commit(files[MANIFEST], mark, progress)
    result.ms = round((time.monotonic() - started) * 1000, 1)
    return result


def _ahead_of_pointer(sources: Any, date: str, latest: str) -> bool:
    """Whether `date` is latest or newer and an object of it was written after the pointer was."""
    from chalice_app.contract import POINTER_FILE

    pointer = sources.modified.get(POINTER_FILE, "")
    return date >= latest and any(when > pointer for key, when in sources.modified.items()
                                  if api_date_of(key) == date)


def _settle(newest: str, seconds: float, sleep: Callable[[float], None]) -> None:
    """Wait until `seconds` (and S3's rounding: a second) have passed since `newest` (UTC text, S3's clock)."""
    import datetime as dt

    if not newest or seconds <= 0:
        return
    written = dt.datetime.strptime(newest, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()
    # S3 keeps whole seconds: the write may have been up to a second after `newest`.
    wait = written + 1 + seconds - time.time()
    if wait > 0:
        sleep(min(wait, seconds + 1))


# -- the Lambda handler ------------------------------------------------------------------------------


@dataclass
class Clients:
    s3: Any
    cloudfront: Any = None


def default_clients(settings: Any, site: SiteSettings) -> Clients:
    from chalice_app.aws_clients import make_s3_client

    cloudfront = None
    if site.distribution_id:
        import botocore.session

        # CloudFront's API lives in us-east-1 whatever the stage's region.
        cloudfront = botocore.session.get_session().create_client("cloudfront", region_name="us-east-1")
    return Clients(make_s3_client(settings), cloudfront)


def _event_key(event: Mapping[str, Any]) -> str | None:
    detail = event.get("detail") if isinstance(event, Mapping) else None
    obj = detail.get("object") if isinstance(detail, Mapping) else None
    return obj.get("key") if isinstance(obj, Mapping) else None


def handle(event: Mapping[str, Any], env: Mapping[str, str] | None = None, *, clients: Clients | None = None,
           site: Any = None, sleep: Callable[[float], None] = time.sleep) -> dict:
    """One event, the pointer's or a dated batch's (a backfill moves no pointer): both mean "rebuild what
    changed", from the store as it is now. Retried ATTEMPTS times; logs and emits metrics; raises
    after the last failed attempt, so Lambda retries the event."""
    from chalice_app.config.settings import load_settings
    from chalice_app.website.build import s3_store

    env = os.environ if env is None else env
    settings = load_settings(env)
    target = site_settings(env)
    if clients is None:
        clients = default_clients(settings, target)
    if site is None:
        if not target.bucket:
            raise RebuildConfigError("SITE_BUCKET is not set")
        site = S3Site(clients.s3, target.bucket)
    error = ""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            store = s3_store(settings, clients.s3)  # a new store: never a pointer cached by an earlier event
            mark = pointer_mark(clients.s3, settings.bucket, settings.prefix)
            result = rebuild(store, site, pointer=mark, days=target.days, cloudfront=clients.cloudfront,
                             distribution_id=target.distribution_id, api_settle=settings.pointer_ttl,
                             sleep=sleep)
        except Exception as exc:  # noqa: BLE001 - a broken template, S3 or CloudFront: retried, then counted
            error = f"{type(exc).__name__}: {str(exc)[:300]}"
        else:
            summary = {**result.summary(), "event_key": _event_key(event), "attempt": attempt}
            if result.skipped:
                log_event("site_rebuild_skipped", stage=settings.stage, **summary)
            else:
                metrics.emit("site_rebuild", metrics.site_fields(stage=settings.stage, summary=summary))
            return summary
        log_event("site_rebuild_attempt_failed", stage=settings.stage, attempt=attempt, error=error)
        if attempt < ATTEMPTS:
            sleep(BACKOFF_SECONDS[attempt - 1])
    metrics.emit("site_rebuild_failed", metrics.site_failure_fields(stage=settings.stage, error=error,
                                                                    attempts=ATTEMPTS))
    raise RuntimeError(f"site rebuild failed after {ATTEMPTS} attempts: {error}")
