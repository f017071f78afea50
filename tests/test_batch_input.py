"""Reading and validating the file a model job hands to the publish command."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import pytest

from chalice_app.publishing.batch_input import (
    InputError,
    ParsedInput,
    RowError,
    detect_format,
    parse_csv_cell,
    read_batch_input,
    validate_rows,
)

ID_RULE = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
GOOD = '{"id": "sku-1", "value": 1}'


@pytest.fixture
def rows() -> list[dict]:
    return [
        {"id": "sku-00017", "label": "Oat milk 1l", "value": 412.5, "lower": 380.0, "in_stock": True},
        {"id": "sku-00018", "label": "Rye bread", "value": -3, "lower": None, "in_stock": False},
        {"id": "a.b:c_d-9", "label": "Ünïcode ☕", "value": 0, "lower": 1e-7, "in_stock": True},
    ]


@pytest.fixture
def document(rows: list[dict]) -> dict:
    return {
        "date": "2026-11-23",
        "generated_at": "2026-11-23T04:00:00Z",
        "model": {"name": "demand-forecast", "version": "3.2.0"},
        "fields": [{"name": "value", "label": "Forecast", "type": "number"}],
        "predictions": rows,
    }


@pytest.fixture
def write(tmp_path: Path):
    """write(name, text) -> path; a name ending .gz is gzip-compressed, bytes are written as is."""

    def _write(name: str, content: str | bytes) -> Path:
        data = content.encode("utf-8") if isinstance(content, str) else content
        if name.endswith(".gz"):
            data = gzip.compress(data)
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return _write


def jsonl(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def csv_text(header: list[str], records: list[list[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(records)
    return out.getvalue()


def messages(parsed: ParsedInput) -> list[str]:
    return [str(error) for error in parsed.errors]


# --- round trips ------------------------------------------------------------------------------


def test_json_document_round_trip(write, document, rows):
    parsed = read_batch_input(write("preds.json", json.dumps(document)))

    assert parsed.predictions == rows
    assert parsed.errors == []


def test_json_document_meta_holds_only_known_keys(write, document):
    document["extra"] = {"ignored": True}

    parsed = read_batch_input(write("preds.json", json.dumps(document)))

    assert parsed.meta == {
        "date": "2026-11-23",
        "generated_at": "2026-11-23T04:00:00Z",
        "model": {"name": "demand-forecast", "version": "3.2.0"},
        "fields": [{"name": "value", "label": "Forecast", "type": "number"}],
    }


def test_json_list_round_trip(write, rows):
    parsed = read_batch_input(write("preds.json", json.dumps(rows)))

    assert parsed.predictions == rows
    assert parsed.meta == {}
    assert parsed.errors == []


def test_jsonl_round_trip_skips_blank_lines(write, rows):
    text = json.dumps(rows[0]) + "\n\n  \n" + json.dumps(rows[1]) + "\r\n" + json.dumps(rows[2])

    parsed = read_batch_input(write("preds.jsonl", text))

    assert parsed.predictions == rows
    assert parsed.lines == [1, 4, 5]
    assert parsed.errors == []


def test_csv_round_trip(write):
    text = csv_text(
        ["id", "label", "value", "lower", "note"],
        [["sku-1", "Oat milk", "412.5", "380", ""], ["sku-2", "Rye, dark", "-3", "1e3", "x"]],
    )

    parsed = read_batch_input(write("preds.csv", text))

    assert parsed.predictions == [
        {"id": "sku-1", "label": "Oat milk", "value": 412.5, "lower": 380, "note": None},
        {"id": "sku-2", "label": "Rye, dark", "value": -3, "lower": 1000.0, "note": "x"},
    ]
    assert parsed.lines == [2, 3]
    assert parsed.meta == {}
    assert parsed.errors == []


def test_csv_number_types_are_exact(write):
    parsed = read_batch_input(write("preds.csv", "id,a,b\nsku-1,7,7.0\n"))

    row = parsed.predictions[0]
    assert type(row["a"]) is int
    assert type(row["b"]) is float


def test_csv_tolerates_a_bom(write):
    parsed = read_batch_input(write("preds.csv", "\ufeffid,value\nsku-1,2\n"))

    assert parsed.predictions == [{"id": "sku-1", "value": 2}]


@pytest.mark.parametrize("name", ["preds.json.gz", "preds.jsonl.gz", "preds.csv.gz"])
def test_gzipped_input_is_read(write, name):
    content = {
        "preds.json.gz": json.dumps([{"id": "sku-1", "value": 2}]),
        "preds.jsonl.gz": jsonl('{"id": "sku-1", "value": 2}'),
        "preds.csv.gz": "id,value\nsku-1,2\n",
    }[name]

    parsed = read_batch_input(write(name, content))

    assert parsed.predictions == [{"id": "sku-1", "value": 2}]
    assert parsed.errors == []


def test_explicit_format_overrides_the_extension(write):
    parsed = read_batch_input(write("export.txt", "id,value\nsku-1,2\n"), fmt="csv")

    assert parsed.predictions == [{"id": "sku-1", "value": 2}]


# --- line numbers ----------------------------------------------------------------------------


def test_document_lines_point_at_each_row_when_pretty_printed(write, document):
    text = json.dumps(document, indent=2)
    # With indent=2 every prediction opens with a line that is exactly '    {' ("fields" has
    # such lines too, so only count those after the "predictions" key).
    numbered = list(enumerate(text.split("\n"), start=1))
    start = next(n for n, line in numbered if line == '  "predictions": [')
    expected = [n for n, line in numbered if n > start and line == "    {"]

    parsed = read_batch_input(write("preds.json", text))

    assert len(expected) == 3
    assert parsed.lines == expected


def test_list_lines_point_where_each_row_starts(write):
    text = '[\n\n  {"id": "a"},   {"id": "b"}\n  ,\n{\n"id": "c"\n}\n]\n'

    parsed = read_batch_input(write("preds.json", text))

    assert parsed.lines == [3, 3, 5]


def test_document_lines_with_crlf_line_ends(write):
    text = '{"date": "2026-11-23",\r\n "predictions": [\r\n  {"id": "a"},\r\n  {"id": "b"}]}'

    parsed = read_batch_input(write("preds.json", text))

    assert parsed.lines == [3, 4]


def test_csv_lines_account_for_a_quoted_multiline_cell(write):
    text = 'id,label\nsku-1,"two\nlines"\nsku-2,plain\n\nsku-3,"a\n\nb"\nsku-4,x\n'

    parsed = read_batch_input(write("preds.csv", text))

    assert parsed.lines == [2, 4, 6, 9]
    assert parsed.predictions[0]["label"] == "two\nlines"


# --- bad rows --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("[1, 2]", "line 2: expected an object, got list"),
        ('"sku-2"', "line 2: expected an object, got string"),
        ('{"value": 1}', "line 2: missing id"),
        ('{"id": 17}', "line 2: id must be a string, got number 17"),
        ('{"id": null}', "line 2: id must be a string, got null"),
        ('{"id": "a b"}', f'line 2: id "a b" does not match {ID_RULE}'),
        ('{"id": ""}', f'line 2: id "" does not match {ID_RULE}'),
        ('{"id": "-lead"}', f'line 2: id "-lead" does not match {ID_RULE}'),
        ('{"id": "sku-2", "": 1}', "line 2: empty field name"),
        (
            '{"id": "sku-2", "band": {"lo": 1}}',
            'line 2: field "band" must be a string, number, boolean or null, got object',
        ),
        (
            '{"id": "sku-2", "tags": ["a"]}',
            'line 2: field "tags" must be a string, number, boolean or null, got list',
        ),
        ('{"id": "sku-2", "value": NaN}', 'line 2: field "value" must be a finite number, got NaN'),
        (
            '{"id": "sku-2", "value": -Infinity}',
            'line 2: field "value" must be a finite number, got -Infinity',
        ),
        ('{"id": "sku-2", "value": 1e999}', 'line 2: field "value" must be a finite number, got Infinity'),
        ("{oops", "line 2: invalid JSON at column 2: Expecting property name enclosed in double quotes"),
    ],
)
def test_bad_row_names_its_line_and_problem(write, row, message):
    parsed = read_batch_input(write("preds.jsonl", jsonl(GOOD, row)))

    assert messages(parsed) == [message]


def test_id_longer_than_the_limit_is_refused(write):
    parsed = read_batch_input(write("preds.jsonl", jsonl(json.dumps({"id": "a" * 129}))))

    assert len(parsed.errors) == 1
    assert "does not match" in parsed.errors[0].message


def test_long_offending_value_is_truncated(write):
    parsed = read_batch_input(write("preds.jsonl", jsonl(json.dumps({"id": "x y" * 100}))))

    message = parsed.errors[0].message
    assert '"x yx y' in message
    assert "..." in message
    assert len(message) < 60 + len(ID_RULE) + 30


def test_duplicate_id_names_both_lines(write):
    text = jsonl('{"id": "sku-0"}', '{"id": "sku-0b"}', '{"id": "sku-1"}', "", '{"id": "sku-1"}')

    parsed = read_batch_input(write("preds.jsonl", text))

    assert messages(parsed) == ['line 5: duplicate id "sku-1" (first seen on line 3)']


def test_duplicate_id_in_pretty_printed_document_names_both_lines(write):
    rows = [{"id": "sku-1"}, {"id": "sku-2"}, {"id": "sku-1"}]
    text = json.dumps({"predictions": rows}, indent=2)

    parsed = read_batch_input(write("preds.json", text))

    assert messages(parsed) == ['line 9: duplicate id "sku-1" (first seen on line 3)']


def test_csv_row_with_too_many_cells(write):
    parsed = read_batch_input(write("preds.csv", "id,value\nsku-1,1\nsku-2,2,3\n"))

    assert messages(parsed) == ["line 3: expected 2 cells (one per header column), got 3"]
    assert parsed.predictions == [{"id": "sku-1", "value": 1}]


def test_csv_row_with_too_few_cells(write):
    parsed = read_batch_input(write("preds.csv", "id,value,lower\nsku-1\n"))

    assert messages(parsed) == ["line 2: expected 3 cells (one per header column), got 1"]


def test_csv_empty_id_cell_is_refused(write):
    parsed = read_batch_input(write("preds.csv", "id,value\n,1\n"))

    assert messages(parsed) == [f'line 2: id "" does not match {ID_RULE}']


def test_every_error_is_reported_in_file_order(write):
    text = jsonl(
        '{"id": "sku-1", "value": [1]}',
        "not json",
        '{"id": "sku-1"}',
        "[]",
        '{"id": "bad id", "": {}}',
    )

    parsed = read_batch_input(write("preds.jsonl", text))

    assert [(e.line, e.message.split(" ")[0]) for e in parsed.errors] == [
        (1, "field"),
        (2, "invalid"),
        (3, "duplicate"),
        (4, "expected"),
        (5, "id"),
        (5, "empty"),
        (5, "field"),
    ]


def test_every_invalid_jsonl_line_is_reported(write):
    parsed = read_batch_input(write("preds.jsonl", jsonl("{", GOOD, "}", "x")))

    assert [e.line for e in parsed.errors] == [1, 3, 4]
    assert parsed.predictions == [{"id": "sku-1", "value": 1}]
    assert parsed.lines == [2]


def test_unreadable_jsonl_lines_do_not_also_claim_the_file_is_empty(write):
    parsed = read_batch_input(write("preds.jsonl", jsonl("{", "}")))

    assert [e.line for e in parsed.errors] == [1, 2]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("preds.json", '{"date": "2026-11-23", "predictions": []}'),
        ("preds.json", "[]"),
        ("preds.jsonl", "\n\n"),
        ("preds.csv", "id,value\n"),
    ],
)
def test_no_rows_is_one_error_without_a_line(write, name, content):
    parsed = read_batch_input(write(name, content))

    assert parsed.errors == [RowError(None, "no predictions in the file")]
    assert str(parsed.errors[0]) == "no predictions in the file"


def test_invalid_document_date_is_reported_on_its_line(write):
    text = '{\n  "date": "2026-02-30",\n  "predictions": [{"id": "sku-1"}]\n}'

    parsed = read_batch_input(write("preds.json", text))

    assert messages(parsed) == ['line 2: date "2026-02-30" is not a YYYY-MM-DD date']


def test_validate_rows_accepts_good_rows():
    assert validate_rows([{"id": "a", "x": 1.5, "y": None, "z": True}], [7]) == []


def test_validate_rows_uses_the_given_lines():
    errors = validate_rows([{"id": "a"}, {"id": "a"}], [10, 20])

    assert errors == [RowError(20, 'duplicate id "a" (first seen on line 10)')]


def test_validate_rows_refuses_mismatched_lines():
    with pytest.raises(ValueError, match="2 rows but 1 line"):
        validate_rows([{"id": "a"}, {"id": "b"}], [1])


# --- CSV cells -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("", None),
        ("-3", -3),
        ("0", 0),
        ("412.5", 412.5),
        ("0.5", 0.5),
        ("-0.25", -0.25),
        ("1e3", 1000.0),
        ("2.5E-3", 0.0025),
        ("-1234567890.1234", -1234567890.1234),
        ("0.123456789012345678", "0.123456789012345678"),
        ("9007199254740993.0", "9007199254740993.0"),
        # Beyond the contract's range (JavaScript would change the digits, or it is no number at
        # all): stays text, like the cells below that a number would change.
        ("12345678901234567890", "12345678901234567890"),
        ("9007199254740991", 9007199254740991),
        ("-9007199254740991", -9007199254740991),
        ("9007199254740992", "9007199254740992"),
        ("1" * 400, "1" * 400),
        ("1e15", 1e15),
        ("1.5e15", "1.5e15"),
        ("1.7e308", "1.7e308"),
        ("-1.7e308", "-1.7e308"),
        ("5e-324", 5e-324),
        ("007", "007"),
        ("00.5", "00.5"),
        ("nan", "nan"),
        ("NaN", "NaN"),
        ("inf", "inf"),
        ("-Infinity", "-Infinity"),
        (" 5", " 5"),
        ("5 ", "5 "),
        ("+5", "+5"),
        (".5", ".5"),
        ("5.", "5."),
        ("1_000", "1_000"),
        ("١٢", "١٢"),
        ("1e999", "1e999"),
        ("1e-400", "1e-400"),
        ("0.10000000000000000000001", "0.10000000000000000000001"),
        ("true", "true"),
        ("sku-1", "sku-1"),
    ],
)
def test_parse_csv_cell(cell, expected):
    value = parse_csv_cell(cell)

    assert value == expected
    assert type(value) is type(expected)


def test_csv_id_column_stays_a_string(write):
    parsed = read_batch_input(write("preds.csv", "value,id\n1,00017\n2,18\n"))

    assert [row["id"] for row in parsed.predictions] == ["00017", "18"]
    assert parsed.errors == []


def test_csv_cells_keep_what_a_number_would_lose(write):
    parsed = read_batch_input(write("preds.csv", "id,code,score,empty\nsku-1,007,nan,\n"))

    assert parsed.predictions == [{"id": "sku-1", "code": "007", "score": "nan", "empty": None}]


# --- the file as a whole ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("preds.json", "json"),
        ("preds.JSON", "json"),
        ("dir.v1/preds.json.gz", "json"),
        ("preds.jsonl", "jsonl"),
        ("preds.ndjson", "jsonl"),
        ("preds.jsonl.GZ", "jsonl"),
        ("preds.csv", "csv"),
        ("preds.csv.gz", "csv"),
    ],
)
def test_detect_format(name, fmt):
    assert detect_format(name) == fmt


@pytest.mark.parametrize("name", ["preds.txt", "preds.gz", "preds", "preds.json.zip"])
def test_detect_format_refuses_unknown_extensions(name):
    with pytest.raises(InputError, match=r"\.json, \.jsonl, \.ndjson or \.csv"):
        detect_format(name)


def test_unknown_explicit_format(write):
    with pytest.raises(InputError, match="unknown format 'xml'"):
        read_batch_input(write("preds.json", "[]"), fmt="xml")


def test_invalid_json_names_line_and_column(write):
    path = write("preds.json", '{"predictions": [\n  {"id": "a"},\n    oops\n]}')

    with pytest.raises(InputError) as caught:
        read_batch_input(path)

    assert str(caught.value) == f"{path}: invalid JSON at line 3, column 5: Expecting value"


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ("", "line 1, column 1: Expecting value"),
        ('[{"id": "a"} {"id": "b"}]', "line 1, column 14: Expecting ',' delimiter"),
        ('[{"id": "a"},]', "line 1, column 14: Expecting value"),
        ('[{"id": "a"}', "line 1, column 13: Expecting ',' delimiter"),
        ('[{"id": "a"}]\n[]', "line 2, column 1: Extra data"),
        ('{"predictions" []}', "line 1, column 16: Expecting ':' delimiter"),
        ('{"model": {}, }', "line 1, column 15: Expecting property name enclosed in double quotes"),
        ("{'predictions': []}", "line 1, column 2: Expecting property name enclosed in double quotes"),
    ],
)
def test_malformed_json_is_an_input_error(write, content, where):
    with pytest.raises(InputError, match=f"invalid JSON at {where}$"):
        read_batch_input(write("preds.json", content))


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"date": "2026-11-23"}', 'no "predictions" list'),
        ("{}", 'no "predictions" list'),
        ('{"predictions": {"id": "a"}}', '"predictions" must be a list, got object'),
        ('"just a string"', "got string"),
        ("42", "got number"),
        ('{"predictions": [],\n "predictions": []}', 'duplicate key "predictions" at line 2'),
    ],
)
def test_json_without_a_predictions_list_is_an_input_error(write, content, problem):
    with pytest.raises(InputError, match=problem):
        read_batch_input(write("preds.json", content))


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("label,value", 'no "id" column'),
        ("id,value,value", 'duplicate column name in the header: "value"'),
        ("id,,value", r"empty column name in the header \(column 2\)"),
        ("", "empty CSV file"),
    ],
)
def test_bad_csv_header_is_an_input_error(write, header, problem):
    with pytest.raises(InputError, match=problem):
        read_batch_input(write("preds.csv", header + "\n"))


def test_invalid_utf8_names_the_byte_offset(write):
    with pytest.raises(InputError, match="not valid UTF-8 at byte offset 9"):
        read_batch_input(write("preds.jsonl", b'{"id": "a\xff"}\n'))


def test_corrupt_gzip_is_an_input_error(tmp_path):
    path = tmp_path / "preds.json.gz"
    path.write_bytes(b"not gzip at all")

    with pytest.raises(InputError, match="not a readable gzip file"):
        read_batch_input(path)


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot read the file"):
        read_batch_input(tmp_path / "nope.json")


# --- progress --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["preds.json", "preds.jsonl", "preds.csv"])
def test_progress_is_reported_every_10000_rows(write, name):
    ids = [f"sku-{i}" for i in range(25_000)]
    content = {
        "preds.json": json.dumps({"predictions": [{"id": i} for i in ids]}),
        "preds.jsonl": jsonl(*(json.dumps({"id": i}) for i in ids)),
        "preds.csv": "id\n" + "\n".join(ids) + "\n",
    }[name]
    calls: list[int] = []

    parsed = read_batch_input(write(name, content), progress=calls.append)

    assert calls == [10_000, 20_000]
    assert len(parsed.predictions) == 25_000
    assert parsed.errors == []


def test_a_quoted_csv_cell_stays_text(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('id,code,empty,n\n007,"42","",3\n', encoding="utf-8")
    parsed = read_batch_input(str(path))
    assert parsed.errors == []
    assert parsed.predictions == [{"id": "007", "code": "42", "empty": "", "n": 3}]


def test_a_file_that_quotes_everything_still_gets_numbers(tmp_path):
    """QUOTE_ALL exports (every header cell quoted) carry no meaning in their quotes."""
    path = tmp_path / "all.csv"
    path.write_text('"id","value","label"\n"a","42.5","x"\n', encoding="utf-8")
    parsed = read_batch_input(str(path))
    assert parsed.errors == []
    assert parsed.predictions == [{"id": "a", "value": 42.5, "label": "x"}]
