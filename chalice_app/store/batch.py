"""One parsed batch held in memory: indexed by id, with sorted and filtered views computed once.

Pure Python, no AWS: the store builds a Batch from the bytes it read, and every request is then
answered from these structures. Sort orders and filters are cached per batch, so a request does
no work proportional to the batch size once its view exists.

A batch read from S3 (`Batch.from_json`) is not held as a dict per prediction: a million rows of
117 bytes would take ~800 MB that way. It keeps the document's bytes, the byte offset of every row
(one compact `array`, 4 bytes a row) and the id index. Loading checks every row as strictly as
contract_json reads a document; a lookup then parses its one row (a page, its run of rows) again
(plainly: the bytes were proven), so an id or a page costs the same at 1k rows as at 1M; each item's JSON answer is kept
once made. A batch of more than `max_items` rows is refused (ObjectTooLarge) before it is held.

How loading stays fast without a dict per row (docs/performance.md): rows that are flat objects with
the same keys in the same order (what a model job writes) are checked a window of ~256 KiB at a time
by one regular expression built for those keys, in C: the JSON grammar (strings, escapes, numbers,
literals), each key exactly once, a valid id, a surrogate escape only in a pair, no number too
large for a float; UTF-8 by a decode. The rows' offsets come from splitting the window on its rows' opening bytes and
the ids from one findall. Anything that pattern does not take (nested values, other keys, escapes in
keys, lone surrogate escapes, exponents of 3 digits, ...) is read by the exact reader, a chunk of
~64 KiB at a time (contract_json, then the decoder for the offsets), which also names every error.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterator
from itertools import accumulate, chain, count, pairwise, repeat
from operator import add
from typing import Any

from chalice_app.contract import ID_PATTERN, is_valid_date
from chalice_app.jsontext import encode, html_safe
from chalice_app.store import contract_json
from chalice_app.store.sources import CorruptObject, ObjectTooLarge

# Every id of a batch, joined by newlines, matches this exactly when each one matches ID_PATTERN
# (which cannot match a newline): one regex pass in C instead of one call per row. Possessive
# (*+), so that a bad id near the end fails at once instead of backtracking through every row.
_JOINED_IDS = re.compile(rf"(?:{ID_PATTERN.pattern})(?:\n(?:{ID_PATTERN.pattern}))*+")

# Bounded so a client cycling through many q values cannot grow a container's memory without end.
MAX_CACHED_VIEWS = 64
# The exact reader parses rows this many bytes at a time (~550 rows of 117 bytes); the fast one
# checks windows of WINDOW_CHUNKS of them.
CHUNK_BYTES = 64 * 1024
WINDOW_CHUNKS = 4
# A window whose pattern stops early (the keys changed) is kept only with at least this many rows;
# otherwise the exact reader takes a chunk, so that alternating shapes cannot cost a window per row.
MIN_WINDOW_ROWS = 16
# Documents smaller than this are read by the exact reader only.
FAST_MIN_BYTES = 1024 * 1024
# Rows parsed at a time when every row is needed (a sort, a filter, the site's items).
BLOCK_ROWS = 4096
# A split that turned out to fall inside a string or a nested value is moved this many times.
MAX_SPLIT_RETRIES = 8
# The document without its rows, and a document read whole (a shape the chunked reader does not
# take), are bounded too: the first by bytes, the second by its count of "{" (an upper bound of rows).
MAX_META_BYTES = 4 * 1024 * 1024
WHOLE_PARSE_MAX_BYTES = 16 * 1024 * 1024
# What Batch.nbytes counts per row beyond the text (the id's str, its index entry, the position's
# int, a slot of the item texts), and per row held as a dict (the site's `items`).
INDEX_BYTES_PER_ROW = 136
DICT_BYTES_PER_ROW = 720
_WS = rb"[ \t\n\r]*"
_SPLIT = re.compile(rb"\}" + _WS + rb"," + _WS + rb"\{")
_KEY = re.compile(_WS + rb'"((?:[^"\\]|\\.)*)"' + _WS + rb":" + _WS)
_NEXT = re.compile(_WS + rb"([,}])")
_SPACES = re.compile(_WS)
_DECODER = json.JSONDecoder()
_ROW_TAIL = b" \t\n\r,"  # what follows a row before the next one (stripped from a row's span)

# The fast reader's grammar, in bytes (a strict subset of JSON's: what it refuses goes to the exact
# reader, never the other way round). A string: no control character, only JSON's escapes, a surrogate
# escape only as a high one then a low one (the pair the decoder joins). A number: JSON's, with at most
# 200 digits before the point and 2 in the exponent, so it is always a finite float (< 1e300).
_W = rb"[ \t\n\r]*+"
_PAIRED = rb"[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
_ESCAPE = rb'\\(?:["\\/bfnrt]|u(?:(?![dD][89a-fA-F])[0-9a-fA-F]{4}|' + _PAIRED + rb'))'
_STR = rb'"[^"\\\x00-\x1f]*+(?:' + _ESCAPE + rb'[^"\\\x00-\x1f]*+)*+"'
_NUM = rb"-?+(?:0|[1-9][0-9]{0,199}+)(?:\.[0-9]++)?+(?:[eE][-+]?+[0-9]{1,2}+)?+"
_VALUE = rb"(?:" + _STR + rb"|" + _NUM + rb"|true|false|null)"
_ID_VALUE = b'"' + ID_PATTERN.pattern.encode().replace(b"}", b"}+") + b'"'
_PAIR = _STR + _W + b":" + _W + _VALUE
# One flat row, any keys: the first row of a window, whose keys make the window's pattern.
# Compiled on first use (by re's own cache): a container whose batches are small never needs them.
_FLAT_ROW = rb"\{" + _W + _PAIR + rb"(?:" + _W + b"," + _W + _PAIR + rb")*+" + _W + rb"\}"
_ROW_SEP = re.compile(_W + b"," + _W)
_SIMPLE_KEY = re.compile(r'[^"\\\x00-\x1f]*')
# Ids of a window whose rows the pattern took (their key "id" proven to be each row's one "id").
_IDS_TEXT = (rb'"id"' + _W + b":" + _W + rb'"([^"]*+)"').decode()
# The same when every row opens with its id, as the publish command writes rows from a model's
# CSV: anchored on the row's '{' (one a row), the scan is ~20% faster than on '"' (a dozen a row).
_IDS_FIRST_TEXT = r'\{"id":[ \t\n\r]*+"([^"]*+)"'
# A proven window's rows, split at each row's opening with its id captured (_fast_window).
_ROW_ID_SPLIT = r'\{"id":"([^"]*+)"'
_ROW_ID_OVERHEAD = len('{"id":""')
MAX_PATTERNS = 32
_PATTERNS: dict[tuple[tuple[str, ...], bool], tuple[re.Pattern[bytes], re.Pattern[bytes]]] = {}


class BatchContractError(ValueError):
    """The stored document breaks the S3 contract (not the reader's fault, nor the client's)."""


class Batch:
    """A validated batch document with an id index and cached views."""

    __slots__ = (
        "_body",
        "_canonical",
        "_field_names",
        "_haystacks",
        "_head_json",
        "_item_texts",
        "_n",
        "_rows",
        "_sort_orders",
        "_starts",
        "_texts_bytes",  # what item texts and filters made on demand take (for nbytes)
        "_views",
        "date",
        "fields",
        "gate",
        "generated_at",
        "index",
        "model",
        "source_etag",
    )

    def __init__(self, doc: Any, source_etag: str = "") -> None:
        """A batch from a parsed document (every row held as a dict)."""
        if not isinstance(doc, dict):
            raise BatchContractError("batch is not a JSON object")
        items = doc.get("predictions")
        if not isinstance(items, list):
            raise BatchContractError("batch has no 'predictions' list")
        self._meta(doc, source_etag)
        index = _index_fast(items)
        if index is None:
            index = _index_checked(items)
        self.index: dict[str, int] = index
        self._rows: list[dict] | None = items
        self._n = len(items)
        self._body = b""
        self._starts = array("I")
        self._field_names: frozenset[str] | None = None
        self._init_views()

    def _meta(self, doc: dict, source_etag: str) -> None:
        date = doc.get("date")
        if not is_valid_date(date):
            raise BatchContractError(f"batch 'date' is not YYYY-MM-DD: {date!r:.40}")
        self.date: str = date
        self.generated_at = doc.get("generated_at")
        self.model = doc.get("model")
        self.fields = doc.get("fields")
        self.source_etag = source_etag
        self.gate: str | None = None  # the publish gate's verdict, from the object's metadata (cache.py)

    def _init_views(self) -> None:
        self._views: OrderedDict[tuple, list[int] | range] = OrderedDict()
        self._sort_orders: dict[tuple[str, bool], list[int]] = {}
        self._haystacks: list[str] | None = None
        self._item_texts: list[str | None] = [None] * self._n
        self._texts_bytes = 0
        self._head_json = ""
        self._canonical = False

    @classmethod
    def from_json(cls, body: bytes, source_etag: str = "", *, max_depth: int, max_items: int,
                  proven_sha256: str | None = None, proven_by_etag: bool = False) -> Batch:
        """The batch in `body` (UTF-8 JSON, read as strictly as contract_json.loads), held compactly.

        A document the publish command validated (contract.py's VALIDATED_MARK) need not be proven
        again: when its ETag is the MD5 publish recorded (`proven_by_etag`, no work at all) or `body`
        hashes to `proven_sha256` (checked on a thread while the rows are indexed: hashlib runs
        without the GIL), only the rows' offsets and ids are taken, and each row's stored text is
        its answer. Otherwise, or when anything looks off, the strict reader decides.

        Raises CorruptObject (ObjectTooLarge past `max_items` rows) or BatchContractError.
        """
        batch = cls.__new__(cls)
        canonical = False
        if proven_sha256 or proven_by_etag:
            digest = None if proven_by_etag else _sha256_on_a_thread(body)
            read = False
            if len(body) >= FAST_MIN_BYTES:  # smaller ones take the exact reader anyway
                try:
                    read = _read_chunked(batch, body, source_etag, max_depth, max_items, proven=True)
                except (BatchContractError, CorruptObject):
                    pass  # the strict reader below says what is wrong, precisely
            # The digest is waited for either way: no thread is left behind.
            canonical = digest is None or digest() == proven_sha256
            if canonical and read:
                batch._canonical = True
                return batch
            batch = cls.__new__(cls)
        if _read_chunked(batch, body, source_etag, max_depth, max_items):
            # Read strictly, and still the publish command's bytes: each row's text is its answer.
            batch._canonical = canonical
            return batch
        # A shape the chunked reader does not take (not an object, no "predictions" array, an
        # escaped key, ...): the whole document, with its row count bounded first.
        if body.count(b"{") > max_items + 1024:
            raise ObjectTooLarge(f"batch may hold more than {max_items:,} predictions (MAX_BATCH_ITEMS)")
        doc = contract_json.loads(body, max_depth)
        rows = doc.get("predictions") if isinstance(doc, dict) else None
        if isinstance(rows, list) and len(rows) > max_items:
            raise ObjectTooLarge(f"batch holds {len(rows):,} predictions, over the limit of {max_items:,} "
                                 "(MAX_BATCH_ITEMS)")
        return cls(doc, source_etag)

    # -- rows -----------------------------------------------------------------------------------

    @property
    def items(self) -> list[dict]:
        """Every prediction as a dict (for the site renderer; the API reads rows by position)."""
        if self._rows is None:
            self._rows = list(self._iter_rows())
        return self._rows

    @property
    def nbytes(self) -> int:
        """About what this batch holds in memory: its text, row offsets, id index, the item texts
        and filters made so far and, once asked for, the rows as dicts (an estimate, for the
        cache's byte bound; cheap enough to ask on every request)."""
        size = len(self._body) + self._starts.itemsize * len(self._starts) + self._texts_bytes
        size += self._n * INDEX_BYTES_PER_ROW
        if self._rows is not None:
            size += self._n * DICT_BYTES_PER_ROW
        return size

    def _row(self, pos: int) -> dict:
        rows = self._rows
        if rows is not None:
            return rows[pos]
        return self._parse_rows(pos, pos + 1)[0]

    def _parse_rows(self, first: int, end: int) -> list[dict]:
        """Rows first..end-1, from their bytes. Every row was checked as strictly as contract_json reads
        a document when the batch was loaded, and the bytes are immutable: a plain parse is the same."""
        starts = self._starts
        if end == first + 1:
            return [json.loads(self._body[starts[first] : starts[end]].rstrip(_ROW_TAIL))]
        return json.loads(b"".join((b"[", self._body[starts[first] : starts[end]].rstrip(_ROW_TAIL), b"]")))

    def _iter_rows(self) -> Iterator[dict]:
        if self._rows is not None:
            yield from self._rows
            return
        for first in range(0, self._n, BLOCK_ROWS):
            yield from self._parse_rows(first, min(self._n, first + BLOCK_ROWS))

    @property
    def field_names(self) -> frozenset[str]:
        """Every field any prediction has; computed on first use (only sort requests need it)."""
        names = self._field_names
        if names is None:
            names = self._field_names = frozenset(chain.from_iterable(self._iter_rows()))
        return names

    def __len__(self) -> int:
        return self._n

    def metadata(self) -> dict:
        return {"date": self.date, "model": self.model, "generated_at": self.generated_at, "gate": self.gate}

    def head_json(self) -> str:
        """`{"date", "model"}` as JSON, encoded once: the head of every by-id answer."""
        head = self._head_json
        if not head:
            head = self._head_json = encode({"date": self.date, "model": self.model})
        return head

    def items_json(self, positions: list[int] | range) -> str:
        """The JSON array of these items; each item is encoded once per batch, then reused."""
        texts = self._item_texts
        if self._rows is None:
            missing = [pos for pos in positions if texts[pos] is None]
            if missing:
                self._encode_rows(missing)
        out = []
        for pos in positions:
            text = texts[pos]
            if text is None:
                text = texts[pos] = encode(self._row(pos))
                self._texts_bytes += len(text) + 49
            out.append(text)
        return "[" + ",".join(out) + "]"

    def _encode_rows(self, positions: list[int]) -> None:
        """The item texts of these rows, each run of consecutive rows parsed at once; or, in a batch
        the publish command wrote (`_canonical`: each row is what encode() makes of it, less the
        HTML-safe escapes), each row's own text, with no parse at all."""
        texts = self._item_texts
        if self._canonical:
            body, starts = self._body, self._starts
            for pos in positions:
                if texts[pos] is None:
                    text = texts[pos] = html_safe(body[starts[pos] : starts[pos + 1]].rstrip(_ROW_TAIL)
                                                  .decode("utf-8"))
                    self._texts_bytes += len(text) + 49
            return
        ordered = sorted(set(positions))
        run_start = prev = ordered[0]
        for pos in chain(ordered[1:], (None,)):
            if pos is not None and pos == prev + 1:
                prev = pos
                continue
            for offset, row in enumerate(self._parse_rows(run_start, prev + 1)):
                if texts[run_start + offset] is None:
                    text = texts[run_start + offset] = encode(row)
                    self._texts_bytes += len(text) + 49
            if pos is not None:
                run_start = prev = pos

    def get(self, pid: str) -> dict | None:
        pos = self.index.get(pid)
        return None if pos is None else self._row(pos)

    def item_json(self, pid: str) -> str | None:
        """The JSON text of one item (encoded once per batch, like a page's), or None."""
        pos = self.index.get(pid)
        return None if pos is None else self.items_json([pos])[1:-1]

    def view(self, sort: str | None, descending: bool, q: str | None) -> list[int] | range:
        """Positions of the matching items in the requested order; cached per (sort, order, q)."""
        key = (sort, descending, q)
        found = self._views.get(key)
        if found is not None:
            self._views.move_to_end(key)
            return found
        if sort is None:
            order: list[int] | range = range(self._n)
            if descending:
                order = range(self._n - 1, -1, -1)
        else:
            order = self._sorted(sort, descending)
        if q:
            hay = self._haystack()
            needle = q.casefold()
            order = [p for p in order if needle in hay[p]]
        self._views[key] = order
        if len(self._views) > MAX_CACHED_VIEWS:
            self._views.popitem(last=False)
        return order

    def _sorted(self, field: str, descending: bool) -> list[int]:
        key = (field, descending)
        order = self._sort_orders.get(key)
        if order is None:
            if descending:
                ascending = self._sorted(field, False)
                present = self._sort_orders[(field, None)]  # type: ignore[index]
                # Nulls stay last in both directions: reverse only the part with values.
                order = ascending[present - 1 :: -1] + ascending[present:] if present else ascending
            else:
                order, present = self._sort_ascending(field)
                self._sort_orders[(field, None)] = present  # type: ignore[index, assignment]
            self._sort_orders[key] = order
        return order

    def _sort_ascending(self, field: str) -> tuple[list[int], int]:
        """Positions by one field's value, and how many rows have one (not null, not missing).

        The sort key of each row is made once (a pass over the rows, a chunk at a time), then
        dropped: only the order is kept."""

        def key(value: Any) -> tuple:
            # Mixed types must still order deterministically: numbers, then booleans, then text.
            if value is None:
                return (3, 0)
            if isinstance(value, bool):
                return (1, value)
            if isinstance(value, (int, float)):
                return (0, value)
            return (2, str(value))

        keys = [key(row.get(field)) for row in self._iter_rows()]
        present = len(keys) - keys.count((3, 0))
        return sorted(range(len(keys)), key=keys.__getitem__), present

    def _haystack(self) -> list[str]:
        if self._haystacks is None:
            self._haystacks = [
                "\x00".join(v for v in item.values() if isinstance(v, str)).casefold()
                for item in self._iter_rows()
            ]
            self._texts_bytes += sum(map(len, self._haystacks)) + 57 * self._n
        return self._haystacks


class _NotChunkable(Exception):
    """The chunked reader cannot take this document: read it whole."""


def _sha256_on_a_thread(body: bytes) -> Callable[[], str]:
    """sha256(body) computed beside the caller (hashlib drops the GIL on large inputs); the returned
    function waits for the hex digest."""
    if len(body) < FAST_MIN_BYTES:  # a thread costs more than hashing a small body
        value = hashlib.sha256(body).hexdigest()
        return lambda: value
    box: list[str] = []
    thread = threading.Thread(target=lambda: box.append(hashlib.sha256(body).hexdigest()), daemon=True,
                              name="batch-digest")
    thread.start()

    def result() -> str:
        thread.join()
        return box[0] if box else ""

    return result


def _read_chunked(batch: Batch, body: bytes, etag: str, max_depth: int, max_items: int, *,
                  proven: bool = False) -> bool:
    """Fill `batch` from `body` a window of rows at a time; False when the document's shape needs
    the whole-document reader (which also names its errors the most precisely)."""
    try:
        start = _predictions_start(body)
        starts, index, end = _read_rows(body, start, max_depth, max_items, proven=proven)
    except _NotChunkable:
        return False
    rest = b"".join((body[:start], b"[]", body[end:]))
    if len(rest) > MAX_META_BYTES:
        return False
    doc = contract_json.loads(rest, max_depth)
    if not isinstance(doc, dict) or doc.get("predictions") != []:
        return False
    batch._meta(doc, etag)
    batch.index = index
    batch._rows = None
    batch._n = len(index)
    batch._body = body
    batch._starts = starts
    batch._field_names = None  # on first use: only a sort request needs them
    batch._init_views()
    return True


def _predictions_start(body: bytes) -> int:
    """Offset of the '[' of the top-level "predictions" array.

    Only the top level is walked (keys matched in bytes, other values skipped by the JSON decoder
    on a window of the text): a "predictions" key nested in another value is never taken.
    """
    pos = _SPACES.match(body, 3 if body.startswith(b"\xef\xbb\xbf") else 0).end()
    if body[pos : pos + 1] != b"{":
        raise _NotChunkable
    pos += 1
    while True:
        key = _KEY.match(body, pos)
        if key is None or b"\\" in key.group(1):
            raise _NotChunkable
        if key.group(1) == b"predictions":
            if body[key.end() : key.end() + 1] != b"[":
                raise _NotChunkable
            return key.end()
        sep = _NEXT.match(body, _skip_value(body, key.end()))
        if sep is None or sep.group(1) == b"}":
            raise _NotChunkable  # no "predictions" array at the top level
        pos = sep.end()


def _skip_value(body: bytes, pos: int) -> int:
    """The offset just past the JSON value at `pos` (a small one: model, fields, dates)."""
    window = 4096
    while True:
        text = body[pos : pos + window].decode("utf-8", "surrogateescape")
        try:
            _, end = _DECODER.raw_decode(text)
        except RecursionError:
            raise _NotChunkable from None
        except ValueError:
            if pos + window >= len(body) or window > MAX_META_BYTES:
                raise _NotChunkable from None
            window *= 8
            continue
        return pos + _byte_len(text[:end])


def _byte_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def _read_rows(body: bytes, start: int, max_depth: int, max_items: int, *, proven: bool = False) -> tuple:
    """The rows of the array at body[start] ('['), checked strictly a window or a chunk at a time
    (or, `proven`, only split into rows: see _fast_window).

    Returns the byte offset of every row followed by the offset of the array's ']' (so that row i
    is body[starts[i]:starts[i + 1]] less the separator after it), the id index, and the offset
    past the ']'.
    """
    pos = _SPACES.match(body, start + 1).end()
    starts = array("I" if len(body) < 1 << 32 else "Q")
    index: dict[str, int] = {}
    row_depth = max_depth - 1
    if body[pos : pos + 1] == b"]":
        starts.append(pos)
        return starts, index, pos + 1
    # A flat row is 3 deep in the document. Below FAST_MIN_BYTES the exact reader is as fast as
    # building the window's pattern (~5 ms, once per container and shape of rows).
    fast = max_depth >= 3 and len(body) >= FAST_MIN_BYTES
    while True:
        window = _fast_window(body, pos, proven=proven) if fast else None
        if window is None:
            rows, chunk_end, next_pos, array_end = _next_chunk(body, pos, row_depth)
            row_starts = _row_offsets(body, pos, chunk_end, len(rows))
            ids: list = list(map(dict.get, rows, repeat("id")))
            checked = False
        else:
            ids, row_starts, next_pos, array_end = window
            checked = True
        first = len(starts)
        if first + len(ids) > max_items:
            raise ObjectTooLarge(f"batch holds more than {max_items:,} predictions (MAX_BATCH_ITEMS)")
        _index_ids(ids, first, index, checked=checked)
        starts.extend(row_starts)
        if next_pos is None:
            starts.append(array_end - 1)
            return starts, index, array_end
        pos = next_pos


def _fast_window(body: bytes, pos: int, *, proven: bool = False) -> tuple | None:
    """(ids, row offsets, start of the next row or None, offset past the array's ']' or -1) of the
    rows from `pos` (a row's '{') up to about WINDOW_CHUNKS * CHUNK_BYTES, when they are flat
    objects with the keys of the first one, in its order, and every check passes; None sends the
    caller to the exact reader.

    Why the pattern's word is enough: it matches a strict subset of JSON, from a row's start, so
    every byte it matched is where it thinks it is (in a string or not). With simple keys (no quote,
    backslash or control character), `{"k0":` (with its spaces) can only be a row's opening bytes
    and `"id":"` only a row's id, never text inside a string: a string holds a quote only escaped.

    `proven` (a document the publish command wrote and validated: compact, flat rows that open with
    their valid id): that word holds already, so a window that ends at a row's opening bytes right
    after a comma is taken without the pattern (two thirds of the work), and an ASCII one is cut into
    rows and ids by one split; the last window is always matched.
    """
    first = re.compile(_FLAT_ROW).match(body, pos)
    if first is None:
        return None
    found = _window_pattern(first.group())
    if found is None:
        return None
    rows_re, opening = found
    sep_match = opening.match(body, pos)
    if sep_match is None:
        return None
    sep = sep_match.group()
    limit = body.find(sep, pos + WINDOW_CHUNKS * CHUNK_BYTES)
    if proven and limit > 0 and body[limit - 1] == 0x2C:  # ",": the window ends before a row
        end, next_pos, array_end = limit - 1, limit, -1
    else:
        matched = rows_re.match(body, pos, len(body) if limit < 0 else limit)
        if matched is None:
            return None
        end = matched.end()
        after = _ROW_SEP.match(body, end)
        if after is not None and body[after.end() : after.end() + 1] == b"{":
            next_pos, array_end = after.end(), -1
        else:
            close = _SPACES.match(body, end).end()
            if body[close : close + 1] != b"]":
                return None  # not a row, not the end: the exact reader says what it is
            next_pos, array_end = None, close + 1
    text = body[pos:end]
    ascii_text = text.isascii()
    try:
        # Strict UTF-8 (the window starts and ends on ASCII bytes); the ids are then found in the
        # text, which makes them str at once (ASCII decodes as a copy).
        decoded = text.decode("ascii" if ascii_text else "utf-8")
    except UnicodeDecodeError:
        return None
    if proven and ascii_text and sep == b'{"id":':
        # Every row opens with its id (the publish command writes them so): one regex split gives
        # the ids and the rows' lengths, where a findall and a split take two passes.
        pieces = re.compile(_ROW_ID_SPLIT).split(decoded)
        if pieces[0]:
            return None
        ids = pieces[1::2]
        # Row k is '{"id":"' + id + '"' + the rest up to the next row (its comma included); the
        # last row's length is not needed.
        lengths = map(add, map(len, ids), map(len, pieces[2:-1:2]))
        row_starts = accumulate(map(add, lengths, repeat(_ROW_ID_OVERHEAD)), initial=pos)
    else:
        ids = re.compile(_IDS_FIRST_TEXT if sep == b'{"id":' else _IDS_TEXT).findall(decoded)
        parts = text.split(sep)
        if parts[0] or len(parts) - 1 != len(ids):
            return None
        row_starts = accumulate(map(add, map(len, parts[1:-1]), repeat(len(sep))), initial=pos)
    if next_pos is not None and next_pos != limit and len(ids) < MIN_WINDOW_ROWS:
        return None  # the keys changed after a few rows: a chunk of the exact reader instead
    return ids, row_starts, next_pos, array_end


def _window_pattern(row: bytes) -> tuple[re.Pattern[bytes], re.Pattern[bytes]] | None:
    """(the pattern of a run of rows with this row's keys, the pattern of a row's opening bytes up
    to its first ':'), or None when the row's keys are not simple or have no "id". A row without
    whitespace (as the publish command writes them) gets a pattern without any (a third faster);
    otherwise one that allows JSON's whitespace between every two tokens."""
    try:
        keys = tuple(json.loads(row.decode("utf-8")))
    except (ValueError, RecursionError):
        return None
    for compact in (True, False):
        found = _PATTERNS.get((keys, compact))
        if found is None:
            if "id" not in keys or not all(_SIMPLE_KEY.fullmatch(key) for key in keys):
                return None
            found = _PATTERNS[(keys, compact)] = _rows_pattern(keys, b"" if compact else _W)
            if len(_PATTERNS) > MAX_PATTERNS:
                del _PATTERNS[next(iter(_PATTERNS))]
        if not compact or found[0].fullmatch(row) is not None:
            return found
    return None  # unreachable


def _rows_pattern(keys: tuple[str, ...], ws: bytes) -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    """(a run of rows, a row's opening up to its first ':') with these keys, `ws` between tokens."""
    pairs = [b'"' + re.escape(key.encode()) + b'"' + ws + b":" + ws + (_ID_VALUE if key == "id" else _VALUE)
             for key in keys]
    one = rb"\{" + ws + (ws + b"," + ws).join(pairs) + ws + rb"\}"
    return (re.compile(one + rb"(?:" + ws + b"," + ws + one + rb")*+"),
            re.compile(rb"\{" + ws + b'"' + re.escape(keys[0].encode()) + b'"' + ws + b":"))


def _row_offsets(body: bytes, start: int, end: int, n: int) -> list[int]:
    """The byte offsets of the `n` rows of body[start:end] (a chunk the exact reader parsed)."""
    text = body[start:end].decode("utf-8")
    scan = _DECODER.scan_once
    chars = []
    i = 0
    while True:
        chars.append(i)
        try:
            _, i = scan(text, i)
        except StopIteration:
            raise _NotChunkable from None
        sep = _ROW_SEP_TEXT.match(text, i)
        if sep is None:
            break
        i = sep.end()
    if len(chars) != n or i != len(text):
        raise _NotChunkable
    if len(text) == end - start:  # ASCII: characters are bytes
        return [start + c for c in chars]
    sizes = [len(text[a:b].encode("utf-8")) for a, b in pairwise(chars)]
    return list(accumulate(sizes, initial=start))


_ROW_SEP_TEXT = re.compile(r"[ \t\n\r]*,[ \t\n\r]*")


def _next_chunk(body: bytes, pos: int, row_depth: int) -> tuple[list[dict], int, int | None, int]:
    """(rows, end of their text, start of the next row or None at the array's end, end of the array).

    Fast: the chunk ends at the first '}' ',' '{' (whitespace allowed) past CHUNK_BYTES, which is
    between two rows unless it lies in a string or a nested value; then the chunk does not parse (a
    string left open, a bracket left open) and the next candidate is tried. Otherwise, and for the
    last chunk: rows are delimited one by one by the JSON decoder (exact, slower)."""
    search = pos + CHUNK_BYTES
    for _ in range(MAX_SPLIT_RETRIES):
        split = _SPLIT.search(body, search)
        if split is None:
            break
        end = split.start() + 1
        rows = _strict_rows(body, pos, end, row_depth, certain=False)
        if rows is not None:
            return rows, end, split.end() - 1, -1
        search = end
    end, next_pos, array_end = _exact_chunk(body, pos)
    rows = _strict_rows(body, pos, end, row_depth, certain=True)
    assert rows is not None
    return rows, end, next_pos, array_end


def _strict_rows(body: bytes, start: int, end: int, row_depth: int, *, certain: bool) -> list[dict] | None:
    """The rows in body[start:end], as strictly as contract_json reads a document. None when the
    text is not a JSON list of values (a split in the wrong place) unless the split is `certain`."""
    text = b"".join((b"[", body[start:end], b"]"))
    try:
        rows = contract_json.loads(text, row_depth)
    except CorruptObject as exc:
        if "nested deeper than" in str(exc):
            # Counted from the document, not from this chunk's list.
            raise CorruptObject(f"JSON nested deeper than {row_depth + 1} levels") from None
        if not certain:
            try:
                json.loads(text)
            except ValueError:
                return None  # not even JSON: the split was inside a value
            except RecursionError:
                pass
        raise
    if not all(map(isinstance, rows, repeat(dict))):
        raise _NotChunkable  # the whole-document reader names the row
    return rows


_SEP_TEXT = re.compile(r"[ \t\n\r]*([,\]])[ \t\n\r]*")


def _exact_chunk(body: bytes, pos: int) -> tuple[int, int | None, int]:
    """Rows from `pos` delimited by the JSON decoder, up to CHUNK_BYTES of them or the array's end:
    (end of the last row's text, start of the next row or None, offset past the ']' or -1)."""
    window = 2 * CHUNK_BYTES
    while True:
        text = body[pos : pos + window].decode("utf-8", "surrogateescape")
        i = 0
        try:
            while True:
                _, i = _DECODER.raw_decode(text, i)
                row_end = i
                sep = _SEP_TEXT.match(text, i)
                if sep is None:
                    raise ValueError("no ',' or ']' after a row")
                i = sep.end()
                if sep.group(1) == "]":
                    return pos + _byte_len(text[:row_end]), None, pos + _byte_len(text[: sep.start(1) + 1])
                if i >= CHUNK_BYTES and i < len(text):
                    return pos + _byte_len(text[:row_end]), pos + _byte_len(text[:i]), -1
                if i >= len(text):
                    raise ValueError("window ends after a separator")
        except RecursionError:
            raise _NotChunkable from None
        except ValueError:
            if pos + window >= len(body):
                raise _NotChunkable from None  # not a JSON array: the whole-document reader says where
            window *= 4


def _index_ids(ids: list, first: int, index: dict[str, int], *, checked: bool = False) -> None:
    """Add these ids (positions from `first`) to `index`, checking as _index_fast (unless the fast
    reader's pattern has `checked` them already) and, when a check fails, naming the row as
    _index_checked does."""
    if not checked:
        try:
            joined = "\n".join(ids)
        except TypeError:
            joined = None
        if joined is None or joined.count("\n") != len(ids) - 1 or _JOINED_IDS.fullmatch(joined) is None:
            match = ID_PATTERN.fullmatch
            for offset, pid in enumerate(ids):
                if not isinstance(pid, str) or match(pid) is None:
                    raise BatchContractError(f"prediction #{first + offset} has an invalid id")
    size = len(index)
    index.update(zip(ids, count(first)))
    if len(index) == size + len(ids):
        return
    # A repeated id: within these rows (named exactly), or of an earlier row.
    seen: set[str] = set()
    for offset, pid in enumerate(ids):
        if pid in seen:
            raise BatchContractError(f"prediction #{first + offset} repeats id {pid!r}")
        seen.add(pid)
    raise BatchContractError(f"predictions #{first}-#{first + len(ids) - 1} repeat an id of an earlier row")


def _index_fast(items: list) -> dict[str, int] | None:
    """id -> position when every row is an object with a valid, unique id; None otherwise.

    Loading a batch is on the cold path of every new container, so the checks run as whole-list
    passes in C (map, join, one regex, dict(zip)): about a quarter of the per-row loop's time on
    100k rows. None sends the caller to the per-row loop, which names the first bad row.
    """
    if not all(map(isinstance, items, repeat(dict))):
        return None
    ids = list(map(dict.get, items, repeat("id")))
    if not ids:
        return {}
    try:
        joined = "\n".join(ids)
    except TypeError:  # an id that is not a string (or is missing: None)
        return None
    # The count rules out ids that themselves hold a newline and would split into valid parts.
    if joined.count("\n") != len(ids) - 1 or _JOINED_IDS.fullmatch(joined) is None:
        return None
    index = dict(zip(ids, count()))
    return index if len(index) == len(ids) else None


def _index_checked(items: list) -> dict[str, int]:
    """The same index row by row, raising on the first row that breaks the contract."""
    index: dict[str, int] = {}
    match = ID_PATTERN.fullmatch
    for pos, item in enumerate(items):
        if not isinstance(item, dict):
            raise BatchContractError(f"prediction #{pos} is not an object")
        pid = item.get("id")
        if not isinstance(pid, str) or match(pid) is None:
            raise BatchContractError(f"prediction #{pos} has an invalid id")
        if pid in index:
            raise BatchContractError(f"prediction #{pos} repeats id {pid!r}")
        index[pid] = pos
    return index
