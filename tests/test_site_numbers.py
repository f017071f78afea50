"""Numbers formatted for reading (chalice_app/website/numbers.py): thousands separators, one precision
per column from the data's scale, the raw value in each cell's title, the same text from site.js.

Unit tests first (hypothesis for separators, significant digits and the raw value's round trip),
then site.js's formatter under node against numbers.py, then a built page in Chromium at 390 and
1280 px with hostile magnitudes: cells, cards, titles, sorting by the raw value.
"""

from __future__ import annotations

import functools
import html
import http.server
import json
import math
import os
import re
import shutil
import subprocess
import threading
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalice_app.store.batch import Batch
from chalice_app.website import changes, chart, numbers, view
from chalice_app.website.numbers import Precision

from helpers import PROJECT_DIR, needs_chromium
from site_helpers import END_DATE, Page, build_folder, read, write_source

GROUPED = re.compile(r"-?\d{1,3}(,\d{3})*(\.\d+)?")


def batch_of(rows: list[dict], date: str = END_DATE, **meta: object) -> Batch:
    return Batch({"date": date, "model": {"name": "m", "version": "1"}, **meta, "predictions": rows})


def plain(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


# ---- the formatter ---------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "precision", "text"), [
    (12345.678, Precision(1), "12,345.7"), (1007.9, Precision(0), "1,008"), (110.7, Precision(1), "110.7"),
    (-1234567.891, Precision(2), "-1,234,567.89"), (0, Precision(2), "0.00"), (-0.0, Precision(1), "0.0"),
    (-0.04, Precision(1), "0.0"), (999.95, Precision(1), "1,000.0"), (1e12, Precision(0), "1,000,000,000,000"),
    (2**53, Precision(0), "9,007,199,254,740,992"), (-1e15, Precision(0), "-1,000,000,000,000,000"),
    (1e-7, Precision(None, 3), "1.00 × 10⁻⁷"), (-1.5e-7, Precision(None, 2), "-1.5 × 10⁻⁷"),
    (0, Precision(None, 3), "0"), (1e16, Precision(0), "1.00 × 10¹⁶"), (1.7976931348623157e308, Precision(2),
                                                                         "1.80 × 10³⁰⁸"),
    (0.125, Precision(2), "0.13"), (-0.125, Precision(2), "-0.13"),  # toFixed: the exact binary value, half up
    (None, Precision(1), ""), ("x", Precision(1), ""), (float("nan"), Precision(1), ""), (10**400, Precision(0), ""),
])
def test_numbers_read_with_separators_and_one_precision(value, precision, text):
    assert numbers.format_number(value, precision) == text


@pytest.mark.parametrize(("values", "precision"), [
    ([110.7, 12345.678, 250.3, 98.1], Precision(1)),  # one 12345.678 no longer makes every value 110.700
    ([110.7, 15000.0, 2200.5, 3100.25, 900.0], Precision(0)),  # 100–15,000 around 2,000: whole numbers
    ([0.873123, 0.12, 0.55555, 0.9], Precision(4)),  # probabilities keep four digits
    ([0.1, 0.5, 0.9], Precision(1)),  # ... but not more than any of them is written with
    ([12.99, 4.5, 20.0], Precision(2)),  # prices keep their cents
    ([1, 2, 3000, -7], Precision(0)),  # integers stay integers
    ([0, 0.0, -0.0], Precision(0)),
    ([1e12, 2.5e12, 3e11], Precision(0)),
    ([1e-7, 2.5e-7, 3.25e-8], Precision(None, 3)),  # below 1e-4: scientific
    ([1e-7, 2e-7], Precision(None, 1)),
    ([0.000123, 0.000345], Precision(6)),  # at most six decimals
    ([-15000.5, -10.25, -300.75], Precision(1)),
    ([1, None, "x", True, float("inf")], Precision(0)),
])
def test_a_columns_precision_comes_from_its_scale(values, precision):
    assert numbers.precision_of(values) == precision


