"""The local edge: the CloudFront distribution of deploy/stack.json, run on 127.0.0.1.

    python -m tools.edge --root build/site-local --api-domain 127.0.0.1:8001 --port 8080
    python -m tools.edge --root build/site-sample --api http://127.0.0.1:8000   # + its own API Gateway stand-in

Everything it does comes from the template (tools/cloudfront.py reads it): behaviours in
CloudFront's order, cache policies (what is in the cache key, TTLs against the origin's
Cache-Control, errors cached), origin request policies (what else is forwarded; Host is the origin's
own unless forwarded), response headers policies with their Override flags, custom error responses
(for the whole distribution), allowed methods (others: CloudFront's 403), Compress, and viewer-response
CloudFront Functions run for real by Node.js (not invoked when the origin answered 400 or more, as
AWS documents). The S3 origin is the site folder behaving as a private bucket read through OAC
without s3:ListBucket: a key that does not exist is a 403 AccessDenied; "/" is the default root
object, nothing else is (no folder index, no redirect). The API origin is the template's ApiDomain
(tools/api_gateway_local.py locally), sent the path as received: /api is not removed here.

Every request gets an HTTP answer: a request target that is not a visible-ASCII path, or a header
with a control character, is a 400; a GET or HEAD with a body is a 403, as at CloudFront, once the
body is read (up to MAX_BODY; beyond it a 413), so that a body is never taken for the next request.
With --distribution-id, the invalidations created for that distribution at moto (the site follower's,
as the site function's in AWS) are applied as they come (tools/edge_cache.InvalidationFeed); a new site
build (manifest.json changed) then empties the pages only. Without it, a new build empties the whole
cache, standing in for the invalidation every site publish sends.
Not emulated: TLS, HTTP/2 and 3, geo restriction, signed URLs, Lambda@Edge, brotli
(gzip only), viewer-request functions (refused at start). Binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import email.utils
import gzip
import hashlib
import html
import http.client
import http.server
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse
import uuid
from dataclasses import replace
from typing import Any

from chalice_app.website.serving import cache_control_for, content_type_for
from tools.cloudfront import Behavior, Distribution, Origin, TemplateError, load_distribution
from tools.edge_cache import Answer, Cache, Entry, Headers, InvalidationFeed, _has, _phrase, _without, ttl_for
from tools.edge_functions import (
    DOMAIN,
    NODE,
    FunctionError,
    FunctionRunner,
    _edge_handler,
    apply_function_response,
    apply_origin_response,
    origin_response_event,
    viewer_response_event,
)

HOST = "127.0.0.1"
PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE_PATH = os.path.join(PROJECT_DIR, "deploy", "stack.json")
# CloudFront compresses objects from 1,000 bytes to 10 MB, and only types that benefit.
COMPRESS_MIN, COMPRESS_MAX = 1000, 10_000_000
COMPRESSIBLE = ("text/", "application/json", "application/javascript", "application/xml", "image/svg+xml")
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                        "trailer", "transfer-encoding", "upgrade", "content-length", "date", "server"})
# Never taken from the viewer by a policy: CloudFront sets these itself (or they are the connection's).
NOT_FORWARDED = HOP_BY_HOP | {"host", "accept-encoding", "cookie", "via", "x-forwarded-for", "x-amz-cf-id"}
# A request body is read (and thrown away) up to this size; a bigger one is refused with 413.
MAX_BODY = 64 * 1024
MAX_CHUNK_LINE = 1024
# After refusing a request, what the client still sends is read and dropped for this long, up to this much.
LINGER_SECONDS, LINGER_BYTES = 1.0, 4 * 1024 * 1024
# An origin-form request target (RFC 9112): "/" then visible ASCII only. Anything else (a raw byte
# above 0x7E, a control character) is a 400 here, as at CloudFront, and never reaches an origin.
TARGET_CHARS = frozenset(map(chr, range(0x21, 0x7F)))
# AWS, "HTTP 4xx and 5xx status codes that CloudFront caches" (416 is never cached), 10 s by default;
VIA = f"1.1 {DOMAIN} (CloudFront)"
# One kept-alive connection per handler thread and origin, i.e. per client connection.
_UPSTREAM = threading.local()



class BadRequest(Exception):
    """The request cannot be answered as it stands: (status, message); the connection is closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status




