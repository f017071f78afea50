"""End to end in a real browser: moto S3 -> chalice local -> build_site.py -> local edge -> Chromium.

The same stack as `make run` (tools.devstack.local_stack): the site is built from the seeded
bucket, served by the edge, and its script talks to chalice local through the edge's /api/*. A batch published
while the page is open must reach it; an API that fails must leave the pre-rendered page intact.
Debian's Chromium is driven by Playwright (never `playwright install`; see BROWSER.md).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from chalice_app.publishing.sample import make_batch
from chalice_app.website import view
from tools import devstack

from helpers import needs_chromium
from site_helpers import END_DATE

COUNT = 150
NEWER_DATE = "2026-11-21"
FRESH_LABEL = "Fresh bread (just published)"

pytestmark = [
    pytest.mark.slow,
    needs_chromium,
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.LocalStack]:
    # fresh (the default): moto keeps one in-memory state per process, shared by every server,
    # and earlier tests may have left batches (with a newer pointer) in the same bucket.
    work = tmp_path_factory.mktemp("site")
    with devstack.local_stack(days=3, count=COUNT, end_date=END_DATE, site=True, edge=True,
                              site_dir=str(work / "site-local"), log_path=str(work / "stack.log")) as stack:
        yield stack


def watch(page: Page) -> dict[str, list[str]]:
    """Uncaught errors and console messages of a page, collected as they happen."""
    seen: dict[str, list[str]] = {"errors": [], "console": []}
    page.on("pageerror", lambda exc: seen["errors"].append(str(exc)))
    page.on("console", lambda msg: seen["console"].append(msg.text))
    return seen


def publish_newer_batch(stack: devstack.LocalStack) -> dict:
    doc = make_batch(NEWER_DATE, COUNT + 20)
    doc["predictions"][0]["label"] = FRESH_LABEL
    stack.publish(doc)
    return doc


def reload_until_updated(page: Page, date: str, seconds: float = 12.0) -> None:
    """chalice local trusts its cached pointer for POINTER_TTL_SECONDS (2 s): reload until it moves."""
    note = page.locator("#live-note")
    deadline = time.monotonic() + seconds
    while True:
        page.reload()
        try:
            expect(note).to_contain_text(f"Updated to {date}", timeout=1000)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


def axe_violations(page: Page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [f"{v['id']}: {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
            for v in results.response["violations"]]


def cell(value: Any, doc: dict) -> str:
    """A `value` cell as the page prints it: in the precision of the batch's value column."""
    from chalice_app.store.batch import Batch

    column = next(c for c in view.columns_of(Batch(doc)) if c.name == "value")
    return view.cell_of(value, column)


# ---- the tests ---------------------------------------------------------------------------------


def test_prerendered_page_picks_up_a_newer_batch_then_sorts_and_filters(page: Page, stack: devstack.LocalStack) -> None:
    seen = watch(page)
    page.goto(stack.edge_url + "/")
    rows = page.locator("#predictions tbody tr")
    expect(page.locator("h1")).to_have_text(f"Predictions for {END_DATE}")
    expect(rows).to_have_count(100)
    expect(rows.first.locator("th")).to_have_text("sku-00001")
    expect(page.locator("#live-note")).to_be_empty()  # the API's latest is this page's date

    doc = publish_newer_batch(stack)
    reload_until_updated(page, NEWER_DATE)
    expect(page.locator("h1")).to_have_text(f"Predictions for {NEWER_DATE}")
    expect(rows.first).to_contain_text(FRESH_LABEL)
    expect(page.locator("#count")).to_have_text(f"Rows 1–100 of {COUNT + 20}")
    expect(page.locator("figcaption")).to_contain_text(f"the batch of {END_DATE}")

    values = [r["value"] for r in doc["predictions"]]
    header = page.get_by_role("columnheader", name="Forecast (units)")
    header.get_by_role("button").click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    expect(rows.first.locator("td").nth(2)).to_have_text(cell(min(values), doc))
    header.get_by_role("button").click()
    expect(header).to_have_attribute("aria-sort", "descending")
    expect(rows.first.locator("td").nth(2)).to_have_text(cell(max(values), doc))

    expect(page.get_by_role("navigation", name="Table pages")).to_be_hidden()  # links replaced by buttons
    page.get_by_role("button", name="Next rows").click()
    expect(page.locator("#count")).to_have_text(f"Rows 101–{COUNT + 20} of {COUNT + 20}")
    expect(rows).to_have_count(COUNT + 20 - 100)

    matching = [r for r in doc["predictions"] if any("oat" in str(v).lower() for v in r.values()
                                                     if isinstance(v, str))]
    page.get_by_label("Filter by text").fill("OAT")
    expect(page.locator("#count")).to_have_text(f"Rows 1–{len(matching)} of {len(matching)} matching “OAT”")
    expect(rows).to_have_count(len(matching))
    for text in rows.all_inner_texts():
        assert "oat" in text.lower()

    assert axe_violations(page) == []
    assert seen["errors"] == []
    assert not [m for m in seen["console"] if "Content Security Policy" in m]


def _abort(route: Route) -> None:
    route.abort()


