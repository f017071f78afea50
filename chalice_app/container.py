"""What lives once per Lambda container: settings, the S3 client and store, the cold flag."""

from __future__ import annotations

import threading
import time

from chalice_app.settings import Settings, load_settings
from chalice_app.store import PredictionStore

# Import time of this module is the container's init time, near enough for the cold flag.
INIT_STARTED = time.monotonic()

_lock = threading.Lock()
_state: dict = {"settings": None, "store": None, "invocations": 0}


def settings() -> Settings:
    current = _state["settings"]
    if current is None:
        current = _state["settings"] = load_settings()
    return current


def store() -> PredictionStore:
    """The container's store over S3, created on first use and reused by every request."""
    current = _state["store"]
    if current is None:
        with _lock:
            current = _state["store"]
            if current is None:
                from chalice_app.s3 import make_s3_client
                from chalice_app.sources import S3Source

                cfg = settings()
                current = _state["store"] = PredictionStore(
                    S3Source(make_s3_client(cfg), cfg.bucket),
                    cfg.prefix,
                    pointer_ttl=cfg.pointer_ttl,
                    batch_ttl=cfg.batch_ttl,
                    max_batches=cfg.max_cached_batches,
                )
    return current


def begin_invocation() -> bool:
    """Count one invocation; True when it is this container's first (a cold start)."""
    with _lock:
        _state["invocations"] += 1
        return _state["invocations"] == 1


def reset() -> None:
    """Forget everything, as a new container would (tests use this)."""
    with _lock:
        _state.update(settings=None, store=None, invocations=0)


def note_invocation(cold: bool) -> None:
    _state["last_cold"] = cold


def last_cold() -> bool:
    """Whether the invocation being answered was this container's first."""
    return bool(_state.get("last_cold", False))
