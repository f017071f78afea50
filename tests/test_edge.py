"""tools/edge.py: deploy/stack.json's distribution serving a built site, /api/* through the API
Gateway stand-in to the API.

The upstream is a tiny stub HTTP server on 127.0.0.1 that records what it was asked; the edge starts
tools/api_gateway_local.py in front of it (start_in_thread(api=...)), as in production.
"""

from __future__ import annotations

import gzip
import http.client
import http.server
import json
import re
import shlex
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from html import escape as html_escape
from html.parser import HTMLParser
from itertools import chain
from types import SimpleNamespace
from typing import ClassVar, NamedTuple

import pytest

from chalice_app.api.limits import MAX_LIMIT
from chalice_app.store.batch import Batch
from chalice_app.website.render import ASSETS, SITE_DIR, Renderer, api_page
from tools.edge import MAX_BODY, EdgeServer, start_in_thread

from site_helpers import build_folder, read, sample_docs, write_source

STUB_ETAG = '"v1"'


class StubApi(http.server.BaseHTTPRequestHandler):
    """Answers like the API: JSON with an ETag, 304 when it matches, 404 for anything unknown."""

    seen: ClassVar[list[dict]] = []

    def do_GET(self) -> None:
        StubApi.seen.append({"path": self.path, "if_none_match": self.headers.get("If-None-Match")})
        if self.path.startswith("/predictions"):
            headers = {"ETag": STUB_ETAG, "Cache-Control": "public, max-age=0", "X-From": "stub",
                       "Content-Security-Policy": "default-src 'none'"}
            if self.headers.get("If-None-Match") == STUB_ETAG:
                self._reply(304, headers, b"")
                return
            payload = {"latest": "2026-11-20", "dates": ["2026-11-20"] * 100}  # big enough to compress
            self._reply(200, {**headers, "Content-Type": "application/json"}, json.dumps(payload).encode())
            return
        self._reply(404, {"Content-Type": "application/json"}, b'{"error": {"code": "not_found"}}')

    def _reply(self, status: int, headers: dict, body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StubApi)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> str:
    src = write_source(str(tmp_path_factory.mktemp("bucket")), sample_docs(2, 150))
    out = str(tmp_path_factory.mktemp("site") / "out")
    build_folder(src, out, 2)
    return out


@pytest.fixture(scope="module")
def edge(site: str, upstream: str) -> Iterator[EdgeServer]:
    server = start_in_thread(site, api=upstream)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def clear_seen(edge: EdgeServer) -> None:
    StubApi.seen.clear()
    edge.cache.clear()  # every test starts with a cold edge cache


def get(edge: EdgeServer, path: str, headers: dict | None = None, method: str = "GET") -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", edge.server_address[1], timeout=10)
    conn.request(method, path, headers=headers or {})
    response = conn.getresponse()
    response.body = response.read()
    conn.close()
    return response


def asset(site: str, suffix: str) -> str:
    manifest = json.loads(read(site, "manifest.json"))
    return "/" + next(path for name, path in manifest["assets"].items() if name.endswith(suffix))


# ---- static files ------------------------------------------------------------------------------


def test_binds_loopback_only(edge: EdgeServer) -> None:
    assert edge.server_address[0] == "127.0.0.1"


def test_serves_index_for_the_root_with_revalidated_html(edge: EdgeServer, site: str) -> None:
    response = get(edge, "/")
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert response.getheader("Cache-Control") == "public, max-age=0, s-maxage=86400"  # browsers revalidate
    assert response.body == read(site, "index.html").encode()


@pytest.mark.parametrize(("suffix", "kind"), [
    (".css", "text/css; charset=utf-8"), (".js", "text/javascript; charset=utf-8"), (".svg", "image/svg+xml")])
def test_hashed_assets_are_immutable_for_a_year(edge: EdgeServer, site: str, suffix: str, kind: str) -> None:
    response = get(edge, asset(site, suffix))
    assert response.status == 200
    assert response.getheader("Content-Type") == kind
    assert response.getheader("Cache-Control") == "public, max-age=31536000, immutable"


def test_security_headers_allow_only_the_site_itself(edge: EdgeServer) -> None:
    response = get(edge, "/")
    csp = response.getheader("Content-Security-Policy")
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "http" not in csp
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert response.getheader("X-Frame-Options") == "DENY"
    assert response.getheader("Referrer-Policy") == "strict-origin-when-cross-origin"


