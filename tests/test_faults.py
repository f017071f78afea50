"""S3 faults through the whole API: what a client gets, how many times S3 is asked, what is logged.

Transport faults are injected with a `before-send.s3` hook on the container's own client: it sits
below botocore's retry layer, so the real retry policy (s3_max_attempts) runs and every attempt is
counted. Content faults (corrupt JSON, truncated gzip, contract breaks) are real objects in the
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
from urllib.parse import unquote, urlsplit

import pytest
from apigw import proxy_event
from botocore.awsrequest import AWSResponse
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


# -- the wire: counting sends and answering for S3 -----------------------------------------------


class _Raw:
    """Just enough of urllib3's response for botocore: error bodies are streamed, 200 bodies read."""

    def __init__(self, data: bytes, fail_read: Exception | None = None) -> None:
        self.data = data
        self.fail_read = fail_read

    def stream(self, **_):
        yield self.data

    def read(self, amt=None):
        if self.fail_read is not None:
            raise self.fail_read
        data, self.data = self.data, b""
        return data


def s3_error(status: int, code: str) -> Callable:
    body = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
    return lambda request: AWSResponse(request.url, status, {"Content-Type": "application/xml"}, _Raw(body))


def raising(exc_type: type[Exception]) -> Callable:
    def respond(request):
        raise exc_type(endpoint_url=request.url, error="injected")

    return respond


def body_broken(length_header: int, data: bytes, fail_read: Exception | None = None) -> Callable:
    headers = {"Content-Length": str(length_header), "ETag": '"0123456789abcdef0123456789abcdef"',
               "Content-Type": "application/json"}
    return lambda request: AWSResponse(request.url, 200, headers, _Raw(data, fail_read))


class Wire:
    """Counts GetObject/ListObjectsV2 sends per key, and answers instead of S3 while armed."""

    def __init__(self, client) -> None:
        self.sends: dict[str, int] = {}
        self.respond: dict[str, Callable] = {}
        client.meta.events.register_first("before-send.s3", self._send)

    def _send(self, request, event_name: str = "", **_):
        parts = urlsplit(request.url)
        key = unquote(parts.path.lstrip("/")).removeprefix(BUCKET + "/")
        if event_name.endswith("ListObjectsV2"):
            key = "LIST"
        self.sends[key] = self.sends.get(key, 0) + 1
        respond = self.respond.get(key)
        return respond(request) if respond else None


# -- the table ------------------------------------------------------------------------------------


def gz(doc: dict) -> bytes:
    return gzip.compress(json.dumps(doc).encode())


@dataclass(frozen=True)
class Fault:
    name: str
    code: str  # what the store's source_fault line names
    sends: int  # HTTP sends for one read: s3_max_attempts (2) when botocore retries, else 1
    respond: Callable | None = None  # a transport fault, answered at the wire
    body: bytes | None = None  # a content fault, stored as the object itself
    put: dict = field(default_factory=dict)


FAULTS = [
    Fault("503 SlowDown", "SlowDown", 2, respond=s3_error(503, "SlowDown")),
    Fault("503 ServiceUnavailable", "ServiceUnavailable", 2, respond=s3_error(503, "ServiceUnavailable")),
    Fault("500 InternalError", "InternalError", 2, respond=s3_error(500, "InternalError")),
    Fault("read timeout", "ReadTimeoutError", 2, respond=raising(ReadTimeoutError)),
    Fault("connect timeout", "ConnectTimeoutError", 2, respond=raising(ConnectTimeoutError)),
    Fault("connection closed", "ConnectionClosedError", 2, respond=raising(ConnectionClosedError)),
    Fault("403 AccessDenied", "AccessDenied", 1, respond=s3_error(403, "AccessDenied")),
    Fault("404 NoSuchBucket", "NoSuchBucket", 1, respond=s3_error(404, "NoSuchBucket")),
    # The body is read after botocore returned, outside its retries: one send.
    Fault("reset mid-body", "ResponseStreamingError", 1,
          respond=body_broken(100, b"", ProtocolError("Connection broken: ConnectionResetError(104)"))),
    Fault("body shorter than Content-Length", "IncompleteReadError", 1,
          respond=body_broken(5000, json.dumps(GOOD).encode()[:50])),
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


@pytest.fixture(autouse=True)
def no_backoff_sleep(monkeypatch):
    """botocore sleeps up to 1 s before retrying a throttle; the number of attempts is what is tested."""
    from botocore.retries import standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)


@pytest.fixture
def settings_() -> Settings:
    """The defaults of a deployed stage (2 attempts, Retry-After 5), on the test bucket."""
    cfg = Settings(bucket=BUCKET, prefix=PREFIX, stage="test")
    container._state["settings"] = cfg
    return cfg


@pytest.fixture
def wire(s3, settings_) -> Wire:
    return Wire(container.store().source.client)


def put_good(s3) -> None:
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=json.dumps(GOOD).encode())
    s3.put_object(Bucket=BUCKET, Key=POINTER, Body=json.dumps({"date": DATE}).encode())


def arm(fault: Fault, s3, wire: Wire) -> None:
    if fault.respond is not None:
        wire.respond[KEY] = fault.respond
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
def nothing_cached(s3, wire) -> Callable[[Fault], dict]:
    """Arm the fault on a cold container and ask for the batch once."""

    def run(fault: Fault) -> dict:
        if fault.respond is not None:
            put_good(s3)  # the object is fine; the wire is not
        arm(fault, s3, wire)
        return get()

    return run


