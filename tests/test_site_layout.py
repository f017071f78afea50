"""The site read closely, in Chromium at 320-390 and 1200-1280 px, with hostile lengths: a label of 200
characters without a space, an id of 128 characters, 10 fields (and the change column).

- every column of the table is on screen at 1280 px; labels wrap, ids never break (a long one is cut
  with an ellipsis, its whole text in its title);
- titles, headings and captions never break inside a date; the caption says the order shown, also
  after sorting and on a sorted shared URL; no stray space in any generated sentence (every page);
- the API page is readable at 320-390 px: no sideways scroll, nothing clipped;
- at >= 1200 px the first screen shows the summary, the whole chart and the start of the table.

The site is built from a folder (no AWS) and served by a plain static server: layout only, the
stack and its headers are tests/test_site_browser.py's.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import threading
import urllib.parse
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from chalice_app.contract import report_key
from chalice_app.publishing import sample

from helpers import needs_chromium
from site_helpers import PREFIX, VisibleText, build_folder, write_source

DATES = ["2026-12-01", "2026-12-02", "2026-12-03"]
LATEST = DATES[-1]
LONG_ID = "id-" + "x" * 125  # the contract's longest id: 128 characters
NO_SPACE_LABEL = "L" * 200
LONG_LABEL = "Organic free-range extra-large speciality product from a supplier with a rather long name"
FIELDS = [*sample.FIELDS,  # the sample's six, then four more: 10 columns and Change
          {"name": "stock", "label": "In stock", "type": "number"},
          {"name": "price", "label": "Unit price (EUR)", "type": "number"},
          {"name": "region", "label": "Region", "type": "string"},
          {"name": "store", "label": "Store", "type": "string"}]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def hostile_doc(date: str, n: int, count: int) -> dict:
    """The n-th date's batch: 10 fields; row 1 has the label without spaces, row 2 the 128-character id;
    each date drops its oldest row and adds a new one (new and dropped ids on the page)."""
    rows = []
    for i in range(n, n + count):
        rows.append({"id": LONG_ID if i == n + 2 else f"sku-{i:05d}",
                     "label": NO_SPACE_LABEL if i == n + 1 else f"{LONG_LABEL} {i}",
                     "category": "Dairy and eggs", "value": 400.5 + i + 3 * n, "lower": 380.25 + i,
                     "upper": 441.75 + i + 3 * n, "stock": 1200 + i, "price": 3.49, "region": "North-east",
                     "store": "Main street"})
    return {"date": date, "generated_at": f"{date}T04:00:00Z",
            "model": {"name": "demand-forecast", "version": "3.2.0"}, "fields": FIELDS, "predictions": rows}


def write_extras(root: str) -> None:
    """A forced publish's report on the latest date and two audit entries: the gate's sentences and
    the dates page's history are rendered too."""
    report = {"checks": [{"rule": "count", "passed": False, "message": "count fell from 150 to 120 (-20.0%)"},
                         {"rule": "ids", "passed": True, "message": "ids kept"}],
              "verdict": "forced", "forced": {"by": "ana", "reason": "a planned catalogue change"},
              "previous": DATES[-2], "notes": ["the model changed: demand-forecast 3.2.0"]}
    path = os.path.join(root, *report_key(PREFIX, LATEST).split("/"))
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(report, fh)
    audit = os.path.join(root, *PREFIX.strip("/").split("/"), "audit")
    os.makedirs(audit, exist_ok=True)
    for k, (date, before) in enumerate(zip(DATES[1:], DATES, strict=False)):
        with open(os.path.join(audit, f"{date}T04-00-0{k}Z.json"), "w", encoding="utf-8") as fh:
            json.dump({"action": "publish", "at": f"{date}T04:00:0{k}Z", "by": "model-job", "from": before,
                       "to": date, "reason": "daily run"}, fh)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> str:
    src = str(tmp_path_factory.mktemp("layout-src"))
    write_source(src, [hostile_doc(date, n, 150) for n, date in enumerate(DATES)])
    write_extras(src)
    out = str(tmp_path_factory.mktemp("layout-site") / "site")
    build_folder(src, out, len(DATES))
    return out


# ---- no stray spaces, on every page of the build (no browser) ----------------------------------------

