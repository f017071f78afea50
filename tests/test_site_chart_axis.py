"""The chart's text stays inside the chart: every axis label (and every bar's label and value) lies
within the SVG's box at any width from 320 to 1920 px, for any value range (0-1, 0-15,000, negative
values, one row, the contract's extremes). The geometry is checked by its own estimate here for many
ranges, then measured in Chromium (Playwright, /usr/bin/chromium) at 320, 390, 1280 and 1920 px.
"""

from __future__ import annotations

import functools
import http.server
import itertools
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalice_app.publishing.sample import make_batch
from chalice_app.store.batch import Batch
from chalice_app.website import chart, numbers

from helpers import needs_chromium
from site_helpers import END_DATE, build_folder, write_source

WIDTHS = (320, 390, 1280, 1920)


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def rows_of(values: list[float], spread: float = 0.1) -> list[dict]:
    return [{"id": f"r{i:03d}", "label": f"Product number {i} (family size)", "value": v,
             "lower": v - abs(v) * spread, "upper": v + abs(v) * spread} for i, v in enumerate(values)]


SCENARIOS: dict[str, list[dict]] = {
    "probabilities": rows_of([0.873, 0.5, 0.12, 0.999, 0.05, 0.0], spread=0.001),
    "to-15000": rows_of([14876.5, 12000.25, 8000.0, 1007.9, 110.7, 12345.678]),
    "sample-1200": make_batch(END_DATE, 200)["predictions"],
    "negative": rows_of([-15000.0, -12000.5, -10.25, -3.5]),
    "both-signs": rows_of([-14999.9, 15000.0, 0.0, 42.0, -7.5]),
    "one-row": rows_of([1007.9]),
    "one-negative-row": [{"id": "only", "label": "A single, negative prediction", "value": -0.125}],
    "trillions": rows_of([1e12, 2.5e11, -1e12, 999_999_999_999.9]),
    "contract-extremes": rows_of([1e15, -1e15, 2**53, 1.5e-7, 0]),
    "tiny": rows_of([1.5e-7, 2.25e-7, 9.9e-8, -3e-8]),
    "long-values": [{"id": "x", "label": "A label long enough to need the whole line " * 3, "value": -123456789012.5,
                     "lower": -987654321098.25, "upper": 876543210987.75}],
}


# ---- the geometry, by its own estimate -------------------------------------------------------


def label_boxes(scale: chart._Scale) -> list[tuple[float, float]]:
    return [(x - w / 2, x + w / 2) for x, w in
            ((x, numbers.text_width(label, chart.FONT_SIZE)) for x, label in scale.ticks())]


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_estimated_axis_labels_fit(name):
    geometry = chart.chart_of(Batch({"date": END_DATE, "predictions": SCENARIOS[name]}))
    ticks = [(float(t["x"]), numbers.text_width(t["label"], chart.FONT_SIZE)) for t in geometry["ticks"]]
    assert len(ticks) >= 2
    for x, w in ticks:
        assert 0 <= x - w / 2 and x + w / 2 <= chart.CHART_WIDTH, geometry["ticks"]
    for (x1, w1), (x2, w2) in itertools.pairwise(ticks):
        assert x1 + w1 / 2 < x2 - w2 / 2, geometry["ticks"]
    for bar in geometry["bars"]:
        label = numbers.text_width(bar["label"], chart.FONT_SIZE)
        value = numbers.text_width(bar["value"], chart.FONT_SIZE)
        assert chart.LABEL_WIDTH + label < float(bar["value_x"]) - value, bar


@settings(max_examples=400, deadline=None)
@given(st.floats(min_value=-1e15, max_value=0, allow_nan=False), st.floats(min_value=0, max_value=1e15,
                                                                            allow_nan=False))
