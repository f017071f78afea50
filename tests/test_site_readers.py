"""What a reader gets beyond the table: one precision per number column, a round axis, the change
against the previous batch, and downloads that the publish command reads back to the same batch.
Fast: pure functions, plus one small build from a folder."""

from __future__ import annotations

import json
import os
import re

import pytest

from chalice_app.publishing.batch_input import read_batch_input
from chalice_app.store.batch import Batch
from chalice_app.website import changes, chart, downloads, serving, view

from site_helpers import END_DATE, Page, build_folder, read, sample_docs, write_source


def batch_of(rows: list[dict], date: str = END_DATE, **meta: object) -> Batch:
    return Batch({"date": date, "model": {"name": "m", "version": "1"}, **meta, "predictions": rows})


# ---- numbers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("top", "end"), [(1008, 1200), (441.2, 500), (99, 100), (1, 1), (0.37, 0.4),
                                          (12, 12), (1176.6, 1200), (5, 5)])
def test_the_axis_ends_at_the_round_step_just_above_the_largest_value(top, end):
    scale = chart.nice_axis(0.0, float(top))
    assert scale.hi * scale.step == pytest.approx(end)
    assert 2 <= scale.hi - scale.lo <= 6


def test_the_chart_of_1008_no_longer_runs_to_1500():
    geometry = chart.chart_of(batch_of([{"id": "a", "value": 1008}, {"id": "b", "value": 3}]))
    assert geometry["ticks"][-1]["label"] == "1,200"


@pytest.mark.parametrize(("values", "decimals"), [([1.5, 2, 3.25], 2), ([1, 2, 3], 0), ([0.1, None, "x"], 1),
                                                  ([1e21, 2.5], 1), ([1.5e-7], None),
                                                  ([0.123456789], 4)])
def test_a_column_has_one_precision_of_its_own(values, decimals):
    assert view.precision_of_columns([{"v": v} for v in values], ["v"]).decimals == decimals


def test_columns_carry_their_precision():
    batch = batch_of([{"id": "a", "value": 1.25, "n": 3}, {"id": "b", "value": 2, "n": 4}])
    assert {c.name: c.decimals for c in view.columns_of(batch) if c.numeric} == {"value": 2, "n": 0}
    declared = batch_of([{"id": "a", "value": 1.25}], fields=[
        {"name": "id", "label": "Id", "type": "string"}, {"name": "value", "label": "V", "type": "number"}])
    assert [c.decimals for c in view.columns_of(declared)] == [None, 2]


# ---- changes ------------------------------------------------------------------------------------


def test_change_of_a_value_is_absolute_and_percent():
    assert changes.change_of(110.0, 100.0) == (10.0, 10.0)
    assert changes.change_of(90, 100) == (-10, -10.0)
    assert changes.change_of(5, 0) == (5, None)
    assert changes.change_of(None, 1) == (None, None)
    assert changes.change_of(1, "x") == (None, None)
    assert changes.change_text(10.0, 10.0, 1) == "+10.0 (+10.0%)"
    assert changes.change_text(-0.04, -0.0, 1) == "0.0 (0.0%)"  # no "-0.0"
    assert changes.change_text(0.0, 0.0, 1) == "0.0 (0.0%)"
    assert changes.change_text("new", None, 1) == "new"
    assert changes.change_text(None, None, 1) == ""


def test_changes_between_two_known_batches():
    before = batch_of([{"id": "a", "value": 100.0}, {"id": "b", "value": 50.0}, {"id": "gone", "value": 1.0},
                       {"id": "c", "value": 10.0}], date="2026-11-19")
    now = batch_of([{"id": "a", "value": 112.5}, {"id": "b", "value": 40.0}, {"id": "c", "value": 10.0},
                    {"id": "fresh", "value": 7.0}])
    columns, found = changes.with_changes(now, before, view.columns_of(now))
    assert columns[-1].name == "change" and columns[-1].decimals == 1
    assert found.deltas == [12.5, -10.0, 0.0, "new"]
    assert found.pcts == [12.5, -20.0, 0.0, None]
    assert found.dropped == ["gone"]
    assert found.summary() == "1 up, 1 down, 1 unchanged, 1 new, 1 dropped since 2026-11-19"
    assert [r["cells"][-1] for r in view.table_rows(now.items, columns, found)] == [
        "+12.5 (+12.5%)", "-10.0 (-20.0%)", "0.0 (0.0%)", "new"]
    assert [r["new"] for r in view.table_rows(now.items, columns, found)] == [False, False, False, True]
    data = json.loads(view.embedded_data(now, columns, found))
    assert data["rows"][0] == ["a", 112.5, 12.5, 12.5] and data["rows"][3] == ["fresh", 7.0, "new", None]
    assert data["change_of"] == "value"


def test_previous_date_is_the_newest_before():
    assert changes.previous_date(["2026-11-20", "2026-11-18", "2026-11-19"], "2026-11-20") == "2026-11-19"
    assert changes.previous_date(["2026-11-20"], "2026-11-20") is None


# ---- downloads ----------------------------------------------------------------------------------


TRICKY = [
    {"id": "007", "label": "Bond, \"James\"", "code": "007", "value": 1.5, "lower": None, "n": 3},
    {"id": "sku-00001", "label": "multi\nline ünïcode", "code": "A-1", "value": -0.0, "lower": 1e-07, "n": -12},
    {"id": "x.y:z", "label": " padded ", "code": "1e5x", "value": 999999999999999.9, "lower": 0.1,
     "n": 9007199254740991},
]


