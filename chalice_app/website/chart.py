"""The chart of a batch: its top values with their lower-upper range, as geometry for inline SVG."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from chalice_app.store.batch import Batch
from chalice_app.website.view import is_number

CHART_TOP = 20
_TINY = 1e-300  # spans below this draw on a unit axis (10**e would leave the normal floats)

def _nice_step(span: float, ticks: int = 4) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) of at least span / ticks; finite for any finite span."""
    raw = span / ticks
    if not raw >= _TINY:  # zero, or too small for 10**e to be a normal float: a unit axis
        return 1.0
    exponent = min(math.floor(math.log10(raw)), 307)
    magnitude = 10.0**exponent
    return next((m * magnitude for m in (1, 2, 2.5, 5) if m * magnitude >= raw), 10 * magnitude)


def _num(value: float | Decimal) -> str:
    """A short label: one decimal for everyday magnitudes, three significant digits beyond them."""
    if value == 0:
        return "0"
    if 0.05 <= abs(value) < 1e9:
        return f"{value:.1f}".removesuffix(".0")
    return f"{value:.3g}"


def _short(label: str, limit: int = 26) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


# Layout of the chart in SVG user units; the SVG scales to the page width.
CHART_WIDTH, LABEL_WIDTH, PLOT_X, PLOT_WIDTH, ROW_HEIGHT, BAR_HEIGHT, TOP_PAD = 640, 190, 200, 360, 20, 12, 8


@dataclass(frozen=True)
class _Scale:
    """An axis from lo * step to hi * step. lo and hi count steps (ints), so no end of the axis is
    ever computed as a float: with values near ±1.7e308 it would overflow to inf."""

    lo: int
    hi: int
    step: float

    def x(self, value: float) -> float:
        # value / step is at most a few steps for the values the scale was made of.
        return PLOT_X + (value / self.step - self.lo) / (self.hi - self.lo) * PLOT_WIDTH

    def ticks(self) -> list[tuple[float, str]]:
        step = Decimal(repr(self.step))  # exact: k * step as a float could overflow
        count = self.hi - self.lo
        return [(PLOT_X + k / count * PLOT_WIDTH, _num(step * (self.lo + k))) for k in range(count + 1)]


def _scale_of(rows: list[tuple[dict, float, tuple[float, ...]]]) -> _Scale:
    """An axis that holds zero and every value and bound, on round tick steps."""
    ceiling = max(0.0, max(max((*bounds, value)) for _, value, bounds in rows))
    floor = min(0.0, min(min((*bounds, value)) for _, value, bounds in rows))
    # Halves first: ceiling - floor itself can overflow (1.7e308 - -1.7e308); each half cannot.
    step = _nice_step(ceiling / 2 - floor / 2, ticks=2)
    lo, hi = math.floor(floor / step), math.ceil(ceiling / step)
    return _Scale(lo, hi if hi > lo else lo + 1, step)  # all values zero: still a drawable axis


def _bar(row: tuple[dict, float, tuple[float, ...]], n: int, scale: _Scale) -> dict[str, Any]:
    item, value, bounds = row
    y = TOP_PAD + n * ROW_HEIGHT
    mid = y + BAR_HEIGHT / 2
    name = str(item.get("label") or item["id"])
    range_path = None
    if bounds:
        a, b = scale.x(min(bounds)), scale.x(max(bounds))
        range_path = f"M{a:.1f} {mid:.1f}H{b:.1f}M{a:.1f} {mid - 4:.1f}v8M{b:.1f} {mid - 4:.1f}v8"
    shown = _num(value) + (f" ({_num(min(bounds))}–{_num(max(bounds))})" if bounds else "")
    # Bars grow from zero, so a negative value points left of the axis instead of looking small.
    start, end = sorted((scale.x(0.0), scale.x(value)))
    return {"label": _short(name), "tooltip": f"{name} ({item['id']}): {shown}", "y": y,
            "text_y": f"{y + BAR_HEIGHT - 1:.0f}", "x": f"{start:.1f}", "width": f"{end - start:.1f}",
            "range": range_path, "value": _num(value),
            "value_x": f"{scale.x(max((*bounds, value))) + 6:.1f}"}


def chart_of(batch: Batch, top: int = CHART_TOP) -> dict[str, Any] | None:
    """Geometry of a horizontal bar chart of the `top` largest values, or None without values.

    Any batch the store reads is drawn: every number is taken as a float first, and one that is
    not finite as a float (an integer of 400 digits) is left out of the chart, not a crash.
    """
    rows = []
    for item in batch.items:
        value = _finite(item.get("value"))
        if value is not None:
            rows.append((item, value, _range_of(item)))
    if not rows:
        return None
    rows = sorted(rows, key=lambda row: (-row[1], row[0]["id"]))[:top]
    scale = _scale_of(rows)
    bars = [_bar(row, n, scale) for n, row in enumerate(rows)]
    bottom = TOP_PAD + len(rows) * ROW_HEIGHT
    ticks = [{"x": f"{x:.1f}", "label": label} for x, label in scale.ticks()]
    ranges = any(bar["range"] for bar in bars)
    return {
        "width": CHART_WIDTH, "height": bottom + 22, "top": TOP_PAD - 4, "bottom": bottom,
        "tick_y": bottom + 16, "label_x": LABEL_WIDTH, "bar_height": BAR_HEIGHT, "bars": bars, "ticks": ticks,
        "title": f"Top {len(rows)} predicted values for {batch.date}",
        "desc": "Largest first" + (", value with its lower to upper range" if ranges else "") + ": "
                + "; ".join(bar["tooltip"] for bar in bars) + ".",
        "caption": f"The {len(rows)} largest of {len(batch):,} predicted values"
                   + ("; lines show each prediction's lower to upper range." if ranges else "."),
    }


def _finite(value: object) -> float | None:
    """The value as a finite float, or None (not a number, NaN, infinite, or too big for a float)."""
    if not is_number(value):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _range_of(item: dict) -> tuple[float, ...]:
    bounds = (_finite(item.get("lower")), _finite(item.get("upper")))
    return bounds if None not in bounds else ()  # type: ignore[return-value]
