"""The prediction store: parse once, revalidate after the TTL, serve the last good copy on faults."""

from __future__ import annotations

import gzip
import json
import re
import time

import pytest

from chalice_app.api import container
from chalice_app.aws_clients import make_s3_client
from chalice_app.config.settings import Settings
from chalice_app.store.cache import BatchNotFound, PredictionStore, StoreUnavailable
from chalice_app.store.sources import S3Source

from helpers import BUCKET, PREFIX, body

pytestmark = pytest.mark.slow  # moto, sockets or timers in every test: not in make test-fast


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def parts(s3, clock, s3_spy):
    """A store on its own client (2 attempts) and a fake clock; the S3 spy on that client."""
    client = make_s3_client(Settings(bucket=BUCKET, s3_max_attempts=2))
    store = PredictionStore(S3Source(client, BUCKET), PREFIX, pointer_ttl=30, batch_ttl=300,
                            max_batches=2, clock=clock)
    return store, s3_spy.attach(client)


def test_a_batch_is_parsed_once_and_served_from_memory(parts, put_batch):
    store, calls = parts
    put_batch("2026-11-23")
    first = store.batch("2026-11-23")
    second = store.batch("2026-11-23")
    assert second.value is first.value
    assert (first.hit, second.hit) == (False, True)
    assert calls.count("GetObject") == 1


def test_after_the_ttl_an_unchanged_batch_is_revalidated_not_reparsed(parts, put_batch, clock):
    store, calls = parts
    put_batch("2026-11-23")
    first = store.batch("2026-11-23").value
    clock.now += 301
    again = store.batch("2026-11-23")
    assert again.value is first  # the 304 kept the parsed copy
    assert calls.count("GetObject") == 2


def test_after_the_ttl_a_republished_batch_is_reloaded(parts, put_batch, clock):
    store, _ = parts
    put_batch("2026-11-23", n=2)
    store.batch("2026-11-23")
    put_batch("2026-11-23", n=3)
    clock.now += 301
    assert len(store.batch("2026-11-23").value) == 3


def test_gzip_batches_are_read(parts, put_batch):
    store, _ = parts
    put_batch("2026-11-23", n=4, gzipped=True)
    assert len(store.batch("2026-11-23").value) == 4


def test_without_a_pointer_the_newest_batch_is_latest(parts, put_batch):
    store, _ = parts
    put_batch("2026-11-20", pointer=False)
    put_batch("2026-11-22", pointer=False)
    assert store.resolve("latest").value.date == "2026-11-22"


def test_pointer_to_a_missing_batch_falls_back_to_the_newest_existing(parts, put_batch, s3):
    store, _ = parts
    put_batch("2026-11-21")
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}latest.json", Body=json.dumps({"date": "2026-11-25"}))
    assert store.resolve("latest").value.date == "2026-11-21"


def test_corrupt_pointer_falls_back_to_the_listing(parts, put_batch, s3):
    store, _ = parts
    put_batch("2026-11-21")
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}latest.json", Body=b"{not json")
    assert store.resolve("latest").value.date == "2026-11-21"


def test_missing_dates_are_remembered_for_the_ttl(parts, put_batch):
    store, calls = parts
    for _ in range(3):
        with pytest.raises(BatchNotFound):
            store.batch("2026-01-01")
    assert calls.count("GetObject") == 1


def test_cache_holds_at_most_max_batches(parts, put_batch):
    store, calls = parts
    for day in ("2026-11-21", "2026-11-22", "2026-11-23"):
        put_batch(day)
        store.batch(day)
    store.batch("2026-11-21")  # evicted: read again
    assert calls.count("GetObject") == 4


def test_last_good_copy_is_served_stale_when_s3_fails(parts, put_batch, clock):
    store, calls = parts
    put_batch("2026-11-23")
    good = store.batch("2026-11-23").value
    clock.now += 301
    calls.fail(status=503)
    answer = store.batch("2026-11-23")
    assert answer.value is good
    assert answer.stale is True


def test_failures_are_retried_a_bounded_number_of_times(parts, put_batch):
    store, calls = parts
    put_batch("2026-11-23")
    calls.fail(status=500)
    with pytest.raises(StoreUnavailable):
        store.batch("2026-11-23")
    assert calls.count("GetObject") == 1
    assert len(calls.sends) == 2  # max_attempts=2: botocore retried once, then gave up


def test_one_transient_fault_is_absorbed_by_the_retry(parts, put_batch):
    store, calls = parts
    put_batch("2026-11-23")
    fault = calls.fail("GetObject", status=500, times=1)
    answer = store.batch("2026-11-23")
    assert (answer.stale, len(answer.value)) == (False, 5)
    assert fault.hits == 1
    assert calls.send_count("GetObject", key=f"{PREFIX}2026-11-23/predictions.json") == 2


def test_a_fault_on_one_date_leaves_the_others_readable(parts, put_batch):
    store, calls = parts
    put_batch("2026-11-22")
    put_batch("2026-11-23")
    calls.fail(key=re.compile(r"/2026-11-22/"), status=503)
    with pytest.raises(StoreUnavailable):
        store.batch("2026-11-22")
    assert len(store.batch("2026-11-23").value) == 5
    assert calls.send_count(key=f"{PREFIX}2026-11-22/predictions.json") == 2
    assert calls.send_count(key=f"{PREFIX}2026-11-23/predictions.json") == 1


def test_nothing_cached_and_s3_failing_is_unavailable(parts):
    store, calls = parts
    calls.fail(status=503)
    with pytest.raises(StoreUnavailable):
        store.resolve("latest")


def test_a_batch_breaking_the_contract_is_unavailable_not_served(parts, s3):
    store, _ = parts
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}2026-11-23/predictions.json",
                  Body=json.dumps({"date": "2026-11-23", "predictions": [{"id": "a"}, {"id": "a"}]}))
    with pytest.raises(StoreUnavailable) as err:
        store.batch("2026-11-23")
    assert err.value.code == "contract"


