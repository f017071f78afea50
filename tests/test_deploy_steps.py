"""`make deploy`: the steps in order, from an empty account in one run, a no-op on the second run.

The steps are stubbed at the process boundary (`deploy(run=...)`): the lock and the stage stack steps run
deploy/deploy_lock.py and deploy/stack.py in-process against moto; the app stack step is a small stand-in
(a stack holding only a REST API, through the same `run_change_set`) that notes the site function's settings
it would deploy: the real app stack, from `chalice package`, is tests/test_deploy_state.py's; prewarm, bucket
events and the site sync are recorded only (tested elsewhere).
"""

from __future__ import annotations

import json
import shutil

import pytest

from deploy import deploy_lock, stack
from deploy.stage import deploy, steps

from helpers import PROJECT_DIR

# moto's CloudFormation warns once per resource type it skips (shared/MOTO.md): expected here.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")

REGION = "us-east-1"
DIST_ID = "E2EXAMPLE12345"


def test_the_order_is_lock_stack_app_stack_then_prewarm_events_site_unlock():
    plan = steps("prod", python="/venv/bin/python", warmer_enabled=True, site_rebuild_enabled=True)
    assert [command[1:3] for _, command in plan] == [
        ["-m", "deploy.deploy_lock"], ["-m", "deploy.stack"], ["-m", "deploy.app_stack"], ["-m", "deploy.stack"],
        ["-m", "chalice_app.warming.prewarm"], ["-m", "deploy.bucket_events"], ["build_site.py", "--stage"],
        ["-m", "deploy.deploy_lock"]]
    assert plan[0][1][-1] == "--acquire" and plan[-1][1][-1] == "--release"
    assert plan[2][1][3:] == ["--stage", "prod"]
    assert plan[-2][1][-1] == "--publish"
    assert not any("chalice_cli" in " ".join(command) for _, command in plan)  # no `chalice deploy` for a stage


def test_a_stage_without_a_warmer_or_site_function_skips_their_steps():
    assert len(steps("local")) == 6  # lock, stack, app stack, stack, site, unlock
    assert len(steps("prod")) == 8  # prod has both, from .chalice/config.json


def test_a_failure_stops_the_deploy_releases_the_lock_and_says_where():
    ran, said = [], []

    def run(command):
        ran.append(command)
        return 1 if "chalice_app.warming.prewarm" in command else 0

    assert deploy("dev", run=run, say=said.append) == 1
    # lock, stack, app stack, stack, prewarm; then the release: bucket events and the site were not reached
    assert [c[2] for c in ran] == ["deploy.deploy_lock", "deploy.stack", "deploy.app_stack", "deploy.stack",
                                   "chalice_app.warming.prewarm", "deploy.deploy_lock"]
    assert ran[-1][-1] == "--release"
    assert "stopped at step 5/8 (prewarm the API): exit code 1" in said[-1]


def test_a_refused_lock_stops_before_anything_and_releases_nothing():
    ran, said = [], []

    def run(command):
        ran.append(command)
        return 1

    assert deploy("dev", run=run, say=said.append) == 1
    assert len(ran) == 1 and ran[0][-1] == "--acquire"  # someone else's lock is not ours to release
    assert "stopped at step 1/8 (take the stage's deploy lock)" in said[-1]


def test_an_interrupted_deploy_keeps_the_lock(capsys):
    ran, said = [], []

    def run(command):
        ran.append(command)
        if "deploy.app_stack" in command:
            raise KeyboardInterrupt
        return 0

    assert deploy("dev", run=run, say=said.append) == 130
    assert ran[-1][2] == "deploy.app_stack"  # no release: the app stack may still be changing
    assert "the deploy lock stays held" in said[-1] and "--break" in said[-1]


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
    real_outputs = stack.outputs_of

    def outputs_of(found: dict | None) -> dict:
        # moto's CloudFormation skips the distribution, so every output naming it comes back empty, and it
        # never fills a stack's outputs after a change set (shared/MOTO.md; measured with moto 5.2.5): stand in
        # the values AWS would give, from the stacks' resources.
        if not found:
            return {}
        got = real_outputs(found)
        import boto3

        resources = boto3.client("cloudformation").list_stack_resources(StackName=found["StackName"])
        physical = {r["LogicalResourceId"]: r.get("PhysicalResourceId") for r in resources["StackResourceSummaries"]}
        if found["StackName"].endswith("-app"):
            return {**got, "RestAPIId": physical["RestAPI"]}
        return {**got, "SiteBucketName": physical["SiteBucket"], "LogBucketName": physical["LogBucket"],
                "DistributionId": DIST_ID, "SiteUrl": "https://d111111abcdef8.cloudfront.net/"}

    monkeypatch.setattr(stack, "outputs_of", outputs_of)
    with mock_aws():
        yield chalice_dir


