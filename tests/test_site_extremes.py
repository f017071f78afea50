"""The site renderer takes any finite number a batch can hold (batches not written by the publish
command included): no inf/nan in the chart's geometry, no traceback in the build."""

from __future__ import annotations

import json
import math
import os
import re

import pytest

from chalice_app.store.batch import Batch
from chalice_app.website import chart, view

from site_helpers import PREFIX, build_folder, read

BIG = 1.7976931348623157e308
EXTREMES = [10**400, -(10**400), BIG, -BIG, 1.7e308, -1.7e308, 5e-324, -5e-324, 2.2250738585072014e-308,
            2**53 + 1, 1e21, 1.5e-7, 0, 0.0, -0.0, 1e15, 123.5]


def batch_of(rows: list[dict], date: str = "2026-11-20") -> Batch:
    return Batch({"date": date, "model": {"name": "m", "version": "1"}, "predictions": rows})


def numbers_in(geometry: dict) -> list[float]:
    text = json.dumps(geometry)
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?", text.split('"bars"')[0])] + [
        float(bar[k]) for bar in geometry["bars"] for k in ("x", "width", "value_x")]


def assert_drawable(geometry: dict) -> None:
    for bar in geometry["bars"]:
        for key in ("x", "width", "value_x", "text_y"):
            value = float(bar[key])
            assert math.isfinite(value) and -1e6 < value < 1e6, (key, bar)
        assert float(bar["width"]) >= 0
        if bar["range"]:
            assert all(math.isfinite(float(n)) for n in re.findall(r"-?\d+\.\d+", bar["range"]))
            assert "inf" not in bar["range"] and "nan" not in bar["range"]
    for tick in geometry["ticks"]:
        assert math.isfinite(float(tick["x"])) and "inf" not in tick["label"] and "nan" not in tick["label"]
        assert len(tick["label"]) <= 12, tick
    assert len(geometry["ticks"]) <= 10


@pytest.mark.parametrize("value", EXTREMES, ids=lambda v: repr(v)[:24])
def test_one_extreme_value_charts(value):
    geometry = chart.chart_of(batch_of([{"id": "a", "value": value}, {"id": "b", "value": 1.0}]))
    assert geometry is not None
    assert_drawable(geometry)


@pytest.mark.parametrize(("lower", "upper"), [(-BIG, BIG), (-1.7e308, 1.7e308), (-10**400, 10**400),
                                              (5e-324, 1e-323), (BIG, -BIG)], ids=lambda v: repr(v)[:24])
def test_extreme_bounds_chart(lower, upper):
    geometry = chart.chart_of(batch_of([{"id": "a", "value": 1.0, "lower": lower, "upper": upper},
                                        {"id": "b", "value": -BIG, "lower": -BIG, "upper": 0}]))
    assert_drawable(geometry)


def test_all_extremes_at_once_and_all_equal_values():
    rows = [{"id": f"r{i}", "value": v, "lower": v, "upper": v} for i, v in enumerate(EXTREMES)]
    assert_drawable(chart.chart_of(batch_of(rows)))
    assert_drawable(chart.chart_of(batch_of([{"id": "a", "value": 0}, {"id": "b", "value": 0.0}])))
    assert_drawable(chart.chart_of(batch_of([{"id": "a", "value": -5.0}, {"id": "b", "value": -7.0}])))


def test_a_400_digit_integer_is_left_out_of_the_chart_not_a_crash():
    geometry = chart.chart_of(batch_of([{"id": "a", "value": 10**400}, {"id": "b", "value": 2.0}]))
    assert [bar["label"] for bar in geometry["bars"]] == ["b"]
    assert chart.chart_of(batch_of([{"id": "a", "value": 10**400}])) is None


def test_everyday_charts_keep_their_labels():
    geometry = chart.chart_of(batch_of([{"id": "a", "value": 412.5, "lower": 380.0, "upper": 441.2},
                                        {"id": "b", "value": 12, "lower": 10, "upper": 14}]))
    # The axis ends at the round step just above the largest bound (441.2), not at 600.
    assert [t["label"] for t in geometry["ticks"]] == ["0", "100", "200", "300", "400", "500"]
    assert geometry["bars"][0]["tooltip"] == "a (a): 412.5 (380.0–441.2)"  # one precision, as in the table


@pytest.mark.parametrize(("value", "text"), [
    (251.0, "251"), (412.5, "412.5"), (12, "12"), (1e21, "1e+21"), (1e20, "100000000000000000000"),
    (1.5e-7, "1.5e-7"), (1e-6, "0.000001"), (5e-324, "5e-324"), (-1.7e308, "-1.7e+308"),
    (BIG, "1.7976931348623157e+308"), (10**400, "Infinity"), (-(10**400), "-Infinity"),
    (2**60, "1152921504606847000"), (-0.0, "0"), (True, "true"), (None, ""),
], ids=lambda v: repr(v)[:24])
def test_cells_read_as_javascript_prints_them(value, text):
    assert view.cell_text(value) == text


def test_odd_generated_at_does_not_break_the_summary():
    for stamp in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "x" * 100, 5, None):
        summary = view.batch_summary(Batch({"date": "2026-11-20", "generated_at": stamp, "predictions": []}))
        assert isinstance(summary["generated_display"], str)


def test_a_whole_site_builds_from_a_batch_of_extremes(tmp_path):
    """Written straight into the folder, as another tool could: the store reads it, the site renders."""
    rows = [{"id": f"r{i}", "label": f"row {i}", "value": v, "lower": -BIG, "upper": BIG}
            for i, v in enumerate(EXTREMES)]
    rows.append({"id": "big-int", "value": 10**400, "lower": -(10**400), "upper": 10**400})
    doc = {"date": "2026-11-20", "generated_at": "0001-01-01T00:00:00+01:00",
           "model": {"name": "m", "version": "1"}, "predictions": rows}
    src = tmp_path / "bucket"
    folder = src / PREFIX.strip("/") / "2026-11-20"
    folder.mkdir(parents=True)
    (folder / "predictions.json").write_text(json.dumps(doc))
    (src / PREFIX.strip("/") / "latest.json").write_text(json.dumps({"date": "2026-11-20"}))
    out = str(tmp_path / "out")
    build_folder(str(src), out, 1)
    page = read(out, "index.html")
    assert "Infinity" in page and "1.7976931348623157e+308" in page
    assert os.path.exists(os.path.join(out, "d", "2026-11-20.html"))
    geometry = re.findall(r' (?:x|x1|x2|width|d)="([^"]*)"', page)
    assert geometry and not any("inf" in g or "nan" in g for g in geometry)