def accepts(accept_encoding: str | None, coding: str) -> bool:
    for token in (accept_encoding or "").split(","):
        name, _, params = token.strip().partition(";")
        if name.strip().lower() in (coding, "*"):
            return params.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def accepts_gzip(accept_encoding: str | None) -> bool:
    return accepts(accept_encoding, "gzip")


def etag_matches(if_none_match: str | None, etag: str | None) -> bool:
    """Weak comparison (RFC 9110): a compressed variant's W/ tag still matches its object."""
    if not if_none_match or not etag:
        return False
    bare = etag.removeprefix("W/")
    return any(t.strip() == "*" or t.strip().removeprefix("W/") == bare for t in if_none_match.split(","))


def cloudfront_error_page(status: int, message: str, request_id: str) -> bytes:
    """The HTML CloudFront answers with when it refuses a request or cannot reach an origin."""
    return (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN" "http://www.w3.org/TR/html4/loose.dtd">\n'
        '<HTML><HEAD><META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=iso-8859-1">\n'
        "<TITLE>ERROR: The request could not be satisfied</TITLE>\n</HEAD><BODY>\n"
        f"<H1>{status} ERROR</H1>\n<H2>The request could not be satisfied.</H2>\n<HR noshade size=\"1px\">\n"
        f"{html.escape(message)}\n<BR clear=\"all\">\n<HR noshade size=\"1px\">\n<PRE>\n"
        f"Generated by cloudfront (CloudFront)\nRequest ID: {request_id}\n</PRE>\n<ADDRESS>\n</ADDRESS>\n"
        "</BODY></HTML>"
    ).encode("latin-1", errors="replace")






# -- the S3 origin: the site folder as a private bucket ----------------------------------------------


def s3_get(root: str, key: str, method: str, if_none_match: str | None = None,
           if_modified_since: str | None = None) -> Answer:
    """GetObject as CloudFront's OAC request sees it, without s3:ListBucket: a missing key is a 403."""
    parts = key.split("/")
    full = os.path.realpath(os.path.join(root, *parts)) if key else root
    inside = full.startswith(root + os.sep)
    if not key or any(p in ("", ".", "..") or "\\" in p or "\x00" in p for p in parts) or not inside \
            or not os.path.isfile(full):
        body = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
                b"<Message>Access Denied</Message><RequestId>LOCAL</RequestId><HostId>local</HostId></Error>")
        return Answer(403, "Forbidden", [("Content-Type", "application/xml"), ("Server", "AmazonS3")], body,
                      origin_status=403)
    with open(full, "rb") as fh:
        body = fh.read()
    etag = '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'
    modified = email.utils.formatdate(int(os.path.getmtime(full)), usegmt=True)
    headers = [("Content-Type", content_type_for(key)), ("Cache-Control", cache_control_for(key)), ("ETag", etag),
               ("Last-Modified", modified), ("Accept-Ranges", "bytes"), ("Server", "AmazonS3")]
    if etag_matches(if_none_match, etag) or (if_none_match is None and if_modified_since == modified):
        return Answer(304, "Not Modified", headers, b"", origin_status=304)
    return Answer(200, "OK", headers, body, origin_status=200)  # a HEAD's body is dropped on the way out


# -- the server ---------------------------------------------------------------------------------


class EdgeServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: str, distribution: Distribution, port: int = 0, quiet: bool = False,
                 node: str = NODE) -> None:
        self.root = os.path.realpath(root)
        self.distribution = distribution
        for behavior in distribution.behaviors:
            if behavior.viewer_request is not None:
                raise TemplateError(f"viewer-request function {behavior.viewer_request.name}: not emulated")
        self.quiet = quiet
        self.cache = Cache()
        self._build_stamp: int | None = None
        self.invalidations: InvalidationFeed | None = None  # follow_invalidations(): the distribution's
        self.functions = FunctionRunner(node)
        self.thread: threading.Thread | None = None
        self.extra: list[Any] = []  # servers started with this one (an API Gateway stand-in), stopped with it
        super().__init__((HOST, port), EdgeHandler)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}"

    def invalidate_on_new_build(self) -> None:
        """Forget everything when the site folder's manifest.json changes: every publish of the site
        (build_site.py --publish, the site function) ends with a CloudFront invalidation."""
        try:
            stamp = os.stat(os.path.join(self.root, "manifest.json")).st_mtime_ns
        except OSError:
            stamp = None
        if stamp != self._build_stamp:
            self._build_stamp = stamp
            if self.invalidations is None:
                self.cache.clear()
            else:  # the API's answers go when an invalidation names them, as at CloudFront
                s3 = {id(b) for b in self.distribution.behaviors if b.origin.is_s3}
                self.cache.clear(only=lambda key: key[0] in s3)

    def follow_invalidations(self, distribution_id: str, endpoint: str) -> None:
        """Apply the invalidations created for `distribution_id` at moto (`endpoint`), as they come."""
        self.invalidations = InvalidationFeed(self.cache, distribution_id, endpoint)
        self.extra.append(self.invalidations)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)
        self.functions.close()
        for other in self.extra:
            other.stop()


