"""The site follows the publish, in a real browser without JavaScript: publish a batch to the local
stack (`make run`'s: moto, chalice local, the edge, and the follower that runs the site function's
handler when the pointer moves), wait for the rebuild, and read the new batch from pre-rendered HTML.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from chalice_app.publishing.sample import make_batch
from tools import devstack

from helpers import needs_chromium
from site_helpers import END_DATE

NEW_DATE = "2026-11-24"
FRESH_LABEL = "Rye loaf (published while the site was up)"

pytestmark = [
    pytest.mark.slow,
    needs_chromium,
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.LocalStack]:
    work = tmp_path_factory.mktemp("follow")
    with devstack.local_stack(days=3, count=150, end_date=END_DATE, site=True, edge=True, follow=True,
                              site_dir=str(work / "site-local"), log_path=str(work / "stack.log")) as stack:
        yield stack


def test_a_published_batch_reaches_the_static_site_without_javascript(browser: Browser,
                                                                      stack: devstack.LocalStack) -> None:
    assert NEW_DATE > END_DATE
    doc = make_batch(NEW_DATE, 260)
    doc["predictions"][0]["label"] = FRESH_LABEL
    started = time.monotonic()
    stack.publish(doc)
    stack.wait_for_site(NEW_DATE, timeout=30)
    assert time.monotonic() - started < 15

    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{stack.edge_url}/")
        expect(page.locator("h1")).to_contain_text(NEW_DATE)
        expect(page.locator("#predictions tbody tr")).to_have_count(100)
        expect(page.locator("#predictions tbody tr").first).to_contain_text(FRESH_LABEL)
        nav = page.get_by_role("navigation", name="Batch dates")
        nav.get_by_role("link", name=NEW_DATE, exact=True).click()
        expect(page).to_have_url(f"{stack.edge_url}/d/{NEW_DATE}.html")
        expect(page.locator("h1")).to_have_text(f"Predictions for {NEW_DATE}")
        expect(page.locator("#predictions tbody tr").first).to_contain_text(FRESH_LABEL)
        # The dates page, linked from every page, lists the new date first.
        page.get_by_role("link", name="All dates").click()
        expect(page).to_have_url(f"{stack.edge_url}/dates.html")
        expect(page.locator("main li").first).to_contain_text(f"{NEW_DATE} (latest)")
        # Rows beyond the first hundred, on plain linked pages.
        page.goto(f"{stack.edge_url}/d/{NEW_DATE}/page-3.html")
        expect(page.locator("#predictions tbody tr")).to_have_count(60)
    finally:
        context.close()
