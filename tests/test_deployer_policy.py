"""deploy/deployer-policy.json: what a person or CI role needs to run `make deploy`, and nothing more.

The permissions CloudFormation uses for each resource type are not guessed: they are the handler
permissions AWS declares in the resource schemas cfn-lint ships. Each one is in the policy or in
deploy.deployer_policy.NOT_USED with its reason. The deploy code's own calls are checked against
moto in tests/test_deploy_state.py (every call recorded, each allowed on the resource it names).
"""

from __future__ import annotations

import fnmatch
import io
import json
import os

import pytest

from deploy import deployer_policy, stack_template

# What the app stack holds once CloudFormation has run the SAM transform on `chalice package`'s
# template (tests/test_runtime.py checks a real package against this list).
APP_TYPES = {"AWS::IAM::Role", "AWS::Lambda::Function", "AWS::Lambda::Permission", "AWS::ApiGateway::RestApi",
             "AWS::ApiGateway::Deployment", "AWS::ApiGateway::Stage", "AWS::Events::Rule", "AWS::Logs::LogGroup",
             # canary deploys and observability (deploy/app_template.py)
             "AWS::Lambda::Version", "AWS::Lambda::Alias", "AWS::CodeDeploy::Application",
             "AWS::CodeDeploy::DeploymentGroup", "AWS::CloudWatch::Alarm", "AWS::Logs::QueryDefinition"}
VALUES = {"AppName": "predictions", "Stage": "prod", "Region": "eu-west-1", "AccountId": "123456789012",
          "PredictionsBucket": "my-predictions-prod", "PredictionsPrefix": "predictions/"}


def schemas_dir() -> str:
    import cfnlint

    return os.path.join(os.path.dirname(cfnlint.__file__), "data", "schemas")


def handler_permissions(resource_type: str) -> set[str]:
    with open(os.path.join(schemas_dir(), "providers", "us-east-1.json"), encoding="utf-8") as fh:
        index = json.load(fh)
    with open(os.path.join(schemas_dir(), "resources", f"{index[resource_type]}.json"), encoding="utf-8") as fh:
        handlers = json.load(fh).get("handlers", {})
    return {p for kind in ("create", "read", "update", "delete") for p in handlers.get(kind, {}).get("permissions", [])}


def stage_types() -> set[str]:
    return {r["Type"] for r in stack_template.template()["Resources"].values()}


def rendered() -> dict[str, dict]:
    return json.loads(deployer_policy.render(deployer_policy.text(), VALUES))


def statements() -> list[dict]:
    return [s for document in rendered().values() for s in document["Statement"]]


def allowed_actions() -> set[str]:
    return {a for s in statements() for a in s["Action"]}


def not_used(permission: str, resource_type: str) -> bool:
    service = resource_type.split("::")[1].lower()
    service = {"certificatemanager": "acm"}.get(service, service)
    return any(permission.startswith(key) if key.endswith(":") else key in (permission, f"{permission}@{service}")
               for key in deployer_policy.NOT_USED)


def allows(action: str, resource: str) -> bool:
    """Whether an Allow statement names the action on the resource (conditions are not evaluated)."""
    for statement in statements():
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in statement["Action"]) and \
                any(fnmatch.fnmatchcase(resource, r) for r in resources):
            return True
    return False


def test_the_file_is_the_generators_output():
    assert deployer_policy.main(["--check"]) == 0, "run `python -m deploy.deployer_policy`"


def test_each_policy_fits_iams_size_limit():
    long_values = {**VALUES, "Stage": "s" * 16, "AppName": "a" * 31, "PredictionsBucket": "b" * 63}
    for name, document in json.loads(deployer_policy.render(deployer_policy.text(), long_values)).items():
        size = len("".join(json.dumps(document).split()))
        assert size <= deployer_policy.MAX_POLICY_CHARS, f"{name}: {size} characters"


def test_no_placeholder_is_left_once_rendered():
    assert "${" not in json.dumps(rendered())


@pytest.mark.parametrize("resource_type", sorted(stage_types() | APP_TYPES))
def test_cloudformation_can_manage_every_resource_type_of_both_stacks(resource_type):
    wanted = {p for p in handler_permissions(resource_type) if not not_used(p, resource_type)}
    missing = sorted(wanted - allowed_actions())
    assert not missing, f"{resource_type}: its handlers call {missing}: allow them, or add to NOT_USED with a reason"


