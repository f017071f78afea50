"""What lives once per Lambda container: settings, the S3 client and store, the cold flag."""

from __future__ import annotations

import os
import secrets
import threading
import time

from chalice_app.config.settings import Settings, SettingsError, load_settings
from chalice_app.logs import log_event
from chalice_app.store.cache import PredictionStore

# Import time of this module is the container's init time, near enough for the cold flag.
INIT_STARTED = time.monotonic()

_lock = threading.Lock()
_state: dict = {"settings": None, "store": None, "invocations": 0}
# Per request, not per container: chalice local serves requests on several threads.
_request = threading.local()


def settings() -> Settings:
    """The stage's settings, read once: environment > Parameter Store (CONFIG_SSM_PATH) > defaults."""
    current = _state["settings"]
    if current is None:
        current = _state["settings"] = _load_settings(os.environ)
    return current


def _load_settings(env: dict) -> Settings:
    path = env.get("CONFIG_SSM_PATH", "").strip()
    if not path:
        return load_settings(env)
    from chalice_app.config.parameter_store import make_ssm_client, read_parameters

    defaults = Settings()
    stored = read_parameters(make_ssm_client(defaults.s3_connect_timeout, defaults.s3_read_timeout), path)
    given = {name: value for name, value in env.items() if value.strip()}
    try:
        return load_settings({**stored, **given})
    except SettingsError as exc:
        # A bad value in Parameter Store must not take the API down: the environment still works.
        log_event("ssm_settings_invalid", path=path, error=str(exc), detail="ignoring Parameter Store")
        return load_settings(env)


def store() -> PredictionStore:
    """The container's store over S3, created on first use and reused by every request."""
    current = _state["store"]
    if current is None:
        with _lock:
            current = _state["store"]
            if current is None:
                from chalice_app.store.sources import S3Source

                cfg = settings()
                current = _state["store"] = PredictionStore(
                    S3Source(s3_client(cfg), cfg.bucket, max_stored_bytes=cfg.max_stored_bytes,
                             max_batch_bytes=cfg.max_batch_bytes, deadline=cfg.s3_request_deadline),
                    cfg.prefix,
                    pointer_ttl=cfg.pointer_ttl,
                    # Where CloudFront keeps the answers until the next publish, nothing cached here may
                    # be older than the site function's wait before it invalidates (POINTER_TTL_SECONDS
                    # after the newest write): a --force republish is then what CloudFront fetches next.
                    batch_ttl=min(cfg.batch_ttl, cfg.pointer_ttl) if edge_max_age() else cfg.batch_ttl,
                    max_batches=cfg.max_cached_batches,
                    max_bytes=cfg.max_cached_bytes,
                    max_json_depth=cfg.max_json_depth,
                    max_batch_items=cfg.max_batch_items,
                )
    return current


def edge_max_age() -> int:
    """The s-maxage of a batch's answer: EDGE_MAX_AGE_SECONDS when each publish invalidates /api/* at
    CloudFront (the site function does: chalice_app/website/rebuild.py), so the edge keeps an answer
    until the next publish; 0 (no s-maxage: the edge keeps it max-age, as browsers do) otherwise."""
    from chalice_app import site_trigger

    cfg = settings()
    on = cfg.edge_cache == "on" or (cfg.edge_cache == "auto" and site_trigger.enabled(os.environ))
    return cfg.edge_max_age if on else 0


def s3_client(cfg: Settings) -> object:
    """The container's S3 client, chosen once (S3_CLIENT): the botocore-free one
    (chalice_app/store/s3_http.py) inside the Lambda runtime ("auto") or when asked for ("stdlib"),
    and only with credentials as Lambda provides them; botocore's client everywhere else: its
    credential chain knows profiles, container and instance credentials and SSO, and moto's
    `mock_aws` (which patches botocore alone) then needs nothing more."""
    from chalice_app.store import s3_http

    if s3_http.use_stdlib(cfg.s3_client):
        client = s3_http.make_client(cfg)
        if client is not None:
            _state["s3_client_kind"] = "http"
            return client
        if cfg.s3_client == "stdlib":
            log_event("s3_client_fallback", wanted="stdlib", client="botocore",
                      detail="no AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment (or AWS_PROFILE set)")
    from chalice_app.aws_clients import make_s3_client

    _state["s3_client_kind"] = "botocore"
    return make_s3_client(cfg)


def begin_invocation() -> bool:
    """Count one invocation; True when it is this container's first (a cold start)."""
    _request.cache_hit = None
    _request.batch = (None, None)
    with _lock:
        _state["invocations"] += 1
        cold = _state["last_cold"] = _state["invocations"] == 1
        if cold:
            _state.setdefault("first_invocation_at", time.monotonic())
        return cold


def reset() -> None:
    """Forget everything, as a new container would (tests use this)."""
    with _lock:
        _state.update(settings=None, store=None, invocations=0)
        _state.pop("container_id", None)
    from chalice_app.api import origin

    origin.reset()  # the origin secret and its SSM client are the container's too


def last_cold() -> bool:
    """Whether the invocation being answered was this container's first."""
    return bool(_state.get("last_cold", False))


def container_id() -> str:
    """A random name for this container, so the warmer can count how many distinct ones it reached."""
    with _lock:
        if "container_id" not in _state:
            _state["container_id"] = secrets.token_hex(6)
        return _state["container_id"]


def note_cache_hit(hit: bool) -> None:
    """Record a store answer of this request; the request is a hit only if every read was."""
    previous = getattr(_request, "cache_hit", None)
    _request.cache_hit = hit if previous is None else previous and hit


def note_batch(date: str | None, model: object) -> None:
    """Record the batch this request answered from: its date and its model's version, for the log line."""
    version = model.get("version") if isinstance(model, dict) else None
    _request.batch = (date, version if isinstance(version, str) else None)


def batch_noted() -> tuple[str | None, str | None]:
    """(date, model version) of the batch this request answered from; (None, None) when none."""
    return getattr(_request, "batch", (None, None))


def cache_hit() -> bool | None:
    """Whether this request's store reads were all answered from memory; None when it read nothing."""
    return getattr(_request, "cache_hit", None)


def _process_started() -> float | None:
    """When the Python process started, on the time.monotonic() scale; None where /proc can't tell.

    Lambda starts the process at the beginning of its init phase, so this catches the interpreter
    start and every import before this module, which INIT_STARTED alone would miss.
    """
    try:
        with open(f"/proc/{os.getpid()}/stat", encoding="ascii") as fh:
            # Field 22 (starttime, in clock ticks after boot); the command name before it may hold spaces.
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return time.monotonic() - age if age >= 0 else None


PROCESS_STARTED = _process_started()


def mark_ready() -> None:
    """Called once the app is imported: the end of what this container spends on init."""
    _state.setdefault("ready_at", time.monotonic())


def init_duration_ms() -> float:
    """Process start (or this module's import) to the app being ready, in ms.

    It ends at mark_ready() rather than at the first invocation: when Lambda initialises a container
    ahead of demand, the idle wait before the first request is not init time.
    """
    started = PROCESS_STARTED if PROCESS_STARTED is not None else INIT_STARTED
    ready = _state.get("ready_at") or _state.get("first_invocation_at") or time.monotonic()
    return max(0.0, (ready - started) * 1000)
