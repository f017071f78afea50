"""A batch the publish command validated is not proven again (store/batch.py, contract.py's
VALIDATED_MARK): when S3's ETag is the MD5 publish recorded, or the body hashes to the SHA-256 it
recorded, only the rows' offsets and ids are taken and each row's stored text is its answer. What the
API answers must be exactly what the strict reader gives; anything else is read strictly."""

from __future__ import annotations

import hashlib
import json

import pytest

from chalice_app.contract import MD5_METADATA, SHA256_METADATA, VALIDATED_MARK, VALIDATED_METADATA, batch_key
from chalice_app.jsontext import encode
from chalice_app.publishing.publish import encode_document, publish_document
from chalice_app.store import batch as batch_module
from chalice_app.store.batch import Batch, BatchContractError
from chalice_app.store.cache import PredictionStore
from chalice_app.store.sources import CorruptObject, S3Source

from helpers import BUCKET

DATE = "2026-11-23"

# Text that looks like the reader's landmarks, escapes of every kind, and what encode() makes HTML-safe.
LABELS = ['Oat "milk" 1l', "a\\b", '{"id":"sku-x"}', "},{", ',{"id":', "<script>&amp;</script>", "tab\there\x01",
          "line\u2028sep", "é ü 😀 \u00a0", "", "]}"]
NUMBERS = [1.5, -0.0, 12, 1e-07, 123456789012345, 0.1, 1e15, -3.25e-05, 9007199254740991, None, True, False]


def hostile_rows(n: int, *, id_first: bool = True) -> list[dict]:
    out = []
    for i in range(n):
        row = {"label": LABELS[i % len(LABELS)], "value": NUMBERS[i % len(NUMBERS)], "lower": NUMBERS[(i + 3) % 12]}
        row = {"id": f"sku-{i:05d}", **row} if id_first else {**row, "id": f"sku-{i:05d}"}
        if i % 7 == 3:
            row["extra"] = LABELS[(i + 1) % len(LABELS)]  # rows need not share their keys
        out.append(row)
    return out


@pytest.fixture(autouse=True)
def small_windows(monkeypatch):
    monkeypatch.setattr(batch_module, "CHUNK_BYTES", 300)
    monkeypatch.setattr(batch_module, "MIN_WINDOW_ROWS", 2)
    monkeypatch.setattr(batch_module, "FAST_MIN_BYTES", 0)


def published(predictions: list[dict]) -> bytes:
    """The JSON the publish command stores (its own encoder)."""
    return encode_document({"date": DATE, "generated_at": "2026-11-23T04:00:00Z",
                            "model": {"name": "m", "version": "1"}, "predictions": predictions})[0]


def load(body: bytes, **proof: object) -> Batch:
    return Batch.from_json(body, "e", max_depth=32, max_items=100_000, **proof)


def assert_same_answers(got: Batch, body: bytes) -> None:
    strict = load(body)
    assert not strict._canonical
    assert got.index == strict.index and list(got._starts) == list(strict._starts)
    for pid in strict.index:
        assert got.item_json(pid) == strict.item_json(pid) == encode(strict.get(pid))
    assert got.items_json(range(len(got))) == strict.items_json(range(len(strict)))
    assert {**got.metadata(), "gate": None} == strict.metadata()  # the gate's verdict comes from S3 metadata


@pytest.mark.parametrize("id_first", [True, False])
def test_a_batch_proven_by_its_digest_answers_as_the_strict_reader(id_first):
    body = published(hostile_rows(300, id_first=id_first))
    got = load(body, proven_sha256=hashlib.sha256(body).hexdigest())
    assert got._canonical
    assert_same_answers(got, body)


def test_a_batch_proven_by_its_etag_answers_as_the_strict_reader():
    body = published(hostile_rows(200))
    got = load(body, proven_by_etag=True)
    assert got._canonical
    assert_same_answers(got, body)