def _server_error(route: Route) -> None:
    route.fulfill(status=503, content_type="application/json", body='{"error": {"code": "storage_unavailable"}}')


def _nonsense(route: Route) -> None:
    route.fulfill(status=200, content_type="application/json", body='{"latest": "2099-01-01", "dates": [')


@pytest.mark.parametrize("failure", [_abort, _server_error, _nonsense], ids=["network", "503", "bad-json"])
def test_failing_api_leaves_the_prerendered_page_working(page: Page, stack: devstack.LocalStack, failure: Any) -> None:
    seen = watch(page)
    page.route("**/api/**", failure)
    with page.expect_request("**/api/predictions"):
        page.goto(stack.edge_url + "/")
    page.wait_for_load_state("networkidle")
    rows = page.locator("#predictions tbody tr")
    expect(rows).to_have_count(100)
    expect(page.locator("h1")).to_have_text(f"Predictions for {END_DATE}")
    expect(page.locator("#live-note")).to_be_empty()
    header = page.get_by_role("columnheader", name="SKU")
    header.get_by_role("button").click()  # the script survived: sorting still works
    expect(header).to_have_attribute("aria-sort", "ascending")
    assert seen["errors"] == []


def test_without_javascript_the_rows_are_there_and_paged_by_links(browser: Browser, stack: devstack.LocalStack) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(stack.edge_url + "/")
        rows = page.locator("#predictions tbody tr")
        expect(rows).to_have_count(100)
        expect(page.get_by_label("Filter by text")).to_be_hidden()
        page.get_by_role("link", name="Next rows").click()
        expect(page).to_have_url(re.compile(rf"/d/{END_DATE}/page-2\.html$"))
        expect(rows).to_have_count(COUNT - 100)
        expect(rows.first.locator("th")).to_have_text("sku-00101")
    finally:
        context.close()


@pytest.mark.parametrize("path", [f"/d/{END_DATE}.html", f"/d/{END_DATE}/page-2.html", "/docs/api.html",
                                  "/no/such/page"])
def test_other_pages_have_no_accessibility_violations(page: Page, stack: devstack.LocalStack, path: str) -> None:
    seen = watch(page)
    response = page.goto(stack.edge_url + path)
    assert response.status == (404 if path == "/no/such/page" else 200)
    assert axe_violations(page) == []
    assert seen["errors"] == []


# ---- phones, downloads, changes, shareable views ------------------------------------------------

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
PREVIOUS_DATE = "2026-11-19"


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=PHONE)
    yield context.new_page()
    context.close()


def test_a_phone_shows_every_cell_of_a_row_without_sideways_scrolling(phone: Page,
                                                                      stack: devstack.LocalStack) -> None:
    seen = watch(phone)
    phone.goto(stack.edge_url + "/")
    # The script asks the API whether a newer batch exists and may redraw the rows: let it settle.
    phone.wait_for_load_state("networkidle")
    expect(phone.locator("#predictions tbody tr")).to_have_count(100)
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    first = phone.locator("#predictions tbody tr").first
    first.scroll_into_view_if_needed()
    boxes = first.evaluate("""row => Array.from(row.cells).map(c => {
        const r = c.getBoundingClientRect();
        return [c.textContent, r.left, r.right, c.scrollWidth - c.clientWidth]; })""")
    assert len(boxes) == 7  # six fields and the change
    for text, left, right, overflow in boxes:
        assert 0 <= left and right <= PHONE["width"] and overflow <= 0, (text, left, right, overflow)
    # Every box of the page, not only the table, stays inside the viewport.
    assert phone.evaluate("""() => Array.from(document.querySelectorAll('main *')).filter(e => {
        const r = e.getBoundingClientRect(); return r.width && r.right > innerWidth + 0.5; }).length""") == 0
    # The id is one unbroken line ("sku-00001", not "sku-" / "00001").
    assert first.locator("th").evaluate("""th => { const r = document.createRange();
        r.selectNodeContents(th);
        return new Set(Array.from(r.getClientRects()).map(b => Math.round(b.top))).size; }""") == 1
    # Chart text is at least 11 CSS px.
    smallest = phone.evaluate("""() => { const svg = document.querySelector('.chart svg');
        const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
        const sizes = Array.from(svg.querySelectorAll('text')).map(t => parseFloat(getComputedStyle(t).fontSize));
        return Math.min(...sizes) * scale; }""")
    assert smallest >= 11, smallest
    # Sorting is still reachable: the headings are a row of buttons above the cards.
    header = phone.get_by_role("columnheader", name="Forecast (units)")
    header.get_by_role("button").click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    phone.get_by_label("Filter by text").fill("oat")
    expect(phone.locator("#count")).to_contain_text("matching")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert seen["errors"] == []


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["390px", "1280px"])
@pytest.mark.parametrize("path", ["/", f"/d/{END_DATE}.html", f"/d/{END_DATE}/page-2.html", "/docs/api.html",
                                  "/no/such/page"])
