"""The tests' one S3 spy and fault injector, on a botocore client's own event system.

    spy = S3Spy().attach(client)          # or the `s3_spy` fixture: the API container's own client
    spy.fail("GetObject", key=KEY, status=503, code="SlowDown", times=1)
    ... exercise the code ...
    spy.calls, spy.sends, spy.count("GetObject"), spy.send_count(key=KEY), spy.targets

What it records:

- `calls`: one `Call` per API call, from the parameters the caller really passed (the
  `before-parameter-build` event, before botocore serializes them into an HTTP request);
- `sends`: one `Call` per HTTP attempt (`before-send`, below botocore's retry layer), so a call
  retried once appears twice; injected faults are counted as sends too.

What it breaks: `fail(...)` answers chosen sends instead of S3 (instead of moto, whose handler it
runs before). Below the retry layer, the client's real retry policy runs on every injected fault.
A fault is an HTTP error with an S3 error code, a connection error or timeout, or a 200 whose body
breaks while it is read; it applies to one operation or all, to one key or to keys matching, on
every send or only the first `times`. Injected faults are retried without botocore's backoff sleep
when the spy comes from the `s3_spy` fixture (see `skip_backoff_after_injected_faults`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import (
    BotoCoreError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

# Marks, in botocore's per-call request context, whether the latest send was answered by a spy.
INJECTED = "s3_spy_injected"

ERRORS: dict[str, type[Exception]] = {
    "read-timeout": ReadTimeoutError,
    "connect-timeout": ConnectTimeoutError,
    "connection-closed": ConnectionClosedError,
    "connection-refused": EndpointConnectionError,
}

DEFAULT_CODES = {400: "InvalidRequest", 403: "AccessDenied", 404: "NoSuchKey", 409: "Conflict",
                 412: "PreconditionFailed", 429: "SlowDown", 500: "InternalError", 503: "ServiceUnavailable"}

KeyMatch = str | re.Pattern | Callable[[str | None], bool] | None


@dataclass(frozen=True)
class Call:
    """One operation as the caller asked for it."""

    op: str  # "GetObject", "ListObjectsV2", ...
    bucket: str | None
    key: str | None  # the Key of an object operation
    prefix: str | None  # the Prefix of a listing
    params: dict = field(compare=False, hash=False, repr=False)  # every parameter as passed

    @property
    def target(self) -> str:
        """The key of an object operation, or '<op>:<prefix>' ('ListObjectsV2:predictions/')."""
        return self.key if self.key is not None else f"{self.op}:{self.prefix or ''}"


class _Body:
    """Just enough of urllib3's response for botocore: error bodies are streamed, 200 bodies read."""

    def __init__(self, data: bytes, read_error: Exception | None = None) -> None:
        self.data = data
        self.read_error = read_error

    def stream(self, **_):
        yield self.data

    def read(self, amt=None):
        if self.read_error is not None:
            raise self.read_error
        data, self.data = self.data, b""
        return data


@dataclass
class Rule:
    """One armed fault; `hits` counts the sends it answered."""

    respond: Callable[[Any], AWSResponse]  # may raise instead, as a broken connection does
    ops: frozenset[str] | None
    key: KeyMatch
    times: int | None
    hits: int = 0

    def matches(self, call: Call) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.ops is not None and call.op not in self.ops:
            return False
        if self.key is None:
            return True
        subject = call.key if call.key is not None else call.prefix
        if isinstance(self.key, str):
            return subject == self.key
        if isinstance(self.key, re.Pattern):
            return subject is not None and self.key.search(subject) is not None
        return bool(self.key(subject))


def error_response(status: int, code: str | None = None) -> Callable[[Any], AWSResponse]:
    code = code or DEFAULT_CODES.get(status, "InternalError")
    xml = (f"<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>{code}</Code>"
           f"<Message>injected by the S3 spy</Message></Error>").encode()
    headers = {"Content-Type": "application/xml", "Content-Length": str(len(xml))}
    return lambda request: AWSResponse(request.url, status, headers, _Body(xml))


def raising(error: type[Exception] | Exception | str) -> Callable[[Any], AWSResponse]:
    if isinstance(error, str):
        if error not in ERRORS:
            raise ValueError(f"unknown error {error!r}; one of {sorted(ERRORS)} or an exception")
        error = ERRORS[error]

    def respond(request):
        if isinstance(error, BaseException):
            raise error
        if issubclass(error, BotoCoreError):
            raise error(endpoint_url=request.url, error="injected by the S3 spy")
        raise error("injected by the S3 spy")

    return respond


