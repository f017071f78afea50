"""The S3 clients against an S3 having a bad day: a small `http.server` on 127.0.0.1 that misbehaves
on purpose (a body or a listing or headers sent one byte at a time, each inside the read timeout; a
listing that repeats its continuation token or never ends; a DTD entity bomb; keys with `+` for a
space; a 304 to an unconditional GET; empty, truncated and garbage answers).

Each class runs on both clients where both apply: the botocore-free one (chalice_app/store/s3_http.py)
and botocore's, sent to the same server (AWS_ENDPOINT_URL / endpoint). Through S3Source (what the
store sees: one SourceUnavailable code) and through the whole API (a stale copy or a 503
`storage_unavailable` with Retry-After, within the deadline; never a 500).
"""

from __future__ import annotations

import json
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from apigw import proxy_event

from app import app
from chalice_app.api import container
from chalice_app.aws_clients import make_s3_client
from chalice_app.config.settings import Settings
from chalice_app.store import s3_http, sources
from chalice_app.store.sources import S3Source, SourceUnavailable

from helpers import BUCKET, PREFIX, make_doc

pytestmark = pytest.mark.slow  # moto, sockets or timers in every test: not in make test-fast

DATE = "2026-11-23"
KEY = f"{PREFIX}{DATE}/predictions.json"
POINTER = f"{PREFIX}latest.json"
GOOD = json.dumps(make_doc(DATE, n=5)).encode()
# Short bounds so a test takes about a second: each drip byte comes well inside the read timeout.
DEADLINE, READ_TIMEOUT, DRIP = 1.0, 0.5, 0.1
# What the deadline may overrun by: the timer's wake-up, the botocore client's thread, and a loaded
# machine (seen: 1.61 s under a full `make test`); an uncut drip would last tens of seconds.
SLACK = 2.0

NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def listing(keys: list[str], *, truncated: bool = False, token: str | None = None, encoded: bool = True) -> bytes:
    parts = [f"<?xml version='1.0' encoding='UTF-8'?><ListBucketResult xmlns='{NS}'><Name>{BUCKET}</Name>",
             f"<Prefix>{PREFIX}</Prefix><KeyCount>{len(keys)}</KeyCount><MaxKeys>1000</MaxKeys>",
             "<EncodingType>url</EncodingType>" if encoded else "",
             f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"]
    if token:
        parts.append(f"<NextContinuationToken>{token}</NextContinuationToken>")
    parts += [f"<Contents><Key>{key}</Key><Size>1</Size><ETag>&quot;e&quot;</ETag>"
              f"<StorageClass>STANDARD</StorageClass></Contents>" for key in keys]
    parts.append("</ListBucketResult>")
    return "".join(parts).encode()


def entity_bomb(refs: int) -> bytes:
    """A listing page whose one internal entity (1 KB) is referenced `refs` times."""
    return (b"<?xml version='1.0'?><!DOCTYPE ListBucketResult [<!ENTITY e '" + b"x" * 1024 + b"'>]>"
            b"<ListBucketResult xmlns='" + NS.encode() + b"'><IsTruncated>false</IsTruncated>"
            b"<Contents><Key>" + b"&e;" * refs + b"</Key></Contents></ListBucketResult>")


# -- the hostile server ---------------------------------------------------------------------------------


class Answer:
    """How to answer one request: status, headers, body, and how to send them."""

    def __init__(self, status: int = 200, body: bytes = b"", headers: dict | None = None, *,
                 drip_body: bool = False, drip_head: bool = False, length: int | None = None,
                 close: bool = False) -> None:
        self.status, self.body, self.headers = status, body, dict(headers or {})
        self.drip_body, self.drip_head, self.length, self.close = drip_body, drip_head, length, close


class Hostile:
    """A loopback S3 whose answers a test sets per request: `route(op, key, query) -> Answer`."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None, dict]] = []
        self.route: Callable[[str, str | None, dict], Answer] = lambda op, key, query: Answer(404)
        self.stop = threading.Event()
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                path = unquote(parts.path).lstrip("/")
                bucket, _, key = path.partition("/")
                if bucket != BUCKET:  # virtual-hosted: the bucket is in Host
                    key = path
                op = "ListObjectsV2" if "list-type" in query else "GetObject"
                hostile.requests.append((op, key or None, query))
                answer = hostile.route(op, key or None, {**query, **{k.lower(): v for k, v in self.headers.items()}})
                try:
                    hostile.send(self, answer)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def send(self, handler: BaseHTTPRequestHandler, answer: Answer) -> None:
        length = len(answer.body) if answer.length is None else answer.length
        head = (f"HTTP/1.1 {answer.status} X\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in {"Content-Length": str(length), **answer.headers}.items())
                + "\r\n").encode()
        out = handler.wfile
        if answer.drip_head:
            self._drip(out, head)
        else:
            out.write(head)
        if answer.drip_body:
            self._drip(out, answer.body)
        else:
            out.write(answer.body)
        out.flush()
        if answer.close:
            handler.close_connection = True

    def _drip(self, out, data: bytes) -> None:
        for i in range(len(data)):
            if self.stop.is_set():
                raise BrokenPipeError("server stopping")
            out.write(data[i : i + 1])
            out.flush()
            time.sleep(DRIP)

    def count(self, op: str) -> int:
        return sum(1 for request in self.requests if request[0] == op)

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile(monkeypatch) -> Iterator[Hostile]:
    server = Hostile()
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    yield server
    server.close()


CLIENTS = ["stdlib", "botocore"]


def s3_source(kind: str, server: Hostile, **kw) -> S3Source:
    cfg = Settings(s3_connect_timeout=0.5, s3_read_timeout=READ_TIMEOUT, s3_max_attempts=2,
                   s3_request_deadline=DEADLINE)
    if kind == "stdlib":
        client = s3_http.HttpS3Client(s3_http.Credentials("testing", "testing"), "us-east-1", endpoint=server.url,
                                      connect_timeout=cfg.s3_connect_timeout, read_timeout=cfg.s3_read_timeout,
                                      max_attempts=cfg.s3_max_attempts, deadline=cfg.s3_request_deadline)
        client.delay = lambda attempt, throttled: 0.0
    else:
        client = make_s3_client(cfg)  # AWS_ENDPOINT_URL: the hostile server
    return S3Source(client, BUCKET, deadline=DEADLINE, **kw)


def unavailable(call: Callable[[], object]) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as exc:
        call()
    return exc.value.code, time.monotonic() - started


# -- a slow drip: one deadline per call ------------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("where", ["body", "headers"])
def test_a_dripped_object_is_cut_off_at_the_deadline(hostile, kind, where):
    hostile.route = lambda op, key, query: Answer(200, GOOD, {"ETag": '"e"'}, drip_body=where == "body",
                                                  drip_head=where == "headers")
    code, elapsed = unavailable(lambda: s3_source(kind, hostile).get(KEY))
    assert code == "DeadlineExceeded"
    assert DEADLINE - 0.05 <= elapsed < DEADLINE + SLACK, f"{elapsed:.2f} s"


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_dripped_listing_is_cut_off_at_the_deadline(hostile, kind):
    page = listing([KEY])
    hostile.route = lambda op, key, query: Answer(200, page, drip_body=True)
    code, elapsed = unavailable(lambda: s3_source(kind, hostile).list_dates(PREFIX))
    assert code == "DeadlineExceeded"
    assert DEADLINE - 0.05 <= elapsed < DEADLINE + SLACK, f"{elapsed:.2f} s"


def test_the_deadline_spans_every_page_of_a_listing(hostile):
    """Each page quick enough on its own (0.3 s), the listing as a whole is still one deadline."""

    def route(op, key, query):
        time.sleep(0.3)
        n = int(query.get("continuation-token", "0"))
        return Answer(200, listing([f"{PREFIX}2026-01-{n + 1:02d}/predictions.json"], truncated=True, token=str(n + 1)))

    hostile.route = route
    code, elapsed = unavailable(lambda: s3_source("stdlib", hostile).list_dates(PREFIX))
    assert code == "DeadlineExceeded" and elapsed < DEADLINE + SLACK
    assert hostile.count("ListObjectsV2") <= 4


def test_the_deadline_bounds_retries_and_their_backoff(hostile):
    hostile.route = lambda op, key, query: Answer(503, b"<Error><Code>SlowDown</Code></Error>")
    source = s3_source("stdlib", hostile)
    source.client.max_attempts = 50
    source.client.delay = lambda attempt, throttled: 0.2
    code, elapsed = unavailable(lambda: source.get(KEY))
    assert code == "SlowDown" and elapsed < DEADLINE + SLACK
    assert hostile.count("GetObject") <= 6


def test_a_kept_alive_connection_is_not_cut_by_an_earlier_calls_timer(hostile):
    hostile.route = lambda op, key, query: Answer(200, GOOD, {"ETag": '"e"'})
    source = s3_source("stdlib", hostile)
    assert source.get(KEY).body == GOOD
    time.sleep(DEADLINE + 0.2)  # the first call's timer would have fired by now
    assert source.get(KEY).body == GOOD


# -- listings that never end ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_repeated_continuation_token_is_refused(hostile, kind):
    page = listing([KEY], truncated=True, token="same-token")
    hostile.route = lambda op, key, query: Answer(200, page)
    code, elapsed = unavailable(lambda: s3_source(kind, hostile).list_dates(PREFIX))
    assert code == "ListingLoop"
    assert hostile.count("ListObjectsV2") == 2 and elapsed < DEADLINE


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_listing_is_bounded_in_pages(hostile, kind, monkeypatch):
    monkeypatch.setattr(sources, "MAX_LISTING_PAGES", 5)

    def route(op, key, query):
        n = int(query.get("continuation-token", "0"))
        return Answer(200, listing([KEY], truncated=True, token=str(n + 1)))

    hostile.route = route
    code, _ = unavailable(lambda: s3_source(kind, hostile).list_dates(PREFIX))
    assert code == "ListingLoop" and hostile.count("ListObjectsV2") == 5


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_truncated_listing_without_a_token_is_refused(hostile, kind):
    hostile.route = lambda op, key, query: Answer(200, listing([KEY], truncated=True))
    code, _ = unavailable(lambda: s3_source(kind, hostile).list_dates(PREFIX))
    assert code == "ListingLoop"


# -- XML with a DOCTYPE --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_dtd_entity_bomb_is_refused_before_any_expansion(hostile, kind):
    bomb = entity_bomb(70_000)  # 70 MB once expanded, 210 KB as sent
    hostile.route = lambda op, key, query: Answer(200, bomb)
    source = s3_source(kind, hostile)
    tracemalloc.start()
    try:
        code, _ = unavailable(lambda: source.list_dates(PREFIX))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == "DoctypeRefused"
    assert peak < 20 * 1024 * 1024, f"{peak / 1e6:.0f} MB"


@pytest.mark.parametrize("kind", CLIENTS)
def test_an_error_answer_with_a_doctype_is_refused_too(hostile, kind):
    body = b"<?xml version='1.0'?><!DOCTYPE Error [<!ENTITY e 'x'>]><Error><Code>&e;</Code></Error>"
    hostile.route = lambda op, key, query: Answer(403, body)
    code, _ = unavailable(lambda: s3_source(kind, hostile).get(KEY))
    # botocore would parse the XML: refused. The botocore-free client never parses an error
    # body, it only finds <Code> in it: the entity stays an entity.
    assert code in ({"DoctypeRefused"} if kind == "botocore" else {"&e;"})


def test_the_stdlib_parser_refuses_a_doctype_even_when_the_scan_is_fooled(monkeypatch):
    assert s3_http.has_doctype(entity_bomb(1).decode().encode("utf-16"))
    monkeypatch.setattr(s3_http, "has_doctype", lambda text: False)
    with pytest.raises(s3_http.DoctypeRefused):
        s3_http.parse_listing(entity_bomb(10))


# -- keys as S3 encodes them ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_prefix_with_a_space_lists_its_dates(hostile, kind):
    """S3 writes a space as `+` in encoding-type=url listings (moto writes %20: unseen there)."""
    prefix = "team a/preds+x/"
    keys = ["team+a/preds%2Bx/2026-11-23/predictions.json", "team+a/preds%2Bx/2026-11-22/predictions.json",
            "team+a/preds%2Bx/2026-11-21/other+file.json"]
    hostile.route = lambda op, key, query: Answer(200, listing(keys))
    assert s3_source(kind, hostile).list_dates(prefix) == ["2026-11-23", "2026-11-22"]


# -- odd answers never become a 500 ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_304_to_an_unconditional_get_is_unavailable_not_a_crash(hostile, kind):
    hostile.route = lambda op, key, query: Answer(304)
    code, _ = unavailable(lambda: s3_source(kind, hostile).get(KEY))
    assert code == "UnexpectedNotModified"


ODD_OBJECTS = {
    "stray 304": lambda: Answer(304),
    "empty body": lambda: Answer(200, b"", {"ETag": '"e"'}),
    "truncated body": lambda: Answer(200, GOOD[:40], {"ETag": '"e"'}, length=len(GOOD), close=True),
    "garbage": lambda: Answer(200, b"\x00\xff<not json", {"ETag": '"e"'}),
    "html error page": lambda: Answer(502, b"<html><body>Bad Gateway</body></html>"),
    "xml bomb as error": lambda: Answer(500, entity_bomb(1000)),
    "dripped body": lambda: Answer(200, GOOD, {"ETag": '"e"'}, drip_body=True),
}
ODD_LISTINGS = {
    "empty body": lambda: Answer(200, b""),
    "garbage XML": lambda: Answer(200, b"<ListBucketResult><Contents><Key>"),
    "not XML": lambda: Answer(200, b"\x89PNG\r\n"),
    "entity bomb": lambda: Answer(200, entity_bomb(1000)),
    "repeated token": lambda: Answer(200, listing([KEY], truncated=True, token="t")),
    "dripped": lambda: Answer(200, listing([KEY]), drip_body=True),
}


def use(kind: str, monkeypatch) -> Settings:
    cfg = Settings(bucket=BUCKET, prefix=PREFIX, stage="test", s3_client=kind, s3_connect_timeout=0.5,
                   s3_read_timeout=READ_TIMEOUT, s3_max_attempts=2, s3_request_deadline=DEADLINE)
    container._state["settings"] = cfg
    monkeypatch.setattr(s3_http.HttpS3Client, "delay", lambda self, attempt, throttled: 0.0)
    return cfg


def ask(path: str, params: dict | None = None) -> tuple[dict, float]:
    started = time.monotonic()
    response = app(proxy_event(path, params or {}), None)
    return response, time.monotonic() - started


def header(response: dict, name: str) -> str | None:
    return next((v for k, v in response["headers"].items() if k.lower() == name.lower()), None)


def no_unhandled(capsys) -> None:
    out = capsys.readouterr().out
    assert '"unhandled_error"' not in out, out


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("odd", list(ODD_OBJECTS))
def test_an_odd_object_answer_is_a_503_never_a_500(hostile, kind, odd, monkeypatch, capsys):
    use(kind, monkeypatch)
    hostile.route = lambda op, key, query: (Answer(200, json.dumps({"date": DATE}).encode(), {"ETag": '"p"'})
                                            if key == POINTER else ODD_OBJECTS[odd]())
    response, elapsed = ask("/predictions/{date}", {"date": "latest"})
    assert response["statusCode"] == 503, response["body"]
    assert json.loads(response["body"])["error"]["code"] == "storage_unavailable"
    assert header(response, "Retry-After") == "5"
    assert elapsed < DEADLINE + SLACK, f"{elapsed:.2f} s"
    no_unhandled(capsys)


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("odd", list(ODD_LISTINGS))
def test_an_odd_listing_is_a_503_or_an_empty_list_never_a_500(hostile, kind, odd, monkeypatch, capsys):
    use(kind, monkeypatch)
    hostile.route = lambda op, key, query: Answer(404, b"<Error><Code>NoSuchKey</Code></Error>") \
        if op == "GetObject" else ODD_LISTINGS[odd]()
    response, elapsed = ask("/predictions")
    assert response["statusCode"] in (200, 503), response["body"]
    if response["statusCode"] == 200:  # botocore reads an empty 200 as an empty listing
        assert json.loads(response["body"]) == {"latest": None, "dates": []}
        assert (kind, odd) == ("botocore", "empty body")
    else:
        assert header(response, "Retry-After") == "5"
    assert elapsed < DEADLINE + SLACK, f"{elapsed:.2f} s"
    no_unhandled(capsys)


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_drip_after_a_good_read_serves_the_last_good_copy_within_the_deadline(hostile, kind, monkeypatch, capsys):
    use(kind, monkeypatch)
    dripping = threading.Event()

    def route(op, key, query):
        if key == KEY:
            return Answer(200, GOOD, {"ETag": '"b"'}, drip_body=dripping.is_set())
        return Answer(200, json.dumps({"date": DATE}).encode(), {"ETag": '"p"'})

    hostile.route = route
    first, _ = ask("/predictions/{date}", {"date": DATE})
    assert first["statusCode"] == 200
    dripping.set()
    store = container.store()
    for entry in store._batches.values():
        entry.fresh_until = 0
    response, elapsed = ask("/predictions/{date}", {"date": DATE})
    assert response["statusCode"] == 200 and header(response, "X-Predictions-Stale") == "true"
    assert json.loads(response["body"])["count"] == 5
    assert elapsed < DEADLINE + SLACK, f"{elapsed:.2f} s"
    assert '"code":"DeadlineExceeded"' in capsys.readouterr().out
