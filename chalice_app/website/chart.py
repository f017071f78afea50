"""The chart of a batch: its top values with their lower-upper range, as geometry for inline SVG."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from chalice_app.store.batch import Batch
from chalice_app.website.view import column_decimals, finite_number, number_text

CHART_TOP = 20
_TINY = 1e-300  # spans below this draw on a unit axis (10**e would leave the normal floats)

def _nice_step(span: float, ticks: float = 4) -> float:
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


# Layout of the chart in SVG user units; the SVG scales to the page width. Each bar has its label
# and value on a line above it, so a 360 px phone still shows 13-unit text at 11+ CSS px
# (the stylesheet sets the size; tools/lighthouse and the browser test check it).
CHART_WIDTH, PLOT_X, PLOT_WIDTH, ROW_HEIGHT, BAR_HEIGHT, TOP_PAD = 380, 14, 352, 30, 10, 4
LABEL_WIDTH = PLOT_X  # labels start where the plot does
TEXT_DY, BAR_DY = 12, 16  # baseline of the label line, top of the bar, from the top of a row
AXIS_TICKS = (3, 4, 5, 6)  # the axis is split in this many round steps, whichever ends lowest

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
    return nice_axis(floor, ceiling)


def nice_axis(floor: float, ceiling: float) -> _Scale:
    """The axis from floor to ceiling (floor <= 0 <= ceiling) on round steps that ends closest to
    the values: 0-1008 gives 0-1200 in steps of 200, not 0-1500."""
    best: tuple[Decimal, int, _Scale] | None = None
    for ticks in AXIS_TICKS:
        # Halves first: ceiling - floor itself can overflow (1.7e308 - -1.7e308); each half cannot.
        step = _nice_step(ceiling / 2 - floor / 2, ticks=ticks / 2)
        lo, hi = math.floor(floor / step), math.ceil(ceiling / step)
        scale = _Scale(lo, hi if hi > lo else lo + 1, step)  # all values zero: still a drawable axis
        length = Decimal(repr(step)) * (scale.hi - scale.lo)  # exact: as a float it could overflow
        if best is None or (length, scale.hi - scale.lo) < best[:2]:
            best = (length, scale.hi - scale.lo, scale)
    assert best is not None
    return best[2]


def _bar(row: tuple[dict, float, tuple[float, ...]], n: int, scale: _Scale, decimals: int | None) -> dict[str, Any]:
    item, value, bounds = row
    top = TOP_PAD + n * ROW_HEIGHT
    y = top + BAR_DY
    mid = y + BAR_HEIGHT / 2
    name = str(item.get("label") or item["id"])
    range_path = None
    if bounds:
        a, b = scale.x(min(bounds)), scale.x(max(bounds))
        range_path = f"M{a:.1f} {mid:.1f}H{b:.1f}M{a:.1f} {mid - 4:.1f}v8M{b:.1f} {mid - 4:.1f}v8"
    def num(x: float) -> str:  # the table's precision when the values have one, else a short form
        return number_text(x, decimals) if decimals is not None else _num(x)

    shown = num(value) + (f" ({num(min(bounds))}–{num(max(bounds))})" if bounds else "")
    # Bars grow from zero, so a negative value points left of the axis instead of looking small.
    start, end = sorted((scale.x(0.0), scale.x(value)))
    return {"label": _short(name), "tooltip": f"{name} ({item['id']}): {shown}", "y": y,
            "text_y": f"{top + TEXT_DY}", "x": f"{start:.1f}", "width": f"{end - start:.1f}",
            "range": range_path, "value": shown, "value_x": f"{CHART_WIDTH}"}


def chart_of(batch: Batch, top: int = CHART_TOP) -> dict[str, Any] | None:
    """Geometry of a horizontal bar chart of the `top` largest values, or None without values.

    Any batch the store reads is drawn: every number is taken as a float first, and one that is
    not finite as a float (an integer of 400 digits) is left out of the chart, not a crash.
    """
    rows = []
    for item in batch.items:
        value = finite_number(item.get("value"))
        if value is not None:
            rows.append((item, value, _range_of(item)))
    if not rows:
        return None
    rows = sorted(rows, key=lambda row: (-row[1], row[0]["id"]))[:top]
    scale = _scale_of(rows)
    decimals = column_decimals(batch.items, "value")
    bars = [_bar(row, n, scale, decimals) for n, row in enumerate(rows)]
    bottom = TOP_PAD + len(rows) * ROW_HEIGHT
    ticks = [{"x": f"{x:.1f}", "label": label} for x, label in scale.ticks()]
    ranges = any(bar["range"] for bar in bars)
    return {
        "width": CHART_WIDTH, "height": bottom + 20, "top": TOP_PAD, "bottom": bottom + 4,
        "tick_y": bottom + 18, "label_x": LABEL_WIDTH, "bar_height": BAR_HEIGHT, "bars": bars, "ticks": ticks,
        "title": f"Top {len(rows)} predicted values for {batch.date}",
        "desc": "Largest first" + (", value with its lower to upper range" if ranges else "") + ": "
                + "; ".join(bar["tooltip"] for bar in bars) + ".",
        "caption": f"The {len(rows)} largest of {len(batch):,} predicted values"
                   + ("; lines show each prediction's lower to upper range." if ranges else "."),
    }


def _range_of(item: dict) -> tuple[float, ...]:
    bounds = (finite_number(item.get("lower")), finite_number(item.get("upper")))
    return bounds if None not in bounds else ()  # type: ignore[return-value]
