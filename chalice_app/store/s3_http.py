"""The API's S3 reads without botocore: SigV4-signed GETs over http.client, and nothing else.

Importing botocore and creating its client were ~110 ms of a ~180 ms cold start (docs/performance.md);
the request path needs two operations of S3: GetObject (conditional, If-None-Match) and
ListObjectsV2 (with continuation tokens). This client does exactly those, with the same contract
as the botocore client S3Source used to hold, so that S3Source keeps one set of rules:

- `get_object(Bucket=, Key=, IfNoneMatch=)` returns {"Body", "ContentLength", "ETag",
  "ContentEncoding"}; `list_objects_v2(Bucket=, Prefix=, ContinuationToken=)` returns {"Contents",
  "IsTruncated", "NextContinuationToken"}.
- An S3 error answer raises S3ClientError, whose `.response["Error"]["Code"]` is what botocore's
  ClientError would hold (the XML <Code>, or the status: "304", "404", ...), so
  aws_clients.error_code() reads both. A transport failure raises an exception named as botocore's
  (ReadTimeoutError, ConnectTimeoutError, ConnectionClosedError, EndpointConnectionError; while
  reading a body: ResponseStreamingError, IncompleteReadError), so logs and the fault table agree.
- Retries as botocore's "standard" mode: at most `max_attempts` sends for transport errors, 500/502/
  503/504 and throttling codes, with its truncated exponential backoff with jitter (base 1 s for
  throttling, 50 ms otherwise).
- Signing: SigV4 exactly as botocore's S3SigV4Auth signs a body-less GET (tests/test_s3_http.py
  compares the Authorization headers byte for byte on generated requests).
- Addressing: virtual-hosted style on https://{bucket}.s3.{region}.amazonaws.com (path-style for
  bucket names with dots, which a wildcard certificate cannot cover); AWS_ENDPOINT_URL_S3 or
  AWS_ENDPOINT_URL (moto, a local stack) path-style. A 301/400 naming another region in
  x-amz-bucket-region is followed once, and remembered.
- TLS: verified (CERT_REQUIRED, hostname checked) against the CA bundle botocore ships in the Lambda
  runtime (botocore/cacert.pem, located without importing botocore: the same trust as the botocore
  client), or the system's default store when that file is absent.

- A deadline per call (S3_REQUEST_DEADLINE_SECONDS): connect, every attempt, the backoff between
  them and every read of the answer (a GetObject's body included) end by then, whatever the server
  does: a timer shuts the socket down, so a server sending one byte every half second (each read
  inside the read timeout) is cut off too. `operation(seconds)` puts several calls (a listing's
  pages) under one deadline. Past it: DeadlineExceeded.
- XML answers (listings) with a DOCTYPE are refused before any entity is expanded; listing keys are
  decoded as S3 encodes them with encoding-type=url (`+` is a space, then %XX).

Where it runs: chosen by `use_stdlib()` (the S3_CLIENT setting; "auto" means inside the Lambda
runtime only), so a test under moto's `mock_aws`, which patches botocore alone, gets botocore.

Credentials: only from the environment, as Lambda provides them (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN). `env_credentials()` returns None for anything else
(a profile, container or instance credentials, SSO) and the container uses the botocore client.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import http.client
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
MAX_BACKOFF_SECONDS = 20.0
THROTTLE_BASE_SECONDS = 1.0
TRANSIENT_BASE_SECONDS = 0.05
TRANSIENT_STATUS = frozenset((500, 502, 503, 504))
TRANSIENT_CODES = frozenset(("RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete"))
THROTTLE_CODES = frozenset((
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
    "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled",
    "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException",
))
# An error body is read for its <Code> only: bounded, whatever the server sends.
MAX_ERROR_BODY = 64 * 1024
MAX_LISTING_BODY = 8 * 1024 * 1024
READ_PIECE = 1024 * 1024


# -- errors, named as botocore's ----------------------------------------------------------------------


class S3HttpError(Exception):
    """Base of every error this client raises."""


class S3ClientError(S3HttpError):
    """S3 answered with an error; `response` is shaped like botocore's ClientError.response."""

    def __init__(self, code: str, status: int, message: str = "", operation: str = "") -> None:
        super().__init__(f"An error occurred ({code}) when calling the {operation} operation: {message}")
        self.response = {"Error": {"Code": code, "Message": message},
                         "ResponseMetadata": {"HTTPStatusCode": status}}
        self.status = status