def test_the_users_card_reads_with_one_precision():
    """The issue's batch: 50 rows of about 100-1,000 and one 12345.678 whose bounds are 11000.0 and
    13000.00. value, lower and upper share one precision, the scale of their values."""
    rows = [{"id": f"r{i:02d}", "value": 100 + i * 17.3, "lower": 90 + i * 15.1, "upper": 110.7 + i * 19.9}
            for i in range(49)]
    rows.insert(3, {"id": "big", "value": 12345.678, "lower": 11000.0, "upper": 13000.00})
    batch = batch_of(rows)
    columns = view.columns_of(batch)
    cells = view.table_rows(batch.items, columns)
    by_id = {row["cells"][0]: row["cells"][1:] for row in cells}
    assert by_id["big"] == ["12,345.7", "11,000.0", "13,000.0"]
    assert by_id["r00"] == ["100.0", "90.0", "110.7"]
    geometry = chart.chart_of(batch)
    assert geometry["bars"][0]["value"] == "12,345.7 (11,000.0–13,000.0)"  # the chart says the same


def test_the_change_column_and_the_summary_use_the_same_formatting():
    before = batch_of([{"id": "a", "value": 10000.5}, {"id": "b", "value": 2.25}], date="2026-11-19")
    now = batch_of([{"id": "a", "value": 12345.75}, {"id": "b", "value": 2.0}])
    columns, found = changes.with_changes(now, before, view.columns_of(now))
    assert [r["cells"][-1] for r in view.table_rows(now.items, columns, found)] == ["+2,345.25 (+23.5%)",
                                                                                   "-0.25 (-11.1%)"]
    assert changes.change_text(-1.5e-9, -12345.678, Precision(None, 3)) == "-1.50 × 10⁻⁹ (-12,345.7%)"
    many = Batch({"date": END_DATE, "predictions": [{"id": f"n{i}", "value": 1.0} for i in range(1500)]})
    none = Batch({"date": "2026-11-19", "predictions": []})
    assert changes.changes_of(many, none, view.columns_of(many)).summary().startswith(
        "0 up, 0 down, 1,500 new, 0 dropped")


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15),
       st.integers(min_value=0, max_value=6))
def test_separators_every_three_digits_and_the_value_rounded_as_tofixed(x, decimals):
    text = numbers.format_number(x, Precision(decimals))
    assert GROUPED.fullmatch(text), text
    expected = abs(Decimal(x)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    assert abs(plain(text)) == expected
    assert text.startswith("-") == (x < 0 and expected != 0)  # a sign only where a digit is not zero
    assert len(text.partition(".")[2]) == decimals


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15),
                min_size=1, max_size=30))
def test_the_typical_value_keeps_its_significant_digits(values):
    precision = numbers.precision_of(values)
    nonzero = sorted(abs(v) for v in values if v != 0)
    if not nonzero:
        assert precision == Precision(0)
        return
    typical = nonzero[(len(nonzero) - 1) // 2]
    if typical < numbers.SCIENTIFIC_BELOW:
        assert precision.decimals is None and 1 <= precision.digits <= numbers.SCIENTIFIC_DIGITS
        return
    written = max(numbers.written_decimals(v) for v in values)
    assert precision.decimals is not None and precision.decimals <= min(written, numbers.MAX_DECIMALS)
    shown = plain(numbers.format_number(typical, precision))
    significant = len(str(shown).replace(".", "").lstrip("0"))
    # Four significant digits of the typical value, or every decimal it was written with.
    assert significant >= numbers.SIGNIFICANT or precision.decimals in (written, numbers.MAX_DECIMALS)
    for v in values:  # every value close to what it is: within half a unit of the last decimal
        assert abs(plain(numbers.format_number(v, precision)) - Decimal(v)) <= Decimal(1).scaleb(
            -precision.decimals) / 2


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15),
                 st.integers(min_value=-(2**53), max_value=2**53)))
