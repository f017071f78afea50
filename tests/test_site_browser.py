"""End to end in a real browser: moto S3 -> chalice local -> build_site.py -> local edge -> Chromium.

The same stack as `make run` (tools.devstack.local_stack): the site is built from the seeded
bucket, served by the edge, and its script talks to chalice local through the edge's /api/*. A batch published
while the page is open must reach it; an API that fails must leave the pre-rendered page intact.
Debian's Chromium is driven by Playwright (never `playwright install`; see BROWSER.md).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from chalice_app.publishing.sample import make_batch
from chalice_app.website import view
from tools import devstack

from site_helpers import END_DATE

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
COUNT = 150
NEWER_DATE = "2026-11-21"
FRESH_LABEL = "Fresh bread (just published)"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} is missing: apt-get install -y chromium (make test installs it)"),
]


@pytest.fixture(scope="session")
def chromium_tmpdir() -> Iterator[str]:
    """Chromium leaves org.chromium.Chromium.* folders in TMPDIR: give it its own, then remove it."""
    path = tempfile.mkdtemp(prefix="site-browser-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict, chromium_tmpdir: str) -> dict:
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS,
            "env": {**os.environ, "TMPDIR": chromium_tmpdir}}


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


def cell(value: Any) -> str:
    return view.cell_text(value)


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
    expect(rows.first.locator("td").nth(2)).to_have_text(cell(min(values)))
    header.get_by_role("button").click()
    expect(header).to_have_attribute("aria-sort", "descending")
    expect(rows.first.locator("td").nth(2)).to_have_text(cell(max(values)))

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
