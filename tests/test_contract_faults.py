"""Objects that break the contract by their size or their JSON: every reader refuses them the same way.

A gzip bomb, an object too large as stored, a document nested too deep, a key written twice and a
lone surrogate escape are contract faults wherever the contract is read: S3Source and DirSource,
the API (503 in its error shape, one log line, the last good copy served stale) and the site build
(one error line, no traceback).
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import tracemalloc
import zlib

import pytest
from apigw import proxy_event

import build_site
from app import app
from chalice_app.api import container
from chalice_app.config.settings import Settings
from chalice_app.store import contract_json
from chalice_app.store.sources import CorruptObject, DirSource, ObjectTooLarge, S3Source, decode_body

from helpers import BUCKET, PREFIX, make_doc

MiB = 1024 * 1024
DATE = "2026-11-23"
OLDER = "2026-11-22"
KEY = f"{PREFIX}{DATE}/predictions.json"
POINTER = f"{PREFIX}latest.json"
GOOD = make_doc(DATE, n=5)


@functools.cache
def bomb(size: int) -> bytes:
    """A gzip member of `size` zero bytes: about size / 1000 bytes stored."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(MiB)
    parts = [deflate.compress(chunk) for _ in range(size // MiB)]
    return b"".join(parts) + deflate.flush()


def nested(depth: int) -> bytes:
    """A batch whose first row holds a list nested so that the document is `depth` levels deep."""
    inner = "[" * (depth - 3) + "1" + "]" * (depth - 3)
    return ('{"date": "' + DATE + '", "predictions": [{"id": "a", "v": ' + inner + "}]}").encode()


# -- the sources: sizes ---------------------------------------------------------------------------


class FakeBody:
    """A streaming body that records what was asked of it; `endless` keeps giving bytes."""

    def __init__(self, data: bytes = b"", endless: bool = False) -> None:
        self.data, self.endless = data, endless
        self.asked: list[int | None] = []
        self.given = 0
        self.closed = False

    def read(self, amt: int | None = None) -> bytes:
        self.asked.append(amt)
        if self.endless:
            out = b"x" * (amt or MiB)
        else:
            out, self.data = (self.data, b"") if amt is None else (self.data[:amt], self.data[amt:])
        self.given += len(out)
        return out

    def close(self) -> None:
        self.closed = True


class FakeClient:
    def __init__(self, body: FakeBody, length: int | None, encoding: str | None = None) -> None:
        self.response = {"Body": body, "ETag": '"e"'}
        if length is not None:
            self.response["ContentLength"] = length
        if encoding:
            self.response["ContentEncoding"] = encoding

    def get_object(self, **_: object) -> dict:
        return self.response


def test_an_object_larger_than_max_stored_bytes_is_not_downloaded() -> None:
    body = FakeBody(endless=True)
    source = S3Source(FakeClient(body, 10 * 1024 * MiB), BUCKET, max_stored_bytes=4 * MiB)
    with pytest.raises(ObjectTooLarge, match="as stored") as err:
        source.get(KEY)
    assert isinstance(err.value, CorruptObject) and err.value.code == "batch_too_large"
    assert body.asked == [] and body.closed


@pytest.mark.parametrize("length", [100, None])
def test_a_body_longer_than_it_says_is_read_in_bounded_chunks_up_to_the_limit(length) -> None:
    body = FakeBody(endless=True)
    source = S3Source(FakeClient(body, length), BUCKET, max_stored_bytes=4 * MiB)
    with pytest.raises(ObjectTooLarge):
        source.get(KEY)
    assert all(amt is not None and amt <= MiB for amt in body.asked)
    assert body.given <= 4 * MiB + MiB and body.closed


def test_a_gzip_bomb_is_decompressed_no_further_than_max_batch_bytes() -> None:
    data = bomb(256 * MiB)
    assert len(data) < 512 * 1024
    source = S3Source(FakeClient(FakeBody(data), len(data), "gzip"), BUCKET, max_batch_bytes=2 * MiB)
    tracemalloc.start()
    try:
        with pytest.raises(ObjectTooLarge, match="decompresses past"):
            source.get(KEY)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB"


def test_an_unlabelled_or_multi_member_gzip_bomb_is_bounded_too() -> None:
    small = gzip.compress(b'{"a": 1}')
    for data, encoding in ((bomb(64 * MiB), None), (small + bomb(64 * MiB), "gzip")):
        with pytest.raises(ObjectTooLarge):
            decode_body(data, encoding, max_bytes=MiB)
    # Concatenated members within the limit still decode, as the gzip module reads them.
    assert decode_body(small + b"\0\0" + small, "gzip", max_bytes=MiB) == b'{"a": 1}{"a": 1}'
    with pytest.raises(CorruptObject):
        decode_body(small + b"garbage", "gzip", max_bytes=MiB)


def test_a_plain_body_over_max_batch_bytes_is_refused() -> None:
    data = b" " * (2 * MiB)
    source = S3Source(FakeClient(FakeBody(data), len(data)), BUCKET, max_stored_bytes=4 * MiB,
                      max_batch_bytes=MiB)
    with pytest.raises(ObjectTooLarge):
        source.get(KEY)


def test_a_body_within_the_limits_is_read_whole(s3) -> None:
    data = gzip.compress(json.dumps(GOOD).encode())
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=data, ContentEncoding="gzip")
    fetched = S3Source(s3, BUCKET, max_stored_bytes=len(data), max_batch_bytes=len(json.dumps(GOOD))).get(KEY)
    assert json.loads(fetched.body) == GOOD


def test_dir_source_applies_the_same_limits(tmp_path) -> None:
    folder = tmp_path / "predictions" / DATE
    folder.mkdir(parents=True)
    path = folder / "predictions.json"
    with open(path, "wb") as fh:
        fh.truncate(8 * 1024 * MiB)  # sparse: reading it whole would take 8 GiB
    source = DirSource(str(tmp_path), max_stored_bytes=4 * MiB, max_batch_bytes=2 * MiB)
    with pytest.raises(ObjectTooLarge, match="as stored"):
        source.get(KEY)
    path.write_bytes(bomb(64 * MiB))
    with pytest.raises(ObjectTooLarge, match="decompresses past"):
        source.get(KEY)
    path.write_bytes(json.dumps(GOOD).encode())
    assert json.loads(source.get(KEY).body) == GOOD


# -- the JSON reader ------------------------------------------------------------------------------


def loads(text: str | bytes, depth: int = 32):
    return contract_json.loads(text.encode() if isinstance(text, str) else text, depth)


@pytest.mark.parametrize(("text", "problem"), [
    ('{"date": "2026-11-23", "predictions": [{"id": "bad id", "id": "a"}]}', "repeats the key 'id'"),
    ('{"predictions": [], "model": {"name": "a", "name": "b"}}', "repeats the key 'name'"),
    # A key followed by a space is not counted as '":' and a repeated key is one key fewer: the
    # counts agree, so the fast check must not be trusted here.
    ('{"id": "x", "id": "y", "k" : 1}', "repeats the key 'id'"),
    ('{"a": "\\ud800"}', "lone UTF-16 surrogate"),
    ('{"predictions": [{"id": "a", "v": "x\\udc00"}]}', "prediction #0 holds a lone"),
    ('{"predictions": [{"id": "a", "\\ud83d": 1}]}', "lone UTF-16 surrogate"),
    ('{"a": "\\ud800\\ud800\\udc00"}', "lone UTF-16 surrogate"),  # the first high has no low
    ('{"a": "\\\\ud83d\\ude00"}', "lone UTF-16 surrogate"),  # an escaped backslash, text, a lone low
    ('{"a": "\\ud83d\\ude00\\ude00"}', "lone UTF-16 surrogate"),
    ("[" * 33 + "]" * 33, "nested deeper than 32"),
    ("[" * 100_000 + "]" * 100_000, "nested deeper than 32"),
    ('{"a": NaN}', "NaN is not JSON"),
    ('{"a": [1, {"b": -1e400}]}', "too large for a float"),
    ("[" + "1.5, " * 40 + "1e999]", "too large for a float"),
    ('{"predictions": [' + '{"id": "a", "v": 1.5}, ' * 40 + '{"id": "b", "v": 2E+400}]}',
     "prediction #40 holds a number"),
    ("1e400", "too large for a float"),
    (b'{"a": "\xed\xa0\x80"}', "not valid UTF-8"),
])
def test_what_the_reader_refuses(text, problem) -> None:
    with pytest.raises(CorruptObject, match=problem):
        loads(text)


@pytest.mark.parametrize("text", [
    '{"a": "\\ud83d\\ude00"}',  # a surrogate pair is one character
    '{"a": "\\\\ud800"}',  # an escaped backslash, then text
    '{"a": "\\\\\\ud83d\\ude00 \\uDBFF\\uDFFF"}',  # an escaped backslash, then two pairs
    "[" * 32 + "]" * 32,
    '{"a" : 1, "b"\n:\t2}',
    '{"a": "\\"id\\": 1, \\"id\\": 2"}',
])
def test_what_the_reader_accepts(text) -> None:
    assert loads(text) == json.loads(text)


def rows_doc(rows: list) -> bytes:
    return json.dumps({"date": DATE, "predictions": rows}).encode()


def test_depth_counts_inside_rows_whatever_the_brackets_in_strings() -> None:
    plain = [{"id": f"r{i}", "label": "[{ x"} for i in range(100)]
    assert loads(rows_doc(plain), 3)["predictions"] == plain  # rows are 3 levels deep
    deep = [{"id": f"r{i}", "v": [[[1]]]} for i in range(100)]
    assert loads(rows_doc(deep), 6)["predictions"] == deep
    with pytest.raises(CorruptObject, match="deeper than 5"):
        loads(rows_doc(deep), 5)
    last_only = [*plain, {"id": "z", "v": {"w": {"x": {}}}}]
    with pytest.raises(CorruptObject, match="deeper than 5"):
        loads(rows_doc(last_only), 5)
    with pytest.raises(CorruptObject, match="repeats the key 'id'"):
        loads(rows_doc(plain)[:-3] + b', "id": "again"}]}')


def test_a_normal_batch_never_takes_the_slow_parse(monkeypatch) -> None:
    def precise(pairs):
        raise AssertionError("the object_pairs_hook parse ran for a normal batch")

    def encode_all(doc):
        raise AssertionError("the whole document was encoded to look for a lone surrogate")

    monkeypatch.setattr(contract_json, "_unique_pairs", precise)
    monkeypatch.setattr(contract_json, "_check_no_lone_surrogate", encode_all)
    rows = [{"id": f"sku-{i}", "label": f"Item {i}: [big] {{x}} \U0001F600 \\", "value": i * 0.5, "ok": True,
             "n": None} for i in range(5000)]
    doc = {**make_doc(DATE, rows), "fields": [{"name": "value", "label": "Value", "type": "number"}]}
    # json.dumps escapes the emoji as a surrogate pair (ensure_ascii) in the first two.
    compact = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    for text in (json.dumps(doc), json.dumps(doc, indent=1), compact):
        assert loads(text) == doc


# -- through the API ------------------------------------------------------------------------------


@pytest.fixture
def s3(module_s3):
    for obj in module_s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        module_s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
    return module_s3


@pytest.fixture(autouse=True)
def _one_botocore_session(shared_botocore_session):
    """Every test is a new container; see conftest's shared_botocore_session."""


LIMITS = {"max_stored_bytes": 256 * 1024, "max_batch_bytes": MiB, "max_json_depth": 32}


@pytest.fixture
def settings_() -> Settings:
    cfg = Settings(bucket=BUCKET, prefix=PREFIX, stage="test", **LIMITS)
    container._state["settings"] = cfg
    return cfg


def get(path: str = "/predictions/{date}", params: dict | None = None) -> dict:
    return app(proxy_event(path, params if params is not None else {"date": DATE}), None)


def header(response: dict, name: str) -> str | None:
    return next((v for k, v in response["headers"].items() if k.lower() == name.lower()), None)


def log_lines(capsys) -> list[dict]:
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert not [line for line in lines if line["event"] == "unhandled_error"], lines
    return [line for line in lines if line["event"] == "source_fault"]


def expire_cache() -> None:
    store = container.store()
    for table in (store._batches, store._meta):
        for entry in table.values():
            entry.fresh_until = 0


BAD_BATCHES = [
    pytest.param(bomb(64 * MiB), {"ContentEncoding": "gzip"}, "batch_too_large", id="gzip bomb"),
    pytest.param(bomb(64 * MiB), {}, "batch_too_large", id="unlabelled gzip bomb"),
    pytest.param(json.dumps(make_doc(DATE, n=6000)).encode(), {}, "batch_too_large", id="over max_stored_bytes"),
    pytest.param(nested(50_000), {}, "contract", id="nested past the recursion limit"),
    pytest.param(nested(33), {}, "contract", id="nested past max_json_depth"),
    pytest.param(json.dumps(make_doc(DATE, [{"id": "a", "label": "\ud800"}])).encode(), {}, "contract",
                 id="lone surrogate"),
    pytest.param(b'{"date": "2026-11-23", "predictions": [{"id": "bad id", "id": "a"}]}', {}, "contract",
                 id="repeated key"),
]


@pytest.mark.parametrize(("data", "put", "code"), BAD_BATCHES)
def test_nothing_cached_a_bad_batch_is_503_in_the_api_shape_logged_once(s3, settings_, capsys, data, put, code):
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=data, **put)
    capsys.readouterr()
    response = get()
    assert response["statusCode"] == 503, response["body"][:300]
    expected = "batch_too_large" if code == "batch_too_large" else "storage_unavailable"
    assert json.loads(response["body"])["error"]["code"] == expected
    assert header(response, "Retry-After") == "5"
    lines = log_lines(capsys)
    assert [(line["key"], line["code"], line["served_stale"]) for line in lines] == [(DATE, code, False)]


