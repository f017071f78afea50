"""build_site.py: pages with their data in the HTML, escaping, determinism, assets, errors.

Fast: batches come from a folder laid out like the bucket (DirSource), one build per module.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from chalice_app.website import chart, numbers, render, view
from chalice_app.website.build import build, open_store
from chalice_app.website.render import BuildError

from site_helpers import (
    END_DATE,
    HOSTILE_LABEL,
    PREFIX,
    Page,
    build_folder,
    folder_store,
    read,
    sample_docs,
    write_source,
)

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COUNT = 250  # three table pages of 100, 100 and 50 rows
DAYS_PUBLISHED = 4
DAYS_BUILT = 3


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return sample_docs(DAYS_PUBLISHED, COUNT)


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory, docs: list[dict]) -> str:
    return write_source(str(tmp_path_factory.mktemp("bucket")), docs)


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory, src: str) -> str:
    target = str(tmp_path_factory.mktemp("site") / "out")
    build_folder(src, target, DAYS_BUILT)
    return target


def files_of(root: str) -> dict[str, bytes]:
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as fh:
                found[os.path.relpath(path, root).replace(os.sep, "/")] = fh.read()
    return found


def shown(value: object) -> str:
    """A cell as the page prints it: every number column of the sample has one decimal."""
    return numbers.format_number(value, numbers.Precision(1)) if view.is_number(value) else view.cell_text(value)


# ---- what the latest page shows ----------------------------------------------------------------


def test_latest_page_shows_batch_metadata_and_first_rows(out: str, docs: list[dict]) -> None:
    latest = docs[-1]
    html = read(out, "index.html")
    page = Page(html)
    assert page.h1.strip() == f"Predictions for {END_DATE}"
    assert "demand-forecast 3.2.0" in html
    assert f'<time data-bind="generated" datetime="{END_DATE}T04:00:00Z">{END_DATE} 04:00 UTC</time>' in html
    assert page.headers == [f["label"] for f in latest["fields"]] + ["Change"]
    assert len(page.rows) == view.PAGE_ROWS
    first = latest["predictions"][0]
    assert page.rows[0][:-1] == [shown(first[f["name"]]) for f in latest["fields"]]
    assert page.rows[-1][0] == latest["predictions"][99]["id"]


def test_every_row_is_embedded_for_the_script(out: str, docs: list[dict]) -> None:
    html = read(out, "index.html")
    blob = re.search(r'<script type="application/json" id="batch-data">(.*?)</script>', html, re.S).group(1)
    data = json.loads(blob)
    assert data["date"] == END_DATE and data["total"] == COUNT
    assert [c["name"] for c in data["columns"]] == [f["name"] for f in docs[-1]["fields"]] + ["change"]
    assert len(data["rows"]) == COUNT
    assert data["rows"][-1][0] == docs[-1]["predictions"][-1]["id"]


def test_only_the_latest_page_asks_the_api(out: str) -> None:
    assert 'data-api="/api"' in read(out, "index.html")
    assert "data-api" not in read(out, f"d/{END_DATE}.html")


def test_a_label_with_markup_is_shown_as_text(out: str) -> None:
    html = read(out, "index.html")
    page = Page(html)
    assert page.rows[1][1] == HOSTILE_LABEL  # what the reader sees in the cell
    assert HOSTILE_LABEL not in html  # never as markup, anywhere: table, chart or data block
    assert "&lt;/script&gt;&lt;script&gt;alert" in html
    # The only scripts are the site's own file and the data block.
    assert [s.get("type") or s.get("src", "")[:13] for s in page.scripts] == ["/assets/site.", "application/json"]
    blob = re.search(r'id="batch-data">(.*?)</script>', html, re.S).group(1)
    assert json.loads(blob)["rows"][1][1] == HOSTILE_LABEL


# ---- the chart ---------------------------------------------------------------------------------


def test_chart_is_inline_svg_of_the_top_values_with_ranges(out: str, docs: list[dict]) -> None:
    html = read(out, "index.html")
    svg = re.search(r"<svg .*?</svg>", html, re.S).group(0)
    assert 'role="img" aria-labelledby="chart-title chart-desc"' in svg
    assert f'<title id="chart-title">Top {chart.CHART_TOP} predicted values for {END_DATE}</title>' in svg
    assert '<desc id="chart-desc">' in svg
    widths = [float(w) for w in re.findall(r'<rect class="bar" x="[\d.]+" y="\d+" width="([\d.]+)"', svg)]
    assert len(widths) == chart.CHART_TOP and widths == sorted(widths, reverse=True)
    assert len(re.findall(r'<path class="range"', svg)) == chart.CHART_TOP
    top = sorted(docs[-1]["predictions"], key=lambda r: -r["value"])[:chart.CHART_TOP]
    labels = [html_lib.unescape(t) for t in re.findall(r'<text class="lbl" [^>]*>([^<]*)</text>', svg)]
    # Each label whole, or cut short (…) to leave its line room for the value.
    assert all(shown == r["label"] or (shown.endswith("…") and r["label"].startswith(shown[:-1]))
               for shown, r in zip(labels, top, strict=True))
    assert labels[0].startswith("</script>")  # the hostile label's value is the largest: shown as text


def test_chart_is_left_out_when_rows_have_no_value(tmp_path) -> None:
    doc = {"date": END_DATE, "generated_at": "x", "model": {"name": "m", "version": "1"},
           "predictions": [{"id": "a", "score": "high"}]}
    src = write_source(str(tmp_path / "src"), [doc])
    build_folder(src, str(tmp_path / "out"), 1)
    html = read(str(tmp_path / "out"), "index.html")
    assert "<svg" not in html
    assert Page(html).rows == [["a", "high"]]  # columns derived when the batch declares no fields


def test_a_batch_without_predictions_still_builds(tmp_path) -> None:
    doc = {"date": END_DATE, "generated_at": f"{END_DATE}T04:00:00Z", "model": {"name": "m", "version": "1"},
           "predictions": []}
    src = write_source(str(tmp_path / "src"), [doc])
    build_folder(src, str(tmp_path / "out"), 1)
    html = read(str(tmp_path / "out"), "index.html")
    assert Page(html).rows == []
    assert '<p id="count" aria-live="polite">No rows</p>' in html


# ---- navigation --------------------------------------------------------------------------------


def test_one_page_per_recent_date_with_navigation(out: str, docs: list[dict]) -> None:
    dates = [d["date"] for d in docs][::-1]  # newest first
    for date in dates[:DAYS_BUILT]:
        page = Page(read(out, f"d/{date}.html"))
        assert page.h1.strip() == f"Predictions for {date}"
        doc = next(d for d in docs if d["date"] == date)
        assert page.rows[0][3] == shown(doc["predictions"][0]["value"])
    assert not os.path.exists(os.path.join(out, "d", f"{dates[DAYS_BUILT]}.html"))  # older than --days
    middle = Page(read(out, f"d/{dates[1]}.html"))
    assert middle.link(f"Newer: {dates[0]}") == f"/d/{dates[0]}.html"
    assert middle.link(f"Older: {dates[2]}") == f"/d/{dates[2]}.html"
    latest = Page(read(out, "index.html"))
    pages = [href for href, _ in latest.links if href.startswith("/d/") and href.endswith(".html")]
    assert [href for href in pages if "page-" not in href] == [
        f"/d/{dates[1]}.html", *[f"/d/{d}.html" for d in dates[:DAYS_BUILT]]]


def test_rows_beyond_the_first_page_are_reachable_without_script(out: str, docs: list[dict]) -> None:
    latest = Page(read(out, "index.html"))
    assert latest.link("Next rows") == f"/d/{END_DATE}/page-2.html"
    last = Page(read(out, f"d/{END_DATE}/page-3.html"))
    assert [r[0] for r in last.rows] == [p["id"] for p in docs[-1]["predictions"][200:]]
    assert last.link("Previous rows") == f"/d/{END_DATE}/page-2.html"
    assert "Next rows" not in [text for _, text in last.links]
    assert not os.path.exists(os.path.join(out, "d", END_DATE, "page-4.html"))


def test_api_page_lists_routes_with_curl_examples_outside_api_path(out: str, docs: list[dict]) -> None:
    assert not any(p.startswith("api/") for p in files_of(out))  # /api/* belongs to the API
    html = read(out, "docs/api.html")
    first_id = docs[-1]["predictions"][0]["id"]
    for route in ("/api/predictions</code>", "/api/predictions/{date}</code>", "/api/predictions/{date}/{id}"):
        assert route in html
    assert f'curl -s "$SITE/api/predictions/{END_DATE}/{first_id}"' in html
    assert Page(read(out, "index.html")).link("API") == "/docs/api.html"


def test_404_page_links_home(out: str) -> None:
    page = Page(read(out, "404.html"))
    assert page.h1 == "Page not found"
    assert ("/", f"The latest batch ({END_DATE})") in page.links


# ---- assets, manifest, determinism -------------------------------------------------------------


def test_assets_have_content_hashed_names_listed_in_the_manifest(out: str) -> None:
    files = files_of(out)
    assets = sorted(p for p in files if p.startswith("assets/"))
    assert len(assets) == 3
    for path in assets:
        digest = re.fullmatch(r"assets/(?:site|favicon)\.([0-9a-f]{12})\.(?:css|js|svg)", path).group(1)
        assert hashlib.sha256(files[path]).hexdigest()[:12] == digest
        assert f'"/{path}"' in files["index.html"].decode()
    manifest = json.loads(files["manifest.json"])
    assert set(manifest["files"]) == set(files) - {"manifest.json"}
    for path, entry in manifest["files"].items():
        assert entry["sha256"] == hashlib.sha256(files[path]).hexdigest()
    assert manifest["files"][assets[0]]["cache_control"] == "public, max-age=31536000, immutable"
    assert manifest["files"]["index.html"]["cache_control"] == "public, max-age=0, s-maxage=86400"
    assert manifest["files"]["index.html"]["content_type"] == "text/html; charset=utf-8"
    assert manifest["latest"] == END_DATE and len(manifest["dates"]) == DAYS_BUILT


def test_same_batches_give_byte_identical_output(tmp_path, src: str, out: str) -> None:
    again = str(tmp_path / "again")
    build_folder(src, again, DAYS_BUILT)
    assert files_of(again) == files_of(out)


def test_changed_asset_gets_a_new_name(tmp_path, src: str, out: str) -> None:
    site = shutil.copytree(render.SITE_DIR, tmp_path / "site")
    with open(site / "static" / "site.css", "a", encoding="utf-8") as fh:
        fh.write("\n/* changed */\n")
    build(folder_store(src), str(tmp_path / "out"), DAYS_BUILT, site_dir=str(site))
    old = {p for p in files_of(out) if p.startswith("assets/site.") and p.endswith(".css")}
    new = {p for p in files_of(str(tmp_path / "out")) if p.startswith("assets/site.") and p.endswith(".css")}
    assert old and new and old != new


def test_rebuild_removes_pages_that_are_gone(tmp_path, src: str) -> None:
    target = str(tmp_path / "out")
    build_folder(src, target, 3)
    assert len([p for p in files_of(target) if re.fullmatch(r"d/[\d-]+\.html", p)]) == 3
    build_folder(src, target, 1)
    assert [p for p in files_of(target) if re.fullmatch(r"d/[\d-]+\.html", p)] == [f"d/{END_DATE}.html"]


def test_refuses_to_replace_a_folder_that_is_not_a_build(tmp_path, src: str) -> None:
    precious = tmp_path / "docs"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(BuildError, match=r"no manifest\.json"):
        build_folder(src, str(precious), 1)
    assert (precious / "notes.txt").read_text() == "keep me"


# ---- errors ------------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "build_site.py", *args], cwd=PROJECT_DIR, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.slow
def test_cli_builds_from_a_folder_with_progress_on_stderr(tmp_path, src: str) -> None:
    result = run_cli("--source", src, "--out", str(tmp_path / "out"), "--days", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert f"[1/2] {END_DATE}: {COUNT} predictions" in result.stderr
    assert (tmp_path / "out" / "index.html").is_file()


@pytest.mark.slow
def test_cli_without_any_batch_fails_with_one_clear_line(tmp_path) -> None:
    empty = tmp_path / "empty"
    (empty / PREFIX).mkdir(parents=True)
    result = run_cli("--source", str(empty), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"build_site: error: no batch has been published under {empty}/{PREFIX}"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("broken", "expected"), [
    ("{{ batch.no_such_field }}", r"template .*batch\.html line \d+: .*no_such_field"),
    ("{% if %}", r"template .*batch\.html line \d+: "),
])
def test_a_broken_template_fails_the_build_naming_the_line(tmp_path, src: str, broken: str, expected: str) -> None:
    site = shutil.copytree(render.SITE_DIR, tmp_path / "site")
    page = site / "templates" / "batch.html"
    page.write_text(page.read_text().replace("{% block main %}", "{% block main %}" + broken, 1))
    with pytest.raises(BuildError, match=expected):
        build(folder_store(src), str(tmp_path / "out"), 1, site_dir=str(site))
    assert not (tmp_path / "out").exists()


def test_builds_from_the_stage_bucket_by_default(s3, tmp_path) -> None:
    """--source s3 reads the stage's bucket through S3Source, as the API does (moto in-process)."""
    from chalice_app.publishing.publish import publish_document

    for doc in sample_docs(2, 30):  # the newest holds an extreme value: the gate would refuse it
        publish_document(s3, "predictions-local", PREFIX, doc, force=True, reason="test data")
    result = build(open_store("local", "s3"), str(tmp_path / "out"), 7)
    assert result.latest == END_DATE and len(result.dates) == 2
    assert len(Page(read(str(tmp_path / "out"), "index.html")).rows) == 30


def test_stage_bucket_without_batches_is_a_clear_error(s3, tmp_path) -> None:
    with pytest.raises(BuildError, match=r"no batch has been published under s3://predictions-local/predictions/"):
        build(open_store("local", "s3"), str(tmp_path / "out"), 7)
