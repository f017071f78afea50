"""The warmer: a scheduled Lambda that invokes the API function N times at once.

A scheduled function alone warms nothing (it is a Lambda of its own), so it calls the API
function with N concurrent warm-up events (chalice_app.api.warmup), and logs one summary line that
is also an EMF record. See docs/warming.md.

Per stage, in .chalice/config.json:
- `WARMER_ENABLED`, `WARMER_RATE_MINUTES` are stage-level environment variables because the
  schedule is fixed when app.py is imported, and Chalice imports it (for `chalice package`,
  `deploy` and `local`) after putting the *stage's* environment variables in os.environ. When
  the warmer is off, nothing is registered, so no rule and no function are deployed.
- `WARM_TARGET_FUNCTION`, `WARMER_CONCURRENCY` only matter when the warmer runs, so they live in
  the warmer's own `lambda_functions.warmer.environment_variables`, not in the API's.

The API imports this module to register the blueprint: keep its module level to the standard
library and chalice; the Lambda client is only created inside the scheduled function.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chalice import Blueprint, Rate

from chalice_app import metrics
from chalice_app.api import warmup

WARMER_NAME = "warmer"  # Chalice deploys it as {app_name}-{stage}-warmer
HOLD_MS = 150  # long enough for N threads to reach Lambda, short enough to cost ~nothing
MAX_CONCURRENCY = 10
MAX_RATE_MINUTES = 24 * 60
INVOKE_READ_TIMEOUT = 15  # above the API's lambda_timeout (10 s), so a slow cold start still answers
MAX_ERRORS_REPORTED = 5


class WarmerConfigError(ValueError):
    """A warmer setting has a value that cannot be used; the message names it."""


def _positive_int(env: Mapping[str, str], name: str, upper: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        raise WarmerConfigError(f"{name} is not set")
    if not raw.isdigit() or not 1 <= int(raw) <= upper:
        raise WarmerConfigError(f"{name}={raw!r}: expected a whole number from 1 to {upper}")
    return int(raw)


def schedule_minutes(env: Mapping[str, str]) -> int | None:
    """The warmer's rate in minutes from WARMER_ENABLED / WARMER_RATE_MINUTES; None when off or unset."""
    enabled = env.get("WARMER_ENABLED", "").strip().lower()
    if enabled in ("", "false", "0", "no", "off"):
        return None
    if enabled not in ("true", "1", "yes", "on"):
        raise WarmerConfigError(f"WARMER_ENABLED={enabled!r}: expected true or false")
    return _positive_int(env, "WARMER_RATE_MINUTES", MAX_RATE_MINUTES)


@dataclass(frozen=True)
class RunConfig:
    target: str
    concurrency: int


def run_config(env: Mapping[str, str]) -> RunConfig:
    """What the warmer invokes and how many at once, from its own environment."""
    target = env.get("WARM_TARGET_FUNCTION", "").strip()
    if not target:
        raise WarmerConfigError("WARM_TARGET_FUNCTION is not set")
    return RunConfig(target, _positive_int(env, "WARMER_CONCURRENCY", MAX_CONCURRENCY))


@dataclass(frozen=True)
class Outcome:
    """What one invocation of the API function answered."""

    ok: bool
    cold: bool = False
    container: str | None = None
    error: str | None = None
    latest: str | None = None  # the latest batch's date, as the API sees it
    generated_at: str | None = None  # and its generated_at, when the batch has one


def parse_answer(response: Mapping[str, Any]) -> Outcome:
    """A Lambda Invoke response (Payload already read) to an Outcome; anything unexpected is a failure."""
    payload = response.get("Payload", b"")
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)
    if response.get("FunctionError"):
        return Outcome(False, error=f"FunctionError {response['FunctionError']}: {text[:200]}")
    try:
        answer = json.loads(text)
        report = json.loads(answer["body"])
    except (ValueError, KeyError, TypeError):
        return Outcome(False, error=f"not a warm-up answer: {text[:200]}")
    if not isinstance(report, dict) or report.get("warmup") is not True:
        return Outcome(False, error=f"status {answer.get('statusCode')}: not a warm-up answer: {text[:200]}")
    cold, container = bool(report.get("cold")), report.get("container")
    if answer.get("statusCode") != 200:
        error = report.get("error") or {}
        return Outcome(False, cold, container, f"status {answer.get('statusCode')}: {error.get('code', '?')}")
    latest, generated = report.get("latest"), report.get("generated_at")
    return Outcome(True, cold, container, latest=latest if isinstance(latest, str) else None,
                   generated_at=generated if isinstance(generated, str) else None)


