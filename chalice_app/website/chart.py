"""The chart of a batch: its top values with their lower-upper range, as geometry for inline SVG."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from chalice_app.store.batch import Batch
from chalice_app.website import numbers
from chalice_app.website.numbers import Precision, finite_number
from chalice_app.website.view import BOUNDS, Column, columns_of, precision_of_columns

CHART_TOP = 10  # bars: the chart beside the summary on a wide screen stays about as tall as it
_TINY = 1e-300  # spans below this draw on a unit axis (10**e would leave the normal floats)

def _nice_step(span: float, ticks: float = 4) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) of at least span / ticks; finite for any finite span."""
    raw = span / ticks
    if not raw >= _TINY:  # zero, or too small for 10**e to be a normal float: a unit axis
        return 1.0
    if not math.isfinite(raw):
        return math.inf
    exponent = min(math.floor(math.log10(raw)), 307)
    magnitude = 10.0**exponent
    return next((m * magnitude for m in (1, 2, 2.5, 5) if m * magnitude >= raw), 10 * magnitude)


def _short(label: str, limit: int = 26, room: float = math.inf) -> str:
    """At most `limit` characters and, by numbers.text_width's estimate, at most `room` units wide."""
    if len(label) > limit:
        label = label[: limit - 1] + "…"
    while len(label) > 1 and numbers.text_width(label, FONT_SIZE) > room:
        label = label[:-2] + "…"
    return label


# Layout of the chart in SVG user units; the SVG scales to the page width. Each bar has its label
# and value on a line above it, so a 360 px phone still shows 13-unit text at 11+ CSS px
# (the stylesheet sets the size; tools/lighthouse and the browser test check it).
CHART_WIDTH, PLOT_X, PLOT_WIDTH, ROW_HEIGHT, BAR_HEIGHT, TOP_PAD = 380, 14, 352, 30, 10, 4
LABEL_WIDTH = PLOT_X  # labels start where the plot does
TEXT_DY, BAR_DY = 12, 16  # baseline of the label line, top of the bar, from the top of a row
AXIS_TICKS = (3, 4, 5, 6)  # the axis is split in this many round steps, whichever ends lowest
FEWER_TICKS = (2, 1)  # tried when the labels of every AXIS_TICKS split would collide
FONT_SIZE = 13  # the largest size site.css gives .chart text (phones): every estimate assumes it
EDGE = 2  # at least this many units between any text and the SVG's edge
TICK_GAP = 8  # between two neighbouring axis labels
LABEL_GAP = 8  # between a bar's label and its value
MIN_LABEL = 80  # units a bar's label keeps before its value gives up the range (about 9 characters)
AXIS_FIXED_LIMIT = 1e9  # axis labels of this size or more, or finer than 1e-6, in scientific notation

@dataclass(frozen=True)
class _Scale:
    """An axis from lo * step to hi * step. lo and hi count steps (ints), so no end of the axis is
    ever computed as a float: with values near ±1.7e308 it would overflow to inf."""

    lo: int
    hi: int
    step: float
    left: float = PLOT_X  # the plot runs from left to left + width: room for the end labels
    width: float = PLOT_WIDTH

    def x(self, value: float) -> float:
        # value / step is at most a few steps for the values the scale was made of.
        return self.left + (value / self.step - self.lo) / (self.hi - self.lo) * self.width

    def labels(self) -> list[str]:
        # Exact (k * step as a float could overflow), and the round step it stands for: 2.5 * 10.0**-5
        # is 2.5000000000000005e-05 as a float, the step is 2.5e-05 (two significant digits at most).
        step = Decimal(f"{self.step:.1e}").normalize()
        largest = max(abs(step * self.lo), abs(step * self.hi))
        places = max(0, -int(step.as_tuple().exponent))
        precision = (Precision(places) if largest < AXIS_FIXED_LIMIT and places <= numbers.MAX_DECIMALS
                     else Precision(None, len(step.as_tuple().digits) + 1))
        return [numbers.tick_label(step * k, precision) for k in range(self.lo, self.hi + 1)]

    def ticks(self) -> list[tuple[float, str]]:
        count = self.hi - self.lo
        return [(self.left + k / count * self.width, label) for k, label in enumerate(self.labels())]

    def fitted(self) -> tuple[_Scale, bool]:
        """This axis with its plot narrowed so the first and last labels, centred on their ticks,
        stay inside the SVG; and whether neighbouring labels then keep apart (by the estimate)."""
        widths = [numbers.text_width(label, FONT_SIZE) for label in self.labels()]
        left = max(PLOT_X, widths[0] / 2 + EDGE)
        right = CHART_WIDTH - max(PLOT_X, widths[-1] / 2 + EDGE)
        if right - left < PLOT_WIDTH / 4:  # absurdly wide labels: keep a plot, the check below fails
            left, right = PLOT_X, PLOT_X + PLOT_WIDTH / 4
        scale = _Scale(self.lo, self.hi, self.step, left, right - left)
        spacing = scale.width / (self.hi - self.lo)
        apart = all(spacing >= (a + b) / 2 + TICK_GAP for a, b in itertools.pairwise(widths))
        inside = left - widths[0] / 2 >= 0 and left + scale.width + widths[-1] / 2 <= CHART_WIDTH
        return scale, apart and inside


