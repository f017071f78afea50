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

Credentials: only from the environment, as Lambda provides them (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN). `env_credentials()` returns None for anything else
(a profile, container or instance credentials, SSO) and the container uses the botocore client.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import http.client
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
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

    def __init__(self, response: Response, length: int | None) -> None:
        self._response = response
        self._length = length
        self._got = 0

    def read(self, amt: int | None = None) -> bytes:
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


class HttpS3Client:
    """GetObject and ListObjectsV2 on one bucket's region, with botocore's retry policy."""

    def __init__(self, creds: Credentials, region: str, *, endpoint: str | None = None,
                 connect_timeout: float = 1.0, read_timeout: float = 2.0, max_attempts: int = 2,
                 clock: Callable[[], str] = amz_now) -> None:
        self.creds = creds
        self.region = region
        self.endpoint = endpoint
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max(1, max_attempts)
        self.clock = clock
        self._bucket_regions: dict[str, str] = {}
        self._local = threading.local()  # one connection per thread: chalice local answers on several
        # Fault injection (tests/s3_spy.py): called with each Call before its sends, and with each
        # Request before it goes out; a hook may return a Response (or raise) instead of the network.
        self.call_hooks: list[Callable[[str, dict], None]] = []
        self.send_hooks: list[Callable[[Request], Response | None]] = []
        self.last_send_injected = False

    # -- the two operations -------------------------------------------------------------------------

    def get_object(self, *, Bucket: str, Key: str, IfNoneMatch: str | None = None) -> dict:
        params = {"Bucket": Bucket, "Key": Key, **({"IfNoneMatch": IfNoneMatch} if IfNoneMatch else {})}
        headers = {"if-none-match": IfNoneMatch} if IfNoneMatch else {}
        response = self._call("GetObject", params, Bucket, Key, None, "/" + quote_key(Key), "", headers)
        length = response.headers.get("content-length")
        size = int(length) if length is not None and length.isdigit() else None
        return {"Body": Body(response, size), "ContentLength": size, "ETag": response.headers.get("etag", ""),
                "ContentEncoding": response.headers.get("content-encoding")}

    def list_objects_v2(self, *, Bucket: str, Prefix: str = "", ContinuationToken: str | None = None) -> dict:
        params = {"Bucket": Bucket, "Prefix": Prefix,
                  **({"ContinuationToken": ContinuationToken} if ContinuationToken else {})}
        query = {"list-type": "2", "prefix": Prefix, "encoding-type": "url"}
        if ContinuationToken:
            query["continuation-token"] = ContinuationToken
        response = self._call("ListObjectsV2", params, Bucket, None, Prefix, "/", query_string(query), {})
        text = Body(response, None).read(MAX_LISTING_BODY + 1)
        if len(text) > MAX_LISTING_BODY:
            response.close()
            raise ResponseStreamingError("listing page over the size limit")
        return parse_listing(text)

    # -- one call: attempts, retries, backoff --------------------------------------------------------

    def _call(self, op: str, params: dict, bucket: str, key: str | None, prefix: str | None, path: str,
              query: str, headers: dict[str, str]) -> Response:
        for hook in self.call_hooks:
            hook(op, params)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._send_once(op, bucket, key, prefix, path, query, headers)
            except TransportError:
                if attempt >= self.max_attempts:
                    raise
                time.sleep(self.delay(attempt, throttled=False))
                continue
            if response.status in (200, 206):
                return response
            code = self._error_code(response)
            if response.status == 304:
                raise S3ClientError("304", 304, "Not Modified", op)
            retryable = response.status in TRANSIENT_STATUS or code in TRANSIENT_CODES or code in THROTTLE_CODES
            if not retryable or attempt >= self.max_attempts:
                raise S3ClientError(code, response.status, "", op)
            time.sleep(self.delay(attempt, throttled=code in THROTTLE_CODES))

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
                   headers: dict[str, str]) -> Response:
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
            response = self._http(scheme, netloc, target, signed)
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

    def _connection(self, scheme: str, netloc: str) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection to netloc, and whether it was used before (it may have gone stale)."""
        conns: dict = getattr(self._local, "conns", None) or {}
        self._local.conns = conns
        conn = conns.get((scheme, netloc))
        if conn is not None and conn.sock is not None:
            return conn, True
        if scheme == "https":
            conn = http.client.HTTPSConnection(netloc, timeout=self.connect_timeout, context=tls_context())
        else:
            conn = http.client.HTTPConnection(netloc, timeout=self.connect_timeout)
        try:
            conn.connect()
        except TimeoutError as exc:
            conn.close()
            raise ConnectTimeoutError(f"connect timeout on {netloc}: {exc}") from None
        except OSError as exc:
            conn.close()
            raise EndpointConnectionError(f"could not connect to {netloc}: {exc}") from None
        conn.sock.settimeout(self.read_timeout)
        conns[(scheme, netloc)] = conn
        return conn, False

    def _http(self, scheme: str, netloc: str, target: str, headers: dict[str, str]) -> Response:
        for fresh_retry in range(2):
            conn, reused = self._connection(scheme, netloc)
            try:
                conn.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
                for name, value in headers.items():
                    conn.putheader(name, value)
                conn.endheaders()
                raw = conn.getresponse()
            except TimeoutError as exc:
                conn.close()
                raise ReadTimeoutError(f"read timeout on {netloc}: {exc}") from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                # A kept-alive connection the server closed meanwhile: once more on a new one.
                if reused and fresh_retry == 0 and isinstance(
                        exc, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)):
                    continue
                raise ConnectionClosedError(f"connection to {netloc} broke: {type(exc).__name__}") from None
            return Response(raw.status, dict(raw.getheaders()), _reader(raw, conn), functools.partial(_drop, raw, conn))
        raise AssertionError("unreachable")


def _reader(raw: http.client.HTTPResponse, conn: http.client.HTTPConnection) -> Callable[[int], bytes]:
    def read(amt: int) -> bytes:
        try:
            return raw.read() if amt < 0 else raw.read(amt)
        except TimeoutError:
            _drop(raw, conn)
            raise ReadTimeoutError("read timeout in the body") from None
        except BaseException:
            _drop(raw, conn)
            raise

    return read


def _drop(raw: http.client.HTTPResponse, conn: http.client.HTTPConnection) -> None:
    """Close a response; its connection too unless the body was read to its end (kept alive)."""
    if not raw.isclosed():
        conn.close()
    raw.close()


# -- ListObjectsV2's XML ----------------------------------------------------------------------------


def parse_listing(text: bytes) -> dict:
    """Keys (url-decoded), IsTruncated and NextContinuationToken of a ListObjectsV2 answer."""
    from urllib.parse import unquote
    from xml.etree import ElementTree

    try:
        root = ElementTree.fromstring(text)  # noqa: S314 - S3's answer over a signed connection
    except ElementTree.ParseError as exc:
        raise ResponseStreamingError(f"listing is not XML: {exc}") from None
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    url_encoded = (root.findtext(f"{ns}EncodingType") or "").lower() == "url"
    contents = []
    for node in root.iter(f"{ns}Contents"):
        key = node.findtext(f"{ns}Key") or ""
        contents.append({"Key": unquote(key) if url_encoded else key})
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
                        max_attempts=settings.s3_max_attempts)
