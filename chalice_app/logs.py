"""Structured log lines: one JSON object per line on stdout, which Lambda sends to CloudWatch."""

from __future__ import annotations

import json
import sys
import time


def log_event(event: str, **fields: object) -> None:
    record = {"event": event, "ts": round(time.time(), 3), **fields}
    sys.stdout.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")
    sys.stdout.flush()
