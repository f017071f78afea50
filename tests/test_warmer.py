"""The warmer's invoking side, with injected or Stubber-backed Lambda clients (moto can't run Lambda code)."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import threading

import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from chalice import Chalice
from chalice.test import Client

from app import app
from chalice_app.api import warmup
from chalice_app.warming import prewarm as warm
from chalice_app.warming import scheduled as warmer


def payload(answer: object) -> dict:
    return {"StatusCode": 200, "Payload": json.dumps(answer).encode()}


def warm_answer(status: int = 200, cold: bool = False, container: str = "c1", **extra) -> dict:
    body = {"warmup": True, "cold": cold, "container": container, **extra}
    return {"statusCode": status, "headers": {}, "body": json.dumps(body)}


class ArrivalClient:
    """Answers only once `n` callers are inside invoke() at the same time (or fails after `timeout`).

    A warmer that invoked one after another would never get past the barrier.
    """

    def __init__(self, n: int, answer=None, timeout: float = 5.0) -> None:
        self.barrier = threading.Barrier(n, timeout=timeout)
        self.answer = answer
        self.events: list[dict] = []
        self.lock = threading.Lock()

    def invoke(self, FunctionName, InvocationType, Payload):
        assert InvocationType == "RequestResponse"
        self.barrier.wait()
        event = json.loads(Payload)
        with self.lock:
            self.events.append(event)
            if self.answer is None:
                # The real Chalice app answers the exact event the warmer built (one at a time:
                # Chalice keeps the current request on the app object).
                return payload(app(event, None))
            return payload(self.answer(event))


def test_n_invocations_are_really_concurrent():
    client = ArrivalClient(3, answer=lambda event: warm_answer(container=str(event["requestContext"]
                                                                            [warmup.MARKER]["index"])))
    summary = warmer.invoke_all(client, "predictions-prod", 3)
    assert summary["invoked"] == 3 and summary["ok"] == 3 and summary["failures"] == 0, summary
    assert summary["containers"] == 3
    assert sorted(e["requestContext"][warmup.MARKER]["index"] for e in client.events) == [0, 1, 2]


def test_a_warmer_that_is_not_concurrent_would_fail_the_arrival_check():
    # The check itself: with one caller short, every invocation fails instead of hanging.
    client = ArrivalClient(4, answer=lambda event: warm_answer(), timeout=0.3)
    summary = warmer.invoke_all(client, "predictions-prod", 3)
    assert summary["failures"] == 3
    assert all("BrokenBarrierError" in e for e in summary["errors"])


def test_the_events_the_warmer_builds_are_answered_by_the_real_app(s3, put_batch, local_env):
    put_batch("2026-11-23")
    client = ArrivalClient(2)
    summary = warmer.invoke_all(client, "predictions-local", 2)
    assert summary["failures"] == 0, summary
    # One process is one container here: the first warm-up found it cold, the second warm.
    assert summary["cold"] == 1 and summary["containers"] == 1
    assert summary["hold_ms"] == warmer.HOLD_MS
    marker = client.events[0]["requestContext"][warmup.MARKER]
    assert marker["of"] == 2 and marker["hold_ms"] == warmer.HOLD_MS
    again = app(client.events[0], None)
    assert again["statusCode"] == 200
    report = json.loads(again["body"])
    assert report["warmup"] is True and report["preloaded"] is True and report["latest"] == "2026-11-23"


def test_one_at_a_time_needs_no_hold():
    client = ArrivalClient(1, answer=lambda event: warm_answer())
    assert warmer.invoke_all(client, "predictions-dev", 1)["hold_ms"] == 0
    assert client.events[0]["requestContext"][warmup.MARKER]["hold_ms"] == 0


class ScriptedClient:
    """Gives each invocation the next scripted answer, or raises it."""

    def __init__(self, script: list) -> None:
        self.script = list(script)
        self.lock = threading.Lock()

    def invoke(self, **_):
        with self.lock:
            step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def test_failures_are_counted_and_named():
    client = ScriptedClient([
        payload(warm_answer(cold=True, container="a")),
        {"StatusCode": 200, "FunctionError": "Unhandled",
         "Payload": b'{"errorMessage": "Task timed out after 10.00 seconds"}'},
        TimeoutError("read timeout"),
        payload(warm_answer(status=503, cold=True, container="b",
                            error={"code": "storage_unavailable", "message": "S3 down"})),
        payload({"statusCode": 404, "body": json.dumps({"error": {"code": "not_found"}})}),
        {"StatusCode": 200, "Payload": b"not json"},
    ])
    summary = warmer.invoke_all(client, "predictions-prod", 6)
    assert summary["invoked"] == 6
    assert summary["ok"] == 1 and summary["failures"] == 5
    assert summary["cold"] == 2 and summary["containers"] == 2
    errors = " | ".join(summary["errors"])
    assert len(summary["errors"]) == warmer.MAX_ERRORS_REPORTED
    for expected in ("FunctionError Unhandled", "TimeoutError", "storage_unavailable", "not a warm-up answer"):
        assert expected in errors


def stubbed_lambda():
    client = warmer.make_lambda_client(1)
    return client, Stubber(client)


def test_a_real_botocore_client_through_stubber():
    client, stub = stubbed_lambda()
    body = json.dumps(warm_answer(cold=True)).encode()
    stub.add_response("invoke", {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body))},
                      {"FunctionName": "predictions-dev", "InvocationType": "RequestResponse",
                       "Payload": ANY})
    stub.add_client_error("invoke", "TooManyRequestsException", "Rate exceeded", 429)
    with stub:
        first = warmer.invoke_all(client, "predictions-dev", 1)
        second = warmer.invoke_all(client, "predictions-dev", 1)
    assert first["ok"] == 1 and first["cold"] == 1
    assert second["failures"] == 1 and "TooManyRequestsException" in second["errors"][0]


def test_the_lambda_client_never_retries_an_invoke():
    client = warmer.make_lambda_client(3)
    assert client.meta.config.retries["total_max_attempts"] == 1
    assert client.meta.config.max_pool_connections >= 3
    assert client.meta.config.read_timeout > 10  # the API's lambda_timeout


def test_run_reads_its_settings_and_logs_the_summary_as_emf(capsys):
    client = ArrivalClient(3, answer=lambda event: warm_answer(cold=True, container=str(
        event["requestContext"][warmup.MARKER]["index"])))
    env = {"STAGE": "prod", "WARM_TARGET_FUNCTION": "predictions-prod", "WARMER_CONCURRENCY": "3"}
    summary = warmer.run(env, client)
    assert summary["cold"] == 3
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    record = next(line for line in lines if line.get("event") == "warmer_summary")
    assert record["Stage"] == "prod" and record["target"] == "predictions-prod"
    assert record["WarmerInvoked"] == 3 and record["WarmerColdHits"] == 3 and record["WarmerFailures"] == 0
    directive = record["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "Predictions" and directive["Dimensions"] == [["Stage"]]


def test_each_run_emits_the_latest_batch_age_in_hours(capsys):
    generated = "2026-11-23T04:00:00Z"
    client = ArrivalClient(2, answer=lambda event: warm_answer(latest="2026-11-23", generated_at=generated,
                                                               container=str(event["requestContext"][
                                                                   warmup.MARKER]["index"])))
    now = 1795406400.0 + 10 * 3600  # 2026-11-23T04:00Z + 10 h
    summary = warmer.invoke_all(client, "f", 2, wall_clock=lambda: now)
    assert summary["latest"] == "2026-11-23" and summary["latest_age_hours"] == 10.0
    record = warmer.metrics.warmer_fields(stage="prod", summary=summary)
    names = {m["Name"]: m["Unit"] for m in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert names["LatestBatchAgeHours"] == "None" and record["LatestBatchAgeHours"] == 10.0
    assert "latest_age_hours" not in record


def test_without_generated_at_the_age_counts_from_the_start_of_the_date():
    outcome = warmer.Outcome(True, latest="2026-11-23")
    assert warmer.latest_batch_age_hours([outcome], 1795392000.0 + 3600) == 1.0  # 2026-11-23T01:00Z


def test_no_batch_seen_emits_no_age_so_the_stale_alarm_breaches():
    summary = warmer.invoke_all(ArrivalClient(1, answer=lambda e: warm_answer(status=503)), "f", 1)
    assert summary["latest_age_hours"] is None
    record = warmer.metrics.warmer_fields(stage="prod", summary=summary)
    assert "LatestBatchAgeHours" not in {m["Name"] for m in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]}


def test_the_warmup_answer_carries_the_batch_generated_at(s3, put_batch, local_env):
    put_batch("2026-11-23")
    event = warmup.build_event(hold_ms=0, run_id="r", index=0, of=1)
    outcome = warmer.parse_answer(payload(app(event, None)))
    assert outcome.ok and outcome.latest == "2026-11-23"
    assert outcome.generated_at is None or outcome.generated_at.startswith("2026-11-2")


@pytest.mark.parametrize("env, message", [
    ({"WARMER_CONCURRENCY": "1"}, "WARM_TARGET_FUNCTION is not set"),
    ({"WARM_TARGET_FUNCTION": "f"}, "WARMER_CONCURRENCY is not set"),
    ({"WARM_TARGET_FUNCTION": "f", "WARMER_CONCURRENCY": "0"}, "WARMER_CONCURRENCY='0'"),
    ({"WARM_TARGET_FUNCTION": "f", "WARMER_CONCURRENCY": "50"}, "from 1 to 10"),
])
def test_bad_run_settings_name_the_variable(env, message):
    with pytest.raises(warmer.WarmerConfigError, match=message):
        warmer.run_config(env)


@pytest.mark.parametrize("env, minutes", [
    ({}, None),
    ({"WARMER_ENABLED": "false", "WARMER_RATE_MINUTES": "5"}, None),
    ({"WARMER_ENABLED": "true", "WARMER_RATE_MINUTES": "5"}, 5),
    ({"WARMER_ENABLED": "TRUE", "WARMER_RATE_MINUTES": " 15 "}, 15),
])
def test_schedule_from_the_stage_environment(env, minutes):
    assert warmer.schedule_minutes(env) == minutes


@pytest.mark.parametrize("env, message", [
    ({"WARMER_ENABLED": "true"}, "WARMER_RATE_MINUTES is not set"),
    ({"WARMER_ENABLED": "true", "WARMER_RATE_MINUTES": "0.5"}, "WARMER_RATE_MINUTES='0.5'"),
    ({"WARMER_ENABLED": "maybe", "WARMER_RATE_MINUTES": "5"}, "WARMER_ENABLED='maybe'"),
])
def test_bad_schedule_settings_name_the_variable(env, message):
    with pytest.raises(warmer.WarmerConfigError, match=message):
        warmer.schedule_minutes(env)


def load_warmer_module(monkeypatch, **env):
    """chalice_app/warming/scheduled.py executed afresh under `env`, as Chalice imports it for a stage."""
    for name in ("WARMER_ENABLED", "WARMER_RATE_MINUTES"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("warmer_probe", warmer.__file__)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "warmer_probe", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    probe = Chalice(app_name="probe")
    probe.register_blueprint(module.blueprint)
    return module, probe


def test_the_schedule_is_registered_only_when_the_stage_turns_it_on(monkeypatch):
    _, probe = load_warmer_module(monkeypatch, WARMER_ENABLED="true", WARMER_RATE_MINUTES="5")
    (source,) = probe.event_sources
    assert source.name == warmer.WARMER_NAME
    assert source.schedule_expression.to_string() == "rate(5 minutes)"
    assert source.handler_string == "warmer_probe.warm_api"  # in the package: chalice_app.warming.scheduled.warm_api
    _, off = load_warmer_module(monkeypatch, WARMER_ENABLED="false", WARMER_RATE_MINUTES="5")
    assert off.event_sources == []


def test_the_api_app_registers_no_schedule_without_the_stage_environment():
    assert app.event_sources == []  # tests import app.py with no stage environment: warmer off


def test_the_scheduled_handler_takes_eventbridge_and_prewarm_events(monkeypatch):
    module, probe = load_warmer_module(monkeypatch, WARMER_ENABLED="true", WARMER_RATE_MINUTES="15")
    monkeypatch.setenv("WARM_TARGET_FUNCTION", "predictions-dev")
    monkeypatch.setenv("WARMER_CONCURRENCY", "1")
    monkeypatch.setenv("STAGE", "dev")
    module._clients[1] = ScriptedClient([payload(warm_answer(cold=True))] * 2)
    with Client(probe) as client:
        scheduled = client.lambda_.invoke(warmer.WARMER_NAME, client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]))
        assert scheduled.payload["ok"] == 1 and scheduled.payload["cold"] == 1
    # What `python -m chalice_app.warming.prewarm` sends is accepted by the same handler.
    summary = module.warm_api(warm.scheduled_event("us-east-1"), None)
    assert summary["invoked"] == 1 and summary["failures"] == 0


# -- the prewarm command ---------------------------------------------------------------------------


def cli_client():
    import boto3

    client = boto3.client("lambda", region_name="us-east-1")
    return client, Stubber(client)


def summary_payload(**overrides) -> dict:
    summary = {"target": "predictions-prod", "invoked": 3, "ok": 3, "cold": 2, "failures": 0, "containers": 3,
               "duration_ms": 812.4, "errors": [], **overrides}
    body = json.dumps(summary).encode()
    return {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body))}


def test_prewarm_invokes_the_stage_warmer_and_prints_the_summary(capsys):
    client, stub = cli_client()
    stub.add_response("invoke", summary_payload(), {"FunctionName": "predictions-prod-warmer",
                                                    "InvocationType": "RequestResponse", "Payload": ANY})
    with stub:
        assert warm.main(["--stage", "prod"], client=client) == 0
    out = capsys.readouterr().out
    assert out.strip() == "warmed predictions-prod: 3 invoked, 3 ok, 2 cold, 0 failed, 3 containers, 812 ms"


def test_prewarm_json_output(capsys):
    client, stub = cli_client()
    stub.add_response("invoke", summary_payload(), {"FunctionName": "predictions-dev-warmer",
                                                    "InvocationType": "RequestResponse", "Payload": ANY})
    with stub:
        assert warm.main(["--stage", "dev", "--json"], client=client) == 0
    assert json.loads(capsys.readouterr().out)["containers"] == 3


def test_prewarm_with_failed_warmups_exits_1_and_lists_them(capsys):
    client, stub = cli_client()
    stub.add_response("invoke", summary_payload(ok=2, failures=1, errors=["status 503: storage_unavailable"]))
    with stub:
        assert warm.main(["--stage", "prod"], client=client) == 1
    assert "error: status 503: storage_unavailable" in capsys.readouterr().out


@pytest.mark.parametrize("code, message", [
    ("ResourceNotFoundException", "function predictions-dev-warmer not found: deploy the stage first"),
    ("AccessDeniedException", "invoking predictions-dev-warmer failed: AccessDeniedException: nope"),
])
def test_prewarm_aws_errors_are_one_line_and_exit_1(capsys, code, message):
    client, stub = cli_client()
    stub.add_client_error("invoke", code, "nope", 404 if code.startswith("Resource") else 403)
    with stub:
        assert warm.main(["--stage", "dev"], client=client) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_prewarm_when_the_warmer_itself_failed(capsys):
    client, stub = cli_client()
    body = b'{"errorType": "WarmerConfigError", "errorMessage": "WARMER_CONCURRENCY is not set"}'
    stub.add_response("invoke", {"StatusCode": 200, "FunctionError": "Unhandled",
                                 "Payload": StreamingBody(io.BytesIO(body), len(body))})
    with stub:
        assert warm.main(["--stage", "dev"], client=client) == 1
    assert "WarmerConfigError: WARMER_CONCURRENCY is not set" in capsys.readouterr().err


@pytest.mark.parametrize("stage, message", [
    ("local", "the warmer is off for stage 'local'"),
    ("qa", "unknown stage 'qa'"),
])
def test_prewarm_of_a_stage_without_a_warmer_is_exit_2(capsys, stage, message):
    assert warm.main(["--stage", stage], client=object()) == 2
    assert message in capsys.readouterr().err


def test_prewarm_without_a_region_is_a_clear_error(capsys, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    assert warm.main(["--stage", "dev"]) == 2
    assert "no AWS region set" in capsys.readouterr().err


def test_prewarm_help(capsys):
    with pytest.raises(SystemExit) as done:
        warm.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--stage" in out and "Exit codes" in out