def test_the_raw_value_in_the_title_round_trips(x):
    column = view.Column("v", "V", True, *[numbers.precision_of([x]).decimals])
    title = view.raw_title(x, column)
    assert float(title) == float(x)
    assert title == view.cell_text(x)  # JavaScript's String(x): what site.js puts in its cells' title


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: v != 0), st.integers(1, 4))
def test_scientific_notation_rounds_as_toexponential(x, digits):
    text = numbers.scientific(x, digits)
    mantissa, _, exponent = text.partition(" × 10")
    power = int(exponent.translate(str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")))
    assert len(mantissa.lstrip("-").replace(".", "")) == digits and 1 <= abs(Decimal(mantissa)) < 10
    assert mantissa.startswith("-") == (x < 0)
    # The nearest mantissa of that many digits: within half a unit of its last digit of the exact value.
    assert abs(Decimal(mantissa).scaleb(power) - Decimal(x)) <= Decimal(5).scaleb(power - digits)


# ---- site.js prints what numbers.py prints (node) --------------------------------------------


def _js_formatter() -> str:
    with open(os.path.join(PROJECT_DIR, "site", "static", "site.js"), encoding="utf-8") as fh:
        source = fh.read()
    start, end = source.index("  const SUPER = "), source.index("  function cellText(")
    return source[start:end]


NODE = shutil.which("node")
SAMPLES = [0, -0.0, 1, -1, 0.5, 0.125, -0.125, 2.5, 999.95, 1007.9, 12345.678, 110.7, -1234567.891, 1e12, 2**53,
           -1e15, 1e15 + 0.3, 9.999999e15, 1e16, -3e20, 1e21, 1.7976931348623157e308, 1e-7, -1.5e-7, 5e-324, 0.0001234,
           0.873123, 0.05, 0.045, 1.005, 8.345, 1234.5, -0.0004, 4.35, 0.3, 1e-5]
PRECISIONS = [Precision(0), Precision(1), Precision(2), Precision(4), Precision(6), Precision(None, 1),
              Precision(None, 3)]


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_site_js_formats_every_number_as_numbers_py():
    cases = [(x, p) for x in SAMPLES for p in PRECISIONS]
    cases += [(x * 10.0**e, Precision(d)) for x in (1.2345, 9.9995, 5.5) for e in range(-7, 16) for d in (0, 2, 5)]
    cases += [(pct, None) for pct in (0.0, 3.1, -20.0, 12345.6, -0.1, 1e17)]
    script = _js_formatter() + f"""
      const cases = {json.dumps([[x, None if p is None else {"decimals": p.decimals, "digits": p.digits}]
                                 for x, p in cases])};
      process.stdout.write(JSON.stringify(cases.map(([v, c]) => c === null ? changeText(1, v, {{decimals: 0}})
                                                                          : [num(v, c), changeText(v, null, c)])));
    """
    out = subprocess.run([NODE, "-e", script], capture_output=True, text=True, timeout=60, check=True).stdout
    for (x, p), got in zip(cases, json.loads(out), strict=True):
        if p is None:
            assert got == changes.change_text(1, x, Precision(0)), x
        else:
            assert got == [numbers.format_number(x, p), changes.change_text(x, None, p)], (x, p)


# ---- a built page in Chromium ----------------------------------------------------------------

HOSTILE = [12345.678, 1e12, -1e15, 2**53, 0, -0.0, 1.5e-7, -7.25, 110.7, 1007.9, 0.5, -15000.0]
FIELDS = [{"name": "id", "label": "SKU", "type": "string"}, {"name": "label", "label": "Product", "type": "string"},
          {"name": "value", "label": "Forecast", "type": "number"}, {"name": "lower", "label": "Low", "type": "number"},
          {"name": "upper", "label": "High", "type": "number"}, {"name": "p", "label": "Probability", "type": "number"},
          {"name": "tiny", "label": "Tiny", "type": "number"}, {"name": "count", "label": "Count", "type": "number"}]


def hostile_docs() -> list[dict]:
    """Two dates (a change column) of 130 rows: the issue's 12345.678 among values of 100-1,000,
    the contract's extremes (1e12, -1e15, 2**53, 1.5e-7, zero, negatives), probabilities, 1e-7s."""
    docs = []
    for day, date in enumerate(("2026-11-19", END_DATE)):
        rows = []
        for i in range(130):
            value = HOSTILE[i] if i < len(HOSTILE) else round(100 + (i * 37.3 + day * 11) % 900, 1)
            rows.append({"id": f"sku-{i:05d}", "label": f"Item {i}", "value": value,
                         "lower": value - abs(value) * 0.1 if value else None,
                         "upper": value + abs(value) * 0.1 if value else None,
                         "p": round((i * 0.0731 + day * 0.01) % 1, 6), "tiny": (i % 7 + 1) * 1.25e-7 * (-1) ** i,
                         "count": i * 1_234 - 50_000 * day})
        docs.append({"date": date, "generated_at": f"{date}T04:00:00Z", "model": {"name": "m", "version": "1"},
                     "fields": FIELDS, "predictions": rows})
    return docs


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict]]:
    docs = hostile_docs()
    src = write_source(str(tmp_path_factory.mktemp("bucket")), docs)
    out = str(tmp_path_factory.mktemp("site") / "out")
    build_folder(src, out, 2)
    return out, docs


