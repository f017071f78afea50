"""Settings of one stage, read once per container from the environment.

`.chalice/config.json` sets the environment per stage; only PREDICTIONS_BUCKET is required,
everything else has a default documented in docs/settings.md (a test keeps that table complete).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from chalice_app.contract import DEFAULT_PREFIX, normalize_prefix


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names it."""


@dataclass(frozen=True)
class Settings:
    bucket: str = ""
    prefix: str = DEFAULT_PREFIX
    stage: str = "local"
    # How long the pointer and the date listing are trusted before a conditional GET.
    pointer_ttl: float = 30.0
    # Batches are immutable by contract; revalidation only catches a --force republish.
    batch_ttl: float = 300.0
    max_cached_batches: int = 8
    # The cached batches are also bounded by their estimated memory (Batch.nbytes; 1M rows: ~260 MB).
    max_cached_bytes: int = 384 * 1024 * 1024
    latest_max_age: int = 60
    batch_max_age: int = 3600
    s3_connect_timeout: float = 1.0
    s3_read_timeout: float = 2.0
    s3_max_attempts: int = 2
    # One bound on a whole S3 call (connect, every attempt, every read of the answer, a listing's
    # pages): a server that drips bytes inside the read timeout is cut off here. Inside the Lambda
    # timeout (10 s) and API Gateway's 29 s.
    s3_request_deadline: float = 5.0
    # Which S3 client reads batches: "stdlib" (chalice_app/store/s3_http.py), "botocore", or "auto":
    # the botocore-free one inside the Lambda runtime only, botocore everywhere else (moto's mock_aws).
    s3_client: str = "auto"
    retry_after: int = 5
    # How long CloudFront keeps a batch's answer (s-maxage), when something invalidates /api/* at
    # each publish: EDGE_CACHE "on", or "auto" and the stage's site function runs (SITE_REBUILD_ENABLED).
    edge_max_age: int = 86400
    edge_cache: str = "auto"
    cors_origin: str = ""
    # Bounds on what one S3 object of the contract may cost a container (and the publish command):
    # bytes as stored, bytes once decompressed, and JSON nesting depth. Sized well below the
    # stage's memory: a parsed batch takes several times its JSON size.
    max_stored_bytes: int = 32 * 1024 * 1024
    max_batch_bytes: int = 64 * 1024 * 1024
    max_json_depth: int = 32
    # Predictions in one batch: a parsed batch costs ~150 bytes per row beyond its JSON text (the
    # id index), whatever the row's size, so tiny rows ({"id":"a1"}) are bounded by count, not
    # bytes. 1,000,000 rows of 117 bytes load in ~300 MB: within the smallest API stage (512 MB).
    max_batch_items: int = 1_000_000
    # A batch date more than this many days after today (UTC) is refused by the publish command.
    future_date_days: int = 2


# Environment variable -> field. One table so docs/settings.md, the code and the tests agree.
ENV_VARS: dict[str, str] = {
    "PREDICTIONS_BUCKET": "bucket",
    "PREDICTIONS_PREFIX": "prefix",
    "STAGE": "stage",
    "POINTER_TTL_SECONDS": "pointer_ttl",
    "BATCH_TTL_SECONDS": "batch_ttl",
    "MAX_CACHED_BATCHES": "max_cached_batches",
    "MAX_CACHED_BYTES": "max_cached_bytes",
    "LATEST_MAX_AGE_SECONDS": "latest_max_age",
    "BATCH_MAX_AGE_SECONDS": "batch_max_age",
    "S3_CONNECT_TIMEOUT_SECONDS": "s3_connect_timeout",
    "S3_READ_TIMEOUT_SECONDS": "s3_read_timeout",
    "S3_MAX_ATTEMPTS": "s3_max_attempts",
    "S3_REQUEST_DEADLINE_SECONDS": "s3_request_deadline",
    "S3_CLIENT": "s3_client",
    "RETRY_AFTER_SECONDS": "retry_after",
    "EDGE_MAX_AGE_SECONDS": "edge_max_age",
    "EDGE_CACHE": "edge_cache",
    "CORS_ALLOW_ORIGIN": "cors_origin",
    "MAX_STORED_BYTES": "max_stored_bytes",
    "MAX_BATCH_BYTES": "max_batch_bytes",
    "MAX_JSON_DEPTH": "max_json_depth",
    "MAX_BATCH_ITEMS": "max_batch_items",
    "FUTURE_DATE_DAYS": "future_date_days",
}

S3_CLIENTS = ("auto", "stdlib", "botocore")
EDGE_CACHE_MODES = ("auto", "on", "off")

_TYPES = {f.name: f.type for f in fields(Settings)}


def _convert(env_name: str, field: str, raw: str) -> object:
    kind = _TYPES[field]
    if kind == "str":
        value = raw.strip()
        if field == "s3_client" and value.lower() not in S3_CLIENTS:
            raise SettingsError(f"{env_name}={raw!r}: one of {', '.join(S3_CLIENTS)}")
        if field == "edge_cache" and value.lower() not in EDGE_CACHE_MODES:
            raise SettingsError(f"{env_name}={raw!r}: one of {', '.join(EDGE_CACHE_MODES)}")
        return value.lower() if field in ("s3_client", "edge_cache") else value
    try:
        value = int(raw) if kind == "int" else float(raw)
    except ValueError:
        raise SettingsError(f"{env_name}={raw!r}: expected a {kind} number") from None
    if value < 0 or (field == "s3_max_attempts" and value < 1):
        raise SettingsError(f"{env_name}={raw!r}: must be positive")
    if field == "s3_request_deadline" and value <= 0:
        raise SettingsError(f"{env_name}={raw!r}: must be more than 0")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment; unset or empty variables keep their defaults."""
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    for env_name, field in ENV_VARS.items():
        raw = env.get(env_name, "")
        if raw.strip():
            values[field] = _convert(env_name, field, raw)
    if "prefix" in values:
        values["prefix"] = normalize_prefix(str(values["prefix"]))
    return Settings(**values)
