"""Medians and ratios over repeated measurements."""

from __future__ import annotations

import statistics
from collections.abc import Iterable


def median_of(results: Iterable[dict], key: str) -> float:
    return statistics.median(r[key] for r in results)


def ratio(ours: float, baseline: float) -> float:
    return ours / baseline if baseline else float("inf")


def spread(results: Iterable[dict], key: str) -> tuple[float, float]:
    values = [r[key] for r in results]
    return min(values), max(values)
