"""The local edge: serves a built site and forwards /api/* to the API, the way CloudFront does.

    python -m tools.edge --root build/site-local --api http://127.0.0.1:8000 --port 8080

Static files get the Content-Type, Cache-Control and security headers of chalice_app.website.serving
(hashed assets immutable for a year, everything else revalidated), an ETag with 304 answers, and
gzip when the client accepts it. /api/<path> goes to <api>/<path>: the /api prefix is removed as
API Gateway's stage does, query string and conditional headers pass through, and status, headers
and body (304 included) come back as they are. Binds 127.0.0.1 only.

Every request gets an HTTP answer: a request target that is not a visible-ASCII path, or a header
with a control character, is a 400; a GET or HEAD with a body is a 403, as at CloudFront, once the
body is read (up to MAX_BODY; beyond it a 413), so that a body is never taken for the next request.
A redirect only ever names a path on this site.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import http.client
import http.server
import json
import os
import socket
import sys
import threading
import time
import urllib.parse
from typing import Any

from chalice_app.website.serving import SECURITY_HEADERS, cache_control_for, content_type_for

HOST = "127.0.0.1"
# CloudFront compresses objects from 1,000 bytes to 10 MB, and only types that benefit.
COMPRESS_MIN, COMPRESS_MAX = 1000, 10_000_000
COMPRESSIBLE = ("text/", "application/json", "application/javascript", "image/svg+xml")
UPSTREAM_TIMEOUT = 29.0  # API Gateway's own limit
# One upstream connection per handler thread, i.e. per client connection (ThreadingHTTPServer).
_UPSTREAM = threading.local()
FORWARDED_REQUEST_HEADERS = ("Accept", "Accept-Language", "If-None-Match", "If-Modified-Since", "User-Agent")
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                        "trailer", "transfer-encoding", "upgrade", "content-length", "date", "server"})
# A request body is read (and thrown away) up to this size; a bigger one is refused with 413.
MAX_BODY = 64 * 1024
MAX_CHUNK_LINE = 1024
# After refusing a request, what the client still sends is read and dropped for this long, up to this much.
LINGER_SECONDS, LINGER_BYTES = 1.0, 4 * 1024 * 1024
# An origin-form request target (RFC 9112): "/" then visible ASCII only. Anything else (a raw byte
# above 0x7E, a control character) is a 400 here, as at CloudFront, and never reaches the API.
TARGET_CHARS = frozenset(map(chr, range(0x21, 0x7F)))


class BadRequest(Exception):
    """The request cannot be answered as it stands: (status, message); the connection is closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

Headers = list[tuple[str, str]]


def _has(headers: Headers, name: str) -> str | None:
    name = name.lower()
    return next((v for k, v in headers if k.lower() == name), None)


def accepts_gzip(accept_encoding: str | None) -> bool:
    for token in (accept_encoding or "").split(","):
        coding, _, params = token.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def same_site_location(rel: str) -> str:
    """The Location of the folder `rel` (relative to the root, "" for the root itself).

    Always a path on this site: "/" or "/" then neither "/" nor "\\" ("//host" and "/\\host" are
    other hosts to a browser). Each segment is percent-encoded, so none can smuggle a separator.
    """
    segments = [s for s in rel.split("/") if s]
    location = "/" + "".join(urllib.parse.quote(s, safe="") + "/" for s in segments)
    if location[1:2] in ("/", "\\"):
        raise ValueError(f"not a same-site path: {location!r}")
    return location


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Weak comparison (RFC 9110): a compressed variant's W/ tag still matches its file."""
    if not if_none_match:
        return False
    bare = etag.removeprefix("W/")
    return any(t.strip() == "*" or t.strip().removeprefix("W/") == bare for t in if_none_match.split(","))


class EdgeServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: str, api: str, port: int = 0, quiet: bool = False) -> None:
        self.root = os.path.realpath(root)
        self.api = urllib.parse.urlsplit(api.rstrip("/"))
        if self.api.scheme not in ("http", "https") or not self.api.hostname:
            raise ValueError(f"--api must be an http(s) URL, got {api!r}")
        self.quiet = quiet
        self.thread: threading.Thread | None = None
        super().__init__((HOST, port), EdgeHandler)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)