@pytest.fixture
def cached_then_fault(s3, wire, capsys) -> Callable[[Fault], dict]:
    """A good read fills the cache; then the fault is armed, the TTL runs out, and the batch is asked again."""

    def run(fault: Fault) -> dict:
        put_good(s3)
        assert get()["statusCode"] == 200
        arm(fault, s3, wire)
        expire_cache()
        wire.sends.clear()
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
def test_retries_are_bounded_by_s3_max_attempts(nothing_cached, wire, fault):
    nothing_cached(fault)
    assert wire.sends.get(KEY) == fault.sends


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
def test_revalidation_retries_are_bounded_too(cached_then_fault, wire, fault):
    cached_then_fault(fault)
    assert wire.sends.get(KEY) == fault.sends


@pytest.mark.parametrize("fault", CASES)
def test_a_stale_answer_logs_the_fault_once(cached_then_fault, capsys, fault):
    cached_then_fault(fault)
    lines = fault_lines(capsys)
    assert len(lines) == 1, lines
    assert (lines[0]["key"], lines[0]["code"], lines[0]["served_stale"]) == (DATE, fault.code, True)


# -- after a fault ----------------------------------------------------------------------------------

SLOWDOWN = FAULTS[0]


def test_after_a_fault_s3_is_left_alone_for_the_backoff(cached_then_fault, wire, capsys):
    cached_then_fault(SLOWDOWN)
    wire.sends.clear()
    capsys.readouterr()
    again = get()
    assert header(again, "X-Predictions-Stale") == "true"
    assert wire.sends == {}  # answered from memory: an outage costs one slow request per backoff
    assert fault_lines(capsys) == []
    assert FAULT_BACKOFF_SECONDS == 5.0


def test_when_s3_is_back_the_fresh_copy_drops_the_stale_mark(cached_then_fault, wire):
    cached_then_fault(SLOWDOWN)
    wire.respond.clear()
    expire_cache()
    response = get()
    assert response["statusCode"] == 200
    assert header(response, "X-Predictions-Stale") is None


@pytest.mark.parametrize("attempts", [1, 3])
def test_s3_max_attempts_sets_the_number_of_sends(s3, attempts):
    container._state["settings"] = Settings(bucket=BUCKET, prefix=PREFIX, s3_max_attempts=attempts)
    wire = Wire(container.store().source.client)
    put_good(s3)
    wire.respond[KEY] = s3_error(500, "InternalError")
    assert get()["statusCode"] == 503
    assert wire.sends[KEY] == attempts


# -- the pointer and the listing ------------------------------------------------------------------


def test_pointer_unreadable_is_503_for_latest(s3, wire, capsys):
    put_good(s3)
    wire.respond[POINTER] = s3_error(503, "SlowDown")
    capsys.readouterr()
    response = get(params={"date": "latest"})
    assert response["statusCode"] == 503
    assert wire.sends[POINTER] == 2
    assert [(line["key"], line["code"]) for line in fault_lines(capsys)] == [("pointer", "SlowDown")]


def test_corrupt_pointer_falls_back_to_the_newest_listed_batch(s3, wire, capsys):
    put_good(s3)
    s3.put_object(Bucket=BUCKET, Key=POINTER, Body=b"{not json")
    capsys.readouterr()
    response = get(params={"date": "latest"})
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["date"] == DATE
    assert wire.sends[POINTER] == 1
    assert [(line["key"], line["code"]) for line in fault_lines(capsys)] == [("pointer", "contract")]


def test_pointer_to_a_missing_batch_serves_the_newest_existing_one(s3, wire, capsys):
    put_good(s3)
    s3.put_object(Bucket=BUCKET, Key=POINTER, Body=json.dumps({"date": "2026-11-30"}).encode())
    response = get(params={"date": "latest"})
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["date"] == DATE


def test_listing_unreadable_is_503_for_the_date_list(s3, wire, capsys):
    put_good(s3)
    wire.respond["LIST"] = s3_error(500, "InternalError")
    capsys.readouterr()
    response = get("/predictions", {})
    assert response["statusCode"] == 503
    assert header(response, "Retry-After") == "5"
    assert wire.sends["LIST"] == 2
    assert [(line["key"], line["code"]) for line in fault_lines(capsys)] == [("dates", "InternalError")]


# -- a real hanging socket ------------------------------------------------------------------------


def test_a_hanging_s3_costs_attempts_times_read_timeout(s3, black_hole, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", black_hole)  # bypasses mock_aws: the socket is real
    container._state["settings"] = Settings(bucket=BUCKET, prefix=PREFIX, s3_read_timeout=0.3,
                                            s3_connect_timeout=0.3, s3_max_attempts=2)
    wire = Wire(container.store().source.client)
    capsys.readouterr()
    started = time.monotonic()
    response = get()
    elapsed = time.monotonic() - started
    assert response["statusCode"] == 503
    assert wire.sends[KEY] == 2
    assert 0.6 <= elapsed < 2.0, f"{elapsed:.2f} s"
    assert [line["code"] for line in fault_lines(capsys)] == ["ReadTimeoutError"]