@pytest.mark.parametrize("path", ["/no/such/page.html", "/d/", "/d", "/docs/", "/index.html/", "/404"])
def test_a_key_that_does_not_exist_is_the_sites_404_page(edge: EdgeServer, path: str) -> None:
    """No s3:ListBucket: S3 says 403 AccessDenied; the template's Lambda@Edge origin-response function
    (invoked for origin answers of 400 or more, unlike viewer-response ones) makes it the 404 page."""
    response = get(edge, path)
    assert response.status == 404
    assert b"<h1>Page not found</h1>" in response.body and b"AccessDenied" not in response.body
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert response.getheader("Location") is None
    # The site behaviour's headers policy applies to it as to every page of the site.
    assert "script-src 'self'" in response.getheader("Content-Security-Policy")


@pytest.mark.parametrize("path", ["/../manifest.json/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
                                  "/d/..%2f..%2fetc"])
def test_nothing_outside_the_root_is_served(edge: EdgeServer, path: str) -> None:
    response = get(edge, path)
    assert response.status == 404  # a key S3 does not have, made the site's 404 page
    assert b"root:" not in response.body


def test_gzip_when_the_client_accepts_it(edge: EdgeServer, site: str) -> None:
    response = get(edge, "/", {"Accept-Encoding": "br, gzip"})
    assert response.getheader("Content-Encoding") == "gzip"
    assert response.getheader("Vary") == "Accept-Encoding"
    assert gzip.decompress(response.body) == read(site, "index.html").encode()
    assert len(response.body) < len(read(site, "index.html")) / 3
    assert get(edge, "/", {"Accept-Encoding": "gzip;q=0"}).getheader("Content-Encoding") is None


def test_unchanged_file_is_a_304(edge: EdgeServer) -> None:
    etag = get(edge, "/").getheader("ETag")
    again = get(edge, "/", {"If-None-Match": etag})
    assert again.status == 304 and again.body == b""
    assert get(edge, "/", {"If-None-Match": '"other"'}).status == 200


def test_head_answers_headers_only(edge: EdgeServer, site: str) -> None:
    response = get(edge, "/", method="HEAD")
    assert response.status == 200 and response.body == b""
    assert response.getheader("Content-Length") == str(len(read(site, "index.html").encode()))


# ---- /api/* ------------------------------------------------------------------------------------


def test_api_goes_through_the_stage_with_the_query(edge: EdgeServer) -> None:
    response = get(edge, "/api/predictions/latest?limit=5&q=oat%20milk")
    assert StubApi.seen == [{"path": "/predictions/latest?limit=5&q=oat%20milk", "if_none_match": None}]
    assert response.status == 200
    assert json.loads(response.body)["latest"] == "2026-11-20"
    assert response.getheader("ETag") == STUB_ETAG
    assert response.getheader("X-From") == "stub"
    # The API's own, stricter policy wins over the site's (CloudFront's override=false).
    assert response.getheader("Content-Security-Policy") == "default-src 'none'"
    assert response.getheader("X-Frame-Options") == "DENY"


def test_api_304_is_relayed_with_if_none_match_passed_through(edge: EdgeServer) -> None:
    response = get(edge, "/api/predictions", {"If-None-Match": STUB_ETAG})
    assert StubApi.seen[-1] == {"path": "/predictions", "if_none_match": STUB_ETAG}
    assert response.status == 304
    assert response.body == b""
    assert response.getheader("ETag") == STUB_ETAG


def test_api_errors_are_relayed_as_they_are(edge: EdgeServer) -> None:
    response = get(edge, "/api/predictions/a/b/c")  # no route declares it: the stand-in answers
    assert StubApi.seen == []
    assert response.status == 404
    assert json.loads(response.body)["error"]["code"] == "route_not_found"
    response = get(edge, "/api/health")  # declared, and the stub's own 404 comes back unchanged
    assert StubApi.seen[-1]["path"] == "/health"
    assert response.status == 404
    assert json.loads(response.body) == {"error": {"code": "not_found"}}


def test_api_answers_are_gzipped_like_cloudfront_does(edge: EdgeServer) -> None:
    response = get(edge, "/api/predictions", {"Accept-Encoding": "gzip"})
    assert response.getheader("Content-Encoding") == "gzip"
    assert json.loads(gzip.decompress(response.body))["latest"] == "2026-11-20"
    assert response.getheader("ETag") == "W/" + STUB_ETAG