@pytest.mark.parametrize(("data", "put", "code"), BAD_BATCHES)
def test_a_bad_batch_replacing_a_good_one_serves_the_good_one_stale(s3, settings_, capsys, data, put, code):
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=json.dumps(GOOD).encode())
    assert get()["statusCode"] == 200
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=data, **put)
    expire_cache()
    capsys.readouterr()
    response = get()
    assert response["statusCode"] == 200
    assert header(response, "X-Predictions-Stale") == "true"
    assert json.loads(response["body"])["items"] == GOOD["predictions"]
    assert [(line["code"], line["served_stale"]) for line in log_lines(capsys)] == [(code, True)]


BAD_POINTERS = [
    pytest.param(b"[" * 50_000 + b"]" * 50_000, id="nested past the recursion limit"),
    pytest.param(json.dumps({"date": DATE, "x": json.loads("[" * 40 + "]" * 40)}).encode(), id="too deep"),
    pytest.param(b'{"date": "2026-11-30", "date": "2026-11-23"}', id="repeated key"),
    pytest.param(b'{"date": "2026-11-23", "note": "\\udfff"}', id="lone surrogate"),
    pytest.param(bomb(64 * MiB), id="gzip bomb"),
]


@pytest.mark.parametrize("pointer", BAD_POINTERS)
def test_a_bad_pointer_makes_the_newest_batch_latest(s3, settings_, capsys, pointer):
    for date in (OLDER, DATE):
        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}{date}/predictions.json",
                      Body=json.dumps(make_doc(date)).encode())
    s3.put_object(Bucket=BUCKET, Key=POINTER, Body=pointer)
    listing = get("/predictions", {})
    assert listing["statusCode"] == 200, listing["body"][:300]
    assert json.loads(listing["body"]) == {"latest": DATE, "dates": [DATE, OLDER]}
    latest = get(params={"date": "latest"})
    assert latest["statusCode"] == 200 and json.loads(latest["body"])["date"] == DATE
    assert {line["key"] for line in log_lines(capsys)} == {"pointer"}


