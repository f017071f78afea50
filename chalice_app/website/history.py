"""The pointer's recent history for the site's dates page: the newest entries of the audit log the
publishing commands write (`{prefix}audit/`, chalice_app/publishing/audit.py), read from the same
place the site's batches come from (the bucket, or a folder laid out like it).

Best effort: a site without its history beats no site, so any failure gives an empty list.
"""

from __future__ import annotations

import json
import os
from typing import Any

from chalice_app.store.sources import DirSource

AUDIT_DIR = "audit/"  # as chalice_app/publishing/audit.py writes it
MAX_LISTING_PAGES = 100  # 100,000 entries: centuries of daily publishes
RECENT = 10


def recent_moves(source: Any, prefix: str, limit: int = RECENT) -> list[dict]:
    """The `limit` newest moves of latest, newest first: {"action", "at", "by", "from", "to", "reason"}."""
    try:
        keys = _folder_keys(source, prefix) if isinstance(source, DirSource) else _bucket_keys(source, prefix)
    except Exception:  # noqa: BLE001 - no listing (no permission, no such folder): the page goes without it
        return []
    entries = []
    for key in sorted(keys, reverse=True)[: limit * 2]:  # room for a few unreadable ones
        try:
            fetched = source.get(key)
            entry = json.loads(fetched.body) if fetched is not None else None
        except Exception:  # noqa: BLE001, S112 - one unreadable entry hides only itself
            continue
        if isinstance(entry, dict) and isinstance(entry.get("action"), str):
            entries.append({name: entry.get(name) for name in ("action", "at", "by", "from", "to", "reason")})
    return entries[:limit]


def _bucket_keys(source: Any, prefix: str) -> list[str]:
    kwargs: dict[str, Any] = {"Bucket": source.bucket, "Prefix": f"{prefix}{AUDIT_DIR}"}
    keys: list[str] = []
    for _ in range(MAX_LISTING_PAGES):
        page = source.client.list_objects_v2(**kwargs)
        keys.extend(obj["Key"] for obj in page.get("Contents", ()) if obj["Key"].endswith(".json"))
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            break
        kwargs["ContinuationToken"] = token
    return keys


def _folder_keys(source: DirSource, prefix: str) -> list[str]:
    folder = os.path.join(source.root, *f"{prefix}{AUDIT_DIR}".strip("/").split("/"))
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return [f"{prefix}{AUDIT_DIR}{name}" for name in names if name.endswith(".json")]
