"""Upload a built site to its bucket: only what changed, stale files deleted, HTML paths to invalidate."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deploy.site_config import html_invalidation_paths


@dataclass
class SyncPlan:
    uploads: list[str] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def invalidations(self) -> list[str]:
        return html_invalidation_paths(self.uploads + self.deletes)

    def summary(self) -> str:
        return (f"{len(self.uploads)} to upload, {len(self.deletes)} to delete, {self.unchanged} unchanged, "
                f"{len(self.invalidations)} path(s) to invalidate")


def local_files(out_dir: str) -> dict[str, str]:
    """Relative key -> MD5 hex of every file of the build (what S3's ETag is for a single PUT)."""
    found = {}
    for root, _, names in os.walk(out_dir):
        for name in names:
            path = os.path.join(root, name)
            key = os.path.relpath(path, out_dir).replace(os.sep, "/")
            with open(path, "rb") as fh:
                found[key] = hashlib.md5(fh.read(), usedforsecurity=False).hexdigest()
    return found


def remote_files(client: Any, bucket: str) -> dict[str, str]:
    """Key -> ETag (unquoted) of every object in the site bucket; {} when the bucket is new."""
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", ()):
            found[obj["Key"]] = obj["ETag"].strip('"')
    return found


def plan_sync(local: dict[str, str], remote: dict[str, str]) -> SyncPlan:
    plan = SyncPlan()
    for key, digest in sorted(local.items()):
        if remote.get(key) == digest:
            plan.unchanged += 1
        else:
            plan.uploads.append(key)
    plan.deletes = sorted(set(remote) - set(local))
    # Assets first, then pages: a page must never be live before the assets it names.
    plan.uploads.sort(key=lambda k: (k.endswith(".html"), k))
    return plan


def apply_sync(client: Any, bucket: str, out_dir: str, plan: SyncPlan,
               headers_for: Callable[[str], dict[str, str]], progress: Callable[[str], None]) -> None:
    total = len(plan.uploads)
    for n, key in enumerate(plan.uploads, 1):
        with open(os.path.join(out_dir, *key.split("/")), "rb") as fh:
            client.put_object(Bucket=bucket, Key=key, Body=fh.read(), **headers_for(key))
        if n == total or n % 50 == 0:
            progress(f"uploaded {n}/{total}")
    for start in range(0, len(plan.deletes), 1000):  # DeleteObjects takes at most 1,000 keys
        chunk = plan.deletes[start : start + 1000]
        client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})
    if plan.deletes:
        progress(f"deleted {len(plan.deletes)} stale file(s)")
