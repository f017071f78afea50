"""Where the deploy state lives: two operators from fresh clones deploy ONE app, one deploy at a time,
failed stacks are recovered or explained, and the predictions bucket command works in any region.

Everything runs against moto in-process (`mock_aws`, fake credentials). What moto 5.2.5 cannot do, and what
these tests do about it, only here (the deploy code sends what AWS gets):
- moto's CloudFormation has no SAM transform (a SAM template fails on the Lambda permission), so the app
  stack's template goes through deploy/app_stack.py's `prepare_template` hook: aws-sam-translator expands it
  as CloudFormation's server-side transform would; then the `AWS::ApiGateway::Deployment` and `Stage` (and
  whatever refers to them) are dropped, because moto ignores a RestApi's `Body` and refuses a deployment of
  an API "without methods". In production the hook is None and CloudFormation transforms the SAM template.
- moto never fills a stack's outputs after a change set, and skips the distribution: the outputs AWS would
  give are stood in from the stacks' resources (`RestAPIId` from the RestApi moto really created, the buckets
  from the stack's buckets), see `outputs_from_resources`.
- moto cannot produce ROLLBACK_COMPLETE or UPDATE_ROLLBACK_FAILED: a before-call hook presents those states
  (and their events) on describe_stacks; the delete and create calls then go to moto.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from deploy import app_stack, deploy_lock, predictions_bucket, stack
from deploy.stage import deploy

from helpers import PROJECT_DIR

pytestmark = [pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

REGION = "us-east-1"
DIST_ID = "E2EXAMPLE12345"
APP = "predictions-dev-app"
SITE = "predictions-dev-site"


@pytest.fixture
def aws(monkeypatch):
    from moto import mock_aws

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


# -- what stands in for moto's gaps (only here) ----------------------------------------------------

def _refers(node: object, names: set[str]) -> bool:
    text = json.dumps(node)
    return any(f'"{n}"' in text or f"${{{n}}}" in text or f"${{{n}." in text for n in names)


def sam_for_moto(template: dict) -> dict:
    """CloudFormation's SAM transform, done here (moto has none), minus what moto cannot create."""
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self):
            return {}

    out = transform(copy.deepcopy(template), {}, NoManagedPolicies())
    resources = out["Resources"]
    # moto's Lambda version has no attributes: a version's number (the hook's target, an alarm's dimension)
    # is "1" here.
    versions = {k for k, v in resources.items() if v["Type"] == "AWS::Lambda::Version"}
    text = json.dumps(resources)
    for name in versions:
        text = text.replace(json.dumps({"Fn::GetAtt": [name, "Version"]}), '"1"')
    # Nor an alias: what calls the alias (the REST API, its permission) calls the function here.
    for name, alias in resources.items():
        if alias["Type"] == "AWS::Lambda::Alias":
            function = alias["Properties"]["FunctionName"]["Ref"]
            text = text.replace(json.dumps({"Ref": name}), json.dumps({"Fn::GetAtt": [function, "Arn"]}))
    out["Resources"] = resources = json.loads(text)
    # moto has no CloudFormation model for an alias or CodeDeploy: the canary's resources (and what refers to
    # them: API Gateway's permission on the alias) are read from the template in tests/test_canary.py instead.
    moto_cannot = ("AWS::ApiGateway::Deployment", "AWS::ApiGateway::Stage", "AWS::Lambda::Alias",
                   "AWS::CodeDeploy::Application", "AWS::CodeDeploy::DeploymentGroup")
    dropped = {k for k, v in resources.items() if v["Type"] in moto_cannot}
    while more := {k for k, v in resources.items() if k not in dropped and _refers(v, dropped)}:
        dropped |= more
    for name in dropped:
        del resources[name]
    out["Outputs"] = {k: v for k, v in out.get("Outputs", {}).items() if not _refers(v, dropped)}
    return out


