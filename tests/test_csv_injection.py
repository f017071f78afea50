"""CSV downloads are safe to open in a spreadsheet (OWASP, CSV Injection) and still publish back.

A text cell a spreadsheet would run as a formula (first character = + - @ tab or carriage return)
is written with a `'` in front; the publish command's CSV reader takes exactly that `'` off again.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalice_app.publishing import batch_input
from chalice_app.publishing.batch_input import InputError, read_batch_input, restore_formula
from chalice_app.store.batch import Batch
from chalice_app.website import downloads
from chalice_app.website.downloads import neutralise_formula

from helpers import make_doc

DATE = "2026-11-23"
TRIGGERS = ["=", "+", "-", "@", "\t", "\r"]
PAYLOAD = "cmd|' /C calc'!A0"
# Strings a spreadsheet, a CSV parser or the mark itself could get wrong.
HOSTILE = [
    "=1+2", "+1", "-3.5", "-0", "@SUM(A1)", "=HYPERLINK(\"http://x\",\"y\")", "=cmd|' /C calc'!A0",
    "'", "''", "'x", "''x", "'1", "'=x", "''=x", "'''+1", "' =x", " =x", "x=1", "-", "=", "+", "@",
    "\t", "\r", "\r\n", "\n", "\t=1", "\r=1", "\n=1", "'\t", "'\r", ",=1", '"=1"', "=1,2", 'say "hi", =1',
    "007", "42", "", " ", "1e5", "-1e5", "ünïcode=☕", "＝1", "\u2028=1", "\ufeff=1", "=\N{PILE OF POO}",
]
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def batch_of(rows: list[dict]) -> Batch:
    return Batch(make_doc(DATE, rows))


def spreadsheet_cells(body: bytes) -> list[list[str]]:
    """The cells of a download as a spreadsheet gets them: RFC 4180 unquoting and nothing else."""
    return list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))


@pytest.fixture
def cells_of() -> Callable[[list[dict]], list[list[str]]]:
    """rows -> the cells (header first) of their CSV download."""
    return lambda rows: spreadsheet_cells(downloads.batch_csv(batch_of(rows)))


@pytest.fixture
def read_back(tmp_path: Path) -> Callable[[bytes], list[dict]]:
    """CSV bytes -> the predictions the publish command reads from them (no errors allowed)."""

    def _read_back(body: bytes) -> list[dict]:
        path = tmp_path / f"{DATE}.csv"
        path.write_bytes(body)
        parsed = read_batch_input(str(path))
        assert parsed.errors == []
        return parsed.predictions

    return _read_back


@pytest.fixture
def read_text(read_back: Callable[[bytes], list[dict]]) -> Callable[[str], list[dict]]:
    """Hand-written CSV text -> the predictions the publish command reads from it."""
    return lambda text: read_back(text.encode("utf-8"))


def assert_exact(back: list[dict], rows: list[dict]) -> None:
    """Same rows with the same types (json.dumps tells 1 from 1.0 and "1" from 1)."""
    assert json.dumps(back, ensure_ascii=False) == json.dumps(rows, ensure_ascii=False)


# ---- what a spreadsheet sees ---------------------------------------------------------------------


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_a_label_starting_with_a_trigger_is_prefixed_with_a_quote(cells_of, trigger):
    cells = cells_of([{"id": "a", "label": trigger + PAYLOAD}])
    assert cells[1] == ["a", "'" + trigger + PAYLOAD]


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_a_field_name_starting_with_a_trigger_is_prefixed_with_a_quote(cells_of, trigger):
    cells = cells_of([{"id": "a", trigger + "SUM(A1)": 1}])
    assert cells[0] == ["id", "'" + trigger + "SUM(A1)"]


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_an_id_like_string_column_starting_with_a_trigger_is_prefixed(cells_of, trigger):
    cells = cells_of([{"id": "a", "sku": trigger + "00017"}])
    assert cells[1] == ["a", "'" + trigger + "00017"]


@pytest.mark.parametrize("text", ["-3.5", "+1", "=1+2", "@SUM(A1)", "-0", "-1e5"])
def test_a_string_that_looks_like_a_number_or_formula_is_prefixed_and_quoted(text):
    assert downloads.csv_cell(text) == ("'" + text, True)


def test_a_prefixed_cell_is_written_in_double_quotes():
    body = downloads.batch_csv(batch_of([{"id": "a", "label": "=1+2", "note": "@x, y"}]))
    assert body.decode("utf-8").split("\r\n")[1] == 'a,"\'=1+2","\'@x, y"'


@pytest.mark.parametrize("value", [-3.5, -0.0, 0, 0.0, -12, -9007199254740991, 1e-07, -1.5e-07, -1e15, 2.5e-300])
def test_a_json_number_is_not_prefixed(cells_of, value):
    assert cells_of([{"id": "a", "value": value}])[1] == ["a", repr(value)]


@pytest.mark.parametrize("value", [-3.5, -0.0, 0, -12, 1e-07, -1.5e-07, 2.5e-300])
def test_a_json_number_reads_back_as_the_same_number(read_back, value):
    rows = [{"id": "a", "value": value}]
    assert_exact(read_back(downloads.batch_csv(batch_of(rows))), rows)


@pytest.mark.parametrize("text", ["'", "''", "'x", "''x", "'1", "' =x", "x=1", " =x", "＝1"])
def test_text_that_no_spreadsheet_would_run_is_written_as_is(text):
    assert downloads.csv_cell(text)[0] == text


@pytest.mark.parametrize(("text", "written"), [("'=x", "''=x"), ("''=x", "'''=x"), ("'\t", "''\t"),
                                               ("'-3.5", "''-3.5")])
def test_text_that_already_looks_prefixed_gets_one_more_quote(text, written):
    assert downloads.csv_cell(text)[0] == written


# ---- what the publish command reads --------------------------------------------------------------


@pytest.mark.parametrize(("cell", "value"), [("'=x", "=x"), ("''=x", "'=x"), ("'''+1", "''+1"), ("'@a", "@a"),
                                             ("'x", "'x"), ("''x", "''x"), ("'", "'"), ("x'=", "x'="),
                                             ('"\'\t"', "\t"), ('"\'\r"', "\r")])
def test_the_reader_takes_one_quote_off_a_marked_cell_only(read_text, cell, value):
    assert read_text(f"id,label\r\na,{cell}\r\n") == [{"id": "a", "label": value}]


@pytest.mark.parametrize("cell", ["'-3.5", "\"'-3.5\"", "'-3"])
def test_a_marked_number_like_cell_reads_back_as_text(read_text, cell):
    assert read_text(f"id,n\r\na,{cell}\r\n") == [{"id": "a", "n": cell.strip('"')[1:]}]


def test_the_reader_unmarks_field_names(read_text):
    assert read_text("id,\"'=SUM(A1)\"\r\na,1\r\n") == [{"id": "a", "=SUM(A1)": 1}]


def test_a_file_that_quotes_everything_is_unmarked_too(read_text):
    assert read_text('"id","label","n"\r\n"a","\'=1+2","-3"\r\n') == [{"id": "a", "label": "=1+2", "n": -3}]


def test_field_names_that_are_the_same_once_unmarked_are_refused(tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text("id,'=a,=a\r\nx,1,2\r\n", encoding="utf-8")
    with pytest.raises(InputError, match="duplicate column name"):
        read_batch_input(str(path))


def test_writer_and_reader_agree_on_the_triggers():
    assert downloads.FORMULA_TRIGGERS == batch_input.FORMULA_TRIGGERS == "".join(TRIGGERS)


# ---- round trips ---------------------------------------------------------------------------------


def hostile_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(HOSTILE),
        st.builds(lambda quotes, trigger, tail: "'" * quotes + trigger + tail,
                  st.integers(0, 3), st.sampled_from(TRIGGERS), st.text(max_size=12)),
        st.text(alphabet="'\"=+-@\t\r\n, .e0123456789aé☕", max_size=12),
        st.text(max_size=16),
    )


@given(hostile_text())
def test_reading_undoes_writing_for_every_string(text):
    assert restore_formula(neutralise_formula(text)) == text


@given(hostile_text())
def test_no_written_text_starts_with_a_trigger(text):
    assert neutralise_formula(text)[:1] not in TRIGGERS


@pytest.mark.parametrize("label", HOSTILE)
def test_a_hostile_label_round_trips_through_the_download(read_back, label):
    rows = [{"id": "sku-1", "label": label, "value": -3.5}, {"id": "sku-2", "label": "plain", "value": 0}]
    batch = batch_of(rows)
    assert downloads.csv_round_trip_gaps(batch) == []
    assert_exact(read_back(downloads.batch_csv(batch)), rows)


@FAST
@given(st.data())
def test_a_batch_of_hostile_strings_reads_back_to_the_same_rows(read_back, data):
    names = data.draw(st.lists(hostile_text().filter(lambda s: s not in ("", "id")), min_size=1, max_size=4,
                               unique=True), label="field names")
    value = st.one_of(hostile_text(), st.none(), st.integers(-(2**53) + 1, 2**53 - 1),
                      st.floats(-1e15, 1e15, allow_nan=False))
    rows = [{"id": f"sku-{n}", **{name: data.draw(value, label=f"row {n}: {name!r}") for name in names}}
            for n in range(data.draw(st.integers(1, 3), label="rows"))]
    batch = batch_of(rows)
    assert downloads.csv_round_trip_gaps(batch) == []
    assert_exact(read_back(downloads.batch_csv(batch)), rows)


@FAST
@given(st.lists(hostile_text(), min_size=1, max_size=5))
def test_no_text_cell_of_a_download_starts_with_a_trigger(labels):
    rows = [{"id": f"sku-{n}", "label": label, "value": -1} for n, label in enumerate(labels)]
    cells = spreadsheet_cells(downloads.batch_csv(batch_of(rows)))
    assert [row[1] for row in cells[1:] if row[1][:1] in TRIGGERS] == []
