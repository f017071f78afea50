"""A site build on disk: render a store's batches into a folder, replaced as a whole.

Also opens the store a stage's site is built from: the stage's bucket, or a folder laid out like it,
and says what a date's pages are made of (`date_fingerprint`), so the site function can tell a page
it may keep from one it must render again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chalice_app.contract import BATCH_FILE
from chalice_app.store.cache import PredictionStore
from chalice_app.website.render import SITE_DIR, BuildError, Progress, quiet, render_site
from chalice_app.website.view import DEFAULT_DAYS


@dataclass(frozen=True)
class BuildResult:
    out_dir: str
    latest: str
    dates: list[str]
    files: dict[str, int]  # relative path -> bytes
    seconds: float

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())


# -- what a date's pages are made of -----------------------------------------------------------------

# Modules of this package that only move files: editing them changes no page.
_NOT_RENDERING = frozenset({"__init__.py", "build.py", "rebuild.py", "sync.py"})
FINGERPRINT_CHARS = 12  # 48 bits: 90 dates of them fit in S3's 2 KB of object metadata


def site_fingerprint(site_dir: str = SITE_DIR) -> str:
    """One hash of everything besides the batches that a page's bytes depend on: the templates and
    static files under `site_dir`, the renderer's own modules, and the jinja2 and markupsafe versions.

    Relative paths only, so a copy of the same folder gives the same hash."""
    digest = hashlib.sha256(f"jinja2 {_version('jinja2')} markupsafe {_version('markupsafe')}".encode())
    roots = [(os.path.join(site_dir, "templates"), "templates"), (os.path.join(site_dir, "static"), "static")]
    for root, label in roots:
        for folder, subdirs, names in os.walk(root):
            subdirs.sort()
            for name in sorted(names):
                path = os.path.join(folder, name)
                _add_file(digest, f"{label}/{os.path.relpath(path, root)}", path)
    code = os.path.dirname(os.path.abspath(__file__))
    for name in sorted(os.listdir(code)):
        if name.endswith(".py") and name not in _NOT_RENDERING:
            _add_file(digest, f"code/{name}", os.path.join(code, name))
    return digest.hexdigest()


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:  # a zip without the dist-info: the code hash still covers the renderer
        return "?"


def _add_file(digest: Any, name: str, path: str) -> None:
    with open(path, "rb") as fh:
        body = fh.read()
    digest.update(f"\0{name}\0{len(body)}\0".encode())
    digest.update(body)


@dataclass(frozen=True)
class Sources:
    """What is under the store's prefix, by ETag: each dated folder that holds a batch (the batch, and
    whatever else a page may show from beside it, such as the publish gate's report.json), and every
    other object (the pointer, the audit log, retract marks), which the shared pages may show."""

    dates: dict[str, dict[str, str]]  # date -> {name: ETag}, newest first
    others: dict[str, str]  # key below the prefix -> ETag
    # key below the prefix -> when it was last written (UTC, ISO 8601, whole seconds, as S3 says it):
    # which dates the API answers differently since the last rebuild (api_changed_dates)
    modified: dict[str, str] = field(default_factory=dict)


def source_files(store: PredictionStore) -> Sources:
    """One listing of the prefix on S3 (an ETag changes whenever the object is written again, even
    with the same bytes through a multipart upload, which only costs a render). For a folder, the
    MD5 of each file, which is the ETag a single PUT of it gets."""
    from chalice_app.contract import is_valid_date

    source = store.source
    client, bucket = getattr(source, "client", None), getattr(source, "bucket", None)
    found: dict[str, str] = {}
    modified: dict[str, str] = {}
    if client is not None and bucket is not None:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": store.prefix}
        while True:
            page = client.list_objects_v2(**kwargs)
            for obj in page.get("Contents", ()):
                found[obj["Key"][len(store.prefix) :]] = str(obj.get("ETag", "")).strip('"')
                if obj.get("LastModified") is not None:
                    modified[obj["Key"][len(store.prefix) :]] = _utc_text(obj["LastModified"])
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                break
            kwargs["ContinuationToken"] = token
    elif getattr(source, "root", None) is not None:
        root = os.path.join(source.root, *store.prefix.strip("/").split("/"))
        for folder, _, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                found[os.path.relpath(path, root).replace(os.sep, "/")] = _md5_of(path)
                modified[os.path.relpath(path, root).replace(os.sep, "/")] = _utc_text(os.stat(path).st_mtime)
    dates: dict[str, dict[str, str]] = {}
    others: dict[str, str] = {}
    for key, etag in sorted(found.items()):
        date, _, name = key.partition("/")
        if is_valid_date(date) and name and "/" not in name:
            dates.setdefault(date, {})[name] = etag
        else:
            others[key] = etag
    for date in [d for d, files in dates.items() if BATCH_FILE not in files]:
        others.update({f"{date}/{name}": etag for name, etag in dates.pop(date).items()})
    return Sources(dict(sorted(dates.items(), reverse=True)), others, modified)


def _utc_text(when: Any) -> str:
    """A datetime (S3's LastModified) or a POSIX time as 2026-11-23T04:00:00Z: text that sorts as time."""
    import datetime as dt

    if not isinstance(when, dt.datetime):
        when = dt.datetime.fromtimestamp(float(when), dt.UTC)
    elif when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


API_MARK_KEYS = 8  # a watermark names at most this many objects of its last second (S3 metadata is 2 KB)


def api_changed_dates(sources: Sources, since: str | None) -> set[str] | None:
    """The dates whose API answers may differ from what CloudFront keeps: every date with an object
    (its batch, its gate report, a retract's mark `retracted/<date>.json`) written since `since`, the
    api_watermark of the last finished rebuild. None when `since` is unknown: every answer may differ.

    S3 keeps whole seconds, so the watermark also names the dated objects of its last second (key and
    ETag): any other object of that second is new."""
    when_seen, _, seen = (since or "").partition(" ")
    if not when_seen:
        return None
    known = set(seen.split())
    changed = set()
    for key, when in sources.modified.items():
        date = api_date_of(key)
        if date is None or when < when_seen or (when == when_seen and _tagged(sources, key) in known):
            continue
        changed.add(date)
    return changed


def api_watermark(sources: Sources) -> str:
    """The newest write under the prefix and the dated objects written in that second, for the next
    rebuild's api_changed_dates ("" when there is nothing; "*" for more than API_MARK_KEYS objects)."""
    newest = max(sources.modified.values(), default="")
    if not newest:
        return ""
    last = sorted(_tagged(sources, key) for key, when in sources.modified.items()
                  if when == newest and api_date_of(key) is not None)
    return " ".join([newest, *(last if len(last) <= API_MARK_KEYS else ["*"])])


def api_date_of(key: str) -> str | None:
    """The date a key below the prefix belongs to: `<date>/<name>` or a retract's `retracted/<date>.json`."""
    from chalice_app.contract import RETRACTED_DIR, is_valid_date

    name = key.removeprefix(RETRACTED_DIR).removesuffix(".json") if key.startswith(RETRACTED_DIR) else key
    date = name.partition("/")[0]
    return date if is_valid_date(date) else None


def _tagged(sources: Sources, key: str) -> str:
    date, _, name = key.partition("/")
    etag = sources.dates.get(date, {}).get(name) or sources.others.get(key, "")
    return f"{key}:{etag[:8]}"


def _md5_of(path: str) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def date_fingerprint(date: str, files: Mapping[str, Mapping[str, str]], site: str) -> str | None:
    """What the pages of `date` show, as FINGERPRINT_CHARS hex: the objects of its folder (its batch,
    the gate's report), the batch its "Change" column compares with (the newest older date, even one
    outside the window) and `site` (site_fingerprint). None when its batch is not in `files`: such
    pages are always rendered.

    The first page also links its neighbours in the date list; those are compared apart."""
    from chalice_app.website.changes import previous_date

    own = files.get(date) or {}
    if not own.get(BATCH_FILE):
        return None
    before = previous_date(list(files), date)
    compared = files[before].get(BATCH_FILE, "") if before else ""
    text = json.dumps([site, date, sorted(own.items()), before, compared])
    return hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_CHARS]


