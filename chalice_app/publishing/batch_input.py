"""Read and validate the predictions file a model job produced, before anything is uploaded.

No AWS here: the publish command calls read_batch_input, prints every error, and only uploads
when the list is empty.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import math
import os
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import BinaryIO, NoReturn

from chalice_app.config.settings import Settings
from chalice_app.contract import (
    ID_PATTERN,
    MAX_FLOAT_MAGNITUDE,
    MAX_SAFE_INTEGER,
    NUMBER_RULE,
    fields_problem,
    generated_at_problem,
    has_text_form,
    is_number_in_range,
    is_scalar,
    is_valid_date,
)

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
_PLAIN_TYPES = frozenset({bool, type(None)})
_DEFAULTS = Settings()
DEFAULT_MAX_BYTES = _DEFAULTS.max_batch_bytes
DEFAULT_MAX_DEPTH = _DEFAULTS.max_json_depth
READ_CHUNK = 1 << 20
_BOM = b"\xef\xbb\xbf"
_LONE_CR = re.compile(r"[^\r\n]*(?:\r\n?|\n|$)")
# The first characters that make a spreadsheet run a cell as a formula (OWASP, CSV Injection); the
# site's CSV downloads (website.downloads.FORMULA_TRIGGERS, the same set) put a `'` in front of them.
FORMULA_TRIGGERS = "=+-@\t\r"
_MARKED = re.compile("'+[" + re.escape(FORMULA_TRIGGERS) + "]")


class InputError(Exception):
    """The file as a whole cannot be read; str() is one clear line naming the file.

    e.g. 'preds.json: invalid JSON at line 3, column 5: Expecting value'
    """


class InputTooLarge(InputError):
    """More bytes (once decompressed) than the limit; reading stopped at the limit."""

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class DuplicateKeys(dict):
    """A JSON object that wrote a key more than once; validation refuses it (json keeps the last)."""

    __slots__ = ("duplicate",)


def _object_pairs(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        obj = DuplicateKeys(obj)
        obj.duplicate = twice
    return obj


def _decoder() -> json.JSONDecoder:
    return json.JSONDecoder(object_pairs_hook=_object_pairs)


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
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> ParsedInput:
    """Read and validate a predictions file; problems with rows end up in .errors, not raised.

    At most `max_bytes` bytes are ever read (decompressed, for .gz): a bigger file raises
    InputTooLarge without being read to its end. JSON Lines and CSV are read as a stream; a JSON
    document is held once as text (it is one value). JSON nested deeper than `max_depth` levels is
    refused, and so is an object that writes a key twice.
    """
    name = os.fspath(path)
    if fmt is None:
        fmt = detect_format(name)
    elif fmt not in FORMATS:
        raise InputError(f"{name}: unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    meta: dict = {}
    meta_errors: list[RowError] = []
    parse_errors: list[RowError] = []
    gzipped = name.lower().endswith(".gz")
    try:
        with _open_bounded(name, max_bytes, gzipped) as stream:
            if fmt == "json":
                text = _read_all_text(name, stream, gzipped)
            elif fmt == "jsonl":
                rows, lines, parse_errors = _read_jsonl(_lines(name, stream, gzipped), progress, max_depth)
            else:
                rows, lines, parse_errors = _read_csv(name, _lines(name, stream, gzipped), progress)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise InputError(f"{name}: not a readable gzip file: {e}") from e
    except OSError as e:
        raise InputError(f"{name}: cannot read the file: {e.strerror or e}") from e
    if fmt == "json":
        rows, lines, meta, meta_errors = _read_json(name, text, progress, max_depth)
        del text

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
            if isinstance(row, DuplicateKeys):
                errors.append(RowError(line, f"key {_show(row.duplicate)} appears more than once; "
                                             "write each field once"))
            else:
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
            # Inline fast paths for the common cases; contract.is_scalar has the last word on
            # everything else.
            if (kind is str and value.isascii()) or kind in _PLAIN_TYPES or key == "id" or (
                    kind is float and -MAX_FLOAT_MAGNITUDE <= value <= MAX_FLOAT_MAGNITUDE) or (
                    kind is int and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER):
                if key.isascii() or has_text_form(key):
                    continue
                errors.append(RowError(line, f"field name {_show(key)} holds a lone surrogate "
                                             "(\\ud800-\\udfff), which has no UTF-8 form"))
                continue
            if is_scalar(value):
                continue
            if isinstance(value, float) and not math.isfinite(value):
                message = f"field {_show(key)} must be a finite number, got {_show(value)}"
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                message = f"field {_show(key)}: number {_show(value)} is out of range; allowed: {NUMBER_RULE}"
            elif isinstance(value, str):
                message = (f"field {_show(key)} holds a lone surrogate (\\ud800-\\udfff), which has no "
                           "UTF-8 form")
            elif isinstance(value, DuplicateKeys):
                message = f"field {_show(key)} must be a string, number, boolean or null, got object"
            else:
                message = f"field {_show(key)} must be a string, number, boolean or null, got {_kind(value)}"
            errors.append(RowError(line, message))
    return errors


def parse_csv_cell(text: str) -> str | int | float | None:
    """'' -> None; a plain decimal number -> int or float; anything else stays the string.

    A number becomes a number only when every reader gets it exactly as written and the contract
    takes it (contract.NUMBER_RULE): 007, 0.1000000000000000000001, 12345678901234567890 and 1e999
    stay text rather than lose digits or be refused.
    """
    if not text:
        return None
    if text[0] not in "-0123456789":
        return text
    match = _NUMBER.fullmatch(text)
    if match is None:
        return text
    if match.lastindex is None:  # neither a fraction nor an exponent
        if len(text) > 17:  # more digits than the contract's largest integer has
            return text
        number = int(text)
        return number if -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER else text
    value = float(text)
    if not is_number_in_range(value):  # also inf from 1e999
        return text
    if match.lastindex == 1 and len(text) <= 16:
        # No exponent and at most 15 significant digits: a double holds that exactly (DBL_DIG).
        return value
    shortest = repr(value)
    # Underflow to 0.0 or more digits than a float holds would change the value; when the
    # shortest repr is the text itself it cannot have, so Decimal is only paid for '1e3' & co.
    if shortest != text and Decimal(shortest) != Decimal(text):
        return text
    return value


def restore_formula(text: str) -> str:
    """Undo the site's CSV mark against formula injection: one `'` off text that starts with one or
    more `'` and then one of FORMULA_TRIGGERS (=, +, -, @, tab, carriage return); other text as is.

    The downloads (website.downloads.neutralise_formula) put one `'` in front of text that starts
    with zero or more `'` and then a trigger, so `=1+2` -> `'=1+2` -> `=1+2` and `'=x` -> `''=x` ->
    `'=x`, while `'x`, `''x` and a lone `'` were never marked and are kept. Written then read, every
    string comes back exactly. A file from elsewhere that means a literal `'=` loses that `'`.
    """
    return text[1:] if text.startswith("'") and _MARKED.match(text) else text


# --- reading -------------------------------------------------------------------------------


class _Capped(io.RawIOBase):
    """A read-only stream that raises InputTooLarge as soon as more than `limit` bytes came through."""

    def __init__(self, inner: BinaryIO, limit: int, message: str) -> None:
        self.inner = inner
        self.limit = limit
        self.message = message
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 - any writable buffer
        # Never ask for more than one byte past the limit: a gzip bomb is inflated no further.
        view = memoryview(buffer)[: max(1, min(len(buffer), self.limit + 1 - self.total))]
        n = self.inner.readinto(view) or 0
        self.total += n
        if self.total > self.limit:
            raise InputTooLarge(self.message, self.limit)
        return n


@contextlib.contextmanager
def _open_bounded(name: str, max_bytes: int, gzipped: bool) -> Iterator[io.BufferedReader]:
    """The file's (decompressed) bytes as a stream that refuses to yield more than max_bytes.

    A plain file's size is checked before anything is read; a .gz file is inflated chunk by
    chunk, so a bomb costs at most max_bytes of work, never memory beyond a chunk.
    """
    what = "bytes once decompressed" if gzipped else "bytes"
    message = (f"{name}: more than {max_bytes:,} {what}; the limit is {max_bytes:,} bytes")
    with open(name, "rb") as raw:
        if not gzipped:
            size = os.fstat(raw.fileno()).st_size
            if size > max_bytes:
                raise InputTooLarge(f"{name}: {size:,} bytes; the limit is {max_bytes:,} bytes", max_bytes)
        inner: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw  # type: ignore[assignment]
        with io.BufferedReader(_Capped(inner, max_bytes, message), buffer_size=1 << 16) as stream:
            yield stream


def _read_all_text(name: str, stream: io.BufferedReader, gzipped: bool) -> str:
    data = bytearray()
    while chunk := stream.read(READ_CHUNK):
        data += chunk
    start = 3 if data.startswith(_BOM) else 0  # tools on Windows write a BOM; it is not content
    try:
        return str(memoryview(data)[start:], "utf-8")
    except UnicodeDecodeError as e:
        where = " of the decompressed data" if gzipped else ""
        raise InputError(f"{name}: not valid UTF-8 at byte offset {e.start + start}{where}") from e


MAX_LINE_BYTES = 1 << 20  # one row of CSV or JSON Lines


def _lines(name: str, stream: io.BufferedReader, gzipped: bool) -> Iterator[str]:
    """The file's lines, each with its line end, split at b'\\n' only (JSON strings may hold U+2028)."""
    offset = 0
    number = 0
    while raw := stream.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            # A row is small; a line this long is a broken or hostile file, not one to hold whole.
            raise InputError(f"{name}: line {number} is longer than {MAX_LINE_BYTES:,} bytes")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            where = " of the decompressed data" if gzipped else ""
            raise InputError(f"{name}: not valid UTF-8 at byte offset {offset + e.start}{where}") from e
        if offset == 0:
            line = line.removeprefix("\ufeff")
        offset += len(raw)
        yield line