def test_every_allowed_action_is_needed_by_a_handler_or_the_deploy_code():
    handlers = set().union(*(handler_permissions(t) for t in stage_types() | APP_TYPES))
    direct = {"cloudformation:CreateChangeSet", "cloudformation:DescribeChangeSet", "cloudformation:ExecuteChangeSet",
              "cloudformation:DeleteChangeSet", "cloudformation:DescribeStacks", "cloudformation:DescribeStackEvents",
              "cloudformation:GetTemplate", "cloudformation:DeleteStack", "cloudformation:ListStackResources",
              "ssm:PutParameter", "ssm:GetParameter", "ssm:DeleteParameter", "s3:PutObject", "s3:GetObject",
              "s3:DeleteObject", "s3:ListBucket", "s3:ListBucketVersions", "s3:GetObjectVersion",
              "s3:DeleteObjectVersion", "s3:GetBucketNotification", "s3:PutBucketNotification",
              "lambda:InvokeFunction", "cloudfront:CreateInvalidation", "cloudfront:GetInvalidation",
              "s3:CreateBucket", "s3:GetBucketLocation", "s3:PutBucketPublicAccessBlock",
              "s3:PutEncryptionConfiguration", "s3:PutBucketVersioning",
              # CloudFront's association of a Lambda@Edge version (AWS: IAM permissions for Lambda@Edge).
              "lambda:EnableReplication*", "lambda:DisableReplication*", "iam:CreateServiceLinkedRole"}
    assert sorted(allowed_actions() - handlers - direct) == []


def test_every_exclusion_says_why_and_excludes_something():
    assert all(len(reason) >= 6 for reason in deployer_policy.NOT_USED.values())
    types = stage_types() | APP_TYPES
    used = {key for key in deployer_policy.NOT_USED for t in types for p in handler_permissions(t)
            if not_used(p, t) and (p.startswith(key) if key.endswith(":") else key.split("@")[0] == p)}
    assert sorted(set(deployer_policy.NOT_USED) - used) == []


@pytest.mark.parametrize("action, resource", [
    ("iam:PassRole", "arn:aws:iam::123456789012:role/predictions-prod-app-ApiHandlerRole-ABC"),
    ("lambda:UpdateFunctionCode", "arn:aws:lambda:eu-west-1:123456789012:function:predictions-prod"),
    ("cloudformation:ExecuteChangeSet", "arn:aws:cloudformation:eu-west-1:123456789012:stack/predictions-prod-app/x"),
    ("s3:PutBucketNotification", "arn:aws:s3:::my-predictions-prod"),
    ("ssm:PutParameter", "arn:aws:ssm:eu-west-1:123456789012:parameter/predictions/deploy-locks/prod"),
    ("ssm:GetParameter", "arn:aws:ssm:eu-west-1:123456789012:parameter/predictions/origin-secrets/prod"),
    ("wafv2:UpdateWebACL", "arn:aws:wafv2:us-east-1:123456789012:global/webacl/predictions-prod/0a1b2c"),
    ("wafv2:UpdateWebACL", "arn:aws:wafv2:us-east-1:123456789012:global/managedruleset/IpReputation/1a2b"),
    ("budgets:ModifyBudget", "arn:aws:budgets::123456789012:budget/predictions-prod-monthly"),
    ("sns:SetTopicAttributes", "arn:aws:sns:eu-west-1:123456789012:predictions-prod-alarms"),
])
def test_the_stage_may_deploy_its_own_resources(action, resource):
    assert allows(action, resource)


@pytest.mark.parametrize("action, resource", [
    ("iam:PassRole", "arn:aws:iam::123456789012:role/Admin"),
    ("iam:CreateRole", "arn:aws:iam::123456789012:role/predictions-dev-app-x"),
    ("lambda:UpdateFunctionCode", "arn:aws:lambda:eu-west-1:123456789012:function:predictions-dev"),
    ("cloudformation:ExecuteChangeSet", "arn:aws:cloudformation:eu-west-1:123456789012:stack/predictions-dev-app/x"),
    ("s3:PutObject", "arn:aws:s3:::my-predictions-prod/predictions/2026-01-01/predictions.json"),
    ("s3:DeleteBucket", "arn:aws:s3:::my-predictions-prod"),
    ("ssm:PutParameter", "arn:aws:ssm:eu-west-1:123456789012:parameter/predictions/deploy-locks/dev"),
    ("ssm:PutParameter", "arn:aws:ssm:eu-west-1:123456789012:parameter/predictions/origin-secrets/dev"),
    ("wafv2:DeleteWebACL", "arn:aws:wafv2:us-east-1:123456789012:global/webacl/predictions-dev/0a1b2c"),
    ("budgets:ModifyBudget", "arn:aws:budgets::123456789012:budget/predictions-dev-monthly"),
])
def test_the_stage_may_not_touch_another_stage_or_the_batches(action, resource):
    assert not allows(action, resource)


