"""The JSON of the contract's objects, read strictly and still at json.loads speed.

`json.loads` alone accepts what the contract forbids, and some of it fails later, far from here:
NaN and 1e400 (no JSON encoding), nesting deep enough for a RecursionError, a key written twice
(silently last-wins: `{"id": "bad id", "id": "a"}` hides a bad id), and a lone UTF-16 surrogate
escape (`"\\ud800"`: a str no answer can be encoded from). Every one of them is CorruptObject here.

Loading a batch is on every cold start's path, so the document is parsed once by a plain
`json.loads` (no per-value or per-object hook: a parse_float hook alone costs ~30% of the parse)
and checked by whole-document operations in C; slower, precise ways run only when those cannot
decide:

- depth: a walk of the parsed document, iterative, that counts rows (long lists of objects) in
  bulk and trusts them to be flat only when the text proves it (its count of `{` and `[` equals
  the number of containers parsed; otherwise each row's value types are checked);
- numbers: a literal too large for a float (1e400) parses to inf: looked for in the parsed values
  (one set operation over the rows' values);
- duplicate keys: a JSON text without whitespace before a colon holds at least as many `":` as
  it has keys (each key ends with one; a string can only add more), and a dict keeps at most as
  many keys as were written, so `count('":') == keys parsed` proves that no key was dropped;
  otherwise one more parse with an object_pairs_hook decides;
- lone surrogates: only a text holding a surrogate escape (`\\uD800`-`\\uDFFF`) can produce one;
  then the escapes the decoder pairs (and escaped backslashes) are removed from a copy of the text,
  and only if a surrogate escape remains is the parsed document encoded to UTF-8 to find it.
"""

from __future__ import annotations

import json
import math
import re
from itertools import chain, repeat
from typing import Any

from chalice_app.store.sources import CorruptObject

# Lists longer than this whose items are all objects are counted in bulk (the rows of a batch).
BULK_MIN = 32
_CONTAINERS = (dict, list)
_INFINITIES = frozenset((math.inf, -math.inf))
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# What the decoder turns into no lone surrogate: a high + low escape pair, and an escaped backslash
# (consumed first, left to right, so that the text after it is not read as an escape).
_NOT_LONE = re.compile(rb"\\\\|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}")
_SPACES = (b" ", b"\n", b"\r", b"\t")  # JSON's whitespace
_UTF8_BOM = b"\xef\xbb\xbf"


class _RepeatedKey(ValueError):
    pass


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def loads(body: bytes, max_depth: int) -> Any:
    """The document in `body` (UTF-8 JSON), or CorruptObject naming what is wrong with it."""
    doc = _parse(body, max_depth, None)
    if not _keys_unique_fast(body, _measure(doc, max_depth, body)):
        _parse(body, max_depth, _unique_pairs)  # the precise way; raises on a repeated key
    if _SURROGATE_ESCAPE.search(body) is not None and _SURROGATE_ESCAPE.search(_NOT_LONE.sub(b"", body)):
        _check_no_lone_surrogate(doc)
    return doc


def _parse(body: bytes, max_depth: int, hook: Any) -> Any:
    try:
        # Strict UTF-8: json.loads(bytes) would decode with 'surrogatepass' (and guess UTF-16/32).
        text = body[len(_UTF8_BOM):].decode("utf-8") if body.startswith(_UTF8_BOM) else body.decode("utf-8")
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=hook)
    except RecursionError:
        raise CorruptObject(f"JSON nested deeper than {max_depth} levels") from None
    except _RepeatedKey as exc:
        raise CorruptObject(str(exc)) from None
    except ValueError as exc:  # includes UnicodeDecodeError
        raise CorruptObject(f"not valid UTF-8 JSON: {exc}") from None


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(f"a JSON object repeats the key {key[:40]!r}")
            seen.add(key)
    return obj


def _keys_unique_fast(body: bytes, keys: int) -> bool:
    """True proves no object of the text repeats a key; False means: ask the precise parse."""
    if body.count(b'":') != keys:
        return False
    # A key followed by whitespace has no '":' to count, so the equality proves nothing then.
    # One-byte searches are memchr-fast; the two-byte one runs only for a byte the text holds.
    return not any(space in body and space + b":" in body for space in _SPACES)


def _measure(doc: Any, max_depth: int, body: bytes) -> int:
    """The number of keys in the document. CorruptObject when it nests deeper than max_depth or
    holds a number too large for a float."""
    keys, containers, bulk = _walk(doc, max_depth, None)
    if bulk and containers != body.count(b"{") + body.count(b"["):
        # The text has brackets the count did not explain: in strings, or in rows that are not
        # flat. Only the rows' value types can tell; rows that hold containers are walked one by one.
        flat = [rows for rows in bulk if _all_scalars(chain.from_iterable(map(dict.values, rows)))]
        if len(flat) != len(bulk):
            keys, _, bulk = _walk(doc, max_depth, {id(rows) for rows in flat})
    for rows in bulk:  # flat: every value is a scalar, hashable
        if not _INFINITIES.isdisjoint(chain.from_iterable(map(dict.values, rows))):
            pos = next(pos for pos, row in enumerate(rows) if not _INFINITIES.isdisjoint(row.values()))
            what = "prediction" if isinstance(doc, dict) and rows is doc.get("predictions") else "object"
            raise CorruptObject(f"{what} #{pos} holds a number too large for a float (like 1e400)")
    return keys


def _all_scalars(values: Any) -> bool:
    types = set(map(type, values))
    return dict not in types and list not in types


def _walk(doc: Any, max_depth: int, flat: set[int] | None) -> tuple[int, int, list[list]]:
    """Keys and containers counted, depth and numbers checked; lists of rows counted in bulk, as
    if flat (all of them when `flat` is None, else those whose id is in it) and returned for the
    caller to check. Iterative: no depth of nesting can make it recurse."""
    keys = containers = 0
    bulk: list[list] = []
    stack = [(doc, 1)] if isinstance(doc, _CONTAINERS) else []
    if isinstance(doc, float) and doc in _INFINITIES:
        raise CorruptObject("a number too large for a float (like 1e400)")
    while stack:
        value, depth = stack.pop()
        if depth > max_depth:
            raise CorruptObject(f"JSON nested deeper than {max_depth} levels")
        containers += 1
        if isinstance(value, dict):
            keys += len(value)
            children: Any = value.values()
        else:
            children = value
            if len(value) > BULK_MIN:
                if all(map(isinstance, value, repeat(dict))) and (flat is None or id(value) in flat):
                    if depth + 1 > max_depth:
                        raise CorruptObject(f"JSON nested deeper than {max_depth} levels")
                    keys += sum(map(len, value))
                    containers += len(value)
                    bulk.append(value)
                    continue
                if _all_scalars(value):  # a long list of scalars
                    if not _INFINITIES.isdisjoint(value):
                        raise CorruptObject("a number too large for a float (like 1e400)")
                    continue
        for child in children:
            if isinstance(child, _CONTAINERS):
                stack.append((child, depth + 1))
            elif type(child) is float and child in _INFINITIES:
                raise CorruptObject("a number too large for a float (like 1e400)")
    return keys, containers, bulk


def _check_no_lone_surrogate(doc: Any) -> None:
    try:
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        return
    rows = doc.get("predictions") if isinstance(doc, dict) else None
    for pos, row in enumerate(rows if isinstance(rows, list) else ()):
        try:
            json.dumps(row, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise CorruptObject(f"prediction #{pos} holds a lone UTF-16 surrogate (\\ud800-\\udfff)") from None
    raise CorruptObject("a string holds a lone UTF-16 surrogate (\\ud800-\\udfff)")
