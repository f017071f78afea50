"""The site follows the daily publish: render the site when the latest pointer moves, sync it, invalidate.

`handle(event)` is what the site function (chalice_app/site_trigger.py) runs for an EventBridge
"Object Created" event of `{prefix}latest.json`; `make run` calls the same `handle` with the same
kind of event when it sees the local pointer move (tools/devstack.py), with a folder as the site.

One rebuild:
1. Read the pointer's identity (ETag and LastModified, one HEAD). If the live site was built from
   exactly that pointer (recorded as metadata of manifest.json), stop: a duplicate or late event
   changes nothing. The site is always built from the *current* pointer, never from the event's,
   so events that arrive out of order or together converge on the same site.
2. Render every file with the same renderer as build_site.py (same bytes for the same batches).
3. Upload only files whose content changed (assets, new pages, live pages, manifest last), then
   delete pages no longer built (chalice_app/website/sync.py).
4. Invalidate only the changed HTML paths (a folder of many changed pages is one wildcard path).

A failure (render, read or upload) is retried ATTEMPTS times in the call; a render failure uploads
nothing, and an upload failure happens before any deletion and, for pages already live, before the
manifest records the pointer, so the next attempt (or Lambda's own retry of the event) finishes it.
After the last attempt it logs `site_rebuild_failed` with EMF `SiteBuildFailures` and raises.
One rebuild at a time per stage: the function's reserved concurrency is 1 (.chalice/config.json).
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
from chalice_app.website.render import render_site
from chalice_app.website.serving import cache_control_for, content_type_for
from chalice_app.website.sync import (
    MANIFEST,
    SyncPlan,
    apply_sync,
    digests,
    html_invalidation_paths,
    plan_sync,
    remote_files,
)
from chalice_app.website.view import DEFAULT_DAYS

POINTER_MARK = "pointer"  # user metadata of manifest.json: the pointer the live site was built from
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


# -- where the site lives --------------------------------------------------------------------------


def _headers(key: str, mark: str | None) -> dict[str, Any]:
    headers: dict[str, Any] = {"ContentType": content_type_for(key), "CacheControl": cache_control_for(key)}
    if key == MANIFEST and mark:
        headers["Metadata"] = {POINTER_MARK: mark}
    return headers


class S3Site:
    """The stage's site bucket (behind CloudFront)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client, self.bucket = client, bucket

    def __str__(self) -> str:
        return f"s3://{self.bucket}"

    def mark(self) -> str | None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=MANIFEST)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return head.get("Metadata", {}).get(POINTER_MARK)

    def files(self) -> dict[str, str]:
        return remote_files(self.client, self.bucket)

    def manifest(self) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=MANIFEST)["Body"].read()
        except ClientError:
            return None
        return _parsed(body)

    def apply(self, files: dict[str, bytes], plan: SyncPlan, mark: str | None, progress: Progress) -> None:
        apply_sync(self.client, self.bucket, files.__getitem__, plan, lambda key: _headers(key, mark), progress)


class DirSite:
    """A folder the local edge serves (make run): each file replaced atomically, the mark in memory."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self._mark: str | None = None

    def __str__(self) -> str:
        return self.root

    def mark(self) -> str | None:
        return self._mark

    def files(self) -> dict[str, str]:
        from chalice_app.website.sync import local_files

        return local_files(self.root) if os.path.isdir(self.root) else {}

    def manifest(self) -> dict | None:
        try:
            with open(os.path.join(self.root, MANIFEST), "rb") as fh:
                return _parsed(fh.read())
        except OSError:
            return None

    def apply(self, files: dict[str, bytes], plan: SyncPlan, mark: str | None, progress: Progress) -> None:
        for key in plan.uploads:
            target = os.path.join(self.root, *key.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            staging = f"{target}.{os.getpid()}.tmp"
            with open(staging, "wb") as fh:
                fh.write(files[key])
            os.chmod(staging, 0o644)
            os.replace(staging, target)
        for key in plan.deletes:
            path = os.path.join(self.root, *key.split("/"))
            os.remove(path)
            folder = os.path.dirname(path)
            while folder != self.root and not os.listdir(folder):
                os.rmdir(folder)
                folder = os.path.dirname(folder)
        self._mark = mark
        progress(f"wrote {len(plan.uploads)}, deleted {len(plan.deletes)} file(s) in {self.root}")


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


def reusable(live: dict | None, remote: dict[str, str], store: Any, days: int) -> dict[str, dict]:
    """Files of the live site that a render now would give byte for byte: path -> live manifest entry.

    Batches are immutable, so the pages of a date that stays on the site depend only on the
    templates and assets, and (its first page) on its neighbours in the date list. With the same
    assets as the live build, a date whose neighbours are unchanged is kept whole; one whose
    neighbours changed keeps its page-<n> pages (which carry no neighbour links). Anything not
    in both the live manifest and the bucket is rendered again. Templates changed without the assets
    changing reach older pages through the deploy's full publish (build_site.py --publish)."""
    from chalice_app.website.render import SITE_DIR, hashed_assets, select_dates

    if not live or not isinstance(live.get("dates"), list):
        return {}
    assets = {name: path for name, (path, _) in hashed_assets(SITE_DIR).items()}
    if live.get("assets") != assets:
        return {}
    latest = store.resolve("latest").value.date
    dates, old = select_dates(store, latest, days), live["dates"]
    entries = {p: e for p, e in live["files"].items() if p in remote and isinstance(e, dict)}
    keep: dict[str, dict] = {}
    for date in dates:
        if date == latest or date not in old:
            continue
        whole = _neighbours(dates, date) == _neighbours(old, date)
        for path, entry in entries.items():
            if path.startswith(f"d/{date}/") or (whole and path.startswith(f"d/{date}.")):
                keep[path] = entry
    return keep


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
    kept: int = 0  # of which not rendered again (pages of unchanged dates, from the live site)
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
            distribution_id: str = "", progress: Progress = lambda _: None) -> RebuildResult:
    """Bring `site` to the render of `store`'s current batches; see the module docstring."""
    started = time.monotonic()
    result = RebuildResult(str(site), pointer)
    if pointer is not None and site.mark() == pointer:
        result.skipped = True
        result.ms = round((time.monotonic() - started) * 1000, 1)
        return result
    remote = site.files()
    keep = reusable(site.manifest(), remote, store, days)
    files = render_site(store, days, progress=progress, keep=keep)
    result.files, result.kept = len(files) + len(keep), len(keep)
    plan = plan_sync({**{k: remote[k] for k in keep if k not in files}, **digests(files)}, remote)
    result.uploaded, result.deleted = list(plan.uploads), list(plan.deletes)
    if MANIFEST not in plan.uploads:
        plan.uploads.append(MANIFEST)  # same content, new mark: the next event for this pointer does nothing
    site.apply(files, plan, pointer, progress)
    result.latest = json.loads(files[MANIFEST])["latest"]
    result.invalidated = html_invalidation_paths(result.uploaded + result.deleted)
    if result.invalidated and cloudfront is not None and distribution_id:
        reference = hashlib.sha256(repr((pointer, result.invalidated)).encode()).hexdigest()[:32]
        answer = cloudfront.create_invalidation(
            DistributionId=distribution_id,
            InvalidationBatch={"Paths": {"Quantity": len(result.invalidated), "Items": result.invalidated},
                               "CallerReference": reference})
        result.invalidation_id = answer["Invalidation"]["Id"]
    result.ms = round((time.monotonic() - started) * 1000, 1)
    return result


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
    """One event: rebuild with retries; log and emit metrics; raise after the last failed attempt."""
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
                             distribution_id=target.distribution_id)
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
