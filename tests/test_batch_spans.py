"""A batch keeps each row's byte offset (store/batch.py): a lookup parses one row, strictly; loading
checks uniform flat rows with one pattern per window and everything else with the exact reader. The
two readers must accept exactly what the whole-document reader (contract_json + Batch) accepts, and
give the same rows."""

from __future__ import annotations

import json
import random

import pytest

from chalice_app.store import batch as batch_module
from chalice_app.store import contract_json
from chalice_app.store.batch import Batch, BatchContractError
from chalice_app.store.cache import PredictionStore
from chalice_app.store.sources import CorruptObject, Fetched, NotFound

DATE = "2026-11-23"
ERRORS = (CorruptObject, BatchContractError)


@pytest.fixture(autouse=True)
def small_windows(monkeypatch):
    monkeypatch.setattr(batch_module, "CHUNK_BYTES", 200)
    monkeypatch.setattr(batch_module, "MIN_WINDOW_ROWS", 2)
    monkeypatch.setattr(batch_module, "FAST_MIN_BYTES", 0)


def rows(n: int, start: int = 0) -> list[dict]:
    return [{"id": f"sku-{i:05d}", "label": ["Oat milk", "x\"y", "é ü 😀", "{\"id\":\"z\"}]", "a\\b\n", None][i % 6],
             "value": [1.5, -0.0, 12, 1e99, 3.25e-5, None][i % 5], "flag": i % 3 == 0} for i in range(start, start + n)]


def doc_bytes(predictions: list, **dumps) -> bytes:
    doc = {"date": DATE, "model": {"name": "m", "version": "1"}, "predictions": predictions}
    return json.dumps(doc, **dumps).encode("utf-8")


def whole(body: bytes) -> Batch:
    return Batch(contract_json.loads(body, 32))


def compact(body: bytes) -> Batch:
    return Batch.from_json(body, "e", max_depth=32, max_items=100_000)


def same(body: bytes) -> Batch:
    """from_json on `body` accepts it exactly when the whole-document reader does, with the same rows."""
    try:
        expected = whole(body)
    except ERRORS:
        with pytest.raises(ERRORS):
            compact(body)
        return None  # type: ignore[return-value]
    got = compact(body)
    assert got.index == expected.index
    assert [got.get(pid) for pid in expected.index] == expected.items
    assert got.items_json(range(len(got))) == expected.items_json(range(len(expected)))
    return got


COMPACT = {"separators": (",", ":"), "ensure_ascii": False}


@pytest.mark.parametrize("dumps", [COMPACT, {}, {"indent": 2}, {"separators": (",", ":")}],
                         ids=["compact", "default", "pretty", "ascii"])
def test_uniform_rows_load_through_the_fast_reader_with_the_same_rows(dumps, monkeypatch):
    calls = []
    original = batch_module._next_chunk
    monkeypatch.setattr(batch_module, "_next_chunk", lambda *a: calls.append(a[1]) or original(*a))
    got = same(doc_bytes(rows(120), **dumps))
    assert got._rows is None and len(got._starts) == len(got) + 1
    assert not calls, "uniform flat rows never need the exact reader"


def test_mixed_shapes_mix_both_readers_and_give_the_same_rows():
    mixed = [*rows(30), *({"id": f"n-{i}", "nested": {"a": [i, {"b": None}]}} for i in range(10)),
             *({"value": i, "id": f"k-{i}"} for i in range(25)), *rows(20, 100),
             {"id": "esc", "k\\u0065y": 1}, {"id": "pair", "s": "😀"}, *rows(5, 200)]
    for dumps in (COMPACT, {}):
        body = doc_bytes(mixed, **dumps)
        body = body.replace(b'"k\\\\u0065y"', b'"k\\u0065y"')  # a key written with an escape
        body = body.replace("😀".encode(), b"\\ud83d\\ude00", 3)  # a surrogate pair as escapes
        same(body)


@pytest.mark.parametrize(("old", "new"), [
    (b'"flag":false}', b'"flag":false,"flag":true}'),  # a repeated key, mid-batch
    (b'"value":12', b'"value":1e400'),
    (b'"value":12', b'"value":1' + b"0" * 400 + b".0"),
    (b'"value":12', b'"value":NaN'),
    (b'"value":12', b'"value":012'),
    (b'"value":12', b'"value":"\\ud800"'),
    (b'"value":12', b'"value":"\\x"'),
    (b'"value":12', b'"value":"a\tb"'),
    (b'"value":12', b'"value":"\xff"'),
    (b'"value":12', b'"value":"\xed\xa0\x80"'),
    (b'"id":"sku-00007"', b'"id":"sku 00007"'),
    (b'"id":"sku-00007"', b'"id":"sku-00001"'),
    (b'"id":"sku-00007"', b'"id":7'),
    (b'"id":"sku-00007",', b""),
    (b'"id":"sku-00007"', b'"id":"\\u0073ku-00007"'),  # accepted: the id is sku-00007
    (b'"id":"sku-00007"', b'"id":"' + b"a" * 129 + b'"'),
    (b'"value":12', b'"value":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]'),
    (b"}]", b"},]"),
    (b"}]", b"}"),
])
def test_a_fault_anywhere_is_refused_exactly_when_the_whole_reader_refuses_it(old, new):
    body = doc_bytes(rows(40), **COMPACT)
    assert old in body
    same(body.replace(old, new, 1) if old != b'"id":"sku-00007",' else body.replace(old, new))