class EdgeHandler(http.server.BaseHTTPRequestHandler):
    server: EdgeServer
    protocol_version = "HTTP/1.1"  # keep-alive, as browsers get from CloudFront
    server_version = "CloudFront"

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)

    # -- the request -------------------------------------------------------------------------

    def _handle(self) -> None:
        self.request_id = uuid.uuid4().hex
        path, _, query = self.path.partition("?")
        behavior = self.server.distribution.behavior_for(path)
        try:
            body = self._read_body()
            self._check_request()
        except BadRequest as exc:
            self._refuse(behavior, exc.status, str(exc), keep_alive=False)
            return
        if self.command in ("GET", "HEAD") and body:
            # As CloudFront: "If a viewer GET request includes a body, CloudFront returns 403".
            self._refuse(behavior, 403, "Bad request. We can't connect to the server for this app or website "
                                        "at this time.")
            return
        if self.command not in behavior.allowed_methods:
            self._refuse(behavior, 403, "This distribution is not configured to allow the HTTP request method "
                                        "that was used for this request. The distribution supports only "
                                        "cachable requests.")
            return
        answer = self._through_cache(behavior, self.command, path, query, self._viewer_headers(), body)
        answer = self._custom_error(answer)
        self._respond(behavior, path, query, answer)

    def _viewer_headers(self) -> Headers:
        return list(self.headers.items())

    def _check_request(self) -> None:
        """400 for a request target that is not "/" and visible ASCII, or a header with a control character.

        http.server decodes the request line as Latin-1, so a raw 0xFF byte arrived here as "ÿ" and
        made http.client raise on the way to the API: a dropped connection and a traceback.
        """
        if not self.path.startswith("/") or not TARGET_CHARS.issuperset(self.path):
            raise BadRequest(400, "Bad request.")
        for name, value in self.headers.items():
            if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in name + value):
                raise BadRequest(400, "Bad request.")

    def _read_body(self) -> bytes:
        """Read a request body (up to MAX_BODY).

        http.server reads no body on its own: on a kept-alive connection the body of a GET was
        parsed as the next request. Framing that cannot be trusted (both Content-Length and
        Transfer-Encoding, a bad length, a bad chunk) is a 400, a body that is too big a 413; both
        close the connection, as the next request's start is unknown.
        """
        encodings = self.headers.get_all("Transfer-Encoding") or []
        lengths = self.headers.get_all("Content-Length") or []
        if encodings and lengths:
            raise BadRequest(400, "Bad request.")
        if encodings:
            if [e.strip().lower() for e in ",".join(encodings).split(",")] != ["chunked"]:
                raise BadRequest(501, "The transfer coding is not implemented.")
            return self._read_chunked()
        if not lengths:
            return b""
        values = {v.strip() for v in ",".join(lengths).split(",")}
        if len(values) != 1 or not all(v.isascii() and v.isdigit() and len(v) <= 18 for v in values):
            raise BadRequest(400, "Bad request.")
        size = int(values.pop())
        if size > MAX_BODY:
            raise BadRequest(413, "The request body is too large.")
        data = self.rfile.read(size)
        if len(data) != size:
            raise BadRequest(400, "Bad request.")
        return data

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(MAX_CHUNK_LINE + 1)
            size_text = line.split(b";", 1)[0].strip()
            if len(line) > MAX_CHUNK_LINE or not line.endswith(b"\n") or not size_text \
                    or size_text.strip(b"0123456789abcdefABCDEF") or len(size_text) > 16:
                raise BadRequest(400, "Bad request.")
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > MAX_BODY:
                raise BadRequest(413, "The request body is too large.")
            chunk = self.rfile.read(size)
            if len(chunk) != size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise BadRequest(400, "Bad request.")
            chunks.append(chunk)
        for _ in range(100):  # trailer fields, then the empty line
            line = self.rfile.readline(MAX_CHUNK_LINE + 1)
            if line in (b"\r\n", b"\n"):
                return b"".join(chunks)
            if len(line) > MAX_CHUNK_LINE or not line.endswith(b"\n"):
                break
        raise BadRequest(400, "Bad request.")

    def _refuse(self, behavior: Behavior, status: int, message: str, keep_alive: bool = True) -> None:
        """An error CloudFront answers itself (its HTML page), through the behaviour's headers policy."""
        headers = [("Content-Type", "text/html"), ("Server", "CloudFront")]
        if not keep_alive:
            headers.append(("Connection", "close"))  # also makes http.server close it
        answer = Answer(status, _phrase(status), headers,
                        cloudfront_error_page(status, message, self.request_id), "Error from cloudfront")
        self._respond(behavior, self.path.partition("?")[0], "", answer)
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

    # -- cache key and origin request -----------------------------------------------------------

    @staticmethod
    def _query_params(query: str) -> list[tuple[str, str]]:
        """(decoded name, raw pair) per parameter, in the viewer's order."""
        return [(urllib.parse.unquote_plus(p.partition("=")[0]), p) for p in query.split("&") if p]

    @staticmethod
    def _cookies(headers: Headers) -> list[tuple[str, str]]:
        pairs = []
        for value in (v for k, v in headers if k.lower() == "cookie"):
            for part in value.split(";"):
                name, _, _ = part.strip().partition("=")
                if name:
                    pairs.append((name, part.strip()))
        return pairs

    @staticmethod
    def _normalized_encoding(behavior: Behavior, headers: Headers) -> str:
        """CloudFront's normalised Accept-Encoding (in the cache key and sent to the origin)."""
        given = _has(headers, "Accept-Encoding")
        codings = [c for c, on in (("br", behavior.cache.brotli), ("gzip", behavior.cache.gzip))
                   if on and accepts(given, c)]
        return ",".join(codings)

    def _cache_key(self, behavior: Behavior, path: str, query: str, headers: Headers) -> tuple:
        policy = behavior.cache
        return (id(behavior), path,
                tuple(raw for name, raw in self._query_params(query) if policy.query.picks(name)),
                tuple((k.lower(), v) for k, v in headers if policy.headers.picks(k, header=True)),
                tuple(raw for name, raw in self._cookies(headers) if policy.cookies.picks(name)),
                self._normalized_encoding(behavior, headers))

    def _origin_request(self, behavior: Behavior, path: str, query: str, headers: Headers) -> tuple[str, Headers]:
        """The target and headers CloudFront sends the origin: cache-key values always, plus the origin
        request policy's; Host is the origin's own unless a policy forwards the viewer's."""
        cache, extra = behavior.cache, behavior.origin_request

        def wanted(selection_of: str, name: str, header: bool = False) -> bool:
            return getattr(cache, selection_of).picks(name, header=header) or (
                extra is not None and getattr(extra, selection_of).picks(name, header=header))

        params = [raw for name, raw in self._query_params(query) if wanted("query", name)]
        target = behavior.origin.origin_path + path + ("?" + "&".join(params) if params else "")
        sent: Headers = [(k, v) for k, v in headers if k.lower() not in NOT_FORWARDED and wanted("headers", k, True)]
        host = _has(headers, "Host") if wanted("headers", "host", True) else None
        sent.insert(0, ("Host", host or behavior.origin.domain))
        cookies = [raw for name, raw in self._cookies(headers) if wanted("cookies", name)]
        if cookies:
            sent.append(("Cookie", "; ".join(cookies)))
        encoding = self._normalized_encoding(behavior, headers)
        if encoding:
            sent.append(("Accept-Encoding", encoding))
        if not _has(sent, "User-Agent"):
            sent.append(("User-Agent", "Amazon CloudFront"))
        # The origin's custom headers (the API's X-Origin-Verify) replace a viewer's header of the same name.
        custom = {name.lower() for name, _ in behavior.origin.custom_headers}
        sent = [(k, v) for k, v in sent if k.lower() not in custom]
        sent += [("Via", VIA), ("X-Forwarded-For", self.client_address[0]), ("X-Amz-Cf-Id", self.request_id),
                 *behavior.origin.custom_headers]
        return target, sent

    # -- through the cache to the origin --------------------------------------------------------

    def _through_cache(self, behavior: Behavior, method: str, path: str, query: str, headers: Headers,
                       body: bytes) -> Answer:
        if behavior.origin.is_s3:
            self.server.invalidate_on_new_build()
        cached_method = method in ("GET", "HEAD") or method in behavior.cached_methods
        if not cached_method:
            return self._fetch(behavior, method, path, query, headers, body)
        key = self._cache_key(behavior, path, query, headers)
        now = time.monotonic()
        entry = self.server.cache.get(key)
        if entry is not None and entry.fresh(now):
            return replace(entry.answer, x_cache=self._hit_label(entry.answer, "Hit"), age=int(now - entry.stored))
        if entry is not None:
            # Stale: ask the origin whether the stored copy is still good (CloudFront's conditional GET).
            validators = [(k, v) for k, v in (("If-None-Match", _has(entry.answer.headers, "ETag")),
                                              ("If-Modified-Since", _has(entry.answer.headers, "Last-Modified")))
                          if v]
            plain = _without(headers, "If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since")
            fresh = self._fetch(behavior, "GET", path, query, plain + validators, b"", revalidating=True)
            if fresh.status == 304 and validators:
                merged = _without(entry.answer.headers, *(k for k, _ in fresh.headers
                                                         if k.lower() in ("cache-control", "expires", "etag")))
                merged += [(k, v) for k, v in fresh.headers if k.lower() in ("cache-control", "expires", "etag")]
                stored = replace(entry.answer, headers=merged)
                ttl = ttl_for(stored.status, merged, behavior, self._error_ttl(stored.status))
                self.server.cache.put(key, Entry(stored, now, ttl or 0.0))
                return replace(stored, x_cache="RefreshHit from cloudfront", age=0)
            if fresh.status >= 500 and entry.answer.status < 400:
                return replace(entry.answer, x_cache="Hit from cloudfront")  # stale beats an origin error
            answer = fresh
        else:
            answer = self._fetch(behavior, method, path, query, headers, body)
        if method == "GET" and answer.origin_status is not None and answer.status != 304:
            ttl = ttl_for(answer.status, answer.headers, behavior, self._error_ttl(answer.status))
            if ttl is not None and (ttl > 0 or _has(answer.headers, "ETag") or _has(answer.headers, "Last-Modified")):
                self.server.cache.put(key, Entry(answer, now, ttl))
            else:
                self.server.cache.drop(key)
        return replace(answer, x_cache=self._hit_label(answer, "Miss"))

    @staticmethod
    def _hit_label(answer: Answer, kind: str) -> str:
        return "Error from cloudfront" if answer.status >= 400 else f"{kind} from cloudfront"

    def _error_ttl(self, status: int) -> float | None:
        configured = self.server.distribution.error_response_for(status)
        return configured.min_ttl if configured is not None else None

    def _fetch(self, behavior: Behavior, method: str, path: str, query: str, headers: Headers, body: bytes,
               revalidating: bool = False) -> Answer:
        answer = self._from_origin(behavior, method, path, query, headers, body, revalidating)
        function = behavior.origin_response
        # AWS: origin-response functions "are invoked for all origin responses, including when the origin
        # returns HTTP status code 400 or higher"; not when CloudFront answered itself (no origin response).
        if function is None or answer.origin_status is None:
            return answer
        try:
            event = origin_response_event(method, path, query, headers, answer, self.client_address[0],
                                          self.request_id)
            return apply_origin_response(answer, _edge_handler(function)(event, None))
        except Exception as exc:  # noqa: BLE001 - any failure of the function is CloudFront's 502
            self.log_error("Lambda@Edge %s failed: %r", function.name, exc)
            return self._edge_error(502, "The Lambda function associated with the CloudFront distribution is "
                                         "invalid or doesn't have the required permissions.")

    def _from_origin(self, behavior: Behavior, method: str, path: str, query: str, headers: Headers, body: bytes,
                     revalidating: bool = False) -> Answer:
        origin = behavior.origin
        if origin.is_s3:
            root_object = self.server.distribution.default_root_object
            key = root_object if path == "/" and root_object else urllib.parse.unquote(path[1:])
            conditional = revalidating or behavior.origin_request is not None
            return s3_get(self.server.root, key, method,
                          _has(headers, "If-None-Match") if conditional else None,
                          _has(headers, "If-Modified-Since") if conditional else None)
        target, sent = self._origin_request(behavior, path, query, headers)
        if revalidating:
            sent += [(k, v) for k, v in headers if k.lower() in ("if-none-match", "if-modified-since")]
        return self._custom_origin(origin, method, target, sent, body)

    def _custom_origin(self, origin: Origin, method: str, target: str, headers: Headers, body: bytes) -> Answer:
        for attempt in (1, 2):
            conn, reused = self._upstream(origin)
            try:
                conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    conn.putheader(name, value)
                if body or method not in ("GET", "HEAD", "OPTIONS", "DELETE"):
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body or None)
                upstream = conn.getresponse()
                data = upstream.read()
                relayed = [(k, v) for k, v in upstream.getheaders() if k.lower() not in HOP_BY_HOP]
                return Answer(upstream.status, upstream.reason, relayed, data, origin_status=upstream.status)
            except TimeoutError:
                self._drop_upstream()
                return self._edge_error(504, "CloudFront attempted to establish a connection with the origin, "
                                             "but either the attempt failed or the origin closed the connection.")
            except (http.client.HTTPException, OSError):
                self._drop_upstream()
                if reused and attempt == 1:
                    continue  # the kept-alive connection had been closed by the origin: one fresh try
                return self._edge_error(502, "CloudFront wasn't able to connect to the origin.")
        raise AssertionError("unreachable")

    def _edge_error(self, status: int, message: str) -> Answer:
        return Answer(status, _phrase(status), [("Content-Type", "text/html"), ("Server", "CloudFront")],
                      cloudfront_error_page(status, message, self.request_id), "Error from cloudfront")

    def _upstream(self, origin: Origin) -> tuple[http.client.HTTPConnection, bool]:
        """This handler thread's kept-alive connection to `origin` (one per client connection).

        A new upstream connection per request overflowed chalice local's listen backlog under
        concurrent load, and each overflow cost a 1 s SYN retry. Plain HTTP: no TLS locally.
        """
        conn = getattr(_UPSTREAM, "conn", None)
        if conn is not None and getattr(_UPSTREAM, "origin", None) == origin.id:
            return conn, True
        self._drop_upstream()
        host, _, port = origin.domain.rpartition(":") if ":" in origin.domain else (origin.domain, "", "80")
        conn = _UPSTREAM.conn = http.client.HTTPConnection(host, int(port), timeout=origin.read_timeout)
        _UPSTREAM.origin = origin.id
        return conn, False

    @staticmethod
    def _drop_upstream() -> None:
        conn = getattr(_UPSTREAM, "conn", None)
        if conn is not None:
            conn.close()
            _UPSTREAM.conn = None

    def finish(self) -> None:
        super().finish()
        self._drop_upstream()  # the client is gone: so is this thread's upstream connection

    # -- what the viewer gets -------------------------------------------------------------------

    def _custom_error(self, answer: Answer) -> Answer:
        """CustomErrorResponses, for every behaviour alike: the page fetched through the behaviour its
        path matches, with ResponseCode (or the page's own error when the page cannot be had)."""
        configured = self.server.distribution.error_response_for(answer.status)
        if configured is None or configured.page_path is None or answer.status < 400:
            return answer
        page_path, _, page_query = configured.page_path.partition("?")
        page_behavior = self.server.distribution.behavior_for(page_path)
        encoding = [("Accept-Encoding", v) for v in [_has(self._viewer_headers(), "Accept-Encoding")] if v]
        page = self._through_cache(page_behavior, "GET", page_path, page_query, [("Host", DOMAIN), *encoding], b"")
        if page.status >= 400:
            return replace(page, origin_status=answer.origin_status)
        status = configured.response_code or answer.status
        headers = _without(page.headers, "ETag", "Last-Modified", "Age")
        return replace(page, status=status, reason=_phrase(status), headers=headers,
                       origin_status=answer.origin_status, x_cache="Error from cloudfront")

    def _respond(self, behavior: Behavior, path: str, query: str, answer: Answer) -> None:
        head = self.command == "HEAD"
        if answer.status == 200 and etag_matches(self.headers.get("If-None-Match"), _has(answer.headers, "ETag")):
            answer = replace(answer, status=304, reason="Not Modified", body=b"")
        if behavior.response_headers is not None:
            answer = replace(answer, headers=behavior.response_headers.apply(answer.headers))
        function = behavior.viewer_response
        # AWS: "CloudFront doesn't invoke edge functions for viewer response events when the origin
        # returns HTTP status code 400 or higher" (Restrictions on all edge functions).
        # Nor for what CloudFront answers itself (no origin response at all).
        if function is not None and answer.origin_status is not None and answer.origin_status < 400:
            try:
                event = viewer_response_event(self.command, path, query, self._viewer_headers(), answer,
                                              self.client_address[0], self.request_id)
                answer = apply_function_response(answer, self.server.functions.run(function, event))
            except FunctionError as exc:
                self.log_error("function failed: %s", exc)
                answer = self._edge_error(503, "The CloudFront function associated with the CloudFront "
                                               "distribution is invalid or could not run.")
        headers = _without(answer.headers, "X-Cache", "Via", "X-Amz-Cf-Pop", "X-Amz-Cf-Id", "Age")
        headers += [("X-Cache", answer.x_cache), ("Via", VIA), ("X-Amz-Cf-Pop", "LOCAL1-P1"),
                    ("X-Amz-Cf-Id", self.request_id)]
        if answer.age is not None and answer.x_cache.startswith("Hit"):
            headers.append(("Age", str(answer.age)))
        self._send(answer.status, headers, answer.body, head, compress=behavior.compress and behavior.cache.gzip)

    def _send(self, status: int, headers: Headers, body: bytes, head: bool, compress: bool = False) -> None:
        headers = list(headers)
        kind = _has(headers, "Content-Type") or ""
        if compress and kind.startswith(COMPRESSIBLE) and not _has(headers, "Content-Encoding") and status != 304:
            if not _has(headers, "Vary"):
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