STRAY = re.compile(r" [:,.;)!?]| {2}|\( |^ | $|\u00a0 | \u00a0")


def test_no_stray_spaces_in_any_generated_sentence(built: str) -> None:
    pages = [os.path.join(d, f) for d, _, files in os.walk(built) for f in files if f.endswith(".html")]
    assert len(pages) >= 9  # index, 3 dates (2 pages each), dates, api, 404
    found = []
    for path in pages:
        with open(path, encoding="utf-8") as fh:
            for block in VisibleText(fh.read(), code_as="CODE").blocks:
                if STRAY.search(block):
                    found.append((os.path.relpath(path, built), block[:160]))
    assert found == []
    with open(os.path.join(built, "index.html"), encoding="utf-8") as fh:
        # the sentence the reader saw: the summary, its date whole, the colon right after it
        assert f'since <span class="nobr">{DATES[-2]}</span></strong>: the change of each' in fh.read()


def test_the_stray_space_check_catches_what_it_should() -> None:
    bad = ["<p><strong>1 up since 2026-12-02</strong> : the change</p>", "<p>a , b</p>", "<li>end .</li>",
           "<p>two  spaces&nbsp; here</p>", "<caption>Predictions for <span>x</span> , sorted</caption>"]
    for html in bad:
        assert any(STRAY.search(b) for b in VisibleText(html, code_as="CODE").blocks), html
    good = "<p>Rows <code>a , b</code>: the <strong>x</strong>, then (y).</p>"
    assert not any(STRAY.search(b) for b in VisibleText(good, code_as="CODE").blocks)


# ---- in the browser ------------------------------------------------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site_url(built: str) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=built))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


def open_page(browser: Browser, url: str, size: dict) -> Page:
    context = browser.new_context(viewport=size)
    page = context.new_page()
    # The latest page asks the API for a newer batch: there is none (the page stays as built).
    page.route("**/api/**", lambda route: route.fulfill(status=404, body="{}", content_type="application/json"))
    page.goto(url)
    page.wait_for_load_state("networkidle")
    return page


LINES_OF = """el => { const r = document.createRange(); r.selectNodeContents(el);
    return new Set(Array.from(r.getClientRects()).filter(b => b.width > 0).map(b => Math.round(b.top))).size; }"""
RIGHT_EDGES = """t => { const box = t.parentElement.getBoundingClientRect();
    return {right: box.right, scroll: t.parentElement.scrollWidth - t.parentElement.clientWidth,
            heads: Array.from(t.tHead.rows[0].cells).map(c => [c.textContent, c.getBoundingClientRect().right])}; }"""



@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize("width", [1200, 1280])
@pytest.mark.parametrize("path", ["/", f"/d/{LATEST}.html", f"/d/{LATEST}/page-2.html"])
def test_every_column_is_on_screen_at_1280(browser: Browser, site_url: str, path: str, width: int) -> None:
    page = open_page(browser, site_url + path, {"width": width, "height": 900})
    try:
        table = page.locator("#predictions")
        edges = table.evaluate(RIGHT_EDGES)
        assert len(edges["heads"]) == 11  # ten fields and the change
        for text, right in edges["heads"]:
            assert right <= edges["right"] + 0.5, (text, right, edges["right"])
        assert edges["scroll"] <= 0
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        rows = table.locator("tbody tr")
        for row in rows.all()[:5]:
            # the id on one line, the change on one line, every cell inside the table's box
            assert row.locator("th").evaluate(LINES_OF) == 1
            assert row.locator("td").last.evaluate(LINES_OF) == 1
            assert row.evaluate("r => Array.from(r.cells).every(c => c.getBoundingClientRect().right"
                                " <= r.closest('.scroll').getBoundingClientRect().right + 0.5)")
        if path != f"/d/{LATEST}/page-2.html":
            long_id = table.locator("tbody th", has_text=LONG_ID[:40])
            expect(long_id).to_have_attribute("title", LONG_ID)  # cut with an ellipsis; whole on hover
            assert long_id.evaluate("th => th.scrollWidth > th.clientWidth")
            assert long_id.evaluate(LINES_OF) == 1
            label = table.locator("td", has_text=NO_SPACE_LABEL[:40])
            assert label.evaluate("td => td.scrollWidth <= td.clientWidth")  # wrapped, whole
            # sorting keeps it all on screen (the script's rows and buttons)
            page.get_by_role("button", name="Forecast (units)").click()
            for text, right in table.evaluate(RIGHT_EDGES)["heads"]:
                assert right <= edges["right"] + 0.5, (text, right)
            expect(table.locator("tbody th", has_text=LONG_ID[:40])).to_have_attribute("title", LONG_ID)
    finally:
        page.context.close()