def test_truncated_gzip_is_unavailable(parts, s3):
    store, _ = parts
    blob = gzip.compress(json.dumps({"date": "2026-11-23", "predictions": []}).encode())[:-8]
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}2026-11-23/predictions.json", Body=blob,
                  ContentEncoding="gzip")
    with pytest.raises(StoreUnavailable):
        store.batch("2026-11-23")


# -- through the API --------------------------------------------------------------------------


def test_api_marks_a_stale_answer_and_caches_it_briefly(api, put_batch, s3_spy):
    put_batch("2026-11-23")
    assert api.get("/predictions/2026-11-23").status_code == 200
    store = container.store()
    s3_spy.fail(status=503)
    for entry in store._batches.values():
        entry.fresh_until = 0  # the TTL has run out
    response = api.get("/predictions/2026-11-23")
    assert response.status_code == 200
    assert response.headers["X-Predictions-Stale"] == "true"
    assert response.headers["Cache-Control"] == "public, max-age=5"


def test_a_stale_answer_is_never_kept_long_by_the_edge(api, put_batch, s3_spy, monkeypatch):
    """Even where CloudFront keeps the API's answers until the next publish (s-maxage), a stale copy
    says max-age only: the edge keeps it RETRY_AFTER_SECONDS, as browsers do."""
    import dataclasses

    real = container.settings
    monkeypatch.setattr(container, "settings", lambda: dataclasses.replace(real(), edge_cache="on"))
    put_batch("2026-11-23")
    assert "s-maxage" in api.get("/predictions/2026-11-23").headers["Cache-Control"]
    store = container.store()
    s3_spy.fail(status=503)
    for entry in store._batches.values():
        entry.fresh_until = 0
    response = api.get("/predictions/2026-11-23")
    assert response.headers["X-Predictions-Stale"] == "true"
    assert response.headers["Cache-Control"] == "public, max-age=5"


def test_where_the_edge_keeps_answers_no_batch_is_trusted_past_the_pointer_ttl(monkeypatch):
    """CloudFront refetches after the site function's invalidation, which waits POINTER_TTL_SECONDS after
    the newest write: a --force republish must be what it gets, not a batch parsed before it."""
    import dataclasses

    real = container.settings
    for mode, batch_ttl in (("on", 2.0), ("off", 300.0)):
        monkeypatch.setattr(container, "settings", lambda mode=mode: dataclasses.replace(
            real(), edge_cache=mode, pointer_ttl=2.0, batch_ttl=300.0))
        container.reset()
        assert (container.store().pointer_ttl, container.store().batch_ttl) == (2.0, batch_ttl)
    container.reset()


def test_api_answers_503_with_retry_after_when_s3_is_down(api, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    response = api.get("/predictions/latest")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert body(response)["error"]["code"] == "storage_unavailable"


def test_api_gives_up_on_a_hanging_s3_within_seconds(api, monkeypatch, black_hole):
    monkeypatch.setenv("AWS_ENDPOINT_URL", black_hole)
    started = time.monotonic()
    response = api.get("/predictions/latest")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    # Default settings: 2 attempts x 2 s read timeout, far below API Gateway's 29 s.
    assert elapsed < 10, f"took {elapsed:.1f} s"


def test_with_nothing_cached_a_failure_is_remembered_for_the_backoff(parts, put_batch, clock):
    store, calls = parts
    put_batch("2026-11-23")
    calls.fail(status=503)
    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            store.batch("2026-11-23")
    assert len(calls.sends) == 2  # one read (2 attempts), then answered from the remembered failure
    calls.heal()
    clock.now += 5.1
    assert len(store.batch("2026-11-23").value) == 5


def test_remembered_failures_are_bounded_like_missing_dates(parts, monkeypatch):
    import chalice_app.store.cache as store_module

    store, calls = parts
    monkeypatch.setattr(store_module, "MAX_NEGATIVE_ENTRIES", 3)
    calls.fail(status=503)
    for day in range(1, 8):
        with pytest.raises(StoreUnavailable):
            store.batch(f"2026-10-0{day}")
    assert len(store._batches) == 3