def outputs_from_resources(monkeypatch):
    """The outputs AWS would give, from the resources moto created (moto leaves outputs empty)."""
    real = stack.outputs_of

    def outputs_of(found):
        if not found:
            return {}
        import boto3

        resources = boto3.client("cloudformation").list_stack_resources(StackName=found["StackName"])
        physical = {r["LogicalResourceId"]: r.get("PhysicalResourceId") for r in resources["StackResourceSummaries"]}
        if found["StackName"].endswith("-app"):
            return {**real(found), "RestAPIId": physical.get("RestAPI", "")}
        return {**real(found), "SiteBucketName": physical["SiteBucket"], "LogBucketName": physical["LogBucket"],
                "ArtifactBucketName": physical["ArtifactBucket"], "DistributionId": DIST_ID,
                "SiteUrl": "https://d111111abcdef8.cloudfront.net/"}

    monkeypatch.setattr(stack, "outputs_of", outputs_of)


# -- two operators, two fresh clones ---------------------------------------------------------------

def fresh_clone(dest: Path) -> Path:
    """The repository's tracked files, as a fresh clone has them: no .chalice/deployed, no build/."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT_DIR, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = Path(PROJECT_DIR) / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the work tree
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            os.symlink(os.readlink(source), target)
        else:
            shutil.copy2(source, target)
    assert not (dest / ".chalice" / "deployed").exists() and not (dest / "build").exists()
    return dest


class Operator:
    """One person's `make deploy STAGE=dev` from their own folder: the lock, stack and app stack steps run
    in-process against moto; prewarm, bucket events and the site publish are recorded only."""

    def __init__(self, folder: Path, who: str, calls: list, monkeypatch):
        import boto3

        self.folder, self.who, self.monkeypatch = folder, who, monkeypatch
        self.cfn, self.s3 = boto3.client("cloudformation"), boto3.client("s3")
        self.recorded: list[list[str]] = []
        for event in ("before-parameter-build.cloudformation.CreateChangeSet",
                      "after-call.cloudformation.DescribeChangeSet"):
            self.cfn.meta.events.register(event, self._note(calls))

    def _note(self, calls):
        def note(params=None, parsed=None, model=None, **_):
            if model.name == "CreateChangeSet":
                calls.append({"who": self.who, "stack": params["StackName"], "type": params["ChangeSetType"],
                              "params": {p["ParameterKey"]: p["ParameterValue"] for p in params["Parameters"]}})
            elif parsed and parsed.get("Changes") is not None:
                calls.append({"who": self.who, "stack": parsed["StackName"], "changes": [
                    f"{c['ResourceChange']['Action']} {c['ResourceChange']['LogicalResourceId']}"
                    for c in parsed["Changes"]]})
        return note

    def clients(self):
        return self.cfn, self.s3, REGION

    def run(self, command):
        import boto3

        tail = list(command[1:])
        if tail[:2] == ["-m", "deploy.deploy_lock"]:
            return deploy_lock.main(tail[2:], client=lambda: boto3.client("ssm"),
                                    config_path=str(self.folder / ".chalice" / "config.json"),
                                    project_dir=str(self.folder))
        if tail[:2] == ["-m", "deploy.stack"]:
            return stack.main(tail[2:], clients=self.clients)
        if tail[:2] == ["-m", "deploy.app_stack"]:
            return app_stack.main(tail[2:], clients=self.clients, project_dir=str(self.folder),
                                  prepare_template=sam_for_moto)
        self.recorded.append(tail)
        return 0

    def deploy(self, said: list) -> int:
        chalice = self.folder / ".chalice"
        for name, value in (("CONFIG_PATH", chalice / "config.json"), ("CHALICE_DIR", chalice),
                            ("PROJECT_DIR", self.folder)):
            self.monkeypatch.setattr(stack, name, str(value))
        self.monkeypatch.setattr(deploy_lock, "whoami", lambda: self.who)
        return deploy("dev", run=self.run, say=said.append)


@pytest.mark.slow
def test_two_operators_from_fresh_clones_deploy_one_app(aws, tmp_path, monkeypatch, capsys):
    """Alice deploys from her fresh clone, then Bob from his: one app stack, one REST API, an UPDATE."""
    import boto3

    monkeypatch.setattr(stack.time, "sleep", lambda _: None)
    outputs_from_resources(monkeypatch)
    calls: list[dict] = []
    alice = Operator(fresh_clone(tmp_path / "alice"), "alice@laptop", calls, monkeypatch)
    bob = Operator(fresh_clone(tmp_path / "bob"), "bob@ci", calls, monkeypatch)

    said: list[str] = []
    assert alice.deploy(said) == 0, "\n".join(said) + capsys.readouterr().err
    first = capsys.readouterr().out
    assert f"stack {APP}: create" in first and "uploaded" in first
    alice_calls, calls[:] = list(calls), []

    assert bob.deploy(said) == 0, "\n".join(said) + capsys.readouterr().err
    second = capsys.readouterr().out

    cfn, apigw = boto3.client("cloudformation"), boto3.client("apigateway")
    apps = [s["StackName"] for s in cfn.describe_stacks()["Stacks"] if s["StackName"].endswith("-app")]
    assert apps == [APP]
    apis = apigw.get_rest_apis()["items"]
    assert [a["name"] for a in apis] == ["predictions"], "a second REST API was created"
    app_resources = cfn.list_stack_resources(StackName=APP)["StackResourceSummaries"]
    functions = {r["PhysicalResourceId"] for r in app_resources if r["ResourceType"] == "AWS::Lambda::Function"}
    assert functions == {"predictions-dev", "predictions-dev-warmer", "predictions-dev-site",
                         "predictions-dev-pretraffic"}  # as the warmer and CodeDeploy's role target them
    assert functions <= {f["FunctionName"] for f in boto3.client("lambda").list_functions()["Functions"]}

    # Alice: the stage stack first without an API (nothing to remove yet), then with hers.
    alice_site = [c["params"]["ApiDomain"] for c in alice_calls if c["stack"] == SITE and "params" in c]
    domain = f"{apis[0]['id']}.execute-api.{REGION}.amazonaws.com"
    assert alice_site == ["", domain]
    # Bob: the same app stack, updated (or unchanged), never created; /api/* kept at every stage stack step.
    bob_app = [c for c in calls if c["stack"] == APP]
    assert [c["type"] for c in bob_app if "type" in c] == ["UPDATE"]
    assert not any("Add RestAPI" in c.get("changes", []) for c in bob_app)
    bob_site = [c["params"]["ApiDomain"] for c in calls if c["stack"] == SITE and "params" in c]
    assert bob_site == [domain, domain]
    # An unchanged build from another machine: same code key, nothing uploaded, the app stack unchanged.
    assert "there already (same contents), not uploaded" in second
    assert f"stack {APP}: no changes" in second
    assert second.count(f"stack {SITE}: no changes") == 2
    for op in (alice, bob):
        assert not (op.folder / ".chalice" / "deployed").exists()
        assert [r[:2] for r in op.recorded] == [["-m", "chalice_app.warming.prewarm"], ["-m", "deploy.bucket_events"],
                                                ["build_site.py", "--stage"]]
    # Both locks released; the one parameter left is the stage's origin secret, created by the first deploy
    # and read, unchanged, by the second (CloudFront's X-Origin-Verify: docs/protection.md).
    left = boto3.client("ssm").describe_parameters()["Parameters"]
    assert [(p["Name"], p["Type"], p["Version"]) for p in left] == [
        ("/predictions/origin-secrets/dev", "SecureString", 1)]


# -- one deploy at a time --------------------------------------------------------------------------

def test_a_second_deploy_of_the_stage_is_refused_while_the_first_holds_the_lock(aws, monkeypatch, capsys):
    import boto3

    def lock(*args):
        return deploy_lock.main(["--stage", "dev", *args], client=lambda: boto3.client("ssm"))

    monkeypatch.setattr(deploy_lock, "whoami", lambda: "alice@laptop")
    assert lock("--acquire", "--pid", "4242") == 0  # alice's deploy is running (or crashed: the lock stays)

    monkeypatch.setattr(deploy_lock, "whoami", lambda: "bob@ci")
    ran, said = [], []

    def run(command):
        ran.append(command)
        return lock(*command[5:]) if command[2] == "deploy.deploy_lock" else 0

    assert deploy("dev", run=run, say=said.append) == 1
    err = capsys.readouterr().err
    assert len(ran) == 1  # nothing else ran, and bob did not release alice's lock
    assert re.search(r"stage dev is being deployed by alice@laptop since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ "
                     r"\(pid 4242, commit", err)
    assert "python -m deploy.deploy_lock --stage dev --break" in err
    assert "stopped at step 1/8 (take the stage's deploy lock)" in said[-1]

    assert lock("--release") == 1  # bob cannot release it either: only alice's deploy or --break
    assert lock("--show") == 0 and '"who": "alice@laptop"' in capsys.readouterr().out
    assert lock("--break") == 0
    assert "broken, it was held by alice@laptop" in capsys.readouterr().out
    said.clear()
    assert deploy("dev", run=run, say=said.append) == 0
    assert lock("--show") == 0 and "/predictions/deploy-locks/dev: free" in capsys.readouterr().out


def test_the_lock_command_has_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        deploy_lock.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--break" in out and "--show" in out and "/<app_name>/deploy-locks/<stage>" in out


# -- recovery --------------------------------------------------------------------------------------

SMALL = json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}})


def present(cfn, name: str, status: str, events: list[dict], calls: list[str]):
    """A before-call hook: describe_stacks/describe_stack_events of `name` show `status` until a delete."""
    from datetime import UTC, datetime

    state = {"shown": True}

    def note(model=None, params=None, context=None, **_):  # the call's own parameters, before serialising
        calls.append(model.name if model.name != "CreateChangeSet" else f"CreateChangeSet {params['ChangeSetType']}")
        if model.name == "DeleteStack":
            state["shown"] = False
        context["stack_name"] = params.get("StackName")

    def hook(model=None, context=None, **_):
        if not state["shown"] or context.get("stack_name") != name:
            return None
        if model.name == "DescribeStacks":
            return SimpleNamespace(status_code=200), {"Stacks": [
                {"StackName": name, "StackId": f"arn:aws:cloudformation:{REGION}:123456789012:stack/{name}/1",
                 "StackStatus": status, "CreationTime": datetime.now(UTC)}]}
        if model.name == "DescribeStackEvents":
            return SimpleNamespace(status_code=200), {"StackEvents": events}
        return None

    cfn.meta.events.register("before-parameter-build.cloudformation", note)
    cfn.meta.events.register("before-call.cloudformation", hook)


def event(minute: int, logical: str, status: str, reason: str) -> dict:
    from datetime import UTC, datetime

    return {"StackName": "x", "StackId": "x", "EventId": f"{minute}", "LogicalResourceId": logical,
            "ResourceStatus": status, "ResourceStatusReason": reason,
            "Timestamp": datetime(2026, 11, 23, 4, minute, tzinfo=UTC)}


def test_a_failed_first_creation_is_deleted_and_created_again(aws):
    import boto3

    cfn = boto3.client("cloudformation")
    cfn.create_stack(StackName=APP, TemplateBody=SMALL)  # what the failed creation left, in moto
    calls, said = [], []
    present(cfn, APP, "ROLLBACK_COMPLETE",
            [event(1, "APIHandler", "CREATE_FAILED", "Resource handler returned message: Role is invalid")], calls)

    stack.run_change_set(cfn, APP, {}, body=SMALL, progress=said.append, delay=0, dry_run=True)
    assert "DeleteStack" not in calls and "a deploy would delete it and create it again" in said.pop()
    calls.clear()

    result = stack.run_change_set(cfn, APP, {}, body=SMALL, progress=said.append, delay=0)

    assert result["kind"] == "CREATE" and result["executed"]
    assert calls[:3] == ["DescribeStacks", "DescribeStackEvents", "DeleteStack"]
    assert calls.index("CreateChangeSet CREATE") > calls.index("DeleteStack")
    assert "ExecuteChangeSet" in calls
    assert "ROLLBACK_COMPLETE (its first creation failed, it holds nothing): deleting it to create it again" in said[0]
    assert "APIHandler CREATE_FAILED: Resource handler returned message: Role is invalid" in said[0]
    assert cfn.describe_stacks(StackName=APP)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"


def test_a_stack_in_update_rollback_failed_stops_the_deploy_with_its_reasons(aws, capsys):
    import boto3

    cfn = boto3.client("cloudformation")
    calls: list[str] = []
    events = [event(1, "Distribution", "UPDATE_FAILED", "Invalid request provided: the certificate is not valid"),
              event(3, "AliasRecord", "UPDATE_FAILED", "Tried to create resource record set but it already exists"),
              event(2, "Distribution", "UPDATE_IN_PROGRESS", ""),
              event(4, SITE, "UPDATE_ROLLBACK_FAILED", "The following resource(s) failed to update: [SiteBucket]")]
    present(cfn, SITE, "UPDATE_ROLLBACK_FAILED", events, calls)

    assert stack.main(["--stage", "dev"], clients=lambda: (cfn, boto3.client("s3"), REGION)) == 1

    err = capsys.readouterr().err
    assert f"stack {SITE} is UPDATE_ROLLBACK_FAILED" in err
    lines = [line.strip() for line in err.splitlines() if "_FAILED:" in line]
    assert lines == [f"{SITE} UPDATE_ROLLBACK_FAILED: The following resource(s) failed to update: [SiteBucket]",
                     "AliasRecord UPDATE_FAILED: Tried to create resource record set but it already exists",
                     "Distribution UPDATE_FAILED: Invalid request provided: the certificate is not valid"]
    assert not any(c.startswith("CreateChangeSet") for c in calls)


def test_waiting_on_a_failing_update_prints_the_reasons(aws):
    import boto3

    cfn = boto3.client("cloudformation")
    present(cfn, APP, "UPDATE_ROLLBACK_COMPLETE",
            [event(1, "Warmer", "UPDATE_FAILED", "Reserved concurrency exceeds the account's limit")], [])
    with pytest.raises(stack.StackError) as failed:
        stack._wait_stack(cfn, APP, 0, lambda _: None)
    assert "UPDATE_ROLLBACK_COMPLETE" in str(failed.value)
    assert "Warmer UPDATE_FAILED: Reserved concurrency exceeds the account's limit" in str(failed.value)


# -- the API's domain never goes away --------------------------------------------------------------

class FakeStacks:
    """describe_stacks only: the app stack (or an error reading it) and the stage stack's ApiDomain."""

    def __init__(self, app, site_domain: str):
        self.app, self.site_domain = app, site_domain

    def describe_stacks(self, StackName):  # boto3's argument name
        from botocore.exceptions import ClientError

        if StackName == APP:
            if isinstance(self.app, Exception):
                raise self.app
            if self.app is None:
                missing = {"Code": "ValidationError", "Message": f"Stack with id {APP} does not exist"}
                raise ClientError({"Error": missing}, "DescribeStacks")
            return {"Stacks": [self.app]}
        return {"Stacks": [{"StackName": SITE, "StackStatus": "UPDATE_COMPLETE",
                            "Parameters": [{"ParameterKey": "ApiDomain", "ParameterValue": self.site_domain}]}]}