def test_roles_are_passed_to_lambda_only_but_the_shift_role_to_codedeploy():
    passing = [s for s in statements() if "iam:PassRole" in s["Action"]]
    to = {s["Resource"]: s["Condition"]["StringEquals"]["iam:PassedToService"] for s in passing}
    shift = "arn:aws:iam::123456789012:role/predictions-prod-app-CodeDeployRole-*"
    assert to.pop(shift) == "codedeploy.amazonaws.com"
    assert to and set(to.values()) == {"lambda.amazonaws.com"}


# -- every AWS call of a real deploy flow against moto, checked against the policy ----------------

ACCOUNT, REGION = "123456789012", "us-east-1"  # moto's account
# botocore operation -> IAM action, where the two names differ.
ACTIONS = {
    ("s3", "HeadObject"): "s3:GetObject", ("s3", "HeadBucket"): "s3:ListBucket",
    ("s3", "ListObjectsV2"): "s3:ListBucket", ("s3", "ListObjectVersions"): "s3:ListBucketVersions",
    ("s3", "DeleteObjects"): "s3:DeleteObject", ("s3", "PutPublicAccessBlock"): "s3:PutBucketPublicAccessBlock",
    ("s3", "PutBucketEncryption"): "s3:PutEncryptionConfiguration",
    ("s3", "GetBucketNotificationConfiguration"): "s3:GetBucketNotification",
    ("s3", "PutBucketNotificationConfiguration"): "s3:PutBucketNotification",
    ("lambda", "Invoke"): "lambda:InvokeFunction",
}
NO_PERMISSION = {("sts", "GetCallerIdentity")}  # answers for any caller


def call_resource(service: str, operation: str, params: dict, region: str) -> str:
    """The ARN IAM evaluates for one call (the resource types of the Service Authorization Reference)."""
    if service == "s3":
        bucket = params.get("Bucket", "")
        if "Key" in params:
            return f"arn:aws:s3:::{bucket}/{params['Key']}"
        if operation == "DeleteObjects":
            return f"arn:aws:s3:::{bucket}/*"
        return f"arn:aws:s3:::{bucket}"
    if service == "cloudformation":
        return f"arn:aws:cloudformation:{region}:{ACCOUNT}:stack/{params['StackName']}/x"
    if service == "ssm":
        return f"arn:aws:ssm:{region}:{ACCOUNT}:parameter{params['Name']}"
    if service == "lambda":
        return f"arn:aws:lambda:{region}:{ACCOUNT}:function:{params['FunctionName']}"
    if service == "cloudfront":
        return f"arn:aws:cloudfront::{ACCOUNT}:distribution/{params.get('DistributionId') or params.get('Id')}"
    raise AssertionError(f"{service}.{operation}: the deploy calls a service this test cannot map: add it")


