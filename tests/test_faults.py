"""S3 faults through the whole API: what a client gets, how many times S3 is asked, what is logged.

Transport faults are injected by the `s3_spy` fixture (tests/s3_spy.py) on the container's own
client: it sits below botocore's retry layer, so the real retry policy (s3_max_attempts) runs and
every attempt is counted. Content faults (corrupt JSON, truncated gzip, contract breaks) are real objects in the
in-process moto bucket. Each fault runs two ways:

- nothing cached: 503 `storage_unavailable` with Retry-After;
- a last good copy is cached: 200 with `X-Predictions-Stale: true`;

and each way is one test per behaviour, table-driven over every fault.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from apigw import proxy_event
from botocore.exceptions import ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError
from urllib3.exceptions import ProtocolError

from app import app
from chalice_app.api import container
from chalice_app.config.settings import Settings
from chalice_app.store.cache import FAULT_BACKOFF_SECONDS

from helpers import BUCKET, PREFIX, make_doc

DATE = "2026-11-23"
KEY = f"{PREFIX}{DATE}/predictions.json"
POINTER = f"{PREFIX}latest.json"
GOOD = make_doc(DATE, n=5)


# -- the table ------------------------------------------------------------------------------------


def gz(doc: dict) -> bytes:
    return gzip.compress(json.dumps(doc).encode())


@dataclass(frozen=True)
class Fault:
    name: str
    code: str  # what the store's source_fault line names
    sends: int  # HTTP sends for one read: s3_max_attempts (2) when botocore retries, else 1
    inject: dict | None = None  # a transport fault: S3Spy.fail()'s arguments
    body: bytes | None = None  # a content fault, stored as the object itself
    put: dict = field(default_factory=dict)


FAULTS = [
    Fault("503 SlowDown", "SlowDown", 2, inject=dict(status=503, code="SlowDown")),
    Fault("503 ServiceUnavailable", "ServiceUnavailable", 2, inject=dict(status=503, code="ServiceUnavailable")),
    Fault("500 InternalError", "InternalError", 2, inject=dict(status=500, code="InternalError")),
    Fault("read timeout", "ReadTimeoutError", 2, inject=dict(error=ReadTimeoutError)),
    Fault("connect timeout", "ConnectTimeoutError", 2, inject=dict(error=ConnectTimeoutError)),
    Fault("connection closed", "ConnectionClosedError", 2, inject=dict(error=ConnectionClosedError)),
    Fault("403 AccessDenied", "AccessDenied", 1, inject=dict(status=403, code="AccessDenied")),
    Fault("404 NoSuchBucket", "NoSuchBucket", 1, inject=dict(status=404, code="NoSuchBucket")),
    # The body is read after botocore returned, outside its retries: one send.
    Fault("reset mid-body", "ResponseStreamingError", 1,
          inject=dict(content_length=100, body=b"",
                      read_error=ProtocolError("Connection broken: ConnectionResetError(104)"))),
    Fault("body shorter than Content-Length", "IncompleteReadError", 1,
          inject=dict(content_length=5000, body=json.dumps(GOOD).encode()[:50])),
    Fault("corrupt JSON", "contract", 1, body=b'{"date": "2026-11-23", "predictions": [{"id": "a"'),
    Fault("not UTF-8", "contract", 1, body=b'{"date": "2026-11-23", "predictions": [{"id": "\xc3\x28"}]}'),
    Fault("truncated gzip", "contract", 1, body=gz(GOOD)[:-12], put={"ContentEncoding": "gzip"}),
    Fault("not a JSON object", "contract", 1, body=b"[1, 2, 3]"),
    Fault("missing predictions", "contract", 1, body=json.dumps({"date": DATE}).encode()),
    Fault("predictions not a list", "contract", 1, body=json.dumps({"date": DATE, "predictions": {}}).encode()),
    Fault("row not an object", "contract", 1, body=json.dumps(make_doc(DATE, [{"id": "a"}, 7])).encode()),
    Fault("duplicate ids", "contract", 1, body=json.dumps(make_doc(DATE, [{"id": "a"}, {"id": "a"}])).encode()),
    Fault("bad id", "contract", 1, body=json.dumps(make_doc(DATE, [{"id": "../latest.json"}])).encode()),
    Fault("missing id", "contract", 1, body=json.dumps(make_doc(DATE, [{"label": "no id"}])).encode()),
    Fault("date not a date", "contract", 1, body=json.dumps(make_doc("2026-02-30")).encode()),
    Fault("NaN value", "contract", 1, body=b'{"date": "2026-11-23", "predictions": [{"id": "a", "v": NaN}]}'),
    Fault("1e400 value", "contract", 1, body=b'{"date": "2026-11-23", "predictions": [{"id": "a", "v": 1e400}]}'),
    Fault("document of another date", "contract", 1, body=json.dumps(make_doc("2026-11-20")).encode()),
]


CASES = [pytest.param(fault, id=fault.name) for fault in FAULTS]


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def s3(module_s3):
    """The module's bucket, emptied: every test starts from no objects at all."""
    for obj in module_s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        module_s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
    return module_s3