class TransportError(S3HttpError):
    """The request could not be completed; retried (see RETRYABLE_TRANSPORT)."""


class ConnectTimeoutError(TransportError):
    pass


class EndpointConnectionError(TransportError):
    pass


class ReadTimeoutError(TransportError):
    pass


class ConnectionClosedError(TransportError):
    pass


class DeadlineExceeded(TransportError):
    """The call's deadline passed (S3_REQUEST_DEADLINE_SECONDS): never retried."""


class DoctypeRefused(S3HttpError):
    """An XML answer carried a DOCTYPE (entities, external references): refused, never expanded."""


class ResponseStreamingError(S3HttpError):
    """Reading a 200's body broke (a reset mid-body): not retried, as with botocore."""


class IncompleteReadError(S3HttpError):
    """A body ended before its Content-Length."""


TRANSPORT_ERRORS: dict[str, type[TransportError]] = {
    cls.__name__: cls for cls in (ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError,
                                  ConnectionClosedError)
}


# -- credentials ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None


def env_credentials(env: Mapping[str, str] | None = None) -> Credentials | None:
    """Credentials as Lambda provides them, or None: then the botocore client (and its whole chain)."""
    env = os.environ if env is None else env
    access, secret = env.get("AWS_ACCESS_KEY_ID", ""), env.get("AWS_SECRET_ACCESS_KEY", "")
    if not access or not secret or env.get("AWS_PROFILE"):
        return None
    return Credentials(access, secret, env.get("AWS_SESSION_TOKEN") or None)


def in_lambda_runtime(env: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs in the Lambda runtime, by the variables the runtime sets.

    AWS_EXECUTION_ENV alone says nothing: Chalice sets it in every process that imports an app
    (chalice local, chalice.test.Client, a unit test).
    """
    env = os.environ if env is None else env
    return bool(env.get("AWS_LAMBDA_FUNCTION_NAME")) and bool(
        env.get("LAMBDA_TASK_ROOT") or env.get("AWS_LAMBDA_RUNTIME_API"))


def use_stdlib(choice: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether the container reads S3 with this client: S3_CLIENT=stdlib, or "auto" inside Lambda."""
    choice = (choice or "auto").lower()
    if choice == "stdlib":
        return True
    return choice == "auto" and in_lambda_runtime(env)


def env_region(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"


def env_endpoint(env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    return env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None


# -- SigV4 ------------------------------------------------------------------------------------------


def quote_key(key: str) -> str:
    """An object key in a URL path, as botocore serializes it (slashes kept)."""
    return quote(key, safe="/~")


def query_string(params: Mapping[str, str] | list[tuple[str, str]]) -> str:
    """The query as sent and signed: each part URI-encoded, pairs sorted (botocore's canonical form)."""
    items = params.items() if isinstance(params, Mapping) else params
    return "&".join(f"{k}={v}" for k, v in sorted((quote(k, safe="-_.~"), quote(str(v), safe="-_.~"))
                                                     for k, v in items))


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


_signing_keys: dict[tuple[str, str, str, str], bytes] = {}


def signing_key(secret: str, day: str, region: str, service: str = "s3") -> bytes:
    cache_key = (secret, day, region, service)
    key = _signing_keys.get(cache_key)
    if key is None:
        key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), day), region), service), "aws4_request")
        if len(_signing_keys) > 16:
            _signing_keys.clear()
        _signing_keys[cache_key] = key
    return key