def _dead_port() -> int:
    probe = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StubApi)
    port = probe.server_address[1]
    probe.server_close()  # nothing listens there now
    return port


def test_api_down_behind_the_gateway_is_its_502_in_the_api_error_shape(site: str) -> None:
    server = start_in_thread(site, api=f"http://127.0.0.1:{_dead_port()}")
    try:
        response = get(server, "/api/predictions")
    finally:
        server.stop()
    assert response.status == 502
    assert json.loads(response.body)["error"]["code"] == "gateway_error"


def test_an_unreachable_api_origin_is_cloudfronts_502_page(site: str) -> None:
    server = start_in_thread(site, api_domain=f"127.0.0.1:{_dead_port()}")
    try:
        response = get(server, "/api/predictions")
    finally:
        server.stop()
    assert response.status == 502
    assert b"The request could not be satisfied" in response.body
    assert response.getheader("X-Cache") == "Error from cloudfront"



# ---- what the edge answers to any request: raw sockets ----------------------------------------


class Reply(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes


def exchange(edge: EdgeServer, data: bytes) -> list[Reply]:
    """Send raw bytes on one connection; every answer until the edge closes it (a GET-only reader)."""
    with socket.create_connection(("127.0.0.1", edge.server_address[1]), timeout=10) as sock:
        sock.sendall(data)
        stream = sock.makefile("rb")
        replies = []
        while status_line := stream.readline():
            headers = {}
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = stream.read(int(headers.get("content-length", "0")))
            replies.append(Reply(int(status_line.split()[1]), headers, body))
    return replies


def request(target: bytes, *headers: bytes, body: bytes = b"", close: bool = True) -> bytes:
    lines = [b"GET " + target + b" HTTP/1.1", b"Host: 127.0.0.1", *headers]
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def no_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Exception" not in err, err


@pytest.mark.parametrize("target", [b"/api/predictions/\xff", b"/api/\xc3\xa9t\xc3\xa9", b"/\xff", b"/d/\xe9.html",
                                    b"/api/predictions/\x01", b"/api/a\x7fb", b"/\x00"])
def test_a_raw_byte_outside_visible_ascii_in_the_target_is_a_400(edge: EdgeServer, capsys, target: bytes) -> None:
    replies = exchange(edge, request(target, close=False))  # the edge must close it itself
    assert [r.status for r in replies] == [400]
    assert replies[0].headers["connection"] == "close"
    assert replies[0].headers["x-content-type-options"] == "nosniff"
    assert b"The request could not be satisfied" in replies[0].body  # CloudFront's own page
    assert StubApi.seen == []
    no_traceback(capsys)
    assert get(edge, "/api/predictions").status == 200  # and the edge still serves


@pytest.mark.parametrize("header", [b"User-Agent: a\x00b", b"If-None-Match: \"v1\"\x1b[2J", b"Accept: x\x7f"])
def test_a_header_with_a_control_character_is_a_400(edge: EdgeServer, capsys, header: bytes) -> None:
    assert [r.status for r in exchange(edge, request(b"/api/predictions", header))] == [400]
    assert StubApi.seen == []
    no_traceback(capsys)


@pytest.mark.parametrize("target", [
    b"/.", b"/%2e", b"/%2E", b"//", b"/./", b"/..", b"/%2e%2e", b"/%2e%2e/", b"/.%2e", b"///", b"//.", b"/./.",
    b"/%2f", b"/%2F.", b"/\\", b"/%5c", b"/\\evil.example", b"/%5cevil.example", b"//evil.example",
    b"//evil.example/", b"/%2f%2fevil.example", b"/%2f/evil.example", b"/.//evil.example", b"/./%2fevil.example",
    b"/docs", b"/docs/.", b"/%2e/docs", b"/./%2f/docs", b"/d", b"//d", b"/d/%2e%2e/docs",
])
def test_no_redirect_ever_and_only_the_root_has_an_index(edge: EdgeServer, capsys, target: bytes) -> None:
    """S3 through OAC redirects nothing and has no folder index: only "/" is the default root object."""
    [reply] = exchange(edge, request(target))
    # http.server collapses a leading "//" to "/" (a guard against open redirects): "//" is the root.
    expected = 200 if target.strip(b"/") == b"" and target != b"/" else 404
    assert reply.status == expected, (target, reply.status)
    assert "location" not in reply.headers
    no_traceback(capsys)


SMUGGLED = b"GET /api/smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
CHUNKED = b"%x\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n"


@pytest.mark.parametrize("target", [b"/api/predictions", b"/"])
@pytest.mark.parametrize(("framing", "body"), [
    (b"Content-Length: %d" % len(SMUGGLED), SMUGGLED),
    (b"Transfer-Encoding: chunked", CHUNKED),
    (b"Transfer-Encoding: chunked", b"1;ext=1\r\nG\r\n" + CHUNKED[:-2] + b"Trailer-Field: x\r\n\r\n"),
])
def test_a_get_body_is_read_and_refused_never_taken_for_a_request(edge: EdgeServer, capsys, target: bytes,
                                                                  framing: bytes, body: bytes) -> None:
    """CloudFront answers a GET with a body 403; the body must not become a second request."""
    then = request(b"/api/predictions/latest")  # the same connection goes on after the body
    replies = exchange(edge, request(target, framing, body=body, close=False) + then)
    assert [r.status for r in replies] == [403, 200]
    assert [seen["path"] for seen in StubApi.seen] == ["/predictions/latest"]  # the body's GET never went
    assert b"The request could not be satisfied" in replies[0].body
    assert json.loads(replies[1].body)["latest"] == "2026-11-20"
    no_traceback(capsys)


def test_an_empty_body_is_no_body(edge: EdgeServer) -> None:
    replies = exchange(edge, request(b"/api/predictions", b"Content-Length: 0", close=False)
                       + request(b"/api/predictions/latest"))
    assert [r.status for r in replies] == [200, 200]
    assert [seen["path"] for seen in StubApi.seen] == ["/predictions", "/predictions/latest"]


@pytest.mark.parametrize(("framing", "body", "status"), [
    (b"Content-Length: %d" % (MAX_BODY + 1), b"x" * (MAX_BODY + 1), 413),
    (b"Content-Length: 10000000000", SMUGGLED, 413),
    (b"Transfer-Encoding: chunked", b"%x\r\n" % (MAX_BODY + 1) + SMUGGLED, 413),
    (b"Transfer-Encoding: chunked\r\nContent-Length: 4", CHUNKED, 400),
    (b"Content-Length: 4\r\nContent-Length: 5", SMUGGLED, 400),
    (b"Content-Length: -1", SMUGGLED, 400),
    (b"Content-Length: 0x10", SMUGGLED, 400),
    (b"Content-Length: 1_0", SMUGGLED, 400),
    (b"Transfer-Encoding: chunked", b"zz\r\n" + SMUGGLED, 400),
    (b"Transfer-Encoding: chunked", b"-1\r\n" + SMUGGLED, 400),
    (b"Transfer-Encoding: chunked", b"5\r\nGET /xx\r\n0\r\n\r\n", 400),
    (b"Transfer-Encoding: gzip, chunked", CHUNKED, 501),
    (b"Transfer-Encoding: identity", SMUGGLED, 501),
])
def test_a_body_too_big_or_badly_framed_is_refused_and_the_connection_closed(
        edge: EdgeServer, capsys, framing: bytes, body: bytes, status: int) -> None:
    # Another request follows on the same connection: it must neither be answered nor reach the API.
    replies = exchange(edge, request(b"/api/predictions", framing, body=body, close=False)
                       + request(b"/api/predictions/latest", close=False))
    assert [r.status for r in replies] == [status]
    assert replies[0].headers["connection"] == "close"
    assert StubApi.seen == []
    no_traceback(capsys)


# ---- the API page's curl examples (docs/api.html, served by the edge) ------------------------------


class CodeBlocks(HTMLParser):
    """The text of every <pre> block, as a reader copies it (entities decoded)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self._in_pre = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "pre":
            self._in_pre = True
            self.blocks.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self._in_pre = False

    def handle_data(self, data: str) -> None:
        if self._in_pre:
            self.blocks[-1] += data


SHELL_SPECIAL = set(";&|<>()$`\\\"'*?[]#~{}!^ \t\n\r\x0b\x0c")


def unquoted_specials(command: str) -> list[str]:
    """Characters a POSIX shell would act on: outside quotes any special one, inside double quotes
    $ ` \\ and ! (history), except the one expansion the examples mean, $SITE."""
    found, quote, i = [], None, 0
    while i < len(command):
        c = command[i]
        if quote == "'":
            quote = None if c == "'" else quote
        elif quote == '"':
            if c == '"':
                quote = None
            elif re.match(r"\$SITE(?![A-Za-z0-9_])", command[i:]):
                i += len("$SITE")
                continue
            elif c in "$`\\!" or c in "\n\r":
                found.append(c)
        elif c in "'\"":
            quote = c
        elif c in SHELL_SPECIAL and not (c == " " and command[i - 1:i] not in ("", " ")):
            found.append(c)  # one space between words is the only unquoted special allowed
        i += 1
    assert quote is None, f"unbalanced quote in {command!r}"
    return found


def examples_of(html: str) -> list[list[str]]:
    """Each example block as its lines; each line must be exactly one command."""
    return [block.split("\n") for block in CodeBlocks(html).blocks if block.startswith("curl")]


def url_parts(arg: str) -> tuple[list[str], list[tuple[str, str]]]:
    assert arg.startswith("$SITE/"), arg
    parts = urllib.parse.urlsplit(arg[len("$SITE"):])
    segments = [urllib.parse.unquote(s, errors="strict") for s in parts.path.split("/")[1:]]
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True) if parts.query else []
    return segments, query