@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize("path", ["/", f"/d/{LATEST}/page-2.html"])
def test_a_phone_shows_hostile_rows_as_cards_without_sideways_scrolling(browser: Browser, site_url: str,
                                                                      path: str) -> None:
    page = open_page(browser, site_url + path, PHONE)
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        outside = page.evaluate("""() => Array.from(document.querySelectorAll('main *')).filter(e => {
            const r = e.getBoundingClientRect(); if (!r.width || r.right <= innerWidth + 0.5) return false;
            const box = e.parentElement.closest('th, .scroll');  // inside a deliberate scroller
            return !(box && box.getBoundingClientRect().right <= innerWidth + 0.5); }).map(e => e.tagName)""")
        assert outside == []
        for th in page.locator("#predictions tbody th").all()[:5]:
            if LONG_ID[:40] in (th.text_content() or ""):  # wider than the card: whole, wrapped, nothing to scroll
                assert th.evaluate("th => th.scrollWidth <= th.clientWidth") and th.evaluate(LINES_OF) > 1
            else:
                assert th.evaluate(LINES_OF) == 1  # an id that fits never breaks
        if path == "/":
            label = page.locator("#predictions td", has_text=NO_SPACE_LABEL[:40])
            box = label.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
            assert label.evaluate("td => td.scrollWidth <= td.clientWidth")  # the whole label, wrapped
    finally:
        page.context.close()


@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize("width", [320, 390, 1280])
@pytest.mark.parametrize("path", ["/", f"/d/{LATEST}.html", f"/d/{LATEST}/page-2.html"])
def test_titles_and_headings_never_break_inside_a_date(browser: Browser, site_url: str, path: str,
                                                       width: int) -> None:
    page = open_page(browser, site_url + path, {"width": width, "height": 800})
    try:
        h1 = page.locator("h1")
        expect(h1).to_contain_text(f"Predictions for {LATEST}")
        date = h1.locator("[data-bind=date]")
        assert date.evaluate(LINES_OF) == 1, f"the date in the title breaks at {width}px"
        assert page.locator("caption [data-bind=date]").evaluate(LINES_OF) == 1
        # Every date kept whole: in the title, the caption, the gate's sentence, the change summary,
        # the downloads line, "Dropped since" (the ones rendered: at most one line each).
        kept = page.locator("main .nobr")
        assert kept.count() >= (3 if "page-2" in path else 6)
        assert [n for n in kept.evaluate_all(f"els => els.map({LINES_OF})") if n > 1] == []
        if "page-2" in path:
            assert h1.locator(".nobr", has_text="rows").evaluate(LINES_OF) == 1
        else:
            summary = page.locator(".dropped summary")
            assert summary.locator(".nobr").evaluate(LINES_OF) == 1
            assert page.locator(".changes .nobr").evaluate(LINES_OF) == 1  # "... since 2026-12-02"
            page.locator(".dropped summary").click()
            assert page.evaluate("document.documentElement.scrollWidth") <= width
    finally:
        page.context.close()


@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize("width", [320, 390])
def test_the_dates_page_keeps_dates_whole(browser: Browser, site_url: str, width: int) -> None:
    page = open_page(browser, site_url + "/dates.html", {"width": width, "height": 800})
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        for selector in ("main .nobr", "main time"):
            found = page.locator(selector)
            assert found.count() >= 2
            assert [n for n in found.evaluate_all(f"els => els.map({LINES_OF})") if n != 1] == []
    finally:
        page.context.close()