def test_random_corruptions_are_judged_as_the_whole_reader_judges_them():
    base = doc_bytes(rows(25), **COMPACT)
    rng = random.Random(19)
    alphabet = b'{}[],:"\\ 0e-.tnu\xc3\xff'
    for _ in range(600):
        body = bytearray(base)
        for _ in range(rng.randint(1, 2)):
            pos = rng.randrange(len(body))
            body[pos : pos + rng.randint(0, 1)] = bytes([rng.choice(alphabet)])
        same(bytes(body))


class _CountingJson:
    """batch.py's `json`, with `loads` recording the length of each text it parses."""

    def __init__(self) -> None:
        self.parsed: list[int] = []

    def loads(self, text: bytes | str) -> object:
        self.parsed.append(len(text))
        return json.loads(text)

    def __getattr__(self, name: str) -> object:
        return getattr(json, name)


def test_a_lookup_parses_one_row_and_a_page_its_rows(monkeypatch):
    body = doc_bytes(rows(500), **COMPACT)
    batch = compact(body)
    spy = _CountingJson()
    monkeypatch.setattr(batch_module, "json", spy)
    row = batch.get("sku-00321")
    assert row == rows(1, 321)[0]
    assert spy.parsed == [len(json.dumps(row, **COMPACT).encode())]
    spy.parsed.clear()
    batch.items_json(range(100, 150))
    assert len(spy.parsed) == 1 and spy.parsed[0] < 50 * 120
    spy.parsed.clear()
    batch.items_json(range(100, 150))
    assert spy.parsed == []  # the item texts are kept


def test_small_documents_take_the_exact_reader_only(monkeypatch):
    monkeypatch.setattr(batch_module, "FAST_MIN_BYTES", 1 << 20)
    monkeypatch.setattr(batch_module, "_fast_window", lambda *a: pytest.fail("no window pattern for a small batch"))
    same(doc_bytes(rows(100), **COMPACT))


def test_the_row_offsets_are_compact_integers():
    batch = compact(doc_bytes(rows(300), **COMPACT))
    assert batch._starts.typecode == "I" and len(batch._starts) == 301
    assert batch.nbytes >= len(batch._body) + 4 * 301


class Dated:
    """A source of batches of `size` rows for any date."""

    def __init__(self, size: int) -> None:
        self.size = size

    def get(self, key: str, etag: str | None = None) -> Fetched:
        date = key.split("/")[-2]
        if not date.startswith("2026-"):
            raise NotFound(key)
        body = json.dumps({"date": date, "predictions": rows(self.size)}, **COMPACT).encode()
        return Fetched(body, f'"{date}"')

    def list_dates(self, prefix: str) -> list[str]:
        return []


def test_the_cache_is_bounded_by_bytes_as_well_as_by_count():
    one = compact(Dated(200).get(f"p/{DATE}/predictions.json").body).nbytes
    store = PredictionStore(Dated(200), "p/", max_batches=8, max_bytes=int(one * 2.5))
    for day in range(1, 6):
        store.batch(f"2026-11-0{day}")
    assert list(store._batches) == ["2026-11-04", "2026-11-05"]
    # The batch being served stays even when it alone is over the bound.
    tiny = PredictionStore(Dated(200), "p/", max_bytes=1)
    tiny.batch("2026-11-01")
    tiny.batch("2026-11-02")
    assert list(tiny._batches) == ["2026-11-02"]
    # 0: only MAX_CACHED_BATCHES bounds it.
    counted = PredictionStore(Dated(200), "p/", max_batches=3, max_bytes=0)
    for day in range(1, 6):
        counted.batch(f"2026-11-0{day}")
    assert list(counted._batches) == ["2026-11-03", "2026-11-04", "2026-11-05"]


def test_item_texts_made_on_demand_count_towards_the_bytes():
    batch = compact(doc_bytes(rows(300), **COMPACT))
    before = batch.nbytes
    batch.items_json(range(300))
    assert batch.nbytes > before + 300 * 60
