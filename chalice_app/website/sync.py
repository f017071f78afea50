"""Bring a site's storage to exactly the rendered files: upload only what changed, delete what is gone,
and name the HTML paths a CDN must forget.

Used by `build_site.py --publish` (deploy/site_deploy.py, from a build folder) and by the rebuild
function (chalice_app/website/rebuild.py, from memory). Digests are MD5 hex, which is what S3's ETag
is for a single PUT, so comparing against the bucket needs one LIST and no GET.

Upload order keeps the live site consistent if a step fails: assets first (content-hashed, so a new
one changes nothing live), then pages that do not exist yet (nothing links to them yet), then pages
that replace live ones, then the manifest; deletions only after every upload succeeded. Within one
of those phases files go up UPLOAD_THREADS at a time; a phase starts only when the one before it
finished, and a failed upload stops the sync before the next phase.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import posixpath
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from chalice_app.website.serving import HASHED_ASSET

MANIFEST = "manifest.json"
WILDCARD_AFTER = 5  # more changed pages than this in a date's folder: one "/d/<date>/*" path instead
MAX_PATHS = 30  # more paths than this: one "/*" (CloudFront counts a wildcard as one path)
# PUTs in flight at once: S3 answers each in tens of ms, so one at a time leaves the function waiting.
# botocore's pool keeps 10 connections per client; memory holds at most this many bodies read from disk.
UPLOAD_THREADS = 8


def md5_hex(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def invalidation_paths(changed: list[str]) -> list[str]:
    """CloudFront paths to invalidate for changed or deleted files: every one the edge keeps for a day
    (pages, downloads, the feed, the manifest: serving.CACHE_REVALIDATE); hashed assets never change.

    Many changed pages in a date's folder (the page-<n> pages of a new or dropped date) become one
    wildcard path, and a path a wildcard already covers is left out (`*` spans '/'), so a publish
    invalidates a handful of paths whatever the batch size. Top-level folders (`d/`) are never
    collapsed: `/d/*` would send every date's pages back to S3 for a publish that changed three.
    """
    keys = sorted({key for key in changed if not HASHED_ASSET.fullmatch(key)})
    by_folder: dict[str, list[str]] = {}
    for key in keys:
        by_folder.setdefault(posixpath.dirname(key), []).append(key)
    paths: set[str] = set()
    for folder, names in by_folder.items():
        if "/" in folder and len(names) > WILDCARD_AFTER:
            paths.add(f"/{folder}/*")
            continue
        for key in names:
            paths.add("/" + key)
            if key == "index.html":
                paths.add("/")
    wildcards = [p[:-1] for p in paths if p.endswith("/*")]
    paths = {p for p in paths if not any(p != w + "*" and p.startswith(w) for w in wildcards)}
    if len(paths) > MAX_PATHS:
        return ["/*"]
    return sorted(paths)


# The API behind CloudFront's /api/* (docs/api.md): its batch answers are kept at the edge until the
# next publish, so each rebuild invalidates what a publish, retract or backfill may have changed.
API_PREFIX = "/api"
API_EVERYTHING = f"{API_PREFIX}/*"
API_ALWAYS = (f"{API_PREFIX}/predictions", f"{API_PREFIX}/predictions/latest*", f"{API_PREFIX}/reports/latest")
MAX_API_DATES = 4  # more changed dates than this: one "/api/*" (CloudFront allows 15 wildcard paths in progress)


def api_invalidation_paths(dates: set[str] | None) -> list[str]:
    """CloudFront paths of the API's answers that may differ after a rebuild: the date list (no query
    string), `latest` (its pages with any query string and its ids: one wildcard) and its report,
    and for each date in `dates` (what rebuild.py found written since the last rebuild, and latest when
    it moved) its pages and ids (`/api/predictions/<date>*`) and its report. CloudFront keys /api/* on
    the query string, and an exact path invalidates only the answer without one; a path ending in `*` every answer it
    starts. Errors are never kept (`no-store`, a 404 included), so a date that did not exist needs
    nothing. `dates` None (unknown what changed) or more than MAX_API_DATES: everything, one path."""
    if dates is None or len(dates) > MAX_API_DATES:
        return [API_EVERYTHING]
    paths = list(API_ALWAYS)
    for date in sorted(dates):
        paths += [f"{API_PREFIX}/predictions/{date}*", f"{API_PREFIX}/reports/{date}"]
    return paths


@dataclass
class SyncPlan:
    uploads: list[str] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    unchanged: int = 0
    replacing: set[str] = field(default_factory=set)  # uploads that replace a live file

    def phase(self, key: str) -> int:
        """0 assets and downloads, 1 new pages, 2 pages replacing live ones, 3 the manifest."""
        return _order(key, self.replacing)[0]

    @property
    def invalidations(self) -> list[str]:
        return invalidation_paths(self.uploads + self.deletes)

    @property
    def changed(self) -> int:
        return len(self.uploads) + len(self.deletes)

    def summary(self) -> str:
        return (f"{len(self.uploads)} to upload, {len(self.deletes)} to delete, {self.unchanged} unchanged, "
                f"{len(self.invalidations)} path(s) to invalidate")


def local_files(out_dir: str) -> dict[str, str]:
    """Relative key -> MD5 hex of every file of a build folder."""
    found = {}
    for root, _, names in os.walk(out_dir):
        for name in names:
            path = os.path.join(root, name)
            key = os.path.relpath(path, out_dir).replace(os.sep, "/")
            with open(path, "rb") as fh:
                found[key] = md5_hex(fh.read())
    return found


def digests(files: dict[str, bytes]) -> dict[str, str]:
    """Key -> MD5 hex of rendered files in memory."""
    return {key: md5_hex(body) for key, body in files.items()}


def remote_files(client: Any, bucket: str) -> dict[str, str]:
    """Key -> ETag (unquoted) of every object in the site bucket; {} when the bucket is new."""
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", ()):
            found[obj["Key"]] = obj["ETag"].strip('"')
    return found


def _order(key: str, remote: dict[str, str] | set[str]) -> tuple[int, str]:
    if key == MANIFEST:
        return (3, key)
    if not key.endswith(".html"):
        return (0, key)
    return (2 if key in remote else 1, key)


def plan_sync(local: dict[str, str], remote: dict[str, str]) -> SyncPlan:
    plan = SyncPlan()
    for key, digest in sorted(local.items()):
        if remote.get(key) == digest:
            plan.unchanged += 1
        else:
            plan.uploads.append(key)
    plan.deletes = sorted(set(remote) - set(local))
    plan.replacing = {key for key in plan.uploads if key in remote}
    # Assets first, then new pages, then live pages, then the manifest: a page must never be live
    # before the assets and pages it links to.
    plan.uploads.sort(key=lambda k: _order(k, remote))
    return plan


Reader = Callable[[str], bytes]


def apply_sync(client: Any, bucket: str, read: Reader | str, plan: SyncPlan,
               headers_for: Callable[[str], dict[str, Any]], progress: Callable[[str], None],
               threads: int | None = None) -> None:
    """Upload plan.uploads (bytes from `read(key)`, or from the folder `read`), then delete plan.deletes.

    Each phase of the upload order (SyncPlan.phase) goes up `threads` (default UPLOAD_THREADS) files
    at a time; the first failure is raised once the uploads already in flight have ended, and
    nothing of a later phase, nor any deletion, is attempted."""
    if isinstance(read, str):
        folder = read

        def read(key: str) -> bytes:
            with open(os.path.join(folder, *key.split("/")), "rb") as fh:
                return fh.read()

    def put(key: str) -> None:
        # The body is read here, on the worker: at most `threads` bodies from disk are held at once.
        client.put_object(Bucket=bucket, Key=key, Body=read(key), **headers_for(key))

    total, done = len(plan.uploads), 0
    workers = max(1, UPLOAD_THREADS if threads is None else threads)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="site-put") as pool:
        for _, group in itertools.groupby(plan.uploads, key=plan.phase):
            futures = [pool.submit(put, key) for key in group]
            finished, pending = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in finished if f.exception() is not None), None)
            if failed is not None:
                for future in pending:
                    future.cancel()
                wait(pending)
                raise failed.exception()
            before, done = done, done + len(futures)
            if done == total or done // 500 > before // 500:
                progress(f"uploaded {done}/{total}")
    for start in range(0, len(plan.deletes), 1000):  # DeleteObjects takes at most 1,000 keys
        chunk = plan.deletes[start : start + 1000]
        client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})
    if plan.deletes:
        progress(f"deleted {len(plan.deletes)} stale file(s)")