def test_the_container_passes_the_stage_limits_to_the_store(monkeypatch) -> None:
    for name, value in {"PREDICTIONS_BUCKET": BUCKET, "MAX_STORED_BYTES": "1000", "MAX_BATCH_BYTES": "2000",
                        "MAX_JSON_DEPTH": "7", "CONFIG_SSM_PATH": ""}.items():
        monkeypatch.setenv(name, value)
    store = container.store()
    assert (store.source.max_stored_bytes, store.source.max_batch_bytes, store.max_json_depth) == (1000, 2000, 7)


# -- the site build -------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "problem"), [
    # The local stage's MAX_BATCH_BYTES is the default, 64 MiB.
    pytest.param(bomb(80 * MiB), "decompresses past the limit of 67,108,864 bytes", id="gzip bomb"),
    pytest.param(nested(50_000), "nested deeper than 32 levels", id="nested past the recursion limit"),
    pytest.param(nested(40), "nested deeper than 32 levels", id="nested past max_json_depth"),
    pytest.param(b'{"date": "2026-11-23", "predictions": [{"id": "bad id", "id": "a"}]}', "repeats the key 'id'",
                 id="repeated key"),
])
def test_the_site_build_reports_a_bad_batch_in_one_line(tmp_path, capsys, data, problem) -> None:
    folder = tmp_path / "src" / "predictions" / DATE
    folder.mkdir(parents=True)
    (folder / "predictions.json").write_bytes(data)
    code = build_site.main(["--source", str(tmp_path / "src"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("build_site: error: cannot read"), err[:500]
    assert problem in err
    assert not os.path.exists(tmp_path / "out")


def test_the_site_build_reads_with_the_stage_limits(monkeypatch, tmp_path) -> None:
    from chalice_app.website.build import open_store

    monkeypatch.setattr("chalice_app.config.stage_file.stage_environment",
                        lambda stage: {"PREDICTIONS_BUCKET": BUCKET, "MAX_STORED_BYTES": "1000",
                                       "MAX_BATCH_BYTES": "2000", "MAX_JSON_DEPTH": "7"})
    store = open_store("any", str(tmp_path))
    assert (store.source.max_stored_bytes, store.source.max_batch_bytes, store.max_json_depth) == (1000, 2000, 7)