@pytest.fixture
def recorded_deploy(tmp_path, monkeypatch, capsys):
    """A first deploy of stage dev from a fresh clone, every step in-process against moto, every AWS call
    recorded: the bucket command, the lock, both stacks, the prewarm, the bucket events, the site publish.
    moto cannot run the warmer (no Lambda runtime): its invoke is recorded and answered with a summary."""
    import boto3
    import botocore.client
    from botocore.response import StreamingBody
    from moto import mock_aws
    from test_deploy_state import Operator, fresh_clone, outputs_from_resources

    import build_site
    from chalice_app.publishing.publish import publish_document
    from chalice_app.publishing.sample import make_batch
    from chalice_app.warming import prewarm
    from deploy import bucket_events, predictions_bucket, site_config, stack

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.chdir(tmp_path)
    calls: list[tuple[str, str, dict, str]] = []
    real = botocore.client.BaseClient._make_api_call

    def record(client, operation, params):
        service = client.meta.service_model.service_name
        calls.append((service, operation, params, client.meta.region_name))
        if (service, operation) == ("lambda", "Invoke"):
            summary = json.dumps({"target": "predictions-dev", "invoked": 1, "ok": 1, "failures": 0}).encode()
            return {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(summary), len(summary))}
        return real(client, operation, params)

    with mock_aws():
        bucket = VALUES_DEV["PredictionsBucket"]
        monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
        assert predictions_bucket.main(["--stage", "dev"]) == 0  # step 1 of docs/deploy.md, the deployer's too
        bucket_calls = list(calls)
        publish_document(boto3.client("s3"), bucket, VALUES_DEV["PredictionsPrefix"],
                         make_batch("2026-11-23", 20), force=True)
        cloudfront = boto3.client("cloudfront")
        dist = cloudfront.create_distribution(DistributionConfig=site_config.distribution_config(
            stage="dev", caller_reference="r", bucket_domain="b.s3.amazonaws.com", oac_id="", api_domain="a",
            headers_policy_id="hp"))["Distribution"]["Id"]
        calls[:] = bucket_calls  # the publish and the stand-in distribution are not the deployer's
        monkeypatch.setattr(stack.time, "sleep", lambda _: None)
        outputs_from_resources(monkeypatch)
        real_outputs = stack.outputs_of
        monkeypatch.setattr(stack, "outputs_of", lambda found: {**real_outputs(found), "DistributionId": dist}
                            if found and found["StackName"].endswith("-site") else real_outputs(found))

        class EveryStep(Operator):
            def run(self, command):
                tail = list(command[1:])
                if tail[:2] == ["-m", "chalice_app.warming.prewarm"]:
                    return prewarm.main(tail[2:])
                if tail[:2] == ["-m", "deploy.bucket_events"]:
                    return bucket_events.main(tail[2:])
                if tail[:1] == ["build_site.py"]:
                    return build_site.main(tail[1:])
                return super().run(command)

        said: list[str] = []
        operator = EveryStep(fresh_clone(tmp_path / "clone"), "ci@runner", [], monkeypatch)
        assert operator.deploy(said) == 0, "\n".join(said) + capsys.readouterr().err
        yield calls


VALUES_DEV = {"AppName": "predictions", "Stage": "dev", "Region": REGION, "AccountId": ACCOUNT,
              "PredictionsBucket": "example-predictions-dev", "PredictionsPrefix": "predictions/"}


@pytest.mark.slow
def test_every_aws_call_of_a_deploy_is_allowed_on_the_resource_it_names(recorded_deploy):
    documents = json.loads(deployer_policy.render(deployer_policy.text(), VALUES_DEV))
    dev_statements = [s for document in documents.values() for s in document["Statement"]]
    seen, refused = set(), []
    for service, operation, params, region in recorded_deploy:
        if (service, operation) in NO_PERMISSION:
            continue
        action = ACTIONS.get((service, operation), f"{service}:{operation}")
        resource = call_resource(service, operation, params, region or REGION)
        seen.add(action)
        if not any(any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in s["Action"]) and
                   any(fnmatch.fnmatchcase(resource, r) for r in ([s["Resource"]] if isinstance(s["Resource"], str)
                                                                   else s["Resource"])) for s in dev_statements):
            refused.append(f"{action} on {resource}")
    assert sorted(set(refused)) == []
    # The flow really ran: the lock, both stacks, the code upload, the events, the prewarm, the site.
    assert {"s3:CreateBucket", "ssm:PutParameter", "ssm:DeleteParameter", "cloudformation:ExecuteChangeSet",
            "s3:PutObject", "s3:PutBucketNotification", "lambda:InvokeFunction",
            "cloudfront:CreateInvalidation"} <= seen


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_the_documented_commands_write_the_files_the_documented_create_policy_reads(tmp_path, monkeypatch, region):
    import re
    import shlex

    from helpers import PROJECT_DIR

    doc = open(os.path.join(PROJECT_DIR, "docs", "deploy.md"), encoding="utf-8").read()
    section = doc[doc.index("## What the deployer may do"):]
    block = section[section.index("```sh") + 5:section.index("```", section.index("```sh") + 5)]
    render_line, *create_lines = [line for line in block.strip().splitlines() if line.strip()]
    argv = shlex.split(render_line)
    assert argv[:3] == [".venv/bin/python", "-m", "deploy.deployer_policy"]
    argv[argv.index("--region") + 1] = region
    monkeypatch.chdir(tmp_path)
    assert deployer_policy.main(argv[3:]) == 0
    for line in create_lines:
        path = re.search(r"file://(\S+)", line).group(1)
        document = json.loads((tmp_path / path).read_text())
        assert document["Version"] == "2012-10-17" and "${" not in json.dumps(document)
        assert region in json.dumps(document)