# -- starting it ----------------------------------------------------------------------------------


def distribution_for(template: str | dict = TEMPLATE_PATH, api_domain: str = "", stage: str = "local",
                     app_name: str | None = None, origin_secret: str = "") -> Distribution:
    """The template's distribution with ApiDomain (host:port of the API Gateway stand-in) and Stage, and
    OriginSecret (what the API origin's X-Origin-Verify header carries) when given."""
    params = {"ApiDomain": api_domain, "Stage": stage}
    if app_name:
        params["AppName"] = app_name
    if origin_secret:
        params["OriginSecret"] = origin_secret
    return load_distribution(template, params)


def local_origin_secret(stage: str = "local", env: dict[str, str] | None = None) -> tuple[str, str]:
    """(value, note) of the stage's origin secret in the local Parameter Store (moto, AWS_ENDPOINT_URL):
    the first value, as deploy/stack.py gives CloudFront. Never read from a real account: without
    AWS_ENDPOINT_URL, or when it cannot be read, the value is "" and the note says why."""
    from chalice_app.api import origin
    from chalice_app.config.stage_file import stage_environment

    env = dict(os.environ) if env is None else env
    name = origin.parameter_name(stage_environment(stage))
    if not name:
        return "", f"stage {stage} sets no {origin.PARAMETER_ENV}"
    if not env.get("AWS_ENDPOINT_URL"):
        return "", f"no AWS_ENDPOINT_URL: {name} is read from a local Parameter Store only"
    try:
        import boto3
        from botocore.config import Config

        ssm = boto3.client("ssm", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                           config=Config(connect_timeout=2, read_timeout=2, retries={"total_max_attempts": 1}))
        value = origin.parse_values(ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])[0]
    except Exception as exc:  # noqa: BLE001 - the edge still serves the site; the API refuses /api/*
        return "", f"{name} could not be read ({type(exc).__name__})"
    return value, f"{origin.HEADER} from {name}"