def _instant(text: str) -> float | None:
    """Epoch seconds of an ISO 8601 timestamp or a YYYY-MM-DD date (midnight UTC); None when unreadable."""
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def latest_batch_age_hours(outcomes: list[Outcome], now: float) -> float | None:
    """Hours since the newest latest batch any warm-up saw was generated (its `generated_at`, else the
    start of its date, UTC). None when no warm-up saw one: the stale-batch alarm treats that as breaching."""
    instants = [t for o in outcomes if o.ok and o.latest
                for t in [_instant(o.generated_at or "") or _instant(o.latest)] if t is not None]
    return round(max(0.0, (now - max(instants)) / 3600), 2) if instants else None


def _invoke_one(client: Any, target: str, event: dict) -> Outcome:
    try:
        response = client.invoke(FunctionName=target, InvocationType="RequestResponse",
                                 Payload=json.dumps(event).encode("utf-8"))
        payload = response.get("Payload")
        if hasattr(payload, "read"):
            response = {**response, "Payload": payload.read()}
    except Exception as exc:  # noqa: BLE001 - any failure of one invocation is counted, not raised
        return Outcome(False, error=f"{type(exc).__name__}: {str(exc)[:200]}")
    return parse_answer(response)


def invoke_all(client: Any, target: str, concurrency: int, *, hold_ms: int | None = None,
               clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time) -> dict:
    """Invoke `target` `concurrency` times at once (one thread each); the run's summary."""
    run_id = secrets.token_hex(4)
    hold = (HOLD_MS if concurrency > 1 else 0) if hold_ms is None else hold_ms
    outcomes: list[Outcome | None] = [None] * concurrency

    def one(index: int) -> None:
        event = warmup.build_event(hold_ms=hold, run_id=run_id, index=index, of=concurrency)
        outcomes[index] = _invoke_one(client, target, event)

    started = clock()
    threads = [threading.Thread(target=one, args=(i,), name=f"warm-{i}", daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    duration_ms = (clock() - started) * 1000
    done = [o or Outcome(False, error="no answer") for o in outcomes]
    return {
        "target": target,
        "run": run_id,
        "invoked": concurrency,
        "ok": sum(o.ok for o in done),
        "cold": sum(o.cold for o in done),
        "failures": sum(not o.ok for o in done),
        "containers": len({o.container for o in done if o.container}),
        "duration_ms": round(duration_ms, 1),
        "hold_ms": hold,
        "errors": [o.error for o in done if o.error][:MAX_ERRORS_REPORTED],
        "latest": max((o.latest for o in done if o.ok and o.latest), default=None),
        "latest_age_hours": latest_batch_age_hours(done, wall_clock()),
    }


def make_lambda_client(concurrency: int) -> Any:
    # botocore directly, like chalice_app.aws_clients: boto3's extra layer costs init time and buys nothing here.
    import botocore.session
    from botocore.config import Config

    config = Config(
        connect_timeout=2,
        read_timeout=INVOKE_READ_TIMEOUT,
        # One attempt: a retried invoke is one more warm-up; the next scheduled run is the retry.
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=max(concurrency, 1),
    )
    return botocore.session.get_session().create_client("lambda", config=config)


_clients: dict[int, Any] = {}  # kept across runs of a warm warmer container


def run(env: Mapping[str, str] | None = None, client: Any = None) -> dict:
    """One warmer run: read the settings, invoke, log the summary as an EMF line, return it."""
    env = os.environ if env is None else env
    cfg = run_config(env)
    if client is None:
        if cfg.concurrency not in _clients:
            _clients[cfg.concurrency] = make_lambda_client(cfg.concurrency)
        client = _clients[cfg.concurrency]
    summary = invoke_all(client, cfg.target, cfg.concurrency)
    metrics.emit("warmer_summary", metrics.warmer_fields(stage=env.get("STAGE", "unknown"), summary=summary))
    return summary


blueprint = Blueprint(__name__)


def warm_api(event: Any) -> dict:
    """The scheduled function (also what `python -m chalice_app.warming.prewarm` invokes)."""
    return run()


_RATE = schedule_minutes(os.environ)
if _RATE is not None:
    # Rebinding the name matters: Chalice points the Lambda handler at `chalice_app.warming.scheduled.warm_api`,
    # which must be the wrapped handler taking (event, context).
    warm_api = blueprint.schedule(Rate(_RATE, unit=Rate.MINUTES), name=WARMER_NAME,
                                  description="Keeps the API function warm (chalice_app.warming.scheduled)")(warm_api)