def check_examples(html: str, date: str, pid: str, sort: str) -> None:
    expected = [  # per block, per line: curl's flags, the URL's path segments and query, what follows the URL
        [("-s", ["api", "predictions"], [], [])],
        [("-s", ["api", "predictions", "latest"], [("limit", "10"), ("sort", sort), ("order", "desc")], [])],
        [("-s", ["api", "predictions", date], [("limit", str(MAX_LIMIT))], []),
         ("-s", ["api", "predictions", date], [("limit", str(MAX_LIMIT)), ("cursor", "NEXT_CURSOR")], [])],
        [("-s", ["api", "predictions", date, pid], [], [])],
        [("-si", ["api", "predictions", date], [], ["-H", 'If-None-Match: "ETAG"'])],
    ]
    blocks = examples_of(html)
    assert [len(block) for block in blocks] == [len(block) for block in expected], blocks
    for block, wanted_block in zip(blocks, expected, strict=True):
        for command, (flags, segments, query, rest) in zip(block, wanted_block, strict=True):
            assert unquoted_specials(command) == [], command
            args = shlex.split(command)
            assert args[:2] == ["curl", flags] and args[3:] == rest, command
            assert url_parts(args[2]) == (segments, query), command


def render_api_page(latest: object) -> str:
    renderer = Renderer(SITE_DIR, {name: f"/assets/{name}" for name in ASSETS})
    return api_page(renderer, latest).decode("utf-8")  # type: ignore[arg-type]


