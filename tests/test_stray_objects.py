"""The date list: what makes a date, in both sources, and one self-consistent answer whatever the TTLs.

The bucket is not only ours: a stray object in a date folder (`_SUCCESS`, a console's "folder/"
marker, a temporary file) must never make a date appear. A date exists when its batch key exists,
in S3Source and DirSource alike. And /predictions must never name a `latest` missing from its own
`dates`, nor list a date that answers 404, even though the pointer and the listing are cached apart.
"""

from __future__ import annotations

import json

import pytest
from apigw import proxy_event

import build_site
from app import app
from chalice_app.api import container
from chalice_app.config.settings import Settings
from chalice_app.store.cache import PredictionStore
from chalice_app.store.sources import DirSource, S3Source

from helpers import BUCKET, PREFIX, make_doc

pytestmark = pytest.mark.slow  # moto, sockets or timers in every test: not in make test-fast

D1, D2, D3 = "2026-11-21", "2026-11-22", "2026-11-23"
POINTER = f"{PREFIX}latest.json"

STRAY = {
    f"{PREFIX}2026-11-20/_SUCCESS": b"",
    f"{PREFIX}2026-11-19/": b"",  # what the S3 console writes for "Create folder"
    f"{PREFIX}2026-11-24/predictions.json.tmp": b"{",
    f"{PREFIX}2026-11-25/sub/predictions.json": json.dumps(make_doc("2026-11-25")).encode(),
    f"{PREFIX}2026-11-26/predictions.json/": b"",
    f"{PREFIX}2026-02-30/predictions.json": json.dumps(make_doc("2026-02-30")).encode(),
    f"{PREFIX}notes.txt": b"hello",
    "elsewhere/2026-11-27/predictions.json": json.dumps(make_doc("2026-11-27")).encode(),
}


@pytest.fixture
def s3(module_s3):
    for obj in module_s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        module_s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
    return module_s3


@pytest.fixture(autouse=True)
def _one_botocore_session(shared_botocore_session):
    """Every test is a new container; see conftest's shared_botocore_session."""


def put_batch(s3, date: str, pointer: bool = True) -> None:
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}{date}/predictions.json", Body=json.dumps(make_doc(date)).encode())
    if pointer:
        s3.put_object(Bucket=BUCKET, Key=POINTER, Body=json.dumps({"date": date}).encode())


def get(path: str, params: dict | None = None) -> dict:
    response = app(proxy_event(path, params), None)
    response["json"] = json.loads(response["body"])
    return response


def use_settings(**values) -> Settings:
    cfg = Settings(bucket=BUCKET, prefix=PREFIX, stage="test", **values)
    container._state["settings"] = cfg
    return cfg


def assert_consistent(listing: dict) -> None:
    """`latest` is one of `dates`, every listed date answers 200, and 'latest' serves `latest`."""
    assert listing["statusCode"] == 200
    doc = listing["json"]
    assert doc["latest"] in doc["dates"], doc
    for date in doc["dates"]:
        assert get("/predictions/{date}", {"date": date})["statusCode"] == 200, date
    assert get("/predictions/{date}", {"date": "latest"})["json"]["date"] == doc["latest"]


# -- what makes a date ----------------------------------------------------------------------------


def test_stray_objects_in_the_bucket_never_make_a_date(s3) -> None:
    use_settings()
    put_batch(s3, D2)
    put_batch(s3, D3)
    for key, data in STRAY.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    listing = get("/predictions")
    assert listing["json"] == {"latest": D3, "dates": [D3, D2]}
    assert_consistent(listing)


def test_both_sources_list_the_same_dates_from_the_same_objects(s3, tmp_path) -> None:
    put_batch(s3, D2)
    put_batch(s3, D3)
    for key, data in STRAY.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    # The same objects as files (a key ending in '/' is a folder on disk).
    for obj in s3.list_objects_v2(Bucket=BUCKET)["Contents"]:
        path = tmp_path.joinpath(*obj["Key"].split("/"))
        if obj["Key"].endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read())
    from_s3 = S3Source(s3, BUCKET).list_dates(PREFIX)
    from_dir = DirSource(str(tmp_path)).list_dates(PREFIX)
    assert from_s3 == from_dir == [D3, D2]


