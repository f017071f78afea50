"""The chart of a batch: its top values with their lower-upper range, as geometry for inline SVG."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from chalice_app.store.batch import Batch
from chalice_app.website.view import is_number

CHART_TOP = 20

def _nice_step(span: float, ticks: int = 4) -> float:
    raw = span / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def _num(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _short(label: str, limit: int = 26) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


# Layout of the chart in SVG user units; the SVG scales to the page width.
CHART_WIDTH, LABEL_WIDTH, PLOT_X, PLOT_WIDTH, ROW_HEIGHT, BAR_HEIGHT, TOP_PAD = 640, 190, 200, 360, 20, 12, 8


@dataclass(frozen=True)
class _Scale:
    lo: float
    hi: float
    step: float

    def x(self, value: float) -> float:
        return PLOT_X + (value - self.lo) / (self.hi - self.lo) * PLOT_WIDTH


def _scale_of(rows: list[dict]) -> _Scale:
    """An axis from zero (or the lowest bound) to the highest bound, on round tick steps."""
    ceiling = max(max((*_range_of(item), item["value"])) for item in rows)
    floor = min(0.0, min(min((*_range_of(item), item["value"])) for item in rows))
    step = _nice_step(ceiling - floor) if ceiling > floor else 1.0
    lo, hi = step * math.floor(floor / step), step * math.ceil(ceiling / step)
    return _Scale(lo, hi if hi > lo else lo + step, step)  # all values equal: still a drawable axis


def _bar(item: dict, n: int, scale: _Scale) -> dict[str, Any]:
    y = TOP_PAD + n * ROW_HEIGHT
    mid = y + BAR_HEIGHT / 2
    name = str(item.get("label") or item["id"])
    bounds = _range_of(item)
    range_path = None
    if bounds:
        a, b = scale.x(min(bounds)), scale.x(max(bounds))
        range_path = f"M{a:.1f} {mid:.1f}H{b:.1f}M{a:.1f} {mid - 4:.1f}v8M{b:.1f} {mid - 4:.1f}v8"
    shown = _num(item["value"]) + (f" ({_num(min(bounds))}–{_num(max(bounds))})" if bounds else "")
    # Bars grow from zero, so a negative value points left of the axis instead of looking small.
    start, end = sorted((scale.x(0.0), scale.x(item["value"])))
    return {"label": _short(name), "tooltip": f"{name} ({item['id']}): {shown}", "y": y,
            "text_y": f"{y + BAR_HEIGHT - 1:.0f}", "x": f"{start:.1f}", "width": f"{end - start:.1f}",
            "range": range_path, "value": _num(item["value"]),
            "value_x": f"{scale.x(max((*bounds, item['value']))) + 6:.1f}"}


def chart_of(batch: Batch, top: int = CHART_TOP) -> dict[str, Any] | None:
    """Geometry of a horizontal bar chart of the `top` largest values, or None without values."""
    rows = [item for item in batch.items if is_number(item.get("value")) and math.isfinite(item["value"])]
    if not rows:
        return None
    rows = sorted(rows, key=lambda item: (-item["value"], item["id"]))[:top]
    scale = _scale_of(rows)
    bars = [_bar(item, n, scale) for n, item in enumerate(rows)]
    bottom = TOP_PAD + len(rows) * ROW_HEIGHT
    ticks = [{"x": f"{scale.x(scale.lo + k * scale.step):.1f}", "label": _num(scale.lo + k * scale.step)}
             for k in range(round((scale.hi - scale.lo) / scale.step) + 1)]
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


def _range_of(item: dict) -> tuple[float, ...]:
    bounds = (item.get("lower"), item.get("upper"))
    if all(is_number(v) and math.isfinite(v) for v in bounds):
        return tuple(float(v) for v in bounds)
    return ()
