"""tools/edge.py: the built site with CloudFront's headers, and /api/* relayed to the API.

The upstream is a tiny stub HTTP server on 127.0.0.1 that records what it was asked.
"""

from __future__ import annotations

import gzip
import http.client
import http.server
import json
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

from tools.edge import EdgeServer, start_in_thread

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
    server = start_in_thread(site, upstream)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def clear_seen() -> None:
    StubApi.seen.clear()


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
    assert response.getheader("Cache-Control") == "no-cache"
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


def test_missing_page_gets_the_404_page_with_status_404(edge: EdgeServer, site: str) -> None:
    response = get(edge, "/no/such/page.html")
    assert response.status == 404
    assert response.body == read(site, "404.html").encode()
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"


@pytest.mark.parametrize("path", ["/../manifest.json/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
                                  "/d/..%2f..%2fetc"])
def test_nothing_outside_the_root_is_served(edge: EdgeServer, path: str) -> None:
    response = get(edge, path)
    assert response.status == 404
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


def test_api_is_forwarded_without_its_prefix_with_the_query(edge: EdgeServer) -> None:
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
    response = get(edge, "/api/nothing-here")
    assert StubApi.seen[-1]["path"] == "/nothing-here"
    assert response.status == 404
    assert json.loads(response.body) == {"error": {"code": "not_found"}}


def test_api_answers_are_gzipped_like_cloudfront_does(edge: EdgeServer) -> None:
    response = get(edge, "/api/predictions", {"Accept-Encoding": "gzip"})
    assert response.getheader("Content-Encoding") == "gzip"
    assert json.loads(gzip.decompress(response.body))["latest"] == "2026-11-20"
    assert response.getheader("ETag") == "W/" + STUB_ETAG


def test_api_down_is_a_502_in_the_api_error_shape(site: str) -> None:
    probe = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StubApi)
    dead = f"http://127.0.0.1:{probe.server_address[1]}"
    probe.server_close()  # nothing listens there now
    server = start_in_thread(site, dead)
    try:
        response = get(server, "/api/predictions")
    finally:
        server.stop()
    assert response.status == 502
    assert json.loads(response.body)["error"]["code"] == "bad_gateway"