def test_nobr_dates_escapes_the_text_and_wraps_only_dates() -> None:
    from chalice_app.website.render import nobr_dates

    assert str(nobr_dates("Checked against the batch of 2026-12-02: <b>&</b>")) == (
        'Checked against the batch of <span class="nobr">2026-12-02</span>: &lt;b&gt;&amp;&lt;/b&gt;')
    assert str(nobr_dates("2026-12-03T04:00:00Z")) == '<span class="nobr">2026-12-03</span>T04:00:00Z'
    assert str(nobr_dates("12026-12-021 and 26-12-02")) == "12026-12-021 and 26-12-02"  # not dates
    assert str(nobr_dates('<span class="nobr">2026-12-02</span>')).startswith("&lt;span")  # data stays text
    assert str(nobr_dates(None)) == "None"


def caption_of(page: Page) -> str:
    text = page.locator("#predictions caption").inner_text()
    assert not STRAY.search(text), text
    return text


@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["390px", "1280px"])
def test_the_caption_says_the_order_shown(browser: Browser, site_url: str, size: dict) -> None:
    page = open_page(browser, site_url + f"/d/{LATEST}.html", size)
    try:
        assert caption_of(page).startswith(f"Predictions for {LATEST} in the model's order;")
        button = page.get_by_role("button", name="Forecast (units)")
        button.click()
        expect(page.locator("#predictions caption")).to_contain_text(
            f"Predictions for {LATEST}, sorted by Forecast (units), ascending;")
        button.click()
        expect(page.locator("#predictions caption")).to_contain_text("sorted by Forecast (units), descending;")
        caption_of(page)
        page.go_back()
        expect(page.locator("#predictions caption")).to_contain_text("sorted by Forecast (units), ascending;")
        page.go_back()
        expect(page.locator("#predictions caption")).to_contain_text("in the model's order;")
        # A shared, sorted URL: right on load.
        page.goto(site_url + f"/d/{LATEST}.html?sort=stock&order=desc")
        expect(page.locator("#predictions caption")).to_contain_text(
            f"Predictions for {LATEST}, sorted by In stock, descending;")
        caption_of(page)
        # Filtering keeps the order; an unknown column is the model's order.
        page.get_by_label("Filter by text").fill("sku")
        expect(page.locator("#predictions caption")).to_contain_text("sorted by In stock, descending;")
        page.goto(site_url + f"/d/{LATEST}.html?sort=nope&order=desc")
        expect(page.locator("#predictions caption")).to_contain_text("in the model's order;")
    finally:
        page.context.close()


@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize("width", [320, 360, 390])
def test_the_api_page_is_readable_on_a_phone(browser: Browser, site_url: str, width: int) -> None:
    page = open_page(browser, site_url + "/docs/api.html", {"width": width, "height": 800})
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        clipped = page.evaluate("""() => Array.from(document.querySelectorAll('*')).filter(e => {
            const s = getComputedStyle(e);
            return ['auto', 'scroll', 'hidden', 'clip'].includes(s.overflowX) && e.scrollWidth > e.clientWidth + 1;
        }).map(e => `${e.tagName}.${e.className}: ${e.scrollWidth - e.clientWidth}px`)""")
        assert clipped == []
        outside = page.evaluate("""() => Array.from(document.querySelectorAll('main *')).filter(e => {
            const r = e.getBoundingClientRect(); return r.width && (r.left < -0.5 || r.right > innerWidth + 0.5);
        }).map(e => e.tagName + ' ' + e.textContent.slice(0, 30))""")
        assert outside == []
        # Every route and its whole answer are there to read (no "never cachec").
        routes = page.locator("table.routes tbody tr")
        expect(routes).to_have_count(4)
        expect(routes.last).to_contain_text("never cached.")
        for route in routes.all():
            assert route.locator("th code").evaluate(LINES_OF) == 1
        # Each curl example is shown whole, wrapped inside its box.
        for pre in page.locator("pre").all():
            box = pre.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= width
    finally:
        page.context.close()


@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize("size", [{"width": 1200, "height": 900}, DESKTOP, {"width": 1440, "height": 900}],
                         ids=lambda s: f"{s['width']}px")