def start_in_thread(root: str, *, template: str | dict = TEMPLATE_PATH, api_domain: str = "",
                    api: str | None = None, port: int = 0, quiet: bool = True, stage: str = "local",
                    origin_secret: str = "") -> EdgeServer:
    """An edge serving `root` on 127.0.0.1 in a daemon thread (port 0 picks a free one); .stop() ends it.

    api_domain: the API origin (host:port of an API Gateway stand-in). api: instead, chalice local's
    URL, and a stand-in in front of it is started here (and stopped with the edge).
    """
    gateway = None
    if api is not None:
        from tools import api_gateway_local

        gateway = api_gateway_local.start_in_thread(api, quiet=quiet)
        api_domain = gateway.domain
    server = EdgeServer(root, distribution_for(template, api_domain, stage, origin_secret=origin_secret), port,
                        quiet=quiet)
    if gateway is not None:
        server.extra.append(gateway)
    # A short poll interval makes stop() quick; the cost is a wake-up every 0.1 s while idle.
    server.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                     name="local-edge", daemon=True)
    server.thread.start()
    return server


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.edge",
                                description="Serve a built site on 127.0.0.1 as the template's CloudFront "
                                            "distribution does.")
    p.add_argument("--root", required=True, help="the built site folder (build_site.py --out): the S3 origin")
    p.add_argument("--template", default=TEMPLATE_PATH, help="the CloudFormation template (default deploy/stack.json)")
    api = p.add_mutually_exclusive_group()
    api.add_argument("--api-domain", default="", help="the template's ApiDomain: host:port of the API Gateway "
                                                      "stand-in (tools/api_gateway_local.py)")
    api.add_argument("--api", help="chalice local's URL: start an API Gateway stand-in in front of it")
    p.add_argument("--stage", default="local", help="the template's Stage parameter (default local)")
    p.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")
    p.add_argument("--quiet", action="store_true", help="do not log requests")
    p.add_argument("--distribution-id", default="", help="apply this distribution's invalidations, read from "
                                                         "moto at AWS_ENDPOINT_URL (the site function's)")
    args = p.parse_args(argv)
    if not os.path.isfile(os.path.join(args.root, "index.html")):
        p.error(f"{args.root} has no index.html: build the site first (python build_site.py)")
    secret, secret_note = local_origin_secret(args.stage)
    try:
        server = start_in_thread(args.root, template=args.template, api_domain=args.api_domain, api=args.api,
                                 port=args.port, quiet=args.quiet, stage=args.stage, origin_secret=secret)
    except (ValueError, OSError) as exc:  # TemplateError is a ValueError
        print(f"edge: error: {exc}", file=sys.stderr)
        return 1
    if args.distribution_id:
        server.follow_invalidations(args.distribution_id, os.environ.get("AWS_ENDPOINT_URL", ""))
    api_note = next((f"/api/* -> {b.origin.domain} ({secret_note})" for b in server.distribution.behaviors
                     if not b.origin.is_s3), "no API behaviour (ApiDomain empty)")
    print(f"edge: serving {args.root} on {server.url} as {os.path.relpath(args.template)}'s distribution, "
          f"{api_note}", file=sys.stderr, flush=True)
    # SIGTERM (devstack's stop) ends it like Ctrl-C, so the node child is stopped and reaped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        while server.thread is not None and server.thread.is_alive():
            server.thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