def test_a_listing_of_many_pages_finds_every_date(s3, monkeypatch) -> None:
    for day in range(1, 8):
        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}2026-10-0{day}/predictions.json", Body=b"{}")
        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}2026-10-0{day}/_SUCCESS", Body=b"")
    real = s3.list_objects_v2
    monkeypatch.setattr(s3, "list_objects_v2", lambda **kw: real(MaxKeys=3, **kw))
    assert S3Source(s3, BUCKET).list_dates(PREFIX) == [f"2026-10-0{day}" for day in range(7, 0, -1)]


def test_the_site_builds_from_a_bucket_with_stray_objects(s3, tmp_path, capsys) -> None:
    put_batch(s3, D2)
    put_batch(s3, D3)
    for key, data in STRAY.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    out = tmp_path / "out"
    assert build_site.main(["--stage", "local", "--out", str(out)]) == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["latest"], manifest["dates"]) == (D3, [D3, D2])


# -- the pointer and the listing agree, whatever the TTLs ------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    """The container's store on a clock the test moves; the stage's TTLs are not zero."""
    use_settings(pointer_ttl=30.0, batch_ttl=300.0)
    fake = Clock()
    container.store().clock = fake
    return fake


def test_a_listing_cached_before_the_pointer_moved_is_read_again(s3, clock) -> None:
    put_batch(s3, D1)
    assert get("/predictions/{date}", {"date": "latest"})["json"]["date"] == D1  # the pointer: read at t=0
    clock.now += 10
    assert get("/predictions")["json"] == {"latest": D1, "dates": [D1]}  # the listing: read at t=10
    put_batch(s3, D2)  # t=15: a new batch, then the pointer
    clock.now += 21  # t=31: the pointer's TTL has run out, the listing's has not
    listing = get("/predictions")
    assert listing["json"] == {"latest": D2, "dates": [D2, D1]}
    assert_consistent(listing)


def test_a_pointer_to_a_date_without_a_batch_is_not_listed_as_latest(s3, clock) -> None:
    put_batch(s3, D1)
    put_batch(s3, D2, pointer=False)
    s3.put_object(Bucket=BUCKET, Key=POINTER, Body=json.dumps({"date": D3}).encode())
    listing = get("/predictions")
    assert listing["json"] == {"latest": D2, "dates": [D2, D1]}
    assert_consistent(listing)
    clock.now += 31
    assert get("/predictions")["json"] == {"latest": D2, "dates": [D2, D1]}


def test_the_listing_is_read_again_at_most_once_per_pointer_read(s3, clock, monkeypatch) -> None:
    put_batch(s3, D1)
    s3.put_object(Bucket=BUCKET, Key=POINTER, Body=json.dumps({"date": D3}).encode())
    store = container.store()
    calls = []
    real = store.source.list_dates
    monkeypatch.setattr(store.source, "list_dates", lambda prefix: calls.append(prefix) or real(prefix))
    for _ in range(5):
        assert get("/predictions")["json"] == {"latest": D1, "dates": [D1]}
        clock.now += 1
    assert len(calls) == 1


def test_a_listed_date_that_turns_out_missing_leaves_the_listing(s3, clock) -> None:
    put_batch(s3, D1)
    put_batch(s3, D2)
    assert get("/predictions")["json"] == {"latest": D2, "dates": [D2, D1]}
    s3.delete_object(Bucket=BUCKET, Key=f"{PREFIX}{D2}/predictions.json")
    s3.put_object(Bucket=BUCKET, Key=POINTER, Body=json.dumps({"date": D1}).encode())
    clock.now += 1
    assert get("/predictions/{date}", {"date": D2})["statusCode"] == 404
    listing = get("/predictions")
    assert D2 not in listing["json"]["dates"]
    assert listing["json"]["latest"] in listing["json"]["dates"]


def test_store_overview_is_consistent_whatever_the_order_of_reads(s3) -> None:
    """The same at the store: every interleaving of reads, publishes and clock steps."""
    now = [0.0]
    store = PredictionStore(S3Source(s3, BUCKET), PREFIX, pointer_ttl=30, batch_ttl=300, clock=lambda: now[0])
    dates = ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]
    put_batch(s3, dates[0])
    for date in dates[1:]:
        for step, read in ((7, store.dates), (11, store.latest_date), (13, store.overview)):
            now[0] += step
            read()
            latest, listed = store.overview().value
            assert latest in listed
        put_batch(s3, date)
        now[0] += 17
        latest, listed = store.overview().value
        assert latest in listed and store.resolve("latest").value.date == latest