def test_no_accessibility_violations_at_either_width(browser: Browser, stack: devstack.LocalStack, path: str,
                                                     size: dict) -> None:
    context = browser.new_context(viewport=size)
    page = context.new_page()
    try:
        page.goto(stack.edge_url + path)
        page.wait_for_load_state("networkidle")
        assert axe_violations(page) == []
        if size is PHONE:
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    finally:
        context.close()


def test_a_downloaded_batch_reads_back_to_the_same_batch(page: Page, stack: devstack.LocalStack, tmp_path) -> None:
    from chalice_app.publishing.batch_input import read_batch_input

    expected = make_batch(END_DATE, COUNT)
    page.goto(stack.edge_url + f"/d/{END_DATE}.html")
    for kind in ("CSV", "JSON"):
        with page.expect_download() as download:
            page.get_by_role("link", name=re.compile(rf"^{kind}, \d+ (KB|bytes)$")).click()
        path = tmp_path / download.value.suggested_filename
        download.value.save_as(path)
        parsed = read_batch_input(str(path))
        assert parsed.errors == []
        assert parsed.predictions == expected["predictions"], kind
    response = page.request.get(stack.edge_url + f"/d/{END_DATE}.csv", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=0, s-maxage=86400"


def test_the_change_column_against_the_previous_batch(page: Page, stack: devstack.LocalStack) -> None:
    from chalice_app.website import changes

    now, before = make_batch(END_DATE, COUNT)["predictions"], make_batch(PREVIOUS_DATE, COUNT)["predictions"]
    page.goto(stack.edge_url + f"/d/{END_DATE}.html")
    cells = page.locator("#predictions tbody tr td:last-child")
    expected = [changes.change_text(*changes.change_of(a["value"], b["value"]), 1)
                for a, b in zip(now, before, strict=True)]
    assert cells.all_inner_texts() == expected[:100]
    ups = sum(a["value"] > b["value"] for a, b in zip(now, before, strict=True))
    expect(page.locator("[data-bind=changes]")).to_contain_text(f"{ups} up, ")
    expect(page.locator("[data-bind=changes]")).to_contain_text(f"0 new, 0 dropped since {PREVIOUS_DATE}")
    header = page.get_by_role("columnheader", name="Change")
    header.get_by_role("button").click()
    header.get_by_role("button").click()
    biggest = max(range(COUNT), key=lambda n: now[n]["value"] - before[n]["value"])
    expect(page.locator("#predictions tbody tr").first.locator("th")).to_have_text(now[biggest]["id"])


def test_a_shared_url_restores_the_view_and_back_forward_step_through_views(browser: Browser,
                                                                             stack: devstack.LocalStack) -> None:
    context = browser.new_context()
    page = context.new_page()
    seen = watch(page)
    try:
        url = stack.edge_url + f"/d/{END_DATE}.html"
        page.goto(url)
        rows = page.locator("#predictions tbody tr")
        header = page.get_by_role("columnheader", name="Forecast (units)")
        header.get_by_role("button").click()
        expect(page).to_have_url(url + "?sort=value&order=asc")
        ascending = rows.first.locator("th").inner_text()
        header.get_by_role("button").click()
        expect(page).to_have_url(url + "?sort=value&order=desc")
        page.get_by_role("button", name="Next rows").click()
        expect(page).to_have_url(url + "?sort=value&order=desc&page=2")
        shown = rows.all_inner_texts()

        shared = context.new_page()  # a reader opening the shared link
        shared.goto(page.url)
        expect(shared.locator("#count")).to_have_text(f"Rows 101–{COUNT} of {COUNT}")
        expect(shared.get_by_role("columnheader", name="Forecast (units)")).to_have_attribute("aria-sort", "descending")
        assert shared.locator("#predictions tbody tr").all_inner_texts() == shown
        shared.close()

        page.go_back()
        expect(page).to_have_url(url + "?sort=value&order=desc")
        expect(page.locator("#count")).to_have_text(f"Rows 1–100 of {COUNT}")
        page.go_back()
        expect(header).to_have_attribute("aria-sort", "ascending")
        expect(rows.first.locator("th")).to_have_text(ascending)
        page.go_back()
        expect(page).to_have_url(url)
        expect(header).not_to_have_attribute("aria-sort", re.compile("."))
        page.go_forward()
        expect(header).to_have_attribute("aria-sort", "ascending")

        page.get_by_label("Filter by text").fill("oat")
        expect(page).to_have_url(url + "?sort=value&order=asc&q=oat")
        filtered = rows.all_inner_texts()
        again = context.new_page()
        again.goto(page.url)
        expect(again.get_by_label("Filter by text")).to_have_value("oat")
        assert again.locator("#predictions tbody tr").all_inner_texts() == filtered
        again.close()
        assert seen["errors"] == []
    finally:
        context.close()


def test_without_javascript_a_shared_url_still_shows_the_page(browser: Browser, stack: devstack.LocalStack) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(stack.edge_url + f"/d/{END_DATE}.html?sort=value&order=desc&page=2")
        expect(page.locator("#predictions tbody tr")).to_have_count(100)
        expect(page.get_by_role("link", name=re.compile(r"^CSV, "))).to_be_visible()
    finally:
        context.close()
