"""Parameter Store settings: read once, named like the environment variables, never a crash."""

from __future__ import annotations

import json

import pytest
from moto import mock_aws

from chalice_app.config.parameter_store import make_ssm_client, read_parameters
from chalice_app.config.settings import load_settings


@pytest.fixture
def ssm():
    with mock_aws():
        yield make_ssm_client(1, 2)


def put(ssm, name: str, value: str) -> None:
    ssm.put_parameter(Name=name, Value=value, Type="String")


def test_parameters_under_the_path_become_settings(ssm):
    put(ssm, "/predictions/prod/POINTER_TTL_SECONDS", "45")
    put(ssm, "/predictions/prod/LATEST_MAX_AGE_SECONDS", "90")
    put(ssm, "/predictions/dev/POINTER_TTL_SECONDS", "1")
    values = read_parameters(ssm, "/predictions/prod/")
    assert values == {"POINTER_TTL_SECONDS": "45", "LATEST_MAX_AGE_SECONDS": "90"}
    assert load_settings({"PREDICTIONS_BUCKET": "b", **values}).pointer_ttl == 45.0


def test_path_without_slashes_is_accepted(ssm):
    put(ssm, "/predictions/prod/BATCH_TTL_SECONDS", "600")
    assert read_parameters(ssm, "predictions/prod") == {"BATCH_TTL_SECONDS": "600"}


def test_unknown_names_are_ignored_with_a_log_line(ssm, capsys):
    put(ssm, "/predictions/prod/NOT_A_SETTING", "x")
    assert read_parameters(ssm, "/predictions/prod/") == {}
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"event": "ssm_parameter_ignored", "name": "NOT_A_SETTING"}.items() <= lines[0].items()


def test_many_parameters_are_paginated(ssm):
    names = sorted(["POINTER_TTL_SECONDS", "BATCH_TTL_SECONDS", "MAX_CACHED_BATCHES", "LATEST_MAX_AGE_SECONDS",
                    "BATCH_MAX_AGE_SECONDS", "S3_CONNECT_TIMEOUT_SECONDS", "S3_READ_TIMEOUT_SECONDS",
                    "S3_MAX_ATTEMPTS", "RETRY_AFTER_SECONDS", "PREDICTIONS_PREFIX", "STAGE"])
    for name in names:
        put(ssm, f"/p/{name}", "3")
    assert sorted(read_parameters(ssm, "/p/")) == names


def test_unreachable_parameter_store_is_one_log_line_and_no_settings(monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    client = make_ssm_client(0.5, 0.5)
    assert read_parameters(client, "/predictions/prod/") == {}
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["event"] == "ssm_settings_unavailable"


# -- wired into the container -----------------------------------------------------------------


def test_container_reads_parameter_store_once_and_environment_wins(ssm, monkeypatch):
    from chalice_app.api import container

    put(ssm, "/predictions/prod/POINTER_TTL_SECONDS", "45")
    put(ssm, "/predictions/prod/BATCH_TTL_SECONDS", "900")
    monkeypatch.setenv("CONFIG_SSM_PATH", "/predictions/prod/")
    monkeypatch.setenv("PREDICTIONS_BUCKET", "b")
    monkeypatch.setenv("BATCH_TTL_SECONDS", "60")
    calls = []
    monkeypatch.setattr("chalice_app.config.parameter_store.read_parameters",
                        lambda client, path, _real=read_parameters: calls.append(path) or _real(ssm, path))
    first = container.settings()
    assert (first.pointer_ttl, first.batch_ttl) == (45.0, 60.0)
    assert container.settings() is first
    assert calls == ["/predictions/prod/"]


def test_a_bad_parameter_store_value_falls_back_to_the_environment(ssm, monkeypatch, capsys):
    from chalice_app.api import container

    put(ssm, "/predictions/prod/POINTER_TTL_SECONDS", "soon")
    monkeypatch.setenv("CONFIG_SSM_PATH", "/predictions/prod/")
    monkeypatch.setenv("PREDICTIONS_BUCKET", "b")
    monkeypatch.setattr("chalice_app.config.parameter_store.make_ssm_client", lambda *a: ssm)
    assert container.settings().pointer_ttl == 30.0
    assert "ssm_settings_invalid" in capsys.readouterr().out


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_stage_policy_grants_exactly_its_parameter_path(stage):
    from chalice_app.config.stage_file import stage_environment

    from helpers import PROJECT_DIR

    path = stage_environment(stage)["CONFIG_SSM_PATH"]
    with open(f"{PROJECT_DIR}/.chalice/policy-{stage}.json") as fh:
        statements = json.load(fh)["Statement"]
    ssm_statements = [s for s in statements if any(a.startswith("ssm:") for a in s["Action"])]
    # The other one reads the origin secret, outside this path (tests/test_config.py checks it).
    assert [s["Sid"] for s in ssm_statements] == ["ReadStageSettingsFromParameterStore", "ReadTheOriginSecret"]
    assert ssm_statements[0] == {"Sid": "ReadStageSettingsFromParameterStore", "Effect": "Allow",
                                 "Action": ["ssm:GetParametersByPath"],
                                 "Resource": [f"arn:aws:ssm:*:*:parameter{path.rstrip('/')}"]}
