"""deploy/deployer-policy.json: what a person or CI role needs to run `make deploy`, and nothing more.

The permissions CloudFormation uses for each resource type are not guessed: they are the handler
permissions AWS declares in the resource schemas cfn-lint ships. Each one is in the policy or in
deploy.deployer_policy.NOT_USED with its reason. The deploy code's own calls are checked against
moto in tests/test_deploy_state.py (every call recorded, each allowed on the resource it names).
"""

from __future__ import annotations

import fnmatch
import json
import os

import pytest

from deploy import deployer_policy, stack_template

# What the app stack holds once CloudFormation has run the SAM transform on `chalice package`'s
# template (tests/test_runtime.py checks a real package against this list).
APP_TYPES = {"AWS::IAM::Role", "AWS::Lambda::Function", "AWS::Lambda::Permission", "AWS::ApiGateway::RestApi",
             "AWS::ApiGateway::Deployment", "AWS::ApiGateway::Stage", "AWS::Events::Rule", "AWS::Logs::LogGroup"}
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
])
def test_the_stage_may_not_touch_another_stage_or_the_batches(action, resource):
    assert not allows(action, resource)


def test_roles_are_passed_to_lambda_only():
    passing = [s for s in statements() if "iam:PassRole" in s["Action"]]
    assert passing and all(s["Condition"] == {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}
                           for s in passing)