def _scale_of(rows: list[tuple[dict, float, tuple[float, ...]]]) -> _Scale:
    """An axis that holds zero and every value and bound, on round tick steps."""
    ceiling = max(0.0, max(max((*bounds, value)) for _, value, bounds in rows))
    floor = min(0.0, min(min((*bounds, value)) for _, value, bounds in rows))
    return nice_axis(floor, ceiling)


def nice_axis(floor: float, ceiling: float) -> _Scale:
    """The axis from floor to ceiling (floor <= 0 <= ceiling) on round steps that ends closest to
    the values: 0-1008 gives 0-1200 in steps of 200, not 0-1500. Its labels fit: the plot leaves
    room for the first and last (centred on their ticks, inside the SVG), and a split whose labels
    would collide is passed over for one with fewer steps."""
    tried: list[_Scale] = []
    for counts in (AXIS_TICKS, FEWER_TICKS):
        best: tuple[Decimal, int, _Scale] | None = None  # (length, distance from 4 steps, axis)
        for ticks in counts:
            # Halves first: ceiling - floor itself can overflow (1.7e308 - -1.7e308); each half cannot.
            step = _nice_step(ceiling / 2 - floor / 2, ticks=ticks / 2)
            if not math.isfinite(step):  # fewer steps than this span allows as a float
                continue
            lo, hi = math.floor(floor / step), math.ceil(ceiling / step)
            scale, fits = _Scale(lo, hi if hi > lo else lo + 1, step).fitted()  # all zero: still an axis
            tried.append(scale)
            length = Decimal(repr(step)) * (scale.hi - scale.lo)  # exact: as a float it could overflow
            # Shortest axis first; of equally long ones, the split closest to four steps (0-20,000
            # in steps of 5,000 rather than 10,000).
            if fits and (best is None or (length, abs(scale.hi - scale.lo - 4)) < best[:2]):
                best = (length, abs(scale.hi - scale.lo - 4), scale)
        if best is not None:
            return best[2]
    # No split fits (labels wider than the chart): the fewest steps, both ends still inside.
    return min(tried, key=lambda scale: scale.hi - scale.lo)


def _bar(row: tuple[dict, float, tuple[float, ...]], n: int, scale: _Scale,
         precisions: dict[str, Precision]) -> dict[str, Any]:
    item, value, bounds = row
    top = TOP_PAD + n * ROW_HEIGHT
    y = top + BAR_DY
    mid = y + BAR_HEIGHT / 2
    name = str(item.get("label") or item["id"])
    range_path = None
    if bounds:
        a, b = scale.x(min(bounds)), scale.x(max(bounds))
        range_path = f"M{a:.1f} {mid:.1f}H{b:.1f}M{a:.1f} {mid - 4:.1f}v8M{b:.1f} {mid - 4:.1f}v8"
    number = numbers.format_number(value, precisions["value"])  # as the table prints it
    shown = number
    if bounds:
        names = ("lower", "upper") if bounds[0] <= bounds[1] else ("upper", "lower")
        low, high = (numbers.format_number(x, precisions[name]) for x, name in zip(sorted(bounds), names, strict=True))
        shown += f" ({low}–{high})"
    # The label and the value share a line: a value too wide to leave a short label room is shown
    # without its range (the whisker still draws it; the tooltip and the description keep it).
    room = CHART_WIDTH - EDGE - LABEL_WIDTH - LABEL_GAP
    visible = shown if numbers.text_width(shown, FONT_SIZE) + MIN_LABEL <= room else number
    # Bars grow from zero, so a negative value points left of the axis instead of looking small.
    start, end = sorted((scale.x(0.0), scale.x(value)))
    return {"label": _short(name, room=room - numbers.text_width(visible, FONT_SIZE)),
            "tooltip": f"{name} ({item['id']}): {shown}", "y": y,
            "text_y": f"{top + TEXT_DY}", "x": f"{start:.1f}", "width": f"{end - start:.1f}",
            "range": range_path, "value": visible, "value_x": f"{CHART_WIDTH - EDGE}"}


def _precisions(batch: Batch, columns: list[Column]) -> dict[str, Precision]:
    """value, lower and upper as the table prints them (view.columns_of: one precision for the
    three), or from their values when the batch's declared fields leave them out."""
    columns = {c.name: c for c in columns if c.numeric}
    shared = columns["value"].precision if "value" in columns else precision_of_columns(batch.items, list(BOUNDS))
    return {name: columns[name].precision if name in columns else shared for name in BOUNDS}


def chart_of(batch: Batch, top: int = CHART_TOP, columns: list[Column] | None = None) -> dict[str, Any] | None:
    """Geometry of a horizontal bar chart of the `top` largest values, or None without values.
    `columns`: the table's (view.columns_of), when the caller has them already.

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
    precisions = _precisions(batch, columns if columns is not None else columns_of(batch))
    bars = [_bar(row, n, scale, precisions) for n, row in enumerate(rows)]
    bottom = TOP_PAD + len(rows) * ROW_HEIGHT
    ticks = [{"x": f"{x:.1f}", "label": label} for x, label in scale.ticks()]
    ranges = any(bar["range"] for bar in bars)
    return {
        "width": CHART_WIDTH, "height": bottom + 24, "top": TOP_PAD, "bottom": bottom + 4,
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
