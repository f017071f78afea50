"""`make deploy`: the steps in order, from an empty account in one run, a no-op on the second run.

The steps are stubbed at the process boundary (`deploy(run=...)`): the stack steps run deploy/stack.py
in-process against moto's CloudFormation; `chalice deploy` (which moto cannot serve: no Lambda runs, no
Swagger import) is a fake that writes Chalice's record of a Regional API and notes the site function's
settings it would deploy; prewarm, bucket events and the site sync are recorded only (tested elsewhere).
"""

from __future__ import annotations

import json
import shutil

import pytest

from deploy import stack
from deploy.stage import deploy, steps

from helpers import PROJECT_DIR

# moto's CloudFormation warns once per resource type it skips (shared/MOTO.md): expected here.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")

API_ID = "a1b2c3d4e5"
REGION = "us-east-1"
DIST_ID = "E2EXAMPLE12345"


def test_the_order_is_stack_chalice_stack_then_prewarm_events_site():
    plan = steps("prod", python="/venv/bin/python", warmer_enabled=True, site_rebuild_enabled=True)
    assert [command[1:3] for _, command in plan] == [
        ["-m", "deploy.stack"], ["-m", "deploy.chalice_cli"], ["-m", "deploy.stack"],
        ["-m", "chalice_app.warming.prewarm"], ["-m", "deploy.bucket_events"], ["build_site.py", "--stage"]]
    assert plan[1][1][3:] == ["deploy", "--stage", "prod"]
    assert plan[-1][1][-1] == "--publish"


def test_a_stage_without_a_warmer_or_site_function_skips_their_steps():
    assert len(steps("local")) == 4  # stack, chalice deploy, stack, site
    assert len(steps("prod")) == 6  # prod has both, from .chalice/config.json


def test_a_failure_stops_the_deploy_and_says_where():
    ran, said = [], []

    def run(command):
        ran.append(command)
        return 1 if "chalice_app.warming.prewarm" in command else 0

    assert deploy("dev", run=run, say=said.append) == 1
    assert len(ran) == 4  # the bucket events and the site were not reached
    assert "stopped at step 4/6 (prewarm the API): exit code 1" in said[-1]


@pytest.fixture
def world(tmp_path, monkeypatch):
    """moto's CloudFormation, and copies of .chalice/ the stack step may write."""
    from moto import mock_aws

    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", REGION)):
        monkeypatch.setenv(name, value)
    chalice_dir = tmp_path / ".chalice"
    shutil.copytree(f"{PROJECT_DIR}/.chalice", chalice_dir, ignore=shutil.ignore_patterns("deployed", "deployments"))
    monkeypatch.setattr(stack, "CONFIG_PATH", str(chalice_dir / "config.json"))
    monkeypatch.setattr(stack, "CHALICE_DIR", str(chalice_dir))
    monkeypatch.setattr(stack, "DEPLOYED_DIR", str(chalice_dir / "deployed"))
    real_outputs = stack.outputs_of

    def outputs_of(found: dict) -> dict:
        # moto's CloudFormation skips the distribution, so every output naming it comes back empty
        # (shared/MOTO.md): stand in the values AWS would give, the bucket's name from the stack's resource.
        if not found:
            return {}
        got = real_outputs(found)
        import boto3

        resources = boto3.client("cloudformation").list_stack_resources(StackName=found["StackName"])
        physical = {r["LogicalResourceId"]: r.get("PhysicalResourceId") for r in resources["StackResourceSummaries"]}
        return {**got, "SiteBucketName": physical["SiteBucket"], "LogBucketName": physical["LogBucket"],
                "DistributionId": DIST_ID, "SiteUrl": "https://d111111abcdef8.cloudfront.net/"}

    monkeypatch.setattr(stack, "outputs_of", outputs_of)
    with mock_aws():
        yield chalice_dir


def _runner(world, log):
    import boto3

    def clients():
        return boto3.client("cloudformation"), boto3.client("s3"), REGION

    def run(command):
        tail = command[1:]
        log.append(tail)
        if tail[:2] == ["-m", "deploy.stack"]:
            return stack.main(command[3:], clients=clients)
        if tail[:2] == ["-m", "deploy.chalice_cli"]:
            config = json.loads((world / "config.json").read_text())
            log.append(("chalice saw", dict(config["stages"]["dev"]["lambda_functions"]["site"]
                                            ["environment_variables"])))
            deployed = world / "deployed"
            deployed.mkdir(exist_ok=True)
            (deployed / "dev.json").write_text(json.dumps({"resources": [
                {"name": "rest_api", "resource_type": "rest_api", "rest_api_id": API_ID,
                 "rest_api_url": f"https://{API_ID}.execute-api.{REGION}.amazonaws.com/api/"}]}))
        return 0

    return run


def test_one_run_from_an_empty_account_then_a_second_run_changes_nothing(world, capsys):
    import boto3

    log, said = [], []
    assert deploy("dev", run=_runner(world, log), say=said.append) == 0
    first = capsys.readouterr().out
    cfn = boto3.client("cloudformation")
    params = {p["ParameterKey"]: p["ParameterValue"]
              for p in cfn.describe_stacks(StackName="predictions-dev-site")["Stacks"][0]["Parameters"]}
    # The stack came first, chalice deploy saw the stack's bucket and distribution, then /api/* went Regional.
    assert "stack predictions-dev-site: create" in first
    assert "stack predictions-dev-site: update" in first
    assert params["ApiDomain"] == f"{API_ID}.execute-api.{REGION}.amazonaws.com"
    seen = next(entry for entry in log if entry[0] == "chalice saw")[1]
    assert seen["SITE_BUCKET"] == "predictions-site-dev-123456789012"
    assert seen["SITE_DISTRIBUTION_ID"] == DIST_ID
    policy = (world / "policy-site-dev.json").read_text()
    assert f"distribution/{DIST_ID}" in policy and "arn:aws:s3:::predictions-site-dev-123456789012/*" in policy
    files = {p.name: p.read_text() for p in world.glob("*.json")}

    log.clear()
    assert deploy("dev", run=_runner(world, log), say=said.append) == 0
    second = capsys.readouterr().out
    assert second.count("stack predictions-dev-site: no changes") == 2
    assert "wrote" not in second
    assert {p.name: p.read_text() for p in world.glob("*.json")} == files  # config and policies untouched


def test_dry_run_shows_the_change_set_and_creates_nothing(world, capsys):
    import boto3

    assert stack.main(["--stage", "dev", "--dry-run"],
                      clients=lambda: (boto3.client("cloudformation"), boto3.client("s3"), REGION)) == 0
    out = capsys.readouterr().out
    assert "dry run, create would do: Add SiteBucket (AWS::S3::Bucket)" in out
    assert boto3.client("s3").list_buckets()["Buckets"] == []
