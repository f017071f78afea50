"""Bring a site's storage to exactly the rendered files: upload only what changed, delete what is gone,
and name the HTML paths a CDN must forget.

Used by `build_site.py --publish` (deploy/site_deploy.py, from a build folder) and by the rebuild
function (chalice_app/website/rebuild.py, from memory). Digests are MD5 hex, which is what S3's ETag
is for a single PUT, so comparing against the bucket needs one LIST and no GET.

Upload order keeps the live site consistent if a step fails: assets first (content-hashed, so a new
one changes nothing live), then pages that do not exist yet (nothing links to them yet), then pages
that replace live ones, then the manifest; deletions only after every upload succeeded.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MANIFEST = "manifest.json"
WILDCARD_AFTER = 5  # more changed pages than this in one folder: one "/folder/*" path instead
MAX_PATHS = 30  # more paths than this: one "/*" (CloudFront counts a wildcard as one path)


def md5_hex(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def html_invalidation_paths(changed: list[str]) -> list[str]:
    """CloudFront paths to invalidate for changed or deleted HTML files; assets are content-hashed.

    Many changed pages in one folder (the page-<n> pages of a new or dropped date) become one
    wildcard path, so a publish invalidates a handful of paths whatever the batch size.
    """
    html = sorted({key for key in changed if key.endswith(".html")})
    by_folder: dict[str, list[str]] = {}
    for key in html:
        by_folder.setdefault(posixpath.dirname(key), []).append(key)
    paths: set[str] = set()
    for folder, keys in by_folder.items():
        if folder and len(keys) > WILDCARD_AFTER:
            paths.add(f"/{folder}/*")
            continue
        for key in keys:
            paths.add("/" + key)
            if key == "index.html":
                paths.add("/")
    if len(paths) > MAX_PATHS:
        return ["/*"]
    return sorted(paths)


@dataclass
class SyncPlan:
    uploads: list[str] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def invalidations(self) -> list[str]:
        return html_invalidation_paths(self.uploads + self.deletes)

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


def _order(key: str, remote: dict[str, str]) -> tuple[int, str]:
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
    # Assets first, then new pages, then live pages, then the manifest: a page must never be live
    # before the assets and pages it links to.
    plan.uploads.sort(key=lambda k: _order(k, remote))
    return plan


Reader = Callable[[str], bytes]


def apply_sync(client: Any, bucket: str, read: Reader | str, plan: SyncPlan,
               headers_for: Callable[[str], dict[str, Any]], progress: Callable[[str], None]) -> None:
    """Upload plan.uploads (bytes from `read(key)`, or from the folder `read`), then delete plan.deletes."""
    if isinstance(read, str):
        folder = read

        def read(key: str) -> bytes:
            with open(os.path.join(folder, *key.split("/")), "rb") as fh:
                return fh.read()

    total = len(plan.uploads)
    for n, key in enumerate(plan.uploads, 1):
        client.put_object(Bucket=bucket, Key=key, Body=read(key), **headers_for(key))
        if n == total or n % 500 == 0:
            progress(f"uploaded {n}/{total}")
    for start in range(0, len(plan.deletes), 1000):  # DeleteObjects takes at most 1,000 keys
        chunk = plan.deletes[start : start + 1000]
        client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})
    if plan.deletes:
        progress(f"deleted {len(plan.deletes)} stale file(s)")