def inputs_digest(sources: Sources, site: str, days: int) -> str:
    """Everything a whole site is built from but the pointer: every object under the prefix and its
    ETag, the templates and code, the window. Equal digests and an equal pointer: the same site."""
    listing = sorted((date, sorted(own.items())) for date, own in sources.dates.items())
    text = json.dumps({"dates": listing, "others": sorted(sources.others.items()), "site": site, "days": days},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def state_path(out_dir: str) -> str:
    """The done-mark of a site folder, beside it (never inside: the folder is exactly the site)."""
    out_dir = os.path.abspath(out_dir)
    return os.path.join(os.path.dirname(out_dir), f".{os.path.basename(out_dir)}.site-state.json")


def read_state(out_dir: str) -> dict[str, Any]:
    try:
        with open(state_path(out_dir), encoding="utf-8") as fh:
            state = json.load(fh)
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def write_state(out_dir: str, state: Mapping[str, Any]) -> None:
    path = state_path(out_dir)
    staging = f"{path}.{os.getpid()}.tmp"
    with open(staging, "w", encoding="utf-8") as fh:
        json.dump(state, fh, sort_keys=True)
    os.replace(staging, path)


def write_tree(files: dict[str, bytes], out_dir: str) -> None:
    """Replace out_dir with exactly these files: nothing from an earlier build survives in it."""
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise BuildError(f"{out_dir} is a file, not a folder")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not os.path.exists(os.path.join(out_dir, "manifest.json")):
        raise BuildError(f"{out_dir} is not empty and holds no manifest.json: refusing to replace it")
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".site-", dir=parent)
    try:
        for path, body in files.items():
            target = os.path.join(staging, *path.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as fh:
                fh.write(body)
        os.chmod(staging, 0o755)  # noqa: S103 - a public website's folder, served read-only
        old = None
        if os.path.exists(out_dir):
            old = staging + ".old"
            os.rename(out_dir, old)
        os.rename(staging, out_dir)
        if old:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def build(store: PredictionStore, out_dir: str, days: int = DEFAULT_DAYS, *, site_dir: str = SITE_DIR,
          progress: Progress = quiet) -> BuildResult:
    """Render the site from `store` into `out_dir` (replaced as a whole), and beside it the record of
    what each date was rendered from (state_path), which lets the site function of `make run` keep
    those pages when it next renders into the same folder."""
    started = time.monotonic()
    state = state_path(out_dir)
    if os.path.exists(state):
        os.remove(state)  # describes the folder about to be replaced
    try:
        # Read before the render: a batch rewritten meanwhile then only costs its pages a render.
        sources: Sources | None = source_files(store)
    except Exception:  # noqa: BLE001 - without it the build is as good, only never kept: render() says why
        sources = None
    files = render_site(store, days, site_dir=site_dir, progress=progress)
    write_tree(files, out_dir)
    doc = json.loads(files["manifest.json"])
    if sources is not None:
        site = site_fingerprint(site_dir)
        # "api-since" (rebuild.API_MARK): the site function's first rebuild invalidates the API's answers
        # written since this build's listing, not every one.
        write_state(out_dir, {"inputs": inputs_digest(sources, site, days), "api-since": api_watermark(sources),
                              "fingerprints": {d: date_fingerprint(d, sources.dates, site) for d in doc["dates"]}})
    result = BuildResult(os.path.abspath(out_dir), doc["latest"], doc["dates"],
                         {p: len(b) for p, b in sorted(files.items())}, time.monotonic() - started)
    progress(f"wrote {len(files)} files ({_size(result.total_bytes)}) to {out_dir} in {result.seconds:.1f} s")
    return result


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


def open_store(stage: str, source: str) -> PredictionStore:
    """The store the stage's API reads (s3), or the same layout in a local folder, with the
    stage's limits on what one object may cost (MAX_STORED_BYTES, MAX_BATCH_BYTES, MAX_JSON_DEPTH)."""
    from chalice_app.config.settings import SettingsError, load_settings
    from chalice_app.config.stage_file import StageError, stage_environment
    from chalice_app.store.sources import DirSource

    try:
        settings = load_settings(stage_environment(stage))
    except (StageError, SettingsError) as exc:
        raise BuildError(str(exc)) from None
    limits = {"max_stored_bytes": settings.max_stored_bytes, "max_batch_bytes": settings.max_batch_bytes}
    if source != "s3":
        if not os.path.isdir(source):
            raise BuildError(f"--source {source}: not a folder (use 's3' or a folder laid out like the bucket)")
        return PredictionStore(DirSource(source, **limits), settings.prefix, max_batches=2,
                               max_json_depth=settings.max_json_depth)
    if not settings.bucket:
        raise BuildError(f"stage {stage!r} has no PREDICTIONS_BUCKET in .chalice/config.json")
    from chalice_app.aws_clients import make_s3_client

    return s3_store(settings, make_s3_client(settings))


def s3_store(settings, client) -> PredictionStore:  # noqa: ANN001 - Settings, a botocore S3 client
    """A store of the stage's bucket through `client`, with the stage's limits (the site's view of it:
    two batches in memory at a time, enough to render one date after another)."""
    from chalice_app.store.sources import S3Source

    limits = {"max_stored_bytes": settings.max_stored_bytes, "max_batch_bytes": settings.max_batch_bytes}
    return PredictionStore(S3Source(client, settings.bucket, **limits), settings.prefix, max_batches=2,
                           max_json_depth=settings.max_json_depth)