def test_a_digest_that_does_not_match_sends_the_batch_to_the_strict_reader(monkeypatch):
    body = published(hostile_rows(100))
    got = load(body, proven_sha256="0" * 64)
    assert not got._canonical
    assert_same_answers(got, body)
    # Bytes the strict reader refuses are refused, whatever a wrong digest claimed.
    broken = body.replace(b'"value":12,', b'"value":012,', 1)
    assert broken != body
    with pytest.raises((CorruptObject, BatchContractError)):
        load(broken, proven_sha256=hashlib.sha256(body).hexdigest())


def test_a_repeated_id_is_refused_even_in_a_proven_batch():
    rows = hostile_rows(50)
    rows[40]["id"] = rows[3]["id"]
    body = published(rows)
    with pytest.raises(BatchContractError, match="repeat"):
        load(body, proven_sha256=hashlib.sha256(body).hexdigest())


def test_the_publish_command_records_what_proves_its_batch(s3):
    doc = {"date": DATE, "generated_at": "2026-11-23T04:00:00Z", "model": {"name": "m", "version": "1"},
           "predictions": hostile_rows(5000)}
    publish_document(s3, BUCKET, "predictions/", doc)
    head = s3.head_object(Bucket=BUCKET, Key=batch_key("predictions/", DATE))
    raw, stored = encode_document(doc)
    assert head["ContentEncoding"] == "gzip"
    assert head["Metadata"][VALIDATED_METADATA] == VALIDATED_MARK
    assert head["Metadata"][SHA256_METADATA] == hashlib.sha256(raw).hexdigest()
    assert head["Metadata"][MD5_METADATA] == head["ETag"].strip('"') == hashlib.md5(stored).hexdigest()


def store_batch(s3) -> Batch:
    return PredictionStore(S3Source(s3, BUCKET), "predictions/").batch(DATE).value


def test_the_store_trusts_a_published_batch_and_no_other(s3):
    rows = hostile_rows(5000)
    body = published(rows)
    publish_document(s3, BUCKET, "predictions/", json.loads(body))
    proven = store_batch(s3)
    assert proven._canonical
    assert_same_answers(proven, body)
    key = batch_key("predictions/", DATE)
    # A model job writing the key itself: read strictly.
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    assert not store_batch(s3)._canonical
    # The mark with digests of other bytes (metadata copied from another batch): read strictly.
    other = {SHA256_METADATA: "0" * 64, MD5_METADATA: "0" * 32, VALIDATED_METADATA: VALIDATED_MARK}
    s3.put_object(Bucket=BUCKET, Key=key, Body=body, Metadata=other)
    assert not store_batch(s3)._canonical
    # An unknown mark (another version of the checks): read strictly, even with the right digest.
    s3.put_object(Bucket=BUCKET, Key=key, Body=body, Metadata={**other, VALIDATED_METADATA: "contract-v0",
                                                               SHA256_METADATA: hashlib.sha256(body).hexdigest()})
    assert not store_batch(s3)._canonical


def test_a_proven_row_is_answered_from_its_stored_text_without_a_parse(monkeypatch):
    body = published(hostile_rows(100))
    got = load(body, proven_by_etag=True)

    def no_parse(*_a: object, **_k: object) -> None:
        pytest.fail("a proven row was parsed to be answered")

    with monkeypatch.context() as patched:
        patched.setattr(batch_module.json, "loads", no_parse)
        text = got.item_json("sku-00005")
    assert json.loads(text)["label"] == LABELS[5] and "<" not in text


def test_a_small_proven_batch_is_read_strictly_and_answered_from_its_text(monkeypatch):
    monkeypatch.setattr(batch_module, "FAST_MIN_BYTES", 1 << 20)  # the exact reader only, as below 1 MiB
    body = published(hostile_rows(60))
    got = load(body, proven_sha256=hashlib.sha256(body).hexdigest())
    assert got._canonical
    assert_same_answers(got, body)
    assert not load(body, proven_sha256="f" * 64)._canonical


def test_the_publish_command_writes_every_prediction_id_first():
    rows = hostile_rows(40, id_first=False)
    stored = json.loads(published(rows))["predictions"]
    assert all(next(iter(row)) == "id" for row in stored)
    assert stored == rows  # the same fields and values; only the order of keys changed