class EdgeHandler(http.server.BaseHTTPRequestHandler):
    server: EdgeServer
    protocol_version = "HTTP/1.1"  # keep-alive, as browsers get from CloudFront
    server_version = "local-edge"

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._handle(head=False)

    def do_HEAD(self) -> None:
        self._handle(head=True)

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)

    # -- routing ---------------------------------------------------------------------------

    def _handle(self, head: bool) -> None:
        try:
            has_body = self._read_body()
            self._check_request()
        except BadRequest as exc:
            self._refuse(exc.status, str(exc), head)
            return
        if has_body:
            # As CloudFront: "If a viewer GET request includes a body, CloudFront returns 403".
            self._refuse(403, "a GET or HEAD request must not have a body", head, keep_alive=True)
            return
        path, _, query = self.path.partition("?")
        if path == "/api" or path.startswith("/api/"):
            self._forward(path[len("/api"):] or "/", query, head)
        else:
            self._serve_file(path, head)

    # -- the request -------------------------------------------------------------------------

    def _check_request(self) -> None:
        """400 for a request target that is not "/" and visible ASCII, or a header with a control character.

        http.server decodes the request line as Latin-1, so a raw 0xFF byte arrived here as "ÿ" and
        made http.client raise on the way to the API: a dropped connection and a traceback.
        """
        if not self.path.startswith("/") or not TARGET_CHARS.issuperset(self.path):
            raise BadRequest(400, "the request target must be a path of visible ASCII characters")
        for name, value in self.headers.items():
            if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in name + value):
                raise BadRequest(400, f"header {name[:40]!r} has a control character")

    def _read_body(self) -> bool:
        """Read a request body (up to MAX_BODY) and throw it away; True if there was one.

        http.server reads no body on its own: on a kept-alive connection the body of a GET was
        parsed as the next request, and one with a request line in it went to the API. Framing
        that cannot be trusted (both Content-Length and Transfer-Encoding, a bad length, a bad
        chunk) is a 400, a body that is too big a 413; both close the connection, as the next
        request's start is unknown.
        """
        encodings = self.headers.get_all("Transfer-Encoding") or []
        lengths = self.headers.get_all("Content-Length") or []
        if encodings and lengths:
            raise BadRequest(400, "a request must not have both Content-Length and Transfer-Encoding")
        if encodings:
            if [e.strip().lower() for e in ",".join(encodings).split(",")] != ["chunked"]:
                raise BadRequest(501, "the only transfer coding understood is chunked")
            return self._read_chunked() > 0
        if not lengths:
            return False
        values = {v.strip() for v in ",".join(lengths).split(",")}
        if len(values) != 1 or not all(v.isascii() and v.isdigit() and len(v) <= 18 for v in values):
            raise BadRequest(400, "Content-Length must be one decimal number")
        size = int(values.pop())
        if size > MAX_BODY:
            raise BadRequest(413, f"a request body may have at most {MAX_BODY} bytes")
        if len(self.rfile.read(size)) != size:
            raise BadRequest(400, "the request body ended early")
        return size > 0

    def _read_chunked(self) -> int:
        total = 0
        while True:
            line = self.rfile.readline(MAX_CHUNK_LINE + 1)
            size_text = line.split(b";", 1)[0].strip()
            if len(line) > MAX_CHUNK_LINE or not line.endswith(b"\n") or not size_text \
                    or size_text.strip(b"0123456789abcdefABCDEF") or len(size_text) > 16:
                raise BadRequest(400, "bad chunk size line")
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > MAX_BODY:
                raise BadRequest(413, f"a request body may have at most {MAX_BODY} bytes")
            if len(self.rfile.read(size)) != size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise BadRequest(400, "bad chunk")
        for _ in range(100):  # trailer fields, then the empty line
            line = self.rfile.readline(MAX_CHUNK_LINE + 1)
            if line in (b"\r\n", b"\n"):
                return total
            if len(line) > MAX_CHUNK_LINE or not line.endswith(b"\n"):
                break
        raise BadRequest(400, "bad chunked trailer")

    def _refuse(self, status: int, message: str, head: bool, keep_alive: bool = False) -> None:
        """An error the edge answers itself: the API's error shape under /api, plain text elsewhere."""
        code = {400: "bad_request", 403: "forbidden", 413: "payload_too_large", 501: "not_implemented"}
        if self.path == "/api" or self.path.startswith(("/api/", "/api?")):
            body = json.dumps({"error": {"code": code.get(status, "bad_request"), "message": message}}).encode()
            kind = "application/json; charset=utf-8"
        else:
            body, kind = (message + "\n").encode(), "text/plain; charset=utf-8"
        headers = [("Content-Type", kind), ("Cache-Control", "no-store"), *SECURITY_HEADERS.items()]
        if not keep_alive:
            headers.append(("Connection", "close"))  # also makes http.server close it
        self._send(status, headers, body, head)
        if not keep_alive:
            self._linger()

    def _linger(self) -> None:
        """Before closing, read (briefly) what the client is still sending.

        Closing a socket with unread bytes resets the connection, and a reset can destroy the
        answer before the client reads it (the 413 for a body that is still arriving, say).
        """
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(LINGER_SECONDS)
            deadline, drained = time.monotonic() + LINGER_SECONDS, 0
            while time.monotonic() < deadline and drained < LINGER_BYTES:
                chunk = self.connection.recv(65536)
                if not chunk:
                    break
                drained += len(chunk)
        except OSError:
            pass  # the client is gone, or stayed silent: the connection is closed either way

    # -- static files ----------------------------------------------------------------------

    def _resolve(self, url_path: str) -> tuple[str, str] | None:
        """(file system path, path relative to the root), or None for anything outside the root."""
        decoded = urllib.parse.unquote(url_path)
        parts = [p for p in decoded.split("/") if p not in ("", ".")]
        if "\x00" in decoded or ".." in parts or any("\\" in p for p in parts):
            return None
        full = os.path.realpath(os.path.join(self.server.root, *parts))
        if full != self.server.root and not full.startswith(self.server.root + os.sep):
            return None  # a symlink pointing out of the site
        return full, "/".join(parts)

    def _serve_file(self, url_path: str, head: bool) -> None:
        found = self._resolve(url_path)
        if found and os.path.isdir(found[0]):
            if not url_path.endswith("/"):
                # Not "/" + rel + "/": for the root itself ("/.", "/%2e") that is "//", another host.
                location = same_site_location(found[1])
                self._send(301, [("Location", location), ("Cache-Control", "no-cache")], b"", head)
                return
            found = (os.path.join(found[0], "index.html"), (found[1] + "/index.html").lstrip("/"))
        if not found or not os.path.isfile(found[0]):
            self._not_found(head)
            return
        full, rel = found
        with open(full, "rb") as fh:
            body = fh.read()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers = [("Content-Type", content_type_for(rel)), ("Cache-Control", cache_control_for(rel)),
                   ("ETag", etag), *SECURITY_HEADERS.items()]
        if etag_matches(self.headers.get("If-None-Match"), etag):
            self._send(304, headers, b"", head)
            return
        self._send(200, headers, body, head)

    def _not_found(self, head: bool) -> None:
        """The site's 404.html with status 404, as CloudFront's custom error response gives it."""
        page = os.path.join(self.server.root, "404.html")
        try:
            with open(page, "rb") as fh:
                body, kind = fh.read(), content_type_for(page)
        except OSError:
            body, kind = b"Not found\n", "text/plain; charset=utf-8"
        headers = [("Content-Type", kind), ("Cache-Control", "no-cache"), *SECURITY_HEADERS.items()]
        self._send(404, headers, body, head)

    # -- the API -----------------------------------------------------------------------------

    def _forward(self, subpath: str, query: str, head: bool) -> None:
        api = self.server.api
        target = (api.path or "") + subpath + (f"?{query}" if query else "")
        wanted = dict((name, self.headers[name]) for name in FORWARDED_REQUEST_HEADERS if self.headers.get(name))
        for attempt in (1, 2):
            conn, reused = self._upstream()
            try:
                conn.request("HEAD" if head else "GET", target, headers=wanted)
                upstream = conn.getresponse()
                body = upstream.read()
                relayed = [(k, v) for k, v in upstream.getheaders() if k.lower() not in HOP_BY_HOP]
                status = upstream.status
                break
            except TimeoutError:
                self._drop_upstream()
                self._gateway_error(504, "gateway_timeout", "the API did not answer in time", head)
                return
            except (http.client.HTTPException, OSError):
                self._drop_upstream()
                if reused and attempt == 1:
                    continue  # the kept-alive connection had been closed by the API: one fresh try
                self._gateway_error(502, "bad_gateway", "the API cannot be reached", head)
                return
        # CloudFront's response headers policy does not override what the origin already set.
        for name, value in SECURITY_HEADERS.items():
            if not _has(relayed, name):
                relayed.append((name, value))
        self._send(status, relayed, body, head)

    def finish(self) -> None:
        super().finish()
        self._drop_upstream()  # the client is gone: so is this thread's upstream connection

    def _upstream(self) -> tuple[http.client.HTTPConnection, bool]:
        """This handler thread's kept-alive connection to the API (one per client connection).

        A new upstream connection per request overflowed chalice local's listen backlog under
        concurrent load, and each overflow cost a 1 s SYN retry.
        """
        conn = getattr(_UPSTREAM, "conn", None)
        if conn is not None:
            return conn, True
        api = self.server.api
        kind = http.client.HTTPSConnection if api.scheme == "https" else http.client.HTTPConnection
        conn = _UPSTREAM.conn = kind(api.hostname, api.port, timeout=UPSTREAM_TIMEOUT)
        return conn, False

    @staticmethod
    def _drop_upstream() -> None:
        conn = getattr(_UPSTREAM, "conn", None)
        if conn is not None:
            conn.close()
            _UPSTREAM.conn = None

    def _gateway_error(self, status: int, code: str, message: str, head: bool) -> None:
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        headers = [("Content-Type", "application/json; charset=utf-8"), ("Cache-Control", "no-store"),
                   *SECURITY_HEADERS.items()]
        self._send(status, headers, body, head)

    # -- the wire ----------------------------------------------------------------------------

    def _send(self, status: int, headers: Headers, body: bytes, head: bool) -> None:
        headers = list(headers)
        kind = _has(headers, "Content-Type") or ""
        if kind.startswith(COMPRESSIBLE) and not _has(headers, "Content-Encoding"):
            headers.append(("Vary", "Accept-Encoding"))
            if COMPRESS_MIN <= len(body) <= COMPRESS_MAX and accepts_gzip(self.headers.get("Accept-Encoding")):
                body = gzip.compress(body, compresslevel=6, mtime=0)
                headers.append(("Content-Encoding", "gzip"))
                # A compressed variant is not byte-identical to the original: its tag becomes weak.
                headers = [(k, "W/" + v if k.lower() == "etag" and not v.startswith("W/") else v)
                           for k, v in headers]
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and status not in (204, 304):
            self.wfile.write(body)