@pytest.fixture(autouse=True)
def _one_botocore_session(shared_botocore_session):
    """Every test is a new container; see conftest's shared_botocore_session."""


@pytest.fixture(autouse=True, params=["http", "botocore"])
def s3_client_kind(request, monkeypatch) -> str:
    """Every test runs on both S3 clients the container can pick: the botocore-free one (inside the
    Lambda runtime, whose variables this sets, with credentials in the environment) and botocore's
    (anywhere else, or any other credentials)."""
    if request.param == "http":
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "predictions-test")
        monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    if request.param == "botocore":
        from chalice_app.store import s3_http

        monkeypatch.setattr(s3_http, "make_client", lambda cfg, env=None: None)
    return request.param


@pytest.fixture
def settings_() -> Settings:
    """The defaults of a deployed stage (2 attempts, Retry-After 5), on the test bucket."""
    cfg = Settings(bucket=BUCKET, prefix=PREFIX, stage="test")
    container._state["settings"] = cfg
    return cfg


def put_good(s3) -> None:
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=json.dumps(GOOD).encode())
    s3.put_object(Bucket=BUCKET, Key=POINTER, Body=json.dumps({"date": DATE}).encode())


def arm(fault: Fault, s3, s3_spy) -> None:
    if fault.inject is not None:
        s3_spy.fail(key=KEY, **fault.inject)
    else:
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=fault.body, **fault.put)


def expire_cache() -> None:
    """As if every TTL had run out (the store's clock is real; waiting 300 s is not an option)."""
    store = container.store()
    for table in (store._batches, store._meta):
        for entry in table.values():
            entry.fresh_until = 0


def get(path: str = "/predictions/{date}", params: dict | None = None) -> dict:
    return app(proxy_event(path, params if params is not None else {"date": DATE}), None)


def header(response: dict, name: str) -> str | None:
    return next((v for k, v in response["headers"].items() if k.lower() == name.lower()), None)


def fault_lines(capsys) -> list[dict]:
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert not [line for line in lines if line["event"] == "unhandled_error"], lines
    return [line for line in lines if line["event"] == "source_fault"]


@pytest.fixture
def nothing_cached(s3, settings_, s3_spy) -> Callable[[Fault], dict]:
    """Arm the fault on a cold container and ask for the batch once."""

    def run(fault: Fault) -> dict:
        if fault.inject is not None:
            put_good(s3)  # the object is fine; the wire is not
        arm(fault, s3, s3_spy)
        return get()

    return run


@pytest.fixture
def cached_then_fault(s3, settings_, s3_spy, capsys) -> Callable[[Fault], dict]:
    """A good read fills the cache; then the fault is armed, the TTL runs out, and the batch is asked again."""

    def run(fault: Fault) -> dict:
        put_good(s3)
        assert get()["statusCode"] == 200
        arm(fault, s3, s3_spy)
        expire_cache()
        s3_spy.clear()
        capsys.readouterr()
        return get()

    return run


# -- nothing cached: 503 ------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", CASES)
def test_nothing_cached_answers_503_storage_unavailable_with_retry_after(nothing_cached, settings_, fault):
    response = nothing_cached(fault)
    assert response["statusCode"] == 503
    assert json.loads(response["body"])["error"]["code"] == "storage_unavailable"
    assert header(response, "Retry-After") == str(settings_.retry_after) == "5"
    assert header(response, "Cache-Control") == "no-store"


@pytest.mark.parametrize("fault", CASES)
def test_retries_are_bounded_by_s3_max_attempts(nothing_cached, s3_spy, fault):
    nothing_cached(fault)
    assert s3_spy.send_count(key=KEY) == fault.sends


@pytest.mark.parametrize("fault", CASES)
def test_a_fault_is_logged_once_as_a_structured_line(nothing_cached, capsys, fault):
    capsys.readouterr()
    nothing_cached(fault)
    lines = fault_lines(capsys)
    assert len(lines) == 1, lines
    assert (lines[0]["key"], lines[0]["code"], lines[0]["served_stale"]) == (DATE, fault.code, False)
    assert lines[0]["reason"]


# -- a last good copy: 200, stale -------------------------------------------------------------------


@pytest.mark.parametrize("fault", CASES)
def test_last_good_copy_is_served_marked_stale_and_briefly_cacheable(cached_then_fault, fault):
    response = cached_then_fault(fault)
    assert response["statusCode"] == 200
    assert header(response, "X-Predictions-Stale") == "true"
    assert header(response, "Cache-Control") == "public, max-age=5"  # RETRY_AFTER_SECONDS
    assert json.loads(response["body"])["items"] == GOOD["predictions"]


@pytest.mark.parametrize("fault", CASES)
def test_revalidation_retries_are_bounded_too(cached_then_fault, s3_spy, fault):
    cached_then_fault(fault)
    assert s3_spy.send_count(key=KEY) == fault.sends