def expected_cells(doc: dict) -> tuple[dict[str, view.Column], list[list[str]]]:
    batch = Batch(doc)
    columns = view.columns_of(batch)
    return {c.name: c for c in columns}, [r["cells"] for r in view.table_rows(batch.items, columns)]


def test_a_built_page_prints_formatted_cells_with_raw_titles(hostile_site):
    out, docs = hostile_site
    text = read(out, f"d/{END_DATE}.html")
    page = Page(text)
    columns, cells = expected_cells(docs[-1])
    assert [row[:-1] for row in page.rows] == cells[:100]
    assert page.rows[0][2:5] == ["12,345.7", "11,111.1", "13,580.2"]
    titles = [html.unescape(t) for t in re.findall(r'<td class="n" data-label="Forecast" title="([^"]*)"', text)]
    assert [float(t) for t in titles] == [p["value"] for p in docs[-1]["predictions"][:100]]
    assert not any("NaN" in c or "Infinity" in c or "nan" in c for row in page.rows for c in row)
    data = json.loads(re.search(r'id="batch-data">(.*?)</script>', text, re.S).group(1))
    assert [c.get("decimals") for c in data["columns"][2:]] == [columns[n].decimals for n in
                                                                ("value", "lower", "upper", "p", "tiny", "count",
                                                                 "value")]
    assert data["columns"][6] == {"name": "tiny", "numeric": True, "decimals": None, "digits": 3}


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def _served(out: str):
    handler = functools.partial(Quiet, directory=out)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def hostile_url(hostile_site):
    server = _served(hostile_site[0])
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


CELLS_JS = """() => Array.from(document.querySelectorAll('#predictions tbody tr')).map(tr =>
    Array.from(tr.cells).map(c => [c.textContent, c.getAttribute('title'), c.scrollWidth - c.clientWidth]))"""


@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize("size", [{"width": 390, "height": 844}, {"width": 1280, "height": 900}],
                         ids=["390px", "1280px"])
def test_in_chromium_cells_read_formatted_and_sort_by_the_raw_value(browser, hostile_site, hostile_url, size):
    _, docs = hostile_site
    context = browser.new_context(viewport=size)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{hostile_url}/d/{END_DATE}.html")
        columns, cells = expected_cells(docs[-1])
        shown = page.evaluate(CELLS_JS)
        assert [[text for text, _, _ in row][:-1] for row in shown] == cells[:100]
        assert all(overflow <= 0 for row in shown for _, _, overflow in row), "a cell's text is cut"
        assert page.evaluate("document.documentElement.scrollWidth") <= size["width"]
        if size["width"] == 390:  # a card: label and value on a phone
            card = page.locator("#predictions tbody tr").first
            assert card.locator('td[data-label="Forecast"]').inner_text() == "12,345.7"
            upper = docs[-1]["predictions"][0]["upper"]
            assert card.locator('td[data-label="High"]').get_attribute("title") == view.cell_text(upper)
        names = [f["name"] for f in FIELDS]
        for name in ("value", "p", "tiny", "count"):
            header = page.get_by_role("columnheader", name=next(f["label"] for f in FIELDS if f["name"] == name))
            header.get_by_role("button").click()
            page.wait_for_function("() => document.querySelector('th[aria-sort]')")
            at = names.index(name)
            rows = page.evaluate(CELLS_JS)
            raws = [float(row[at][1]) for row in rows if row[at][1] is not None]
            assert raws == sorted(raws), name  # by the raw value, not the text ("1.25 × 10⁻⁷" < "2,000")
            assert raws[0] == min(p[name] for p in docs[-1]["predictions"] if p[name] is not None)
            for row in rows:  # the script prints what the build printed
                raw = row[at][1]
                if raw is not None:
                    assert row[at][0] == numbers.format_number(float(raw), columns[name].precision), (name, raw)
                    assert math.isfinite(float(raw))
        assert errors == []
    finally:
        context.close()