def _read_json(
    name: str, text: str, progress: Callable[[int], None] | None, max_depth: int = DEFAULT_MAX_DEPTH
) -> tuple[list, list[int], dict, list[RowError]]:
    try:
        return _JsonWalker(text, progress, max_depth).read()
    except json.JSONDecodeError as e:
        raise InputError(f"{name}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from e
    except RecursionError as e:
        raise InputError(f"{name}: {_too_deep(max_depth)}") from e
    except _DocumentError as e:
        raise InputError(f"{name}: {e}") from e


def _too_deep(max_depth: int) -> str:
    return f"JSON nested deeper than {max_depth} levels (MAX_JSON_DEPTH)"


def _value_problem(value: object, limit: int) -> str | None:
    """Deeper than `limit` levels (a scalar is 0 deep), or an object writing a key twice? None if neither.

    Iterative, so it cannot itself run out of stack on what json's scanner managed to build.
    """
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if isinstance(item, DuplicateKeys):
                return f"key {_show(item.duplicate)} appears more than once in an object"
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return _too_deep(limit + 1)
        stack.extend((child, depth + 1) for child in children)
    return None


class _DocumentError(Exception):
    """Valid JSON, but not a shape we accept."""


class _JsonWalker:
    """Walks the top level by hand so each row's starting line is known.

    Values themselves are decoded by json's C scanner (what raw_decode calls); only the
    punctuation between them is handled here. Lines are counted incrementally from the last
    position, so the whole walk stays linear in the file size.
    """

    def __init__(self, text: str, progress: Callable[[int], None] | None,
                 max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        self.text = text
        self.progress = progress
        self.max_depth = max_depth
        self.decode = _decoder().raw_decode
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
        scan = _decoder().scan_once
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
            except RecursionError:
                raise _DocumentError(f"line {line}: {_too_deep(self.max_depth)}") from None
            except json.JSONDecodeError:
                raise
            except ValueError:  # an integer of more than 4300 digits
                raise _DocumentError(f"line {line}: a number with more digits than JSON readers take") from None
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
                try:
                    value, pos = decode(text, pos)
                except RecursionError:
                    raise _DocumentError(f"line {value_line}: {_too_deep(self.max_depth)}") from None
                except json.JSONDecodeError:
                    raise
                except ValueError:  # an integer of more than 4300 digits
                    raise _DocumentError(
                        f"line {value_line}: a number with more digits than JSON readers take") from None
                # The document is level 1, so its values may be max_depth - 1 deep.
                problem = _value_problem(value, self.max_depth - 1)
                if problem:
                    meta_errors.append(RowError(value_line, f'"{_printable(key)}": {problem}'))
                    bad_shape = True
                else:
                    bad_shape = False
                if key == "predictions":
                    raise _DocumentError(
                        f'"predictions" must be a list, got {_kind(value)} (line {value_line})'
                    )
                if key in META_KEYS and not bad_shape:
                    meta[key] = value
                    problem = _meta_problem(key, value)
                    if problem:
                        meta_errors.append(RowError(value_line, problem))
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


def _meta_problem(key: str, value: object) -> str | None:
    if key == "date":
        return None if is_valid_date(value) else f"date {_show(value)} is not a YYYY-MM-DD date"
    if key == "model":
        # name and version may come from the command line; their checks come with the document's.
        return None if isinstance(value, dict) else (
            f'model must be an object with string "name" and "version", got {_kind(value)} {_show(value)}')
    if key == "fields":
        return fields_problem(value)
    if key == "generated_at":
        return generated_at_problem(value)
    return None


def _printable(key: str) -> str:
    return ascii(key[:40])[1:-1]


def _read_jsonl(
    lines_in: Iterator[str], progress: Callable[[int], None] | None, max_depth: int = DEFAULT_MAX_DEPTH
) -> tuple[list, list[int], list[RowError]]:
    rows: list = []
    lines: list[int] = []
    errors: list[RowError] = []
    decode = _decoder().decode
    # Split at "\n" only (_lines): splitlines() would also split on U+2028, which JSON strings may hold raw.
    for number, raw in enumerate(lines_in, start=1):
        if not raw.strip():
            continue
        try:
            value = decode(raw)
        except json.JSONDecodeError as e:
            errors.append(RowError(number, f"invalid JSON at column {e.colno}: {e.msg}"))
            continue
        except RecursionError:
            errors.append(RowError(number, _too_deep(max_depth)))
            continue
        except ValueError:  # an integer of more than 4300 digits
            errors.append(RowError(number, "a number with more digits than JSON readers take"))
            continue
        if type(value) is not dict:  # a flat row is 2 deep; anything else is refused by validate_rows
            problem = _value_problem(value, max_depth)
            if problem and not isinstance(value, DuplicateKeys):
                errors.append(RowError(number, problem))
                continue
        rows.append(value)
        lines.append(number)
        if progress is not None and len(rows) % PROGRESS_EVERY == 0:
            progress(len(rows))
    return rows, lines, errors


def _csv_lines(lines_in: Iterator[str]) -> Iterator[str]:
    """Lines as open(newline='') gives them: a lone \\r also ends one (csv needs to see it)."""
    for line in lines_in:
        if "\r" in line and line.find("\r") != len(line) - 2:
            yield from (piece for piece in _LONE_CR.findall(line) if piece)
        else:
            yield line


def _read_csv(
    name: str, lines_in: Iterator[str], progress: Callable[[int], None] | None
) -> tuple[list, list[int], list[RowError]]:
    # Line ends kept, so quoted cells keep their own line breaks and csv sees every kind of line end.
    # The raw text of each record is kept too: csv drops the quotes, and a quoted cell is text.
    consumed: list[str] = []

    def fed(lines: Iterator[str]) -> Iterator[str]:
        for line in lines:
            consumed.append(line)
            yield line

    reader = csv.reader(fed(_csv_lines(lines_in)))
    try:
        header = next(reader)
        while not header:  # blank lines before the header
            header = next(reader)
    except StopIteration:
        raise InputError(f"{name}: empty CSV file, expected a header row") from None
    except csv.Error as e:
        raise InputError(f"{name}: unreadable CSV at line {reader.line_num}: {e}") from e
    # Field names are marked like any other cell; unmarked before the checks, so two columns that
    # are the same name once read (`'=a` and `=a`) are caught as duplicates.
    header = [restore_formula(column) for column in header]
    _check_header(name, header)
    # A file that quotes every header cell quotes everything (QUOTE_ALL exports): there, quotes
    # carry no meaning. Otherwise a quoted cell is text, as the site's CSV downloads write it.
    quotes_mean_text = not all(_quoted_cells("".join(consumed).lstrip("\r\n")))

    id_index = header.index("id")
    width = len(header)
    rows: list = []
    lines: list[int] = []
    errors: list[RowError] = []
    parse = parse_csv_cell
    before = reader.line_num
    consumed.clear()
    try:
        for cells in reader:
            raw = "".join(consumed)
            consumed.clear()
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
            row_id = cells[id_index]  # ids like '00017' must not become numbers
            values: Iterable[str | int | float | None]
            if quotes_mean_text and '"' in raw:
                # "007", "42" and "" were quoted to stay text: only unquoted cells are parsed.
                quoted = _quoted_cells(raw)
                values = [cell if q else parse(cell) for cell, q in zip(cells, quoted, strict=False)]
            else:
                values = map(parse, cells)
            if "'" in raw:
                # Unmarked after parsing: `'-3.5` was text in the download and stays the text "-3.5".
                values = [restore_formula(v) if type(v) is str else v for v in values]
                row_id = restore_formula(row_id)
            row = dict(zip(header, values, strict=True))
            row["id"] = row_id
            rows.append(row)
            lines.append(line)
            if progress is not None and len(rows) % PROGRESS_EVERY == 0:
                progress(len(rows))
    except csv.Error as e:
        raise InputError(f"{name}: unreadable CSV at line {reader.line_num}: {e}") from e
    return rows, lines, errors


def _quoted_cells(record: str) -> list[bool]:
    """For each cell of one raw CSV record (RFC 4180), whether it was written in quotes."""
    flags: list[bool] = []
    pos, end = 0, len(record)
    while True:
        quoted = record.startswith('"', pos)
        flags.append(quoted)
        if quoted:
            pos += 1
            while pos < end:
                close = record.find('"', pos)
                if close < 0:
                    return flags
                if record.startswith('""', close):
                    pos = close + 2
                    continue
                pos = close + 1
                break
        comma = record.find(",", pos)
        if comma < 0:
            return flags
        pos = comma + 1


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
    if isinstance(value, str) and not has_text_form(value):
        value = value.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
    try:
        shown = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        shown = f"<{_kind(value)}>"
    if len(shown) > _MAX_SHOWN:
        shown = shown[: _MAX_SHOWN - 3] + "..."
    return shown