def batch_with_numeric_field(name: str) -> Batch:
    return Batch({"date": "2026-11-20", "predictions": [{"id": "p-1", name: 2.5, "label": "a"},
                                                          {"id": "p-2", name: 1.0, "label": "b"}]})


# Field names usable as ?sort=: shown percent-encoded, one command whatever they hold.
@pytest.mark.parametrize("name", [
    "value;touch /tmp/x", "$(id)", "`id`", "${PATH}", "a'b", 'a"b', "a b", "x&y|z>w<v", "!!", "a\\b", "#c", "*",
    "~root", "é ü", "a%20b", "a+b", "--next", "&sort=id", "x=1&order=asc", "a'\"'\"'b", "\u202ertl", "日本",
])
def test_curl_examples_are_one_command_for_any_sortable_field_name(name: str) -> None:
    check_examples(render_api_page(batch_with_numeric_field(name)), "2026-11-20", "p-1", name)


# Field names no request can use as they stand: not offered; the example sorts by id instead.
@pytest.mark.parametrize("name", ["", "a\nb", "a\r\ncurl evil", "\x00", "a\x1bb", "\ud800", "a\x85b"])
def test_a_field_name_unusable_as_sort_is_not_in_the_examples(name: str) -> None:
    html = render_api_page(batch_with_numeric_field(name))
    check_examples(html, "2026-11-20", "p-1", "id")
    sort_fields = html.split("<dt><code>sort</code>", 1)[1].split("</dd>", 1)[0]
    assert "<code>label</code>" in sort_fields  # ... nor among the fields a sort may name
    assert f"<code>{html_escape(name)}</code>" not in sort_fields