def test_the_api_domain_comes_from_the_app_stack():
    app = {"StackName": APP, "StackStatus": "UPDATE_COMPLETE", "Outputs": [{"OutputKey": "RestAPIId",
                                                                           "OutputValue": "abc123"}]}
    assert stack.api_domain(FakeStacks(app, ""), "dev", "eu-west-1") == "abc123.execute-api.eu-west-1.amazonaws.com"
    assert stack.api_domain(FakeStacks(None, ""), "dev", REGION) == ""  # the first deploy only


def test_the_api_origin_is_never_removed():
    from botocore.exceptions import ClientError

    routed = "old123.execute-api.us-east-1.amazonaws.com"
    said: list[str] = []
    # A stage deployed by `chalice deploy` before: the app stack does not exist yet, the origin stays.
    assert stack.api_domain(FakeStacks(None, routed), "dev", REGION, progress=said.append) == routed
    assert "keeping the /api/* origin" in said[0]
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "not allowed"}}, "DescribeStacks")
    for app in (denied, {"StackName": APP, "StackStatus": "UPDATE_ROLLBACK_FAILED"}):
        with pytest.raises(stack.StackError, match="refusing to remove the /api/\\* origin"):
            stack.api_domain(FakeStacks(app, routed), "dev", REGION)


# -- the app stack's pieces ------------------------------------------------------------------------

