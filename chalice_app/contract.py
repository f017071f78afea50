"""The S3 contract (v1): key layout and the rules a batch and its rows must follow.

Shared by the API (which reads batches) and the publish command (which writes them), so that
both sides agree on exactly one definition.
"""

from __future__ import annotations

import datetime as _dt
import math
import re

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
DATE_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
BATCH_FILE = "predictions.json"
POINTER_FILE = "latest.json"
DEFAULT_PREFIX = "predictions/"


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def is_valid_date(value: object) -> bool:
    """True for a real calendar date written YYYY-MM-DD (2026-02-30 is not one)."""
    if not isinstance(value, str) or DATE_PATTERN.fullmatch(value) is None:
        return False
    try:
        _dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def is_scalar(value: object) -> bool:
    """A JSON scalar: string, finite number, boolean or null."""
    if value is None or isinstance(value, (str, bool, int)):
        return True
    return isinstance(value, float) and math.isfinite(value)


def normalize_prefix(prefix: str) -> str:
    """'' stays '' (bucket root); anything else ends with exactly one '/'."""
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def batch_key(prefix: str, date: str) -> str:
    """The one key a batch may live at. Only ever called with a validated date."""
    if not is_valid_date(date):
        raise ValueError(f"not a YYYY-MM-DD date: {date!r}")
    return f"{prefix}{date}/{BATCH_FILE}"


def pointer_key(prefix: str) -> str:
    return f"{prefix}{POINTER_FILE}"


def date_from_key(prefix: str, key: str) -> str | None:
    """'predictions/2026-11-23/predictions.json' -> '2026-11-23'; anything else -> None."""
    if not key.startswith(prefix) or not key.endswith("/" + BATCH_FILE):
        return None
    date = key[len(prefix) : -len(BATCH_FILE) - 1]
    return date if is_valid_date(date) else None
