"""The origin check: the API answers only requests that came through CloudFront.

CloudFront adds HEADER to every `/api/*` request it sends the API (the stage stack's OriginCustomHeaders,
deploy/stack_template.py). Its value is a secret in Parameter Store: a SecureString named by the stage's
ORIGIN_SECRET_PARAMETER, holding one or more comma-separated values. The first is what CloudFront sends;
every one of them is accepted, which is how `python -m deploy.origin_secret --rotate` changes it without a
refused request (docs/protection.md). A request without a matching header is a 403 in the API's error
shape, before any S3 read. Warm-ups are not HTTP requests from API Gateway (the warmer invokes the function
directly, allowed by IAM alone): they never reach this check.

Read once per container, again after ORIGIN_SECRET_TTL_SECONDS (a rotation is seen within that time);
a failed re-read keeps the values already read. With ORIGIN_SECRET_PARAMETER unset the check is off.
When it is set and the parameter cannot be read at all, every request is a 503 (fail closed).

    origin.HEADER            # "X-Origin-Verify"
    origin.current_secret()  # the value CloudFront sends now: a pre-traffic hook invoking a new version
                             # of the API function directly sends it as HEADER

Only the standard library at module level: botocore is imported with the SSM client, on first use.
"""

from __future__ import annotations

import hmac
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

HEADER = "X-Origin-Verify"
PARAMETER_ENV = "ORIGIN_SECRET_PARAMETER"
TTL_ENV = "ORIGIN_SECRET_TTL_SECONDS"
DEFAULT_TTL_SECONDS = 300.0
# After a failed read, the next try waits this long (a fault is one slow request every few seconds).
RETRY_SECONDS = 5.0
CONNECT_TIMEOUT, READ_TIMEOUT = 1.0, 2.0

_lock = threading.Lock()
_state: dict[str, Any] = {"client": None, "parameter": None, "values": None, "next_read": 0.0}


class SecretUnavailable(Exception):
    """The parameter names no readable secret (missing, empty, unreadable) and none was read before."""


def parameter_name(env: Mapping[str, str] | None = None) -> str:
    """The stage's parameter (ORIGIN_SECRET_PARAMETER); "" turns the check off."""
    env = os.environ if env is None else env
    return env.get("ORIGIN_SECRET_PARAMETER", "").strip()


def ttl_seconds(env: Mapping[str, str] | None = None) -> float:
    env = os.environ if env is None else env
    raw = env.get("ORIGIN_SECRET_TTL_SECONDS", "").strip()
    try:
        value = float(raw) if raw else DEFAULT_TTL_SECONDS
    except ValueError:
        return DEFAULT_TTL_SECONDS
    return value if value >= 0 else DEFAULT_TTL_SECONDS


def parse_values(text: str) -> tuple[str, ...]:
    """The accepted values of a parameter: comma-separated, blanks dropped, in order (the first is sent)."""
    return tuple(v.strip() for v in text.split(",") if v.strip())


def reset() -> None:
    """Forget the client and the values, as a new container would (tests, container.reset())."""
    with _lock:
        _state.update(client=None, parameter=None, values=None, next_read=0.0)


def _client() -> Any:
    """The container's SSM client, made once (short timeouts, two attempts, the lean model loader)."""
    if _state["client"] is None:
        try:
            from chalice_app.config.parameter_store import make_ssm_client

            _state["client"] = make_ssm_client(CONNECT_TIMEOUT, READ_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - no client is "unavailable", never a 500
            raise SecretUnavailable(f"no SSM client ({type(exc).__name__})") from None
    return _state["client"]


def read_values(client: Any, name: str) -> tuple[str, ...]:
    """The parameter's values, decrypted; SecretUnavailable when it is missing or empty."""
    try:
        value = client.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    except Exception as exc:  # noqa: BLE001 - any failure is "unavailable"; the caller logs it
        from chalice_app.aws_clients import error_code

        raise SecretUnavailable(error_code(exc) or type(exc).__name__) from None
    values = parse_values(value)
    if not values:
        raise SecretUnavailable("empty")
    return values


def accepted_values(env: Mapping[str, str] | None = None, *, client: Any = None,
                    now: float | None = None) -> tuple[str, ...] | None:
    """The values accepted now; None when the check is off. Read at most once per TTL per container."""
    name = parameter_name(env)
    if not name:
        return None
    now = time.monotonic() if now is None else now
    values = _state["values"]
    if values is not None and _state["parameter"] == name and now < _state["next_read"]:
        return values
    with _lock:
        if _state["parameter"] != name:
            _state.update(parameter=name, values=None, next_read=0.0)
        values = _state["values"]
        if values is not None and now < _state["next_read"]:
            return values  # another thread has just read it
        try:
            values = read_values(client if client is not None else _client(), name)
        except SecretUnavailable as exc:
            from chalice_app.logs import log_event

            _state["next_read"] = now + RETRY_SECONDS
            kept = _state["values"]
            log_event("origin_secret_unavailable", parameter=name, code=str(exc)[:100],
                      detail="keeping the values read before" if kept else "refusing every request (503)")
            if kept is None:
                raise
            return kept
        _state.update(values=values, next_read=now + ttl_seconds(env))
        return values


def current_secret(env: Mapping[str, str] | None = None, *, client: Any = None) -> str:
    """The value CloudFront sends now (the parameter's first). SecretUnavailable when there is none,
    or when ORIGIN_SECRET_PARAMETER is unset."""
    if not parameter_name(env):
        raise SecretUnavailable(f"{PARAMETER_ENV} is not set")
    values = accepted_values(env, client=client)
    if not values:  # not reached: with the name set, it is values or SecretUnavailable
        raise SecretUnavailable("no value")
    return values[0]


def matches(given: str | None, values: tuple[str, ...]) -> bool:
    """Constant-time comparison of the header with each accepted value."""
    if not given:
        return False
    given_bytes = given.encode("utf-8", errors="replace")
    found = False
    for value in values:
        found |= hmac.compare_digest(given_bytes, value.encode("utf-8"))
    return found


def refusal(headers: Mapping[str, str] | None, env: Mapping[str, str] | None = None) -> tuple[int, str, str] | None:
    """None when the request may go on; else (status, code, message) of the API's error answer."""
    try:
        values = accepted_values(env)
    except SecretUnavailable:
        return 503, "origin_check_unavailable", "the API cannot verify where requests come from right now"
    if values is None:
        return None
    given = headers.get(HEADER) if headers is not None else None  # Chalice's headers: case-insensitive
    if matches(given, values):
        return None
    return 403, "forbidden", "this API answers through the site's domain only"