def test_the_merge_template_names_the_functions_the_stage_has():
    config = json.loads(Path(PROJECT_DIR, ".chalice", "config.json").read_text())
    assert app_stack.stage_functions("local", config) == ["APIHandler"]
    functions = app_stack.stage_functions("dev", config)
    assert functions == ["APIHandler", "Warmer", "Site", "PreTraffic"]
    resources = app_stack.merge_template("dev", "predictions", functions, config)["Resources"]
    assert {k: resources[k]["Properties"]["FunctionName"] for k in functions} == {
        "APIHandler": "predictions-dev", "Warmer": "predictions-dev-warmer", "Site": "predictions-dev-site",
        "PreTraffic": "predictions-dev-pretraffic"}
    assert resources["RestAPI"]["Properties"]["Name"] == "predictions"
    # The name the warmer's target uses (config.json), on the alias the API's traffic goes to in the stack.
    warmer_env = config["stages"]["prod"]["lambda_functions"]["warmer"]["environment_variables"]
    prod = app_stack.merge_template("prod", "predictions", ["APIHandler", "Warmer"], config)["Resources"]
    assert warmer_env["WARM_TARGET_FUNCTION"] == prod["APIHandler"]["Properties"]["FunctionName"]
    assert prod["Warmer"]["Properties"]["Environment"]["Variables"]["WARM_TARGET_FUNCTION"] == "predictions-prod:live"