# The app stack's stand-in: a REST API only (the real one, from chalice package, is test_deploy_state.py's).
APP_TEMPLATE = json.dumps({"Resources": {"RestAPI": {"Type": "AWS::ApiGateway::RestApi",
                                                     "Properties": {"Name": "predictions"}}}})


def _runner(world, log):
    import boto3

    def clients():
        return boto3.client("cloudformation"), boto3.client("s3"), REGION

    def run(command):
        tail = command[1:]
        log.append(tail)
        if tail[:2] == ["-m", "deploy.deploy_lock"]:
            return deploy_lock.main(command[3:], client=lambda: boto3.client("ssm"))
        if tail[:2] == ["-m", "deploy.stack"]:
            return stack.main(command[3:], clients=clients)
        if tail[:2] == ["-m", "deploy.app_stack"]:
            config = json.loads((world / "config.json").read_text())
            log.append(("app saw", dict(config["stages"]["dev"]["lambda_functions"]["site"]
                                        ["environment_variables"])))
            stack.run_change_set(boto3.client("cloudformation"), "predictions-dev-app", {}, body=APP_TEMPLATE,
                                 delay=0)
        return 0

    return run


@pytest.mark.slow
def test_one_run_from_an_empty_account_then_a_second_run_changes_nothing(world, capsys):
    import boto3

    log, said = [], []
    assert deploy("dev", run=_runner(world, log), say=said.append) == 0
    first = capsys.readouterr().out
    cfn = boto3.client("cloudformation")
    params = {p["ParameterKey"]: p["ParameterValue"]
              for p in cfn.describe_stacks(StackName="predictions-dev-site")["Stacks"][0]["Parameters"]}
    # The stack came first, the app stack saw the stack's bucket and distribution, then /api/* went Regional.
    assert "stack predictions-dev-site: create" in first
    assert "stack predictions-dev-site: update" in first
    api_id = boto3.client("apigateway").get_rest_apis()["items"][0]["id"]
    assert params["ApiDomain"] == f"{api_id}.execute-api.{REGION}.amazonaws.com"
    seen = next(entry for entry in log if entry[0] == "app saw")[1]
    assert seen["SITE_BUCKET"] == "predictions-site-dev-123456789012"
    assert seen["SITE_DISTRIBUTION_ID"] == DIST_ID
    policy = (world / "policy-site-dev.json").read_text()
    assert f"distribution/{DIST_ID}" in policy and "arn:aws:s3:::predictions-site-dev-123456789012/*" in policy
    files = {p.name: p.read_text() for p in world.glob("*.json")}

    log.clear()
    assert deploy("dev", run=_runner(world, log), say=said.append) == 0
    second = capsys.readouterr().out
    assert second.count("stack predictions-dev-site: no changes") == 2
    assert "stack predictions-dev-app: no changes" in second
    assert "wrote" not in second
    assert second.count("deploy-locks/dev: taken by") == 1 and second.count("deploy-locks/dev: released") == 1
    assert {p.name: p.read_text() for p in world.glob("*.json")} == files  # config and policies untouched


@pytest.mark.slow
def test_dry_run_shows_the_change_set_and_creates_nothing(world, capsys):
    import boto3

    assert stack.main(["--stage", "dev", "--dry-run"],
                      clients=lambda: (boto3.client("cloudformation"), boto3.client("s3"), REGION)) == 0
    out = capsys.readouterr().out
    assert "dry run, create would do: Add SiteBucket (AWS::S3::Bucket)" in out
    assert boto3.client("s3").list_buckets()["Buckets"] == []