@pytest.mark.parametrize("fault", CASES)
def test_a_stale_answer_logs_the_fault_once(cached_then_fault, capsys, fault):
    cached_then_fault(fault)
    lines = fault_lines(capsys)
    assert len(lines) == 1, lines
    assert (lines[0]["key"], lines[0]["code"], lines[0]["served_stale"]) == (DATE, fault.code, True)


# -- after a fault ----------------------------------------------------------------------------------

SLOWDOWN = FAULTS[0]


def test_after_a_fault_s3_is_left_alone_for_the_backoff(cached_then_fault, s3_spy, capsys):
    cached_then_fault(SLOWDOWN)
    s3_spy.clear()
    capsys.readouterr()
    again = get()
    assert header(again, "X-Predictions-Stale") == "true"
    assert s3_spy.sends == []  # answered from memory: an outage costs one slow request per backoff
    assert fault_lines(capsys) == []
    assert FAULT_BACKOFF_SECONDS == 5.0


def test_when_s3_is_back_the_fresh_copy_drops_the_stale_mark(cached_then_fault, s3_spy):
    cached_then_fault(SLOWDOWN)
    s3_spy.heal()
    expire_cache()
    response = get()
    assert response["statusCode"] == 200
    assert header(response, "X-Predictions-Stale") is None


@pytest.mark.parametrize("attempts", [1, 3])
def test_s3_max_attempts_sets_the_number_of_sends(s3, s3_spy, attempts):
    container._state["settings"] = Settings(bucket=BUCKET, prefix=PREFIX, s3_max_attempts=attempts)
    put_good(s3)
    s3_spy.fail(key=KEY, status=500, code="InternalError")
    assert get()["statusCode"] == 503
    assert s3_spy.send_count(key=KEY) == attempts


def test_one_transient_fault_is_retried_away_unseen(s3, settings_, s3_spy, capsys):
    put_good(s3)
    fault = s3_spy.fail(key=KEY, status=503, code="SlowDown", times=1)
    capsys.readouterr()
    response = get()
    assert response["statusCode"] == 200
    assert header(response, "X-Predictions-Stale") is None
    assert (fault.hits, s3_spy.send_count(key=KEY)) == (1, 2)  # botocore's retry got the good copy
    assert fault_lines(capsys) == []


# -- the pointer and the listing ------------------------------------------------------------------


def test_pointer_unreadable_is_503_for_latest(s3, settings_, s3_spy, capsys):
    put_good(s3)
    s3_spy.fail(key=POINTER, status=503, code="SlowDown")
    capsys.readouterr()
    response = get(params={"date": "latest"})
    assert response["statusCode"] == 503
    assert s3_spy.send_count(key=POINTER) == 2
    assert [(line["key"], line["code"]) for line in fault_lines(capsys)] == [("pointer", "SlowDown")]


def test_corrupt_pointer_falls_back_to_the_newest_listed_batch(s3, settings_, s3_spy, capsys):
    put_good(s3)
    s3.put_object(Bucket=BUCKET, Key=POINTER, Body=b"{not json")
    capsys.readouterr()
    response = get(params={"date": "latest"})
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["date"] == DATE
    assert s3_spy.send_count(key=POINTER) == 1
    assert [(line["key"], line["code"]) for line in fault_lines(capsys)] == [("pointer", "contract")]


def test_pointer_to_a_missing_batch_serves_the_newest_existing_one(s3, settings_, capsys):
    put_good(s3)
    s3.put_object(Bucket=BUCKET, Key=POINTER, Body=json.dumps({"date": "2026-11-30"}).encode())
    response = get(params={"date": "latest"})
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["date"] == DATE


def test_listing_unreadable_is_503_for_the_date_list(s3, settings_, s3_spy, capsys):
    put_good(s3)
    s3_spy.fail("ListObjectsV2", status=500, code="InternalError")
    capsys.readouterr()
    response = get("/predictions", {})
    assert response["statusCode"] == 503
    assert header(response, "Retry-After") == "5"
    assert s3_spy.send_count("ListObjectsV2") == 2
    assert [(line["key"], line["code"]) for line in fault_lines(capsys)] == [("dates", "InternalError")]


# -- a real hanging socket ------------------------------------------------------------------------


def test_a_hanging_s3_costs_attempts_times_read_timeout(s3, s3_spy, black_hole, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", black_hole)  # bypasses mock_aws: the socket is real
    container._state["settings"] = Settings(bucket=BUCKET, prefix=PREFIX, s3_read_timeout=0.3,
                                            s3_connect_timeout=0.3, s3_max_attempts=2)
    capsys.readouterr()
    started = time.monotonic()
    response = get()
    elapsed = time.monotonic() - started
    assert response["statusCode"] == 503
    assert s3_spy.send_count(key=KEY) == 2
    assert 0.6 <= elapsed < 2.0, f"{elapsed:.2f} s"
    assert [line["code"] for line in fault_lines(capsys)] == ["ReadTimeoutError"]