def start_in_thread(root: str, api: str, port: int = 0, quiet: bool = True) -> EdgeServer:
    """An edge serving `root` on 127.0.0.1 in a daemon thread (port 0 picks a free one); .stop() ends it."""
    server = EdgeServer(root, api, port, quiet=quiet)
    # A short poll interval makes stop() quick; the cost is a wake-up every 0.1 s while idle.
    server.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                     name="local-edge", daemon=True)
    server.thread.start()
    return server


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.edge",
                                description="Serve a built site on 127.0.0.1 and forward /api/* to the API, "
                                            "as CloudFront does.")
    p.add_argument("--root", required=True, help="the built site folder (build_site.py --out)")
    p.add_argument("--api", required=True, help="the API's base URL, e.g. http://127.0.0.1:8000 (chalice local)")
    p.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")
    p.add_argument("--quiet", action="store_true", help="do not log requests")
    args = p.parse_args(argv)
    if not os.path.isfile(os.path.join(args.root, "index.html")):
        p.error(f"{args.root} has no index.html: build the site first (python build_site.py)")
    try:
        server = EdgeServer(args.root, args.api, args.port, quiet=args.quiet)
    except (ValueError, OSError) as exc:
        print(f"edge: error: {exc}", file=sys.stderr)
        return 1
    print(f"edge: serving {args.root} on {server.url}, /api/* -> {args.api}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
