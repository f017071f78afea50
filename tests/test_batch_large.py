"""Batches held compactly (store/batch.py: the document's bytes, row offsets, the id index): the
same answers as a batch of dicts, the same strictness, and a row limit that holds for any shape."""

from __future__ import annotations

import json

import pytest
from apigw import proxy_event

from app import app
from chalice_app.api import container
from chalice_app.config.settings import Settings
from chalice_app.store import batch as batch_module
from chalice_app.store.batch import Batch, BatchContractError
from chalice_app.store.sources import CorruptObject, ObjectTooLarge

from helpers import BUCKET, PREFIX, make_doc

DATE = "2026-11-23"


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Chunks of ~300 bytes (windows of ~1200), so that a few dozen rows span many of them."""
    monkeypatch.setattr(batch_module, "CHUNK_BYTES", 300)
    monkeypatch.setattr(batch_module, "FAST_MIN_BYTES", 0)


def rows(n: int) -> list[dict]:
    return [{"id": f"sku-{i:04d}", "label": ["Oat}, {milk", "x\"},{\"y", "é ü", None][i % 4],
             "value": float(n - i) if i % 5 else None, "flag": i % 3 == 0, "n": i} for i in range(n)]


def loaded(doc_bytes: bytes, max_items: int = 10_000) -> Batch:
    return Batch.from_json(doc_bytes, "e", max_depth=32, max_items=max_items)


@pytest.mark.parametrize("dumps", [
    lambda d: json.dumps(d).encode(),
    lambda d: json.dumps(d, separators=(",", ":")).encode(),
    lambda d: json.dumps(d, indent=2, ensure_ascii=False).encode(),
    lambda d: json.dumps({"predictions": d["predictions"],
                          **{k: v for k, v in d.items() if k != "predictions"}}).encode(),
], ids=["default", "compact", "pretty", "predictions-first"])
def test_a_compact_batch_answers_as_a_batch_of_dicts(dumps):
    doc = make_doc(DATE, rows(60))
    doc["fields"] = [{"name": "value", "label": "V", "type": "number"}]
    compact, whole = loaded(dumps(doc)), Batch(json.loads(json.dumps(doc)))
    assert compact._rows is None and len(compact._starts) == len(compact) + 1
    assert (len(compact), compact.metadata(), compact.fields) == (len(whole), whole.metadata(), whole.fields)
    assert compact.index == whole.index and compact.field_names == whole.field_names
    for sort in (None, "value", "label", "flag", "missing"):
        for desc in (False, True):
            for q in (None, "oat", "ü", "zzz"):
                view = compact.view(sort, desc, q)
                assert list(view) == list(whole.view(sort, desc, q))
                assert compact.items_json(view[:7]) == whole.items_json(view[:7])
    assert all(compact.get(item["id"]) == item for item in whole.items)
    assert compact.items == whole.items


@pytest.mark.parametrize(("body", "message"), [
    (json.dumps(make_doc(DATE, [*rows(30), {"id": "sku-0003"}])).encode(), "repeat"),
    (json.dumps(make_doc(DATE, [*rows(30), {"id": "bad id"}])).encode(), "prediction #30 has an invalid id"),
    (json.dumps(make_doc(DATE, [*rows(30), 7])).encode(), "prediction #30 is not an object"),
    (json.dumps(make_doc(DATE, rows(30))).replace('"n": 29', '"n": NaN').encode(), "not JSON"),
    (json.dumps(make_doc(DATE, rows(30))).replace('"n": 29', '"n": 1e400').encode(), "too large for a float"),
    (json.dumps(make_doc(DATE, rows(30))).replace('"n": 29', '"n": 1, "n": 2').encode(), "repeats the key"),
    (json.dumps(make_doc(DATE, rows(30))).replace('"n": 29', '"n": "\\udc00"').encode(), "surrogate"),
    (json.dumps(make_doc(DATE, rows(30)))[:-40].encode(), "JSON"),
])
def test_a_compact_batch_is_as_strict_as_the_whole_document(body, message):
    with pytest.raises((CorruptObject, BatchContractError), match=message):
        loaded(body)


def test_more_rows_than_the_limit_are_refused_whatever_their_size():
    tiny = json.dumps({"date": DATE, "predictions": [{"id": f"a{i}"} for i in range(101)]}).encode()
    with pytest.raises(ObjectTooLarge, match="MAX_BATCH_ITEMS"):
        loaded(tiny, max_items=100)
    assert len(loaded(tiny, max_items=101)) == 101
    # A shape the chunked reader does not take is bounded before it is parsed whole.
    odd = json.dumps({"date": DATE, "pred\\u0069ctions": [], "predictions": [{"id": f"a{i}"} for i in range(2000)]})
    with pytest.raises(ObjectTooLarge):
        loaded(odd.encode(), max_items=100)


def test_an_oversized_batch_is_a_503_batch_too_large_and_one_log_line(s3, capsys):
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}{DATE}/predictions.json",
                  Body=json.dumps({"date": DATE, "predictions": [{"id": f"a{i}"} for i in range(50)]}).encode())
    container._state["settings"] = Settings(bucket=BUCKET, prefix=PREFIX, max_batch_items=10)
    capsys.readouterr()
    response = app(proxy_event("/predictions/{date}", {"date": DATE}), None)
    assert response["statusCode"] == 503
    assert json.loads(response["body"])["error"]["code"] == "batch_too_large"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    faults = [line for line in lines if line["event"] == "source_fault"]
    assert [(f["code"], "MAX_BATCH_ITEMS" in f["reason"]) for f in faults] == [("batch_too_large", True)]