def test_the_code_key_is_the_hash_of_the_contents_not_of_the_zip(tmp_path):
    def write(path, members, date):
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in members:
                archive.writestr(zipfile.ZipInfo(name, date_time=date), data)
        return str(path)

    members = [("app.py", b"from x import app"), ("chalice_app/__init__.py", b"")]
    one = write(tmp_path / "one.zip", members, (2026, 1, 1, 0, 0, 0))
    other = write(tmp_path / "other.zip", members[::-1], (2026, 11, 23, 4, 5, 6))  # another machine, later
    changed = write(tmp_path / "changed.zip", [("app.py", b"from y import app"), members[1]], (2026, 1, 1, 0, 0, 0))
    assert Path(one).read_bytes() != Path(other).read_bytes()
    assert app_stack.content_hash(one) == app_stack.content_hash(other) != app_stack.content_hash(changed)
    assert app_stack.artifact_key("dev", "ab" * 32) == f"app/dev/{'ab' * 32}.zip"


def test_every_code_uri_points_at_the_uploaded_code():
    template = {"Resources": {"A": {"Type": "AWS::Serverless::Function", "Properties": {"CodeUri": "./deployment.zip"}},
                              "B": {"Type": "AWS::Serverless::Function", "Properties": {"CodeUri": "./deployment.zip"}},
                              "R": {"Type": "AWS::IAM::Role", "Properties": {}}}}
    out = app_stack.with_code_uri(template, "bucket", "app/dev/k.zip")
    assert {k: v["Properties"].get("CodeUri") for k, v in out["Resources"].items()} == {
        "A": "s3://bucket/app/dev/k.zip", "B": "s3://bucket/app/dev/k.zip", "R": None}
    assert template["Resources"]["A"]["Properties"]["CodeUri"] == "./deployment.zip"  # a copy
    with pytest.raises(stack.StackError, match="unnamed functions"):
        app_stack.check_names(template, "dev", "predictions")