def broken_body(body: bytes, content_length: int | None, read_error: Exception | None) -> Callable:
    headers = {"Content-Length": str(len(body) if content_length is None else content_length),
               "ETag": '"0123456789abcdef0123456789abcdef"', "Content-Type": "application/json"}
    return lambda request: AWSResponse(request.url, 200, dict(headers), _Body(body, read_error))


class S3Spy:
    """Records the S3 calls and sends of the clients it is attached to, and fails them on demand."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.sends: list[Call] = []
        self.rules: list[Rule] = []
        self._clients: list[Any] = []
        self._lock = threading.Lock()  # chalice local answers on several threads
        self._slot = f"s3_spy_call_{id(self)}"  # this spy's Call, in the request context

    # -- attaching ------------------------------------------------------------------------------

    def attach(self, client: Any) -> S3Spy:
        """Hook into the client's events; attaching twice to the same client changes nothing.

        A botocore client is hooked through its event system; the botocore-free client
        (chalice_app/store/s3_http.py) through its own call and send hooks, where the same rules
        answer with the same faults, translated to what that client's wire would give."""
        if any(known is client for known in self._clients):
            return self
        self._clients.append(client)
        if hasattr(client, "send_hooks"):
            client.call_hooks.append(self._on_http_call)
            client.send_hooks.insert(0, self._on_http_send)
            return self
        client.meta.events.register("before-parameter-build.s3", self._on_call)
        # First: ahead of moto's own before-send handler, which would otherwise answer.
        client.meta.events.register_first("before-send.s3", self._on_send)
        return self

    @property
    def attached(self) -> bool:
        return bool(self._clients)

    def _on_call(self, params: dict, model: Any, context: dict, **_) -> None:
        call = Call(model.name, params.get("Bucket"), params.get("Key"), params.get("Prefix"), dict(params))
        context[self._slot] = call
        with self._lock:
            self.calls.append(call)

    def _on_send(self, request: Any, event_name: str = "", **_) -> AWSResponse | None:
        context = request.context if request.context is not None else {}
        call = context.get(self._slot) or Call(event_name.rsplit(".", 1)[-1], None, None, None, {})
        with self._lock:
            self.sends.append(call)
            rule = next((r for r in self.rules if r.matches(call)), None)
            if rule is not None:
                rule.hits += 1
        context[INJECTED] = rule is not None
        return rule.respond(request) if rule is not None else None

    def _on_http_call(self, op: str, params: dict) -> None:
        call = Call(op, params.get("Bucket"), params.get("Key"), params.get("Prefix"), dict(params))
        with self._lock:
            self.calls.append(call)

    def _on_http_send(self, request: Any) -> Any:
        call = Call(request.op, request.bucket, request.key, request.prefix, {})
        with self._lock:
            self.sends.append(call)
            rule = next((r for r in self.rules if r.matches(call)), None)
            if rule is not None:
                rule.hits += 1
        if rule is None:
            return None
        return http_response(rule.respond, request)

    # -- faults ---------------------------------------------------------------------------------

    def fail(self, op: str | Iterable[str] | None = None, *, key: KeyMatch = None,
             status: int | None = None, code: str | None = None,
             error: type[Exception] | Exception | str | None = None,
             body: bytes | None = None, content_length: int | None = None, read_error: Exception | None = None,
             times: int | None = None) -> Rule:
        """Answer matching sends with a fault instead of S3, and return the armed rule.

        Which sends: `op` (an operation name or several; default every operation), `key` (the
        object key, or a listing's prefix: equal to a string, searched by a compiled regex, or a
        predicate), `times` (only the first N matching sends; default all). The first armed rule
        that matches answers.
        What fault, one of:
          - `status` and `code`: an S3 error response (default: 500 InternalError; the code
            defaults from the status, e.g. 503 ServiceUnavailable, 403 AccessDenied);
          - `error`: raised as the transport would: an exception class or instance, or one of
            "read-timeout", "connect-timeout", "connection-closed", "connection-refused";
          - `body`/`content_length`/`read_error`: a 200 whose body is shorter than its
            Content-Length, or whose reading raises `read_error` (a connection reset mid-body).
        """
        kinds = [status is not None or code is not None, error is not None,
                 body is not None or content_length is not None or read_error is not None]
        if sum(kinds) > 1:
            raise ValueError("one fault at a time: status/code, error, or body/content_length/read_error")
        if error is not None:
            respond = raising(error)
        elif kinds[2]:
            respond = broken_body(body or b"", content_length, read_error)
        else:
            respond = error_response(status or 500, code)
        ops = None if op is None else frozenset([op] if isinstance(op, str) else op)
        rule = Rule(respond, ops, key, times)
        with self._lock:
            self.rules.append(rule)
        return rule

    def heal(self) -> None:
        """Disarm every fault: S3 (moto) answers again."""
        with self._lock:
            self.rules.clear()

    # -- reading the record ---------------------------------------------------------------------

    def clear(self) -> None:
        """Forget the calls and sends seen so far (armed faults stay)."""
        with self._lock:
            self.calls.clear()
            self.sends.clear()

    @property
    def ops(self) -> list[str]:
        return [call.op for call in self.calls]

    @property
    def targets(self) -> list[str]:
        """What each call asked for, in order: keys, and '<op>:<prefix>' for listings."""
        return [call.target for call in self.calls]

    def count(self, op: str | None = None, key: KeyMatch = None) -> int:
        """API calls of `op` (any if None) on `key` (matched as in fail())."""
        return _count(self.calls, op, key)

    def send_count(self, op: str | None = None, key: KeyMatch = None) -> int:
        """HTTP attempts of `op` on `key`: what the retry policy really sent."""
        return _count(self.sends, op, key)


