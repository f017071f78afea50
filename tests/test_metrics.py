"""CloudWatch Embedded Metric Format lines: valid EMF, the documented fields, one per invocation."""

from __future__ import annotations

import json
import os
import time

import pytest

from chalice_app import metrics

from helpers import PROJECT_DIR

UNITS = {"Count", "Milliseconds", "Seconds", "Bytes", "None", "Percent"}


def check_emf(record: dict) -> dict:
    """The rules of the EMF specification that CloudWatch enforces; returns the metric values."""
    meta = record["_aws"]
    assert isinstance(meta["Timestamp"], int) and meta["Timestamp"] > 1_600_000_000_000
    values = {}
    for directive in meta["CloudWatchMetrics"]:
        assert isinstance(directive["Namespace"], str) and directive["Namespace"]
        for dims in directive["Dimensions"]:
            assert 1 <= len(dims) <= 30
            for name in dims:
                assert isinstance(record[name], str) and record[name], name
        names = [m["Name"] for m in directive["Metrics"]]
        assert len(names) == len(set(names)) and len(names) <= 100
        for metric in directive["Metrics"]:
            assert metric["Unit"] in UNITS
            value = record[metric["Name"]]
            assert isinstance(value, int | float) and not isinstance(value, bool), metric
            values[metric["Name"]] = value
    return values


def lines(out: str, event: str) -> list[dict]:
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [r for r in records if r.get("event") == event]


def test_a_cold_request_record():
    record = metrics.request_fields(stage="prod", route="/predictions/{date}", status=200, latency_ms=12.345,
                                    cold=True, init_duration_ms=812.34, cache_hit=False)
    assert check_emf(record) == {"ColdStart": 1, "LatencyMs": 12.35, "InitDurationMs": 812.3, "CacheHit": 0}
    directive = record["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "Predictions"
    assert directive["Dimensions"] == [["Stage", "Route"]]
    assert record["Stage"] == "prod" and record["Route"] == "/predictions/{date}" and record["Status"] == 200


def test_a_warm_request_has_no_init_duration_and_health_no_cache_hit():
    record = metrics.request_fields(stage="dev", route="/health", status=200, latency_ms=0.4, cold=False,
                                    init_duration_ms=None, cache_hit=None)
    assert check_emf(record) == {"ColdStart": 0, "LatencyMs": 0.4}


@pytest.mark.parametrize("cold, init, hit", [(True, 812.34, False), (False, None, True), (False, None, None),
                                             (True, None, None)])
@pytest.mark.parametrize("route", ["/predictions/{date}", 'odd "route" \\ é\n'])
@pytest.mark.parametrize("ids", [{}, {"request_id": "c0ffee-1", "date": "2026-11-23", "model_version": '3.2 "β"\n'}])
def test_the_request_line_is_the_request_record_as_json(route, cold, init, hit, ids):
    line = metrics.request_line(stage="prod", route=route, status=404, latency_ms=3.14159, cold=cold,
                                init_duration_ms=init, cache_hit=hit, **ids)
    record = metrics.request_fields(stage="prod", route=route, status=404, latency_ms=3.14159, cold=cold,
                                    init_duration_ms=init, cache_hit=hit, **ids)
    assert line.endswith("\n") and line.count("\n") == 1
    parsed = json.loads(line)
    assert parsed.pop("event") == "request_metrics" and abs(parsed.pop("ts") - time.time()) < 5
    assert abs(parsed["_aws"].pop("Timestamp") - record["_aws"].pop("Timestamp")) < 5000
    assert parsed == record and list(parsed) == list(record)


def test_a_dimension_without_a_value_is_refused():
    with pytest.raises(ValueError, match="Route"):
        metrics.emf_fields([["Stage", "Route"]], {"X": (1, "Count")}, {"Stage": "dev"})


def test_the_warmer_record():
    summary = {"target": "predictions-prod", "run": "ab12", "invoked": 3, "ok": 2, "cold": 1, "failures": 1,
               "containers": 2, "duration_ms": 420.5, "hold_ms": 150, "errors": ["TimeoutError: x"]}
    record = metrics.warmer_fields(stage="prod", summary=summary)
    assert check_emf(record) == {"WarmerInvoked": 3, "WarmerColdHits": 1, "WarmerFailures": 1,
                                 "WarmerContainers": 2, "WarmerDurationMs": 420.5}
    assert record["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Stage"]]
    assert record["target"] == "predictions-prod" and record["errors"] == ["TimeoutError: x"]