@pytest.mark.parametrize("path", ["/", f"/d/{LATEST}.html"])
def test_the_first_wide_screen_shows_summary_chart_and_table(browser: Browser, site_url: str, path: str,
                                                             size: dict) -> None:
    page = open_page(browser, site_url + path, size)
    try:
        height = size["height"]

        def box(selector: str) -> dict:
            found = page.locator(selector).first.bounding_box()
            assert found, selector
            return found

        for selector in ("h1", ".meta", ".changes", "#filter"):
            b = box(selector)
            assert b["y"] >= 0 and b["y"] + b["height"] <= height, selector
        chart = box(".chart svg")
        assert chart["y"] + chart["height"] <= height, "the whole chart is on the first screen"
        assert box(".chart figcaption")["y"] + box(".chart figcaption")["height"] <= height
        # The chart is beside the summary, not above or below it.
        summary = box(".summary")
        assert chart["x"] >= summary["x"] + summary["width"] and chart["y"] < summary["y"] + summary["height"]
        # The start of the table: its header row and its first row begin on the first screen.
        assert box("#predictions thead")["y"] + box("#predictions thead")["height"] <= height
        assert box("#predictions tbody tr")["y"] < height - 20
        # ... and the table has the whole width below the chart.
        table = box("#predictions")
        assert table["y"] >= chart["y"] + chart["height"]
        assert table["width"] >= box("main")["width"] - 64
        assert page.evaluate("document.documentElement.scrollWidth") <= size["width"]
    finally:
        page.context.close()


@pytest.mark.slow
@needs_chromium
def test_the_phone_keeps_its_one_column(browser: Browser, site_url: str) -> None:
    page = open_page(browser, site_url + "/", PHONE)
    try:
        main = page.locator("main").bounding_box()
        summary, chart, table = (page.locator(s).first.bounding_box()
                                 for s in (".summary", ".chart svg", "#predictions"))
        assert main and summary and chart and table
        assert summary["y"] + summary["height"] <= chart["y"] <= table["y"]  # summary, chart, table
        assert chart["width"] >= main["width"] - 40  # the chart has the screen's width
        smallest = page.evaluate("""() => { const svg = document.querySelector('.chart svg');
            const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
            return Math.min(...Array.from(svg.querySelectorAll('text'))
                .map(t => parseFloat(getComputedStyle(t).fontSize))) * scale; }""")
        assert smallest >= 11
    finally:
        page.context.close()


@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["390px", "1280px"])
@pytest.mark.parametrize("path", ["/", "/docs/api.html", "/dates.html"])
def test_hostile_pages_have_no_accessibility_violations(browser: Browser, site_url: str, path: str,
                                                        size: dict) -> None:
    from axe_playwright_python.sync_playwright import Axe

    page = open_page(browser, site_url + path, size)
    try:
        violations = Axe().run(page).response["violations"]
        assert [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in violations] == []
    finally:
        page.context.close()


@pytest.mark.slow
@needs_chromium
def test_a_live_refresh_keeps_dates_whole_and_the_caption_true(browser: Browser, site_url: str) -> None:
    """The latest page swaps in a newer batch from the API: the new summary's date stays on one line
    and a sort chosen before the swap is still what the caption says."""
    newer = hostile_doc("2026-12-04", 3, 150)
    answers = {"/api/predictions": {"latest": "2026-12-04", "dates": ["2026-12-04", *reversed(DATES)]},
               "/api/predictions/latest": {**newer, "items": newer["predictions"], "total": 150, "count": 150,
                                           "next_cursor": None}}
    context = browser.new_context(viewport={"width": 320, "height": 800})
    page = context.new_page()
    page.route("**/api/**", lambda route: route.fulfill(
        status=200, content_type="application/json",
        body=json.dumps(answers.get(urllib.parse.urlsplit(route.request.url).path, {}))))
    try:
        page.goto(site_url + "/?sort=value&order=desc")
        expect(page.locator("#live-note")).to_contain_text("Updated to 2026-12-04")
        expect(page.locator(".changes strong")).to_contain_text(f"since {LATEST}")
        assert page.locator(".changes .nobr").evaluate(LINES_OF) == 1
        assert page.locator("h1 [data-bind=date]").evaluate(LINES_OF) == 1
        expect(page.locator("#predictions caption")).to_contain_text(
            "Predictions for 2026-12-04, sorted by Forecast (units), descending;")
        assert not STRAY.search(page.locator(".changes").inner_text())
    finally:
        context.close()
