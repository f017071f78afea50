"""Sample data: deterministic, realistic, and published through the publish code path."""

from __future__ import annotations

import json

from chalice_app.publishing.batch_input import validate_rows
from chalice_app.publishing.sample import dates_ending, main, make_batch

from helpers import BUCKET, PREFIX, body


def test_same_date_same_batch():
    assert make_batch("2026-11-23", 50) == make_batch("2026-11-23", 50)


def test_different_dates_differ_but_keep_the_catalogue():
    a, b = make_batch("2026-11-22", 50), make_batch("2026-11-23", 50)
    assert [r["id"] for r in a["predictions"]] == [r["id"] for r in b["predictions"]]
    assert [r["value"] for r in a["predictions"]] != [r["value"] for r in b["predictions"]]


def test_rows_are_valid_and_bounds_bracket_the_value():
    rows = make_batch("2026-11-23", 300)["predictions"]
    assert validate_rows(rows, list(range(len(rows)))) == []
    assert all(r["lower"] <= r["value"] <= r["upper"] for r in rows)
    assert len({r["id"] for r in rows}) == 300


def test_dates_ending_oldest_first():
    assert dates_ending("2026-11-23", 3) == ["2026-11-21", "2026-11-22", "2026-11-23"]


def test_cli_publishes_through_the_contract(s3, api, capsys):
    assert main(["--days", "3", "--count", "20", "--end-date", "2026-11-23", "--bucket", BUCKET], client=s3) == 0
    assert body(api.get("/predictions")) == {"latest": "2026-11-23",
                                              "dates": ["2026-11-23", "2026-11-22", "2026-11-21"]}
    assert body(api.get("/predictions/latest"))["count"] == 20


def test_cli_writes_a_folder_laid_out_like_the_bucket(tmp_path):
    assert main(["--days", "2", "--count", "5", "--end-date", "2026-11-23", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / PREFIX / "latest.json").read_text()) == {"date": "2026-11-23"}
    assert (tmp_path / PREFIX / "2026-11-22" / "predictions.json").exists()