def test_every_api_invocation_logs_one_emf_line(api, put_batch, capsys):
    put_batch("2026-11-23")
    capsys.readouterr()
    api.get("/health")
    api.get("/predictions/latest")
    api.get("/predictions/latest")
    api.get("/predictions/2026-11-23/sku-001")
    api.get("/predictions/2026-11-20")
    records = lines(capsys.readouterr().out, "request_metrics")
    assert [r["Route"] for r in records] == ["/health", "/predictions/{date}", "/predictions/{date}",
                                             "/predictions/{date}/{pid}", "/predictions/{date}"]
    values = [check_emf(r) for r in records]
    assert [v["ColdStart"] for v in values] == [1, 0, 0, 0, 0]
    assert values[0]["InitDurationMs"] > 0 and all("InitDurationMs" not in v for v in values[1:])
    assert "CacheHit" not in values[0]  # health reads nothing
    assert [v.get("CacheHit") for v in values[1:4]] == [0, 1, 1]  # S3, then memory, then memory
    assert "CacheHit" not in values[4]  # a 404 has no answer to be a hit
    assert [r["Status"] for r in records] == [200, 200, 200, 200, 404]
    assert all(r["Stage"] == "local" for r in records)


def test_each_request_line_names_its_request_id_batch_date_and_model_version(api, put_batch, capsys):
    put_batch("2026-11-23")
    capsys.readouterr()
    api.get("/health")
    api.get("/predictions/latest")
    api.get("/predictions/2026-11-23/sku-001")
    records = lines(capsys.readouterr().out, "request_metrics")
    assert all(r["RequestId"] for r in records) and len({r["RequestId"] for r in records}) == 3
    assert "Date" not in records[0] and "Model" not in records[0]  # health reads no batch
    assert [(r["Date"], r["Model"]) for r in records[1:]] == [("2026-11-23", "3.2.0")] * 2


def test_the_date_listing_is_a_hit_only_when_both_reads_are(api, put_batch, capsys):
    put_batch("2026-11-23")
    api.get("/predictions")
    api.get("/predictions")
    assert [check_emf(r)["CacheHit"] for r in lines(capsys.readouterr().out, "request_metrics")] == [0, 1]


def test_a_warmup_is_measured_under_its_own_route(s3, put_batch, capsys, monkeypatch):
    from app import app
    from chalice_app.api import warmup
    from chalice_app.config.stage_file import stage_environment

    for name, value in stage_environment("local").items():
        monkeypatch.setenv(name, value)
    put_batch("2026-11-23")
    app(warmup.build_event(hold_ms=0, run_id="r", index=0, of=1), None)
    (record,) = lines(capsys.readouterr().out, "request_metrics")
    assert record["Route"] == warmup.PATH and check_emf(record)["ColdStart"] == 1


def test_the_docs_name_every_metric_and_dimension():
    with open(os.path.join(PROJECT_DIR, "docs", "metrics.md"), encoding="utf-8") as fh:
        docs = fh.read()
    names = {"ColdStart", "InitDurationMs", "LatencyMs", "CacheHit", "WarmerInvoked", "WarmerColdHits",
             "WarmerFailures", "WarmerContainers", "WarmerDurationMs", metrics.NAMESPACE,
             *(d for dims in metrics.REQUEST_DIMENSIONS + metrics.WARMER_DIMENSIONS for d in dims)}
    assert not {name for name in names if f"`{name}`" not in docs}
