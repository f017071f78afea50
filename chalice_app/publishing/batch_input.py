"""Read and validate the predictions file a model job produced, before anything is uploaded.

No AWS here: the publish command calls read_batch_input, prints every error, and only uploads
when the list is empty.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import NoReturn

from chalice_app.contract import ID_PATTERN, is_scalar, is_valid_date

FORMATS = ("json", "jsonl", "csv")
META_KEYS = ("date", "generated_at", "model", "fields")
PROGRESS_EVERY = 10_000

_EXTENSIONS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
_SHOWN_PATTERN = f"^{ID_PATTERN.pattern}$"
_MAX_SHOWN = 60
# The JSON number grammar: it has no leading zeros, no '+', no '.5', no nan/inf and no
# whitespace, which is exactly the set of CSV cells we may turn into numbers safely.
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_WS = re.compile(r"[ \t\n\r]*")
# Most values are one of these; checking the type first skips a function call per value.
_PLAIN_TYPES = frozenset({str, int, bool, type(None)})


class InputError(Exception):
    """The file as a whole cannot be read; str() is one clear line naming the file.

    e.g. 'preds.json: invalid JSON at line 3, column 5: Expecting value'
    """


@dataclass(frozen=True)
class RowError:
    """One problem with one row (line is None when the problem is not tied to a line)."""

    line: int | None
    message: str

    def __str__(self) -> str:
        return self.message if self.line is None else f"line {self.line}: {self.message}"


@dataclass
class ParsedInput:
    """The rows of a file in file order, their line numbers, the batch metadata and every problem found."""

    predictions: list[dict]
    lines: list[int]
    meta: dict
    errors: list[RowError]


def detect_format(path: str | os.PathLike[str]) -> str:
    """'json', 'jsonl' or 'csv' from the file name; a trailing .gz is ignored."""
    name = os.fspath(path)
    lowered = name.lower().removesuffix(".gz")
    fmt = _EXTENSIONS.get(os.path.splitext(lowered)[1])
    if fmt is None:
        raise InputError(
            f"{name}: cannot tell the format from the file name; "
            "expected .json, .jsonl, .ndjson or .csv (optionally followed by .gz)"
        )
    return fmt


def read_batch_input(
    path: str | os.PathLike[str],
    fmt: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ParsedInput:
    """Read and validate a predictions file; problems with rows end up in .errors, not raised."""
    name = os.fspath(path)
    if fmt is None:
        fmt = detect_format(name)
    elif fmt not in FORMATS:
        raise InputError(f"{name}: unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    text = _read_text(name)
    meta: dict = {}
    meta_errors: list[RowError] = []
    parse_errors: list[RowError] = []
    if fmt == "json":
        rows, lines, meta, meta_errors = _read_json(name, text, progress)
    elif fmt == "jsonl":
        rows, lines, parse_errors = _read_jsonl(text, progress)
    else:
        rows, lines, parse_errors = _read_csv(name, text, progress)

    row_errors = validate_rows(rows, lines)
    if not rows and parse_errors:
        # The rows are there but unreadable; "no predictions" on top of that would mislead.
        row_errors = []
    errors = meta_errors + parse_errors + row_errors
    if meta_errors or parse_errors:
        # Each list is already in file order; a stable sort interleaves them. Line-less last.
        errors.sort(key=lambda e: (e.line is None, e.line or 0))
    return ParsedInput(predictions=rows, lines=lines, meta=meta, errors=errors)


def validate_rows(rows: list, lines: list[int]) -> list[RowError]:
    """Every problem with the rows, in row order; lines[i] is the line row i starts on."""
    if len(rows) != len(lines):
        raise ValueError(f"got {len(rows)} rows but {len(lines)} line numbers")
    if not rows:
        return [RowError(None, "no predictions in the file")]
    errors: list[RowError] = []
    first_seen: dict[str, int] = {}
    id_match = ID_PATTERN.fullmatch
    for row, line in zip(rows, lines, strict=True):
        if type(row) is not dict:
            errors.append(RowError(line, f"expected an object, got {_kind(row)}"))
            continue
        if "id" not in row:
            errors.append(RowError(line, "missing id"))
        else:
            row_id = row["id"]
            if not isinstance(row_id, str):
                got = "null" if row_id is None else f"{_kind(row_id)} {_show(row_id)}"
                errors.append(RowError(line, f"id must be a string, got {got}"))
            elif id_match(row_id) is None:
                errors.append(RowError(line, f"id {_show(row_id)} does not match {_SHOWN_PATTERN}"))
            elif row_id in first_seen:
                errors.append(
                    RowError(
                        line,
                        f"duplicate id {_show(row_id)} (first seen on line {first_seen[row_id]})",
                    )
                )
            else:
                first_seen[row_id] = line
        if "" in row:
            errors.append(RowError(line, "empty field name"))
        for key, value in row.items():
            kind = type(value)
            # Inline fast paths for the common cases (x - x is 0.0 exactly when x is finite);
            # contract.is_scalar has the last word on everything else.
            if kind in _PLAIN_TYPES or (kind is float and value - value == 0.0) or key == "id":
                continue
            if is_scalar(value):
                continue
            if isinstance(value, float):
                message = f"field {_show(key)} must be a finite number, got {_show(value)}"
            else:
                message = f"field {_show(key)} must be a string, number, boolean or null, got {_kind(value)}"
            errors.append(RowError(line, message))
    return errors


def parse_csv_cell(text: str) -> str | int | float | None:
    """'' -> None; a plain decimal number -> int or float; anything else stays the string."""
    if not text:
        return None
    if text[0] not in "-0123456789":
        return text
    match = _NUMBER.fullmatch(text)
    if match is None:
        return text
    if match.lastindex is None:  # neither a fraction nor an exponent
        try:
            return int(text)
        except ValueError:  # more digits than Python will convert
            return text
    value = float(text)
    if match.lastindex == 1 and len(text) <= 16:
        # No exponent and at most 15 significant digits: a double holds that exactly (DBL_DIG).
        return value
    if not math.isfinite(value):
        return text
    shortest = repr(value)
    # Underflow to 0.0 or more digits than a float holds would change the value; when the
    # shortest repr is the text itself it cannot have, so Decimal is only paid for '1e3' & co.
    if shortest != text and Decimal(shortest) != Decimal(text):
        return text
    return value


# --- reading -------------------------------------------------------------------------------


def _read_text(name: str) -> str:
    gzipped = name.lower().endswith(".gz")
    try:
        if gzipped:
            with gzip.open(name, "rb") as f:
                data = f.read()
        else:
            with open(name, "rb") as f:
                data = f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise InputError(f"{name}: not a readable gzip file: {e}") from e
    except OSError as e:
        raise InputError(f"{name}: cannot read the file: {e.strerror or e}") from e
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        where = " of the decompressed data" if gzipped else ""
        raise InputError(f"{name}: not valid UTF-8 at byte offset {e.start}{where}") from e
    # Tools on Windows like to write a BOM; it is not part of the content.
    return text.removeprefix("\ufeff")


def _read_json(
    name: str, text: str, progress: Callable[[int], None] | None
) -> tuple[list, list[int], dict, list[RowError]]:
    try:
        return _JsonWalker(text, progress).read()
    except json.JSONDecodeError as e:
        raise InputError(f"{name}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from e
    except RecursionError as e:
        raise InputError(f"{name}: invalid JSON: nested too deeply") from e
    except _DocumentError as e:
        raise InputError(f"{name}: {e}") from e


class _DocumentError(Exception):
    """Valid JSON, but not a shape we accept."""


class _JsonWalker:
    """Walks the top level by hand so each row's starting line is known.

    Values themselves are decoded by json's C scanner (what raw_decode calls); only the
    punctuation between them is handled here. Lines are counted incrementally from the last
    position, so the whole walk stays linear in the file size.
    """

    def __init__(self, text: str, progress: Callable[[int], None] | None) -> None:
        self.text = text
        self.progress = progress
        self.decode = json.JSONDecoder().raw_decode
        self.line = 1
        self.counted_to = 0

    def line_at(self, pos: int) -> int:
        self.line += self.text.count("\n", self.counted_to, pos)
        self.counted_to = pos
        return self.line

    def skip_ws(self, pos: int) -> int:
        return _WS.match(self.text, pos).end()

    def fail(self, message: str, pos: int) -> NoReturn:
        raise json.JSONDecodeError(message, self.text, pos)

    def read(self) -> tuple[list, list[int], dict, list[RowError]]:
        pos = self.skip_ws(0)
        first = self.text[pos : pos + 1]
        if first == "[":
            rows, lines, pos = self.walk_array(pos)
            meta: dict = {}
            meta_errors: list[RowError] = []
        elif first == "{":
            rows, lines, meta, meta_errors, pos = self.walk_document(pos)
        else:
            value, pos = self.decode(self.text, pos)  # raises on invalid JSON, as it should
            raise _DocumentError(f"expected a batch document or a list of predictions, got {_kind(value)}")
        pos = self.skip_ws(pos)
        if pos != len(self.text):
            self.fail("Extra data", pos)
        return rows, lines, meta, meta_errors

    def walk_array(self, pos: int) -> tuple[list, list[int], int]:
        """pos is at '['; returns the elements, their lines and the position after ']'."""
        # The hot loop of the module: everything is a local, whitespace is only matched
        # when there is some, and the C scanner is called directly (raw_decode is a thin
        # Python wrapper around it).
        text, progress = self.text, self.progress
        scan = json.JSONDecoder().scan_once
        ws_match, ws_chars, count = _WS.match, " \t\n\r", text.count
        line, counted_to = self.line, self.counted_to
        rows: list = []
        lines: list[int] = []
        append_row, append_line = rows.append, lines.append
        pos = ws_match(text, pos + 1).end()
        if text.startswith("]", pos):
            return rows, lines, pos + 1
        while True:
            line += count("\n", counted_to, pos)
            counted_to = pos
            append_line(line)
            try:
                value, pos = scan(text, pos)
            except StopIteration as e:
                self.fail("Expecting value", e.value)
            append_row(value)
            if progress is not None and len(rows) % PROGRESS_EVERY == 0:
                progress(len(rows))
            char = text[pos : pos + 1]
            if char and char in ws_chars:
                pos = ws_match(text, pos).end()
                char = text[pos : pos + 1]
            if char == ",":
                pos = ws_match(text, pos + 1).end()
            elif char == "]":
                self.line, self.counted_to = line, counted_to
                return rows, lines, pos + 1
            else:
                self.fail("Expecting ',' delimiter", pos)

    def walk_document(self, pos: int) -> tuple[list, list[int], dict, list[RowError], int]:
        """pos is at '{'; returns rows, lines, meta, meta errors and the position after '}'."""
        text, decode = self.text, self.decode
        rows: list | None = None
        lines: list[int] = []
        meta: dict = {}
        meta_errors: list[RowError] = []
        seen: set[str] = set()
        pos = self.skip_ws(pos + 1)
        if text.startswith("}", pos):
            raise _DocumentError('no "predictions" list in the document')
        while True:
            if not text.startswith('"', pos):
                self.fail("Expecting property name enclosed in double quotes", pos)
            key_pos = pos
            key, pos = decode(text, pos)
            if key in seen:
                # json.loads would silently keep the last one; a producer writing a key twice
                # is broken, and guessing which copy it meant is worse than stopping.
                raise _DocumentError(f'duplicate key "{key}" at line {self.line_at(key_pos)}')
            seen.add(key)
            pos = self.skip_ws(pos)
            if not text.startswith(":", pos):
                self.fail("Expecting ':' delimiter", pos)
            pos = self.skip_ws(pos + 1)
            if key == "predictions" and text.startswith("[", pos):
                rows, lines, pos = self.walk_array(pos)
            else:
                value_line = self.line_at(pos)
                value, pos = decode(text, pos)
                if key == "predictions":
                    raise _DocumentError(
                        f'"predictions" must be a list, got {_kind(value)} (line {value_line})'
                    )
                if key in META_KEYS:
                    meta[key] = value
                    if key == "date" and not is_valid_date(value):
                        meta_errors.append(
                            RowError(
                                value_line,
                                f"date {_show(value)} is not a YYYY-MM-DD date",
                            )
                        )
            pos = self.skip_ws(pos)
            char = text[pos : pos + 1]
            if char == "}":
                pos += 1
                break
            if char != ",":
                self.fail("Expecting ',' delimiter", pos)
            pos = self.skip_ws(pos + 1)
        if rows is None:
            raise _DocumentError('no "predictions" list in the document')
        return rows, lines, meta, meta_errors, pos


def _read_jsonl(text: str, progress: Callable[[int], None] | None) -> tuple[list, list[int], list[RowError]]:
    rows: list = []
    lines: list[int] = []
    errors: list[RowError] = []
    loads = json.loads
    # Not splitlines(): it also splits on U+2028 and friends, which JSON strings may hold raw.
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            value = loads(raw)
        except json.JSONDecodeError as e:
            errors.append(RowError(number, f"invalid JSON at column {e.colno}: {e.msg}"))
            continue
        except RecursionError:
            errors.append(RowError(number, "invalid JSON: nested too deeply"))
            continue
        rows.append(value)
        lines.append(number)
        if progress is not None and len(rows) % PROGRESS_EVERY == 0:
            progress(len(rows))
    return rows, lines, errors


def _read_csv(
    name: str, text: str, progress: Callable[[int], None] | None
) -> tuple[list, list[int], list[RowError]]:
    # newline='' so quoted cells keep their own line breaks and csv sees every kind of line end.
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
        while not header:  # blank lines before the header
            header = next(reader)
    except StopIteration:
        raise InputError(f"{name}: empty CSV file, expected a header row") from None
    except csv.Error as e:
        raise InputError(f"{name}: unreadable CSV at line {reader.line_num}: {e}") from e
    _check_header(name, header)

    id_index = header.index("id")
    width = len(header)
    rows: list = []
    lines: list[int] = []
    errors: list[RowError] = []
    parse = parse_csv_cell
    before = reader.line_num
    try:
        for cells in reader:
            # A record starts on the line after the previous one ended, even if a quoted
            # cell makes it span several lines.
            line = before + 1
            before = reader.line_num
            if not cells:
                continue
            if len(cells) != width:
                errors.append(
                    RowError(
                        line,
                        f"expected {width} cells (one per header column), got {len(cells)}",
                    )
                )
                continue
            row = dict(zip(header, map(parse, cells), strict=True))
            row["id"] = cells[id_index]  # ids like '00017' must not become numbers
            rows.append(row)
            lines.append(line)
            if progress is not None and len(rows) % PROGRESS_EVERY == 0:
                progress(len(rows))
    except csv.Error as e:
        raise InputError(f"{name}: unreadable CSV at line {reader.line_num}: {e}") from e
    return rows, lines, errors


def _check_header(name: str, header: list[str]) -> None:
    empty = [str(i) for i, column in enumerate(header, start=1) if column == ""]
    if empty:
        raise InputError(f"{name}: empty column name in the header (column {', '.join(empty)})")
    seen: set[str] = set()
    duplicates: list[str] = []
    for column in header:
        if column in seen and column not in duplicates:
            duplicates.append(column)
        seen.add(column)
    if duplicates:
        raise InputError(f"{name}: duplicate column name in the header: {', '.join(map(_show, duplicates))}")
    if "id" not in seen:
        raise InputError(f'{name}: no "id" column in the header (columns: {", ".join(map(_show, header))})')


# --- messages ------------------------------------------------------------------------------


def _kind(value: object) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def _show(value: object) -> str:
    """A value as JSON (so strings get double quotes), cut to a readable length."""
    try:
        shown = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        shown = repr(value)
    if len(shown) > _MAX_SHOWN:
        shown = shown[: _MAX_SHOWN - 3] + "..."
    return shown