def round_trip(tmp_path, batch: Batch) -> list[dict]:
    path = tmp_path / f"{batch.date}.csv"
    path.write_bytes(downloads.batch_csv(batch))
    parsed = read_batch_input(str(path))
    assert parsed.errors == []
    return parsed.predictions


def test_the_csv_reads_back_to_the_same_predictions(tmp_path):
    batch = batch_of(TRICKY)
    assert downloads.csv_round_trip_gaps(batch) == []
    back = round_trip(tmp_path, batch)
    assert json.dumps(back) == json.dumps(TRICKY)  # types too: "007" stays text, None stays null


def test_the_sample_batch_round_trips_through_csv_and_json(tmp_path):
    doc = sample_docs(1, 120)[0]
    batch = Batch(doc)
    assert json.dumps(round_trip(tmp_path, batch)) == json.dumps(doc["predictions"])
    path = tmp_path / "b.json"
    path.write_bytes(downloads.batch_json(batch))
    parsed = read_batch_input(str(path))
    assert parsed.errors == [] and parsed.predictions == doc["predictions"]
    assert json.loads(path.read_bytes()) == doc


def test_text_that_reads_as_a_number_is_quoted_and_reads_back_as_text(tmp_path):
    rows = [{"id": "a", "code": "42", "empty": "", "note": 'say "hi", twice'}, {"id": "b", "code": "7",
                                                                               "empty": None, "note": "x"}]
    batch = batch_of(rows)
    assert downloads.batch_csv(batch).decode().splitlines()[1] == 'a,"42","","say ""hi"", twice"'
    assert downloads.csv_round_trip_gaps(batch) == []
    assert round_trip(tmp_path, batch) == rows


def test_booleans_and_missing_fields_are_named_as_gaps():
    batch = batch_of([{"id": "a", "flag": True}, {"id": "b"}])
    assert downloads.batch_csv(batch).decode().splitlines()[1] == "a,true"
    assert downloads.csv_round_trip_gaps(batch) == ["row 1: 'flag' is a boolean (reads back as text)",
                                                    "row 2: no 'flag' (reads back as null)"]


def test_csv_is_served_as_text_csv():
    assert serving.content_type_for("d/2026-11-20.csv") == "text/csv; charset=utf-8"
    assert serving.cache_control_for("d/2026-11-20.csv") == serving.cache_control_for("d/2026-11-20.html")


# ---- a built site -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict]]:
    docs = sample_docs(3, 130)
    docs[-1]["predictions"].append({**docs[-1]["predictions"][0], "id": "sku-new"})
    del docs[-1]["predictions"][5]
    src = write_source(str(tmp_path_factory.mktemp("bucket")), docs)
    out = str(tmp_path_factory.mktemp("site") / "out")
    build_folder(src, out, 2)
    return out, docs


def test_every_rendered_date_has_its_downloads_linked_with_sizes(built):
    out, docs = built
    manifest = json.loads(read(out, "manifest.json"))
    for doc in docs[1:]:
        date = doc["date"]
        for ext, kind in (("csv", "text/csv; charset=utf-8"), ("json", "application/json; charset=utf-8")):
            assert manifest["files"][f"d/{date}.{ext}"]["content_type"] == kind
        page = Page(read(out, f"d/{date}.html"))
        size = downloads.human_size(os.path.getsize(os.path.join(out, "d", f"{date}.csv")))
        assert page.link(f"CSV, {size}") == f"/d/{date}.csv"
    assert not os.path.exists(os.path.join(out, "d", f"{docs[0]['date']}.csv"))  # older than --days
    assert Page(read(out, "index.html")).link(f"JSON, {downloads.human_size(os.path.getsize(os.path.join(out, 'd', END_DATE + '.json')))}") == f"/d/{END_DATE}.json"  # noqa: E501


def test_openapi_is_published_and_linked_from_the_api_page(built):
    out, _ = built
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "openapi.json"), "rb") as fh:
        assert read(out, "openapi.json").encode() == fh.read()
    assert Page(read(out, "docs/api.html")).link("openapi.json") == "/openapi.json"


def test_the_change_column_of_a_built_page(built):
    out, docs = built
    html = read(out, "index.html")
    page = Page(html)
    before = {p["id"]: p["value"] for p in docs[-2]["predictions"]}
    for row, item in zip(page.rows, docs[-1]["predictions"], strict=False):
        delta, pct = changes.change_of(item["value"], before[item["id"]])
        assert row[-1] == changes.change_text(delta, pct, 1)
    text = re.sub(r"<[^>]+>", "", html)  # the date is in a span of its own (never broken across lines)
    assert re.search(r"\d+ up, \d+ down, 1 new, 1 dropped since " + docs[-2]["date"], text)
    last = Page(read(out, f"d/{END_DATE}/page-2.html"))
    assert last.rows[-1][0] == "sku-new" and last.rows[-1][-1] == "new"


def test_the_pager_links_first_last_and_the_neighbours_only():
    from chalice_app.website.view import pager

    numbers = [link["number"] for link in pager("2026-11-20", 500, 100_000, "/d/2026-11-20.html")["links"]]
    assert numbers == [1, None, 498, 499, 500, 501, 502, None, 1000]
    assert [link["number"] for link in pager("2026-11-20", 1, 250, "/")["links"]] == [1, 2, 3]