# -- the predictions bucket ------------------------------------------------------------------------

def documented_bucket_command() -> list[str]:
    """The command docs/deploy.md tells an operator to run first, as its code block shows it."""
    doc = Path(PROJECT_DIR, "docs", "deploy.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", doc, re.DOTALL)
    lines = [line for block in blocks for line in block.splitlines() if "deploy.predictions_bucket" in line]
    assert len(lines) == 1, "docs/deploy.md must show the predictions bucket command once, in a sh block"
    words = shlex.split(lines[0])
    return words[words.index("deploy.predictions_bucket") + 1:]


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_the_documented_bucket_command_works_in_any_region(region, aws, monkeypatch, capsys):
    import boto3
    from botocore.exceptions import ClientError

    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    args = documented_bucket_command()
    bucket = json.loads(Path(PROJECT_DIR, ".chalice", "config.json").read_text())["stages"][
        args[args.index("--stage") + 1]]["environment_variables"]["PREDICTIONS_BUCKET"]
    if region == "us-east-1":  # what the docs used to say, refused as AWS refuses it
        with pytest.raises(ClientError, match="InvalidLocationConstraint"):
            boto3.client("s3").create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})

    assert predictions_bucket.main(args) == 0
    assert f"bucket {bucket}: created in {region}" in capsys.readouterr().out
    s3 = boto3.client("s3")
    assert (s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] or "us-east-1") == region
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == predictions_bucket.BLOCK_ALL
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"

    assert predictions_bucket.main(args) == 0  # idempotent
    assert f"bucket {bucket}: exists already in {region}" in capsys.readouterr().out


def test_the_bucket_command_has_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        predictions_bucket.main(["--help"])
    assert exit_.value.code == 0 and "--bucket" in capsys.readouterr().out