@pytest.mark.parametrize(("date", "pid", "shown_date", "shown_id"), [
    ("2026-11-20;id", "p'1;touch /tmp/x", "2026-11-20;id", "p'1;touch /tmp/x"),
    ("$(id)", "`id`", "$(id)", "`id`"),
    ('a"b c', "a\\b/c?d#e", 'a"b c', "a\\b/c?d#e"),
    ("\n", "x\ny", "YYYY-MM-DD", "ID"),
    ("", None, "YYYY-MM-DD", "ID"),
])
def test_curl_examples_are_one_command_for_any_date_and_id(date: str, pid: object, shown_date: str,
                                                           shown_id: str) -> None:
    """Batch checks dates and ids today; the page must not depend on it."""
    items = [{"id": pid, "value": 1.5}]
    latest = SimpleNamespace(date=date, items=items, fields=None, field_names=frozenset(chain.from_iterable(items)))
    check_examples(render_api_page(latest), shown_date, shown_id, "value")


def test_a_valid_date_and_id_are_shown_as_they_are() -> None:
    """chalice local does not decode path parameters: an id the contract allows stays unencoded."""
    latest = Batch({"date": "2026-11-20", "predictions": [{"id": "Sku:1.a_b-2", "value": 1.5}]})
    assert 'curl -s "$SITE/api/predictions/2026-11-20/Sku:1.a_b-2"' in render_api_page(latest)


def test_the_served_api_page_examples_are_one_command_each(edge: EdgeServer) -> None:
    response = get(edge, "/docs/api.html")
    assert response.status == 200
    first_id = sample_docs(2, 150)[-1]["predictions"][0]["id"]
    check_examples(response.body.decode("utf-8"), "2026-11-20", first_id, "value")


# -- invalidations (the API's answers stay until the next publish: docs/api.md) ----------------------


def _cached(cache, path: str, query: tuple = (), encoding: str = "") -> tuple:
    from tools.edge_cache import Answer, Entry

    key = (1, path, query, (), (), encoding)
    cache.put(key, Entry(Answer(200, "OK", [], b""), 0.0, 86400.0))
    return key


def test_an_invalidation_path_matches_as_cloudfront_s_does():
    """Exact: the path without a query string only; ending in `*`: every path and query it starts;
    every encoding variant goes with it."""
    from tools.edge_cache import Cache

    cache = Cache()
    plain = _cached(cache, "/api/predictions")
    gz = _cached(cache, "/api/predictions", encoding="gzip")
    paged = _cached(cache, "/api/predictions/latest", ("limit=2",))
    by_id = _cached(cache, "/api/predictions/latest/sku-1")
    dated = _cached(cache, "/api/predictions/2026-11-23", ("limit=2",))
    other = _cached(cache, "/api/predictions/2026-11-230")
    listed_with_query = _cached(cache, "/api/reports/latest", ("x=1",))
    assert cache.invalidate(["/api/predictions", "/api/reports/latest"]) == 2
    assert cache.get(plain) is None and cache.get(gz) is None
    assert cache.get(listed_with_query) is not None  # an exact path names no query string
    assert cache.invalidate(["/api/predictions/latest*"]) == 2
    assert cache.get(paged) is None and cache.get(by_id) is None
    assert cache.get(dated) is not None and cache.get(other) is not None
    assert cache.invalidate(["/api/*"]) == 3


def test_the_edge_applies_the_invalidations_of_its_distribution():
    from moto import mock_aws

    from tools.edge_cache import Cache, InvalidationFeed

    with mock_aws():
        import boto3

        from deploy import site_config

        client = boto3.client("cloudfront", region_name="us-east-1")
        config = site_config.distribution_config(stage="t", caller_reference="t", bucket_domain="b.s3.amazonaws.com",
                                                 oac_id="", api_domain="a.example", headers_policy_id="h")
        dist = client.create_distribution(DistributionConfig=config)["Distribution"]["Id"]
        client.create_invalidation(DistributionId=dist, InvalidationBatch={
            "Paths": {"Quantity": 1, "Items": ["/api/*"]}, "CallerReference": "before"})
        cache = Cache()
        feed = InvalidationFeed(cache, dist, "", interval=3600)  # polled by hand below
        try:
            key = _cached(cache, "/api/predictions/latest", ("limit=2",))
            kept = _cached(cache, "/api/predictions/2026-11-23")
            feed.poll()
            assert cache.get(key) is not None  # an invalidation from before the edge started is history
            client.create_invalidation(DistributionId=dist, InvalidationBatch={
                "Paths": {"Quantity": 1, "Items": ["/api/predictions/latest*"]}, "CallerReference": "publish"})
            feed.poll()
            assert cache.get(key) is None and cache.get(kept) is not None
            assert feed.applied[-1][1:] == (["/api/predictions/latest*"], 1)
        finally:
            feed.stop()
