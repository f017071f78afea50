"""deploy/origin_secret.py against moto's SSM: the secret is created once, a rotation never leaves a moment
in which what CloudFront sends is refused, and the API's policy names the parameter."""

from __future__ import annotations

import json
import shutil

import boto3
import pytest
from moto import mock_aws

from chalice_app.api import origin
from deploy import origin_secret, stack

from helpers import PROJECT_DIR

pytestmark = pytest.mark.slow  # moto, sockets or timers in every test: not in make test-fast

NAME = "/predictions/origin-secrets/prod"


@pytest.fixture
def ssm(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.client("ssm", region_name="us-east-1")


def values(ssm) -> tuple[str, ...]:
    found = ssm.get_parameter(Name=NAME, WithDecryption=True)["Parameter"]
    assert found["Type"] == "SecureString"
    return origin.parse_values(found["Value"])


def test_the_stage_names_its_parameter_and_the_api_trusts_it_for_five_minutes():
    assert origin_secret.parameter_name("prod") == NAME
    assert origin_secret.ttl_seconds("prod") == origin.DEFAULT_TTL_SECONDS == 300


def test_created_once_then_read(ssm):
    said: list[str] = []
    first = origin_secret.ensure(ssm, NAME, progress=said.append)
    assert len(first) == 1 and len(first[0]) == 43 and "," not in first[0]
    assert said == [f"origin secret {NAME}: created (SecureString)"]
    assert origin_secret.ensure(ssm, NAME, progress=said.append) == first == values(ssm)
    assert len(said) == 1


def test_a_rotation_keeps_what_cloudfront_sends_accepted_at_every_step(ssm):
    (old,) = origin_secret.ensure(ssm, NAME, progress=lambda _: None)
    sent = [old]  # what CloudFront sends: the first value at the last stack update
    steps: list[str] = []

    def sleep(seconds):
        steps.append(f"wait {seconds:.0f}")
        assert sent[-1] in values(ssm) and len(values(ssm)) == 2  # both accepted while the API re-reads

    def update_stack():
        steps.append("stack")
        assert set(values(ssm)) >= {sent[-1], values(ssm)[0]}  # the old one still accepted as CloudFront switches
        sent.append(values(ssm)[0])

    fresh = origin_secret.rotate(ssm, NAME, update_stack=update_stack, wait_seconds=330, sleep=sleep,
                                 progress=lambda _: None)
    assert steps == ["wait 330", "stack"]
    assert sent == [old, fresh] and values(ssm) == (fresh,) and fresh != old


def test_a_rotation_needs_a_secret_and_a_failed_stack_update_keeps_both(ssm):
    with pytest.raises(origin_secret.OriginSecretError, match="does not exist"):
        origin_secret.rotate(ssm, NAME, update_stack=lambda: None, wait_seconds=0, progress=lambda _: None)
    (old,) = origin_secret.ensure(ssm, NAME, progress=lambda _: None)

    def broken():
        raise origin_secret.OriginSecretError("the stage stack update failed")

    with pytest.raises(origin_secret.OriginSecretError):
        origin_secret.rotate(ssm, NAME, update_stack=broken, wait_seconds=0, progress=lambda _: None)
    assert values(ssm)[1] == old  # CloudFront still sends the old value, and it is still accepted


def test_the_command_line(ssm, tmp_path, monkeypatch, capsys):
    chalice = tmp_path / ".chalice"
    shutil.copytree(f"{PROJECT_DIR}/.chalice", chalice, ignore=shutil.ignore_patterns("deployments", "deployed"))
    monkeypatch.setattr(origin_secret, "CHALICE_DIR", str(chalice))
    updated: list[str] = []
    assert origin_secret.main(["--stage", "prod"], ssm_client=lambda: ssm) == 0
    (first,) = values(ssm)
    policy = json.loads((chalice / "policy-prod.json").read_text())
    (read,) = [s for s in policy["Statement"] if s["Sid"] == origin_secret.POLICY_SID]
    # Run against an account, the statement names the parameter's own ARN (region and account).
    assert read == {"Sid": "ReadTheOriginSecret", "Effect": "Allow", "Action": ["ssm:GetParameter"],
                    "Resource": [f"arn:aws:ssm:us-east-1:123456789012:parameter{NAME}"]}
    # The pre-traffic hook sends the header when it invokes a new version (chalice_app/canary.py): it reads it too.
    hook = json.loads((chalice / "policy-pretraffic-prod.json").read_text())
    assert [s for s in hook["Statement"] if s["Sid"] == origin_secret.POLICY_SID] == [read]
    assert origin_secret.policy_files("prod") == ["policy-prod.json", "policy-pretraffic-prod.json"]
    assert origin_secret.policy_files("local") == ["policy-local.json"]
    assert origin_secret.main(["--stage", "prod", "--rotate", "--wait", "0"], ssm_client=lambda: ssm,
                              update_stack=updated.append, sleep=lambda _: None) == 0
    assert updated == ["prod"] and values(ssm) != (first,) and len(values(ssm)) == 1
    assert [p["Name"] for p in ssm.describe_parameters()["Parameters"]] == [NAME]  # the deploy lock released
    # While a deploy holds the stage's lock, no rotation: that deploy may hand CloudFront the old value.
    from deploy import deploy_lock

    deploy_lock.acquire(ssm, "prod", {"who": "alice@laptop", "pid": 1})
    before = values(ssm)
    assert origin_secret.main(["--stage", "prod", "--rotate", "--wait", "0"], ssm_client=lambda: ssm,
                              update_stack=updated.append, sleep=lambda _: None) == 1
    printed = capsys.readouterr()
    assert values(ssm) == before and updated == ["prod"] and "alice@laptop" in printed.err
    assert all(secret not in printed.out + printed.err for secret in (first, *before))  # never printed


def test_help_explains_the_rotation(capsys):
    with pytest.raises(SystemExit):
        origin_secret.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--rotate" in text and "ORIGIN_SECRET_TTL_SECONDS" in text and "No request is refused" in text


def test_the_stage_stack_gets_the_first_value_created_when_missing(ssm):
    said: list[str] = []
    value = stack.origin_secret_value("prod", "us-east-1", ssm=ssm, progress=said.append)
    assert values(ssm) == (value,) and said == [f"origin secret {NAME}: created (SecureString)"]
    ssm.put_parameter(Name=NAME, Value=f"newer-value-0123456789,{value}", Type="SecureString", Overwrite=True)
    assert stack.origin_secret_value("prod", "us-east-1", ssm=ssm) == "newer-value-0123456789"