def _count(records: list[Call], op: str | None, key: KeyMatch) -> int:
    probe = Rule(lambda request: None, None if op is None else frozenset([op]), key, None)
    return sum(1 for call in list(records) if probe.matches(call))


def http_response(respond: Callable[[Any], AWSResponse], request: Any) -> Any:
    """A rule's answer as the botocore-free client's wire would give it: a transport error of the
    same name (ReadTimeoutError, ...), or a Response whose body breaks as a socket's would."""
    from chalice_app.store import s3_http

    try:
        answer = respond(request)
    except BotoCoreError as exc:
        mapped = s3_http.TRANSPORT_ERRORS.get(type(exc).__name__)
        if mapped is None:
            raise
        raise mapped(str(exc)) from None

    def read(amt: int) -> bytes:
        try:
            return answer.raw.read(None if amt < 0 else amt)
        except Exception as exc:  # noqa: BLE001 - a reset mid-body, as the socket reports it
            raise ConnectionResetError(str(exc)) from None

    return s3_http.Response(answer.status_code, dict(answer.headers.items()), read)


def route_http_client_through_moto(monkeypatch: Any) -> None:
    """In-process moto (mock_aws) answers botocore's sends; the botocore-free client sends with
    http.client, so its sends are offered to moto's stubber first (None: nothing mocked there, the
    real network, e.g. a loopback server). Its signing and addressing are unchanged."""
    from chalice_app.store import s3_http

    real = s3_http.HttpS3Client._http

    def _http(self, scheme, netloc, target, headers):
        from botocore.awsrequest import AWSPreparedRequest
        from moto.core.models import botocore_stubber

        aws_request = AWSPreparedRequest("GET", f"{scheme}://{netloc}{target}", headers, None, True)
        answer = botocore_stubber("before-send.s3", aws_request)
        if answer is None:
            return real(self, scheme, netloc, target, headers)
        data = answer.raw.read() if hasattr(answer.raw, "read") else answer.content
        chunks = [data]

        def read(amt: int) -> bytes:
            whole = chunks.pop() if chunks else b""
            if amt >= 0 and len(whole) > amt:
                chunks.append(whole[amt:])
                whole = whole[:amt]
            return whole

        return s3_http.Response(answer.status_code, dict(answer.headers.items()), read)

    monkeypatch.setattr(s3_http.HttpS3Client, "_http", _http)


def skip_backoff_after_injected_faults(monkeypatch: Any) -> None:
    """botocore sleeps before each retry (up to 1 s after a throttle); after a fault a spy injected,
    the retry goes out at once. Real faults (a socket that never answers) keep the real backoff."""
    from botocore.retries import standard

    real = standard.ExponentialBackoff.delay_amount

    def delay_amount(self, context):
        if (context.request_context or {}).get(INJECTED):
            return 0
        return real(self, context)

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", delay_amount)

    from chalice_app.store import s3_http

    real_delay = s3_http.HttpS3Client.delay

    def delay(self, attempt, *, throttled):
        return 0.0 if self.last_send_injected else real_delay(self, attempt, throttled=throttled)

    monkeypatch.setattr(s3_http.HttpS3Client, "delay", delay)
