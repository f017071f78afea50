"""CloudWatch Embedded Metric Format (EMF): metrics as one JSON log line, no API call.

Lambda ships stdout to CloudWatch Logs, which extracts the metrics named in `_aws`; the other
keys stay searchable in Logs Insights. Writing a line costs microseconds, where PutMetricData
would cost a network round trip per request and an IAM permission. See docs/metrics.md.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence

from chalice_app.logs import log_event

NAMESPACE = "Predictions"
REQUEST_DIMENSIONS: list[list[str]] = [["Stage", "Route"]]
WARMER_DIMENSIONS: list[list[str]] = [["Stage"]]
COUNT = "Count"
MILLISECONDS = "Milliseconds"
NO_UNIT = "None"  # CloudWatch has no unit for hours


def emf_fields(dimensions: Sequence[Sequence[str]], metrics: Mapping[str, tuple[float, str]],
               properties: Mapping[str, object], *, timestamp_ms: int | None = None) -> dict:
    """The fields of one EMF record: `metrics` maps name -> (value, unit); dimension values are in `properties`."""
    missing = {name for dims in dimensions for name in dims} - set(properties)
    if missing:
        # CloudWatch silently drops a record whose dimension has no value: fail loudly in tests instead.
        raise ValueError(f"dimension without a value: {', '.join(sorted(missing))}")
    directive = {
        "Namespace": NAMESPACE,
        "Dimensions": [list(dims) for dims in dimensions],
        "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in metrics.items()],
    }
    stamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    return {
        "_aws": {"Timestamp": stamp, "CloudWatchMetrics": [directive]},
        **properties,
        **{name: value for name, (value, _) in metrics.items()},
    }


def request_fields(*, stage: str, route: str, status: int, latency_ms: float, cold: bool,
                   init_duration_ms: float | None, cache_hit: bool | None, request_id: str | None = None,
                   date: str | None = None, model_version: str | None = None) -> dict:
    """One API invocation. InitDurationMs only on cold starts, CacheHit only when the store was read;
    RequestId (API Gateway's, as in the access log), Date and Model (the batch answered from) when known."""
    metrics: dict[str, tuple[float, str]] = {
        "ColdStart": (1 if cold else 0, COUNT),
        "LatencyMs": (round(latency_ms, 2), MILLISECONDS),
    }
    if cold and init_duration_ms is not None:
        metrics["InitDurationMs"] = (round(init_duration_ms, 1), MILLISECONDS)
    if cache_hit is not None:
        metrics["CacheHit"] = (1 if cache_hit else 0, COUNT)
    properties: dict[str, object] = {"Stage": stage, "Route": route, "Status": status}
    fields = emf_fields(REQUEST_DIMENSIONS, metrics, properties)
    for name, value in (("RequestId", request_id), ("Date", date), ("Model", model_version)):
        if value is not None:
            fields[name] = value
    return fields


_REQUEST_HEADS: dict[tuple[str, str, bool, bool], tuple[str, str]] = {}
MAX_REQUEST_HEADS = 64  # (stage, route, has init, has cache hit): routes are Chalice's few patterns


def request_line(*, stage: str, route: str, status: int, latency_ms: float, cold: bool,
                 init_duration_ms: float | None, cache_hit: bool | None, request_id: str | None = None,
                 date: str | None = None, model_version: str | None = None) -> str:
    """The log line of one API invocation: the same JSON as `log_event("request_metrics",
    **request_fields(...))`, its constant parts encoded once per route, since it is written on
    every request (json.dumps of the whole record was ~15% of a by-id's time)."""
    with_init = cold and init_duration_ms is not None
    key = (stage, route, with_init, cache_hit is not None)
    parts = _REQUEST_HEADS.get(key)
    if parts is None:
        sample = request_fields(stage=stage, route=route, status=0, latency_ms=0.0, cold=cold,
                                init_duration_ms=init_duration_ms, cache_hit=cache_hit)
        directive = json.dumps(sample["_aws"]["CloudWatchMetrics"], separators=(",", ":"))
        names = json.dumps({"Stage": stage, "Route": route}, separators=(",", ":"))[1:-1]
        parts = (',"CloudWatchMetrics":' + directive + "}," + names + ',"Status":', "")
        if len(_REQUEST_HEADS) < MAX_REQUEST_HEADS:
            _REQUEST_HEADS[key] = parts
    now = time.time()
    tail = f',"InitDurationMs":{round(init_duration_ms, 1)!r}' if with_init else ""
    if cache_hit is not None:
        tail += ',"CacheHit":1' if cache_hit else ',"CacheHit":0'
    for name, value in (("RequestId", request_id), ("Date", date), ("Model", model_version)):
        if value is not None:
            tail += f',"{name}":{json.dumps(value)}'
    return (f'{{"event":"request_metrics","ts":{round(now, 3)!r},"_aws":{{"Timestamp":{int(now * 1000)}'
            f'{parts[0]}{int(status)},"ColdStart":{1 if cold else 0},"LatencyMs":{round(latency_ms, 2)!r}'
            f"{tail}}}\n")


def emit_line(line: str) -> None:
    """Write a log line made by request_line (Lambda sends stdout to CloudWatch Logs)."""
    sys.stdout.write(line)
    sys.stdout.flush()


def warmer_fields(*, stage: str, summary: Mapping[str, object]) -> dict:
    """One warmer run: its whole summary as properties, the counts as metrics."""
    metrics = {
        "WarmerInvoked": (summary["invoked"], COUNT),
        "WarmerColdHits": (summary["cold"], COUNT),
        "WarmerFailures": (summary["failures"], COUNT),
        "WarmerContainers": (summary["containers"], COUNT),
        "WarmerDurationMs": (summary["duration_ms"], MILLISECONDS),
    }
    if summary.get("latest_age_hours") is not None:
        # The stale-batch alarm's metric: absent when no warm-up saw a batch, which the alarm counts as breaching.
        metrics["LatestBatchAgeHours"] = (summary["latest_age_hours"], NO_UNIT)
    properties = {k: v for k, v in summary.items() if k not in ("invoked", "cold", "failures", "containers",
                                                                 "duration_ms", "latest_age_hours")}
    return emf_fields(WARMER_DIMENSIONS, metrics, {"Stage": stage, **properties})


SITE_DIMENSIONS: list[list[str]] = [["Stage"]]


def site_fields(*, stage: str, summary: Mapping[str, object]) -> dict:
    """One site rebuild that ran: how long it took and how many files it uploaded or deleted."""
    metrics = {"SiteBuildMs": (summary["ms"], MILLISECONDS), "SiteFilesChanged": (summary["files_changed"], COUNT)}
    properties = {k: v for k, v in summary.items() if k not in ("ms", "files_changed")}
    return emf_fields(SITE_DIMENSIONS, metrics, {"Stage": stage, **properties})


def site_failure_fields(*, stage: str, error: str, attempts: int) -> dict:
    """A site rebuild that failed every attempt; the live site is unchanged (Lambda retries the event)."""
    return emf_fields(SITE_DIMENSIONS, {"SiteBuildFailures": (1, COUNT)},
                      {"Stage": stage, "error": error, "attempts": attempts})


def emit(event: str, fields: Mapping[str, object]) -> None:
    """Write one EMF line (through the project's structured log, so `event` and `ts` come along)."""
    log_event(event, **fields)
