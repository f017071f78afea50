"""Constants and small functions shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import os

import pytest

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUCKET = "predictions-local"  # the local stage's bucket in .chalice/config.json
PREFIX = "predictions/"
# Debian's Chromium, started the way this machine allows (no sandbox as root, no background network).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
needs_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing: apt-get install -y chromium (make test installs it)")


def make_doc(date: str, rows: list[dict] | None = None, n: int = 5) -> dict:
    """A valid batch document: `rows` as given, or `n` simple rows."""
    if rows is None:
        rows = [{"id": f"sku-{i:03d}", "label": f"Item {i}", "value": float(i)} for i in range(n)]
    return {"date": date, "generated_at": f"{date}T04:00:00Z",
            "model": {"name": "demand-forecast", "version": "3.2.0"}, "predictions": rows}


def body(response: object) -> dict:
    """The JSON body of a chalice.test response."""
    return json.loads(response.body)