def sign(method: str, host: str, path: str, query: str, headers: Mapping[str, str], creds: Credentials,
         region: str, amz_date: str, service: str = "s3") -> dict[str, str]:
    """The headers to send for a body-less request: `headers` plus x-amz-date, x-amz-content-sha256,
    x-amz-security-token (with a session token) and Authorization, as S3SigV4Auth computes them.

    `path` is the URL path as sent (already quoted; S3 paths are not normalized), `query` the query
    string as sent (query_string()), `host` the Host header (no default port), `amz_date`
    YYYYMMDDTHHMMSSZ.
    """
    out = {name.lower(): value for name, value in headers.items()}
    out["host"] = host
    out["x-amz-date"] = amz_date
    out["x-amz-content-sha256"] = EMPTY_SHA256
    if creds.token:
        out["x-amz-security-token"] = creds.token
    names = sorted(out)
    canonical_headers = "".join(f"{n}:{' '.join(out[n].split())}\n" for n in names)
    signed = ";".join(names)
    canonical = "\n".join((method, path, _canonical_query(query), canonical_headers, signed, EMPTY_SHA256))
    day = amz_date[:8]
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(("AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()))
    signature = hmac.new(signing_key(creds.secret_key, day, region, service), to_sign.encode("utf-8"),
                         hashlib.sha256).hexdigest()
    out["authorization"] = (f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
                            f"SignedHeaders={signed}, Signature={signature}")
    return out


def _canonical_query(query: str) -> str:
    # As botocore's _canonical_query_string_url: the pairs as sent, sorted.
    if not query:
        return ""
    return "&".join(f"{k}={v}" for k, v in sorted(p.partition("=")[::2] for p in query.split("&")))


def host_header(scheme: str, netloc: str) -> str:
    """Host as botocore signs it: lowercase, without userinfo or the scheme's default port."""
    host = netloc.rpartition("@")[2].lower()
    if (scheme == "https" and host.endswith(":443")) or (scheme == "http" and host.endswith(":80")):
        host = host.rpartition(":")[0]
    return host


def amz_now() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


# -- TLS --------------------------------------------------------------------------------------------


def ca_bundle() -> str | None:
    """botocore's cacert.pem, the bundle botocore verifies S3 with on Lambda (found, not imported)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("botocore")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "cacert.pem")
    return path if os.path.isfile(path) else None


_tls: dict[str, Any] = {}


def tls_context() -> Any:
    """One verifying SSL context per container (built on the first https connection)."""
    context = _tls.get("context")
    if context is None:
        import ssl

        cafile = ca_bundle()
        context = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        _tls["context"] = context
    return context


# -- the deadline -----------------------------------------------------------------------------------


def _shutdown(sock: Any) -> None:
    """Wake whatever thread is blocked on the socket (TLS or not): reads then see the end."""
    import socket as socket_module

    try:
        socket_module.socket.shutdown(sock, socket_module.SHUT_RDWR)
    except (OSError, TypeError, ValueError):
        pass


class Deadline:
    """One call's (or operation's) end: every timeout is cut to what is left, and at the end a timer
    shuts down the socket in use, which ends a read that keeps getting a byte just in time."""

    def __init__(self, seconds: float | None) -> None:
        self.at = math.inf if seconds is None else time.monotonic() + seconds
        self.expired = False
        self._sock: Any = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        if seconds is not None:  # None: no deadline at all
            self._timer = threading.Timer(max(0.0, seconds), self._fire)
            self._timer.daemon = True
            self._timer.start()

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def passed(self) -> bool:
        """Whether the deadline is over (a socket timeout cut to it may beat the timer by a hair)."""
        return self.expired or self.remaining() <= 0.005

    def timeout(self, limit: float) -> float:
        """`limit` or what is left of the deadline, whichever is less; DeadlineExceeded when none is."""
        left = self.remaining()
        if self.expired or left <= 0:
            self.expired = True
            raise DeadlineExceeded("the request deadline passed")
        return min(limit, left)

    def watch(self, sock: Any) -> None:
        with self._lock:
            self._sock = sock
            if self.expired and sock is not None:
                _shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            self.expired = True
            if self._sock is not None:
                _shutdown(self._sock)

    def finish(self) -> None:
        """The call is over (its body read or dropped): the timer must not touch a reused socket."""
        with self._lock:
            self._sock = None
        if self._timer is not None:
            self._timer.cancel()


# -- the wire ---------------------------------------------------------------------------------------


@dataclass
class Request:
    """One HTTP attempt, as a fault injector sees it."""

    op: str
    bucket: str
    key: str | None
    prefix: str | None
    method: str
    url: str
    headers: dict[str, str]


class Response:
    """Status, lower-cased headers, and a body read through `read(n)` (S3Source reads it bounded)."""

    def __init__(self, status: int, headers: Mapping[str, str], read: Callable[[int], bytes],
                 close: Callable[[], None] = lambda: None) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self._read = read
        self._close = close

    def read(self, amt: int | None = None) -> bytes:
        return self._read(-1 if amt is None else amt)

    def close(self) -> None:
        self._close()


class Body:
    """A response body with botocore's read errors: a reset is ResponseStreamingError, a short body
    IncompleteReadError. `read(n)` gives at most n bytes and b"" at the end."""

    def __init__(self, response: Response, length: int | None, deadline: Deadline | None = None) -> None:
        self._response = response
        self._length = length
        self._got = 0
        self._deadline = deadline  # finished with the body when the call owns it

    def read(self, amt: int | None = None) -> bytes:
        try:
            data = self._read(amt)
        except BaseException:
            self._done()
            raise
        if not data:
            self._done()
        return data

    def _done(self) -> None:
        if self._deadline is not None:
            self._deadline.finish()
            self._deadline = None

    def _read(self, amt: int | None) -> bytes:
        try:
            data = self._response.read(amt)
        except (http.client.IncompleteRead) as exc:
            self.close()
            raise IncompleteReadError(f"{self._got + len(exc.partial)} of {self._length} bytes") from None
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise ResponseStreamingError(f"{type(exc).__name__}: {exc}") from None
        self._got += len(data)
        if not data and self._length is not None and self._got < self._length:
            self.close()
            raise IncompleteReadError(f"{self._got} of {self._length} bytes")
        return data

    def close(self) -> None:
        self._response.close()
        self._done()


class HttpS3Client:
    """GetObject and ListObjectsV2 on one bucket's region, with botocore's retry policy."""

    def __init__(self, creds: Credentials, region: str, *, endpoint: str | None = None,
                 connect_timeout: float = 1.0, read_timeout: float = 2.0, max_attempts: int = 2,
                 deadline: float = 5.0, clock: Callable[[], str] = amz_now) -> None:
        self.creds = creds
        self.region = region
        self.endpoint = endpoint
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max(1, max_attempts)
        self.deadline = deadline
        self.clock = clock
        self._bucket_regions: dict[str, str] = {}
        self._local = threading.local()  # one connection per thread: chalice local answers on several
        # Fault injection (tests/s3_spy.py): called with each Call before its sends, and with each
        # Request before it goes out; a hook may return a Response (or raise) instead of the network.
        self.call_hooks: list[Callable[[str, dict], None]] = []
        self.send_hooks: list[Callable[[Request], Response | None]] = []
        self.last_send_injected = False

    # -- deadlines ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def operation(self, seconds: float | None = None) -> Iterator[Deadline]:
        """Every call of this thread inside the block (a listing's pages, a GetObject and its body)
        under one deadline of `seconds` (default: the client's)."""
        outer = getattr(self._local, "deadline", None)
        if outer is not None:  # already inside one: it stays the bound
            yield outer
            return
        deadline = Deadline(self.deadline if seconds is None else seconds)
        self._local.deadline = deadline
        try:
            yield deadline
        finally:
            self._local.deadline = None
            deadline.finish()

    def _deadline(self) -> tuple[Deadline, bool]:
        """This call's deadline, and whether the call owns it (no operation() around it)."""
        outer = getattr(self._local, "deadline", None)
        return (outer, False) if outer is not None else (Deadline(self.deadline), True)

    # -- the two operations -------------------------------------------------------------------------

    def get_object(self, *, Bucket: str, Key: str, IfNoneMatch: str | None = None) -> dict:
        params = {"Bucket": Bucket, "Key": Key, **({"IfNoneMatch": IfNoneMatch} if IfNoneMatch else {})}
        headers = {"if-none-match": IfNoneMatch} if IfNoneMatch else {}
        deadline, own = self._deadline()
        try:
            response = self._call("GetObject", params, Bucket, Key, None, "/" + quote_key(Key), "", headers,
                                  deadline)
        except BaseException:
            if own:
                deadline.finish()
            raise
        length = response.headers.get("content-length")
        size = int(length) if length is not None and length.isdigit() else None
        return {"Body": Body(response, size, deadline if own else None), "ContentLength": size,
                "ETag": response.headers.get("etag", ""), "ContentEncoding": response.headers.get("content-encoding"),
                "Metadata": {name[11:]: value for name, value in response.headers.items()
                             if name.startswith("x-amz-meta-")}}

    def list_objects_v2(self, *, Bucket: str, Prefix: str = "", ContinuationToken: str | None = None) -> dict:
        params = {"Bucket": Bucket, "Prefix": Prefix,
                  **({"ContinuationToken": ContinuationToken} if ContinuationToken else {})}
        query = {"list-type": "2", "prefix": Prefix, "encoding-type": "url"}
        if ContinuationToken:
            query["continuation-token"] = ContinuationToken
        deadline, own = self._deadline()
        try:
            response = self._call("ListObjectsV2", params, Bucket, None, Prefix, "/", query_string(query), {},
                                  deadline)
            text = _read_all(Body(response, None), MAX_LISTING_BODY + 1)
            if len(text) > MAX_LISTING_BODY:
                response.close()
                raise ResponseStreamingError("listing page over the size limit")
        finally:
            if own:
                deadline.finish()
        return parse_listing(text)

    # -- one call: attempts, retries, backoff --------------------------------------------------------

    def _call(self, op: str, params: dict, bucket: str, key: str | None, prefix: str | None, path: str,
              query: str, headers: dict[str, str], deadline: Deadline) -> Response:
        for hook in self.call_hooks:
            hook(op, params)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._send_once(op, bucket, key, prefix, path, query, headers, deadline)
            except DeadlineExceeded:
                raise
            except TransportError:
                if attempt >= self.max_attempts or not self._backoff(deadline, attempt, throttled=False):
                    raise
                continue
            if response.status in (200, 206):
                return response
            code = self._error_code(response)
            if response.status == 304:
                raise S3ClientError("304", 304, "Not Modified", op)
            retryable = response.status in TRANSIENT_STATUS or code in TRANSIENT_CODES or code in THROTTLE_CODES
            if (not retryable or attempt >= self.max_attempts
                    or not self._backoff(deadline, attempt, throttled=code in THROTTLE_CODES)):
                raise S3ClientError(code, response.status, "", op)

    def _backoff(self, deadline: Deadline, attempt: int, *, throttled: bool) -> bool:
        """Sleep before the next attempt; False (no sleep) when the deadline would pass meanwhile."""
        pause = self.delay(attempt, throttled=throttled)
        if deadline.passed() or pause >= deadline.remaining():
            return False
        time.sleep(pause)
        return True

    def delay(self, attempt: int, *, throttled: bool) -> float:
        """botocore standard mode: rand(0, 1) * min(base * 2**i, 20 s), i the 0-based attempt."""
        base = THROTTLE_BASE_SECONDS if throttled else TRANSIENT_BASE_SECONDS
        return random.random() * min(base * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)  # noqa: S311 - jitter

    @staticmethod
    def _error_code(response: Response) -> str:
        """The XML <Code> of an error answer, or its status (botocore does the same for bodiless ones)."""
        try:
            text = response.read(MAX_ERROR_BODY)
        except Exception:  # noqa: BLE001 - the status still says enough
            text = b""
        response.close()
        start = text.find(b"<Code>")
        end = text.find(b"</Code>", start)
        if start >= 0 and end > start:
            return text[start + 6 : end].decode("utf-8", "replace").strip()
        return str(response.status)

    def _send_once(self, op: str, bucket: str, key: str | None, prefix: str | None, path: str, query: str,
                   headers: dict[str, str], deadline: Deadline | None = None) -> Response:
        for _redirect in range(2):
            scheme, netloc, full_path = self._address(bucket, path)
            host = host_header(scheme, netloc)
            target = full_path + ("?" + query if query else "")
            region = self._bucket_regions.get(bucket, self.region)
            signed = sign("GET", host, full_path, query, headers, self.creds, region, self.clock())
            request = Request(op, bucket, key, prefix, "GET", f"{scheme}://{netloc}{target}", signed)
            self.last_send_injected = False
            for hook in self.send_hooks:
                injected = hook(request)
                if injected is not None:
                    self.last_send_injected = True
                    return injected
            self._local.call_deadline = deadline  # _http's (its signature is the tests' seam to moto)
            try:
                response = self._http(scheme, netloc, target, signed)
            finally:
                self._local.call_deadline = None
            moved = response.headers.get("x-amz-bucket-region")
            if response.status in (301, 400) and moved and moved != region and self.endpoint is None:
                response.close()
                self._bucket_regions[bucket] = moved
                continue
            return response
        return response

    def _address(self, bucket: str, path: str) -> tuple[str, str, str]:
        if self.endpoint:
            parts = urlsplit(self.endpoint)
            base = parts.path.rstrip("/")
            return parts.scheme or "https", parts.netloc, f"{base}/{quote(bucket, safe='')}{path}"
        region = self._bucket_regions.get(bucket, self.region)
        if "." in bucket:
            return "https", f"s3.{region}.amazonaws.com", f"/{bucket}{path}"
        return "https", f"{bucket}.s3.{region}.amazonaws.com", path

    # -- http.client --------------------------------------------------------------------------------

    def _connection(self, scheme: str, netloc: str,
                    deadline: Deadline | None = None) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection to netloc, and whether it was used before (it may have gone stale)."""
        conns: dict = getattr(self._local, "conns", None) or {}
        self._local.conns = conns
        conn = conns.get((scheme, netloc))
        if conn is not None and conn.sock is not None:
            return conn, True
        timeout = self.connect_timeout if deadline is None else deadline.timeout(self.connect_timeout)
        if scheme == "https":
            conn = http.client.HTTPSConnection(netloc, timeout=timeout, context=tls_context())
        else:
            conn = http.client.HTTPConnection(netloc, timeout=timeout)
        try:
            conn.connect()
        except TimeoutError as exc:
            conn.close()
            if deadline is not None and deadline.passed():
                raise DeadlineExceeded(f"the request deadline passed connecting to {netloc}") from None
            raise ConnectTimeoutError(f"connect timeout on {netloc}: {exc}") from None
        except OSError as exc:
            conn.close()
            raise EndpointConnectionError(f"could not connect to {netloc}: {exc}") from None
        conn.sock.settimeout(self.read_timeout)
        conns[(scheme, netloc)] = conn
        return conn, False

    def _http(self, scheme: str, netloc: str, target: str, headers: dict[str, str]) -> Response:
        deadline = getattr(self._local, "call_deadline", None)
        if deadline is None:  # a caller outside _call: the timeouts only
            deadline = Deadline(None)
        for fresh_retry in range(2):
            conn, reused = self._connection(scheme, netloc, deadline)
            deadline.watch(conn.sock)
            try:
                conn.sock.settimeout(deadline.timeout(self.read_timeout))
                conn.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
                for name, value in headers.items():
                    conn.putheader(name, value)
                conn.endheaders()
                raw = conn.getresponse()
            except DeadlineExceeded:
                conn.close()
                raise
            except TimeoutError as exc:
                conn.close()
                if deadline.passed():
                    raise DeadlineExceeded(f"the request deadline passed waiting for {netloc}") from None
                raise ReadTimeoutError(f"read timeout on {netloc}: {exc}") from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if deadline.passed():
                    raise DeadlineExceeded(f"the request deadline passed waiting for {netloc}") from None
                # A kept-alive connection the server closed meanwhile: once more on a new one.
                if reused and fresh_retry == 0 and isinstance(
                        exc, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)):
                    continue
                raise ConnectionClosedError(f"connection to {netloc} broke: {type(exc).__name__}") from None
            return Response(raw.status, dict(raw.getheaders()), _reader(raw, conn, deadline, self.read_timeout),
                            functools.partial(_drop, raw, conn))
        raise AssertionError("unreachable")


def _reader(raw: http.client.HTTPResponse, conn: http.client.HTTPConnection, deadline: Deadline | None = None,
            read_timeout: float | None = None) -> Callable[[int], bytes]:
    def read(amt: int) -> bytes:
        try:
            if deadline is not None and conn.sock is not None and read_timeout is not None:
                conn.sock.settimeout(deadline.timeout(read_timeout))
            data = raw.read() if amt < 0 else raw.read(amt)
        except DeadlineExceeded:
            _drop(raw, conn)
            raise
        except TimeoutError:
            _drop(raw, conn)
            if deadline is not None and deadline.passed():
                raise DeadlineExceeded("the request deadline passed in the body") from None
            raise ReadTimeoutError("read timeout in the body") from None
        except BaseException:
            _drop(raw, conn)
            if deadline is not None and deadline.passed():
                raise DeadlineExceeded("the request deadline passed in the body") from None
            raise
        if deadline is not None and deadline.expired:
            # The timer shut the socket down: what looks like the end of the body is not.
            _drop(raw, conn)
            raise DeadlineExceeded("the request deadline passed in the body")
        return data

    return read


def _read_all(body: Body, limit: int) -> bytes:
    """Up to `limit` bytes of a body, read to its end."""
    chunks, total = [], 0
    while total < limit:
        chunk = body.read(min(READ_PIECE, limit - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _drop(raw: http.client.HTTPResponse, conn: http.client.HTTPConnection) -> None:
    """Close a response; its connection too unless the body was read to its end (kept alive)."""
    if not raw.isclosed():
        conn.close()
    raw.close()


# -- ListObjectsV2's XML ----------------------------------------------------------------------------


def has_doctype(text: bytes) -> bool:
    """Whether an XML answer declares a DOCTYPE or entities (also spelled in UTF-16)."""
    if b"\x00" in text[:4]:
        text = text.replace(b"\x00", b"")
    return b"<!DOCTYPE" in text or b"<!ENTITY" in text


class _NoDoctype:
    """A TreeBuilder target that refuses a DOCTYPE the moment expat meets it, before any entity."""

    def __new__(cls) -> Any:
        from xml.etree import ElementTree

        class Builder(ElementTree.TreeBuilder):
            def doctype(self, name: str, pubid: str, system: str) -> None:
                raise DoctypeRefused("XML answer with a DOCTYPE")

        return Builder()


def parse_listing(text: bytes) -> dict:
    """Keys (url-decoded), IsTruncated and NextContinuationToken of a ListObjectsV2 answer.

    A DOCTYPE is refused (S3 never sends one; an entity referenced 700,000 times would take
    hundreds of MB). Keys of an encoding-type=url listing are decoded as S3 encodes them: `+` is a
    space, then %XX (unquote_plus, as botocore decodes them)."""
    from urllib.parse import unquote_plus
    from xml.etree import ElementTree

    if has_doctype(text):
        raise DoctypeRefused("listing with a DOCTYPE")
    try:
        parser = ElementTree.XMLParser(target=_NoDoctype())  # noqa: S314 - no DOCTYPE, so no entities
        parser.feed(text)
        root = parser.close()
    except ElementTree.ParseError as exc:
        raise ResponseStreamingError(f"listing is not XML: {exc}") from None
    if root is None or not isinstance(root.tag, str):
        raise ResponseStreamingError("listing is not XML")
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    url_encoded = (root.findtext(f"{ns}EncodingType") or "").lower() == "url"
    contents = []
    for node in root.iter(f"{ns}Contents"):
        key = node.findtext(f"{ns}Key") or ""
        contents.append({"Key": unquote_plus(key) if url_encoded else key})
    out: dict = {"Contents": contents, "IsTruncated": (root.findtext(f"{ns}IsTruncated") or "").lower() == "true"}
    token = root.findtext(f"{ns}NextContinuationToken")
    if token:
        out["NextContinuationToken"] = token
    return out


def make_client(settings: Any, env: Mapping[str, str] | None = None) -> HttpS3Client | None:
    """This client for the container, or None when the environment holds no usable credentials."""
    creds = env_credentials(env)
    if creds is None:
        return None
    return HttpS3Client(creds, env_region(env), endpoint=env_endpoint(env),
                        connect_timeout=settings.s3_connect_timeout, read_timeout=settings.s3_read_timeout,
                        max_attempts=settings.s3_max_attempts,
                        deadline=getattr(settings, "s3_request_deadline", 5.0))
