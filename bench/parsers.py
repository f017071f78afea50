"""The JSON parser on a batch's bytes: stdlib json (what ships) and, when installed, orjson.

orjson is not in the deployment: its wheel alone (~130 KB compressed) would break the 100 KB zip
target, and Lambda does not provide it. It is measured only to show what that would buy.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable

from chalice_app.publishing.publish import encode_document
from chalice_app.publishing.sample import make_batch


def _best_of(fn: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def compare(date: str, sizes: list[int]) -> dict[str, dict[str, float]]:
    """Median ms per parse, by batch size and parser."""
    try:
        import orjson
    except ImportError:
        orjson = None
    out: dict[str, dict[str, float]] = {}
    for size in sizes:
        raw, _ = encode_document(make_batch(date, size))
        reps = 3 if size >= 50_000 else 9
        row = {"bytes": len(raw), "json.loads(bytes)": _best_of(lambda raw=raw: json.loads(raw), reps),
               "json.loads(str)": _best_of(lambda raw=raw: json.loads(raw.decode("utf-8")), reps)}
        if orjson is not None:
            row["orjson.loads"] = _best_of(lambda raw=raw: orjson.loads(raw), reps)
        out[str(size)] = row
    return out