def test_any_range_gets_an_axis_whose_labels_fit(floor, ceiling):
    scale = chart.nice_axis(floor, ceiling)
    slack = scale.step * 1e-9  # a value a billionth of a step below zero may share the zero tick
    assert scale.lo * scale.step <= floor + slack and ceiling - slack <= scale.hi * scale.step
    boxes = label_boxes(scale)
    assert boxes[0][0] >= 0 and boxes[-1][1] <= chart.CHART_WIDTH
    assert all(a[1] < b[0] for a, b in itertools.pairwise(boxes)), [t[1] for t in scale.ticks()]


@pytest.mark.parametrize(("top", "labels"), [
    (1008, ["0", "200", "400", "600", "800", "1,000", "1,200"]), (15000, ["0", "5,000", "10,000", "15,000"]),
    (0.873, ["0.00", "0.25", "0.50", "0.75", "1.00"]),
    (1e12, ["0", "2.5 × 10¹¹", "5 × 10¹¹", "7.5 × 10¹¹", "1 × 10¹²"]),
    (1.5e-7, ["0", "5 × 10⁻⁸", "1 × 10⁻⁷", "1.5 × 10⁻⁷"]), (-15000, ["-15,000", "-10,000", "-5,000", "0"]),
])
def test_axis_labels_read_as_the_table_does(top, labels):
    assert [label for _, label in chart.nice_axis(min(0.0, top), max(0.0, top)).ticks()] == labels


# ---- measured in Chromium ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    urls, servers = {}, []
    for name, rows in SCENARIOS.items():
        doc = {"date": END_DATE, "generated_at": f"{END_DATE}T04:00:00Z", "model": {"name": "m", "version": "1"},
               "predictions": rows}
        src = write_source(str(tmp_path_factory.mktemp(f"bucket-{name}")), [doc])
        out = str(tmp_path_factory.mktemp(f"site-{name}") / "out")
        build_folder(src, out, 1)
        handler = functools.partial(Quiet, directory=out)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        urls[name] = f"http://127.0.0.1:{server.server_address[1]}/d/{END_DATE}.html"
    yield urls
    for server in servers:
        server.shutdown()
        server.server_close()


MEASURE = """() => {
  const svg = document.querySelector('.chart svg').getBoundingClientRect();
  const box = (t) => { const r = t.getBoundingClientRect();
    return {text: t.textContent, cls: t.getAttribute('class'), left: r.left, right: r.right, top: r.top,
            bottom: r.bottom}; };
  return {svg: {left: svg.left, right: svg.right, top: svg.top, bottom: svg.bottom},
          texts: Array.from(document.querySelectorAll('.chart svg text')).map(box),
          lines: Array.from(document.querySelectorAll('.chart svg g')).map(g =>
            Array.from(g.querySelectorAll('text')).map(box)),
          scrollWidth: document.documentElement.scrollWidth, innerWidth: innerWidth};
}"""


@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize("width", WIDTHS, ids=[f"{w}px" for w in WIDTHS])
def test_every_chart_label_lies_inside_the_chart(browser, sites, width):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        problems = []
        for name, url in sites.items():
            page.goto(url)
            page.wait_for_load_state("load")
            got = page.evaluate(MEASURE)
            svg = got["svg"]
            ticks = [t for t in got["texts"] if t["cls"] == "tick"]
            assert len(ticks) >= 2, name
            for t in got["texts"]:
                if not (svg["left"] - 0.5 <= t["left"] and t["right"] <= svg["right"] + 0.5
                        and svg["top"] - 0.5 <= t["top"] and t["bottom"] <= svg["bottom"] + 0.5):
                    problems.append((name, t["cls"], t["text"], round(t["left"], 1), round(t["right"], 1), svg))
            for a, b in itertools.pairwise(sorted(ticks, key=lambda t: t["left"])):
                if a["right"] > b["left"]:
                    problems.append((name, "ticks overlap", a["text"], b["text"]))
            for line in got["lines"]:  # a bar's label and its value share a line
                label, value = line
                if label["right"] > value["left"]:
                    problems.append((name, "label over value", label["text"], value["text"]))
            if got["scrollWidth"] > got["innerWidth"]:
                problems.append((name, "page scrolls sideways", got["scrollWidth"], got["innerWidth"]))
        assert problems == []
    finally:
        context.close()
