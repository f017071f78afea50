"""The GitHub Actions deploy roles (deploy/oidc-roles.json): GitHub's OIDC provider and one role per stage.

    python -m deploy.oidc_roles            # rewrite deploy/oidc-roles.json
    python -m deploy.oidc_roles --check    # exit 1 when deploy/oidc-roles.json is stale (tests do this too)

Created once per account by a person (docs/pipeline.md): `aws cloudformation deploy --template-file
deploy/oidc-roles.json --stack-name github-oidc-roles --capabilities CAPABILITY_NAMED_IAM
--parameter-overrides GitHubOrg=ORG GitHubRepo=REPO`. The workflow's deploy jobs then assume a role with
the job's OIDC token, no AWS key is stored anywhere.

Each role trusts exactly one subject: `repo:<org>/<repo>:environment:<stage>`, the `sub` claim GitHub
puts in the token of a job that declares `environment: <stage>` (a job with an environment gets that
subject, not `ref:refs/heads/main`), with the audience `sts.amazonaws.com`. So only a job of that
repository running in that GitHub environment (where prod's required reviewers approve) can assume it.

Each role gets the stage's deployer policies, the documents of deploy/deployer_policy.py rendered for
the stage: its placeholders become the stage's names from .chalice/config.json, and the account and
region become `Fn::Sub` of AWS::AccountId and AWS::Region (the stack's own). When deployer_policy.py
changes, `python -m deploy.oidc_roles` follows; tests/test_oidc_roles.py fails while this file is stale.

There is one GitHub OIDC provider per account: `ExistingOidcProviderArn` reuses one that exists already
(the stack then creates none). `Stages` creates the roles of one stage only, for a stage in an account of
its own (docs/deploy.md advises that).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

from deploy import deployer_policy
from deploy.generated_file import write_or_check

TEMPLATE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "oidc-roles.json")
STAGES = ("dev", "prod")
ISSUER = "token.actions.githubusercontent.com"
AUDIENCE = "sts.amazonaws.com"
MAX_SESSION_SECONDS = 3600
# Fn::Sub would read any other ${...} as a variable: only the pseudo parameters may be left in a policy.
PSEUDO = {"AccountId": "${AWS::AccountId}", "Region": "${AWS::Region}"}
LEFTOVER = re.compile(r"\$\{(?!AWS::AccountId\}|AWS::Region\})[^}]*\}")
# Actions of deploy/deployer_policy.py that cfn-lint's list of IAM actions lacks (W3037). They come from
# CloudFormation's resource schemas (the handler permissions AWS declares); IAM accepts and ignores an
# action it does not know, so they grant nothing more. tests/test_oidc_roles.py runs cfn-lint without the
# suppression and fails on any other unknown action: a typo in deployer_policy.py still shows.
UNLISTED_ACTIONS = {
    "s3:DeleteBucketEncryption": "AWS::S3::Bucket's delete handler names it (IAM checks s3:PutEncryptionConfiguration)",
    "s3:DeleteBucketLifecycle": "AWS::S3::Bucket's update handler names it (IAM checks s3:PutLifecycleConfiguration)",
    "cloudfront:CreateDistributionWithTags": "AWS::CloudFront::Distribution's create handler names it",
}
CFN_LINT_METADATA = {"cfn-lint": {"config": {"ignore_checks": ["W3037"]}}}


def ref(name: str) -> dict:
    return {"Ref": name}


def subject(stage: str) -> dict:
    """The only `sub` claim a stage's role accepts: a job of the repository in the stage's GitHub environment."""
    return {"Fn::Sub": f"repo:${{GitHubOrg}}/${{GitHubRepo}}:environment:{stage}"}


def role_name(stage: str) -> str:
    return f"{app_name()}-{stage}-github-deploy"


def app_name() -> str:
    from chalice_app.config.stage_file import load_config

    return load_config()["app_name"]


def _camel(text: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", text) if part)


def _sub(value: Any) -> Any:
    """Strings naming the account or region become Fn::Sub; nothing else may hold a ${...}."""
    if isinstance(value, dict):
        return {k: _sub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_sub(v) for v in value]
    if isinstance(value, str) and "${" in value:
        leftover = LEFTOVER.findall(value)
        if leftover:
            raise ValueError(f"deployer policy placeholders not rendered: {leftover} in {value!r}")
        return {"Fn::Sub": value}
    return value


def stage_policies(stage: str) -> dict[str, dict]:
    """deploy/deployer_policy.py's documents for `stage`, the account and region left to CloudFormation."""
    values = deployer_policy.stage_values(stage, PSEUDO["AccountId"], PSEUDO["Region"])
    rendered = json.loads(deployer_policy.render(deployer_policy.text(), values))
    return {name: _sub(document) for name, document in rendered.items()}


def stage_resources(stage: str) -> dict[str, dict]:
    prefix = _camel(stage)
    condition = f"Create{prefix}"
    role_id = f"{prefix}DeployRole"
    claims = f"{ISSUER}:"
    resources: dict[str, dict] = {
        role_id: {
            "Type": "AWS::IAM::Role",
            "Condition": condition,
            "Properties": {
                "RoleName": role_name(stage),
                "Description": f"make deploy STAGE={stage} from GitHub Actions: jobs of GitHubOrg/GitHubRepo in "
                               f"the GitHub environment {stage} only (generated by deploy/oidc_roles.py)",
                "MaxSessionDuration": MAX_SESSION_SECONDS,
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Sid": f"GitHubActionsEnvironment{prefix}",
                        "Effect": "Allow",
                        "Principal": {"Federated": {"Fn::If": ["CreateOidcProvider", ref("GitHubOidcProvider"),
                                                               ref("ExistingOidcProviderArn")]}},
                        "Action": "sts:AssumeRoleWithWebIdentity",
                        "Condition": {"StringEquals": {f"{claims}aud": AUDIENCE, f"{claims}sub": subject(stage)}},
                    }],
                },
            },
        },
    }
    app = app_name()
    for name, document in stage_policies(stage).items():
        kind = _camel(name.removeprefix(f"{app}-{stage}-"))
        resources[f"{prefix}{kind}Policy"] = {
            "Type": "AWS::IAM::ManagedPolicy",
            "Condition": condition,
            # W3037: only UNLISTED_ACTIONS (tests/test_oidc_roles.py proves it on every run).
            "Metadata": CFN_LINT_METADATA,
            "Properties": {
                "Description": f"{name}: deploy/deployer_policy.py for stage {stage}",
                "PolicyDocument": document,
                "Roles": [ref(role_id)],
            },
        }
    return resources


def template() -> dict:
    stage_choices = [",".join(STAGES), *STAGES]
    conditions: dict[str, Any] = {
        "CreateOidcProvider": {"Fn::Equals": [ref("ExistingOidcProviderArn"), ""]},
    }
    resources: dict[str, Any] = {
        "GitHubOidcProvider": {
            "Type": "AWS::IAM::OIDCProvider",
            "Condition": "CreateOidcProvider",
            "Properties": {"Url": f"https://{ISSUER}", "ClientIdList": [AUDIENCE]},
        },
    }
    outputs: dict[str, Any] = {
        "OidcProviderArn": {"Value": {"Fn::If": ["CreateOidcProvider", ref("GitHubOidcProvider"),
                                                 ref("ExistingOidcProviderArn")]}},
    }
    for stage in STAGES:
        prefix = _camel(stage)
        with_stage = [choice for choice in stage_choices if stage in choice.split(",")]
        conditions[f"Create{prefix}"] = {"Fn::Or": [{"Fn::Equals": [ref("Stages"), c]} for c in with_stage]}
        resources.update(stage_resources(stage))
        outputs[f"{prefix}DeployRoleArn"] = {
            "Condition": f"Create{prefix}",
            "Description": f"the GitHub environment {stage}'s variable AWS_DEPLOY_ROLE_ARN",
            "Value": {"Fn::GetAtt": [f"{prefix}DeployRole", "Arn"]},
        }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "predictions: GitHub Actions OIDC deploy roles, one per stage "
                       "(generated by deploy/oidc_roles.py)",
        "Parameters": {
            "GitHubOrg": {"Type": "String", "AllowedPattern": "^[A-Za-z0-9][A-Za-z0-9-]{0,38}$",
                          "Description": "the GitHub owner (organisation or user) of the repository"},
            "GitHubRepo": {"Type": "String", "AllowedPattern": "^[A-Za-z0-9._-]{1,100}$",
                           "Description": "the repository's name"},
            "ExistingOidcProviderArn": {
                "Type": "String", "Default": "", "AllowedPattern": "^(arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/"
                                                                    f"{re.escape(ISSUER)})?$",
                "Description": "the account's GitHub OIDC provider when it exists already (one per account); "
                               "empty: this stack creates it"},
            "Stages": {"Type": "String", "Default": stage_choices[0], "AllowedValues": stage_choices,
                       "Description": "the stages whose deploy roles this account gets"},
        },
        "Conditions": conditions,
        "Resources": resources,
        "Outputs": outputs,
    }


def render() -> str:
    return json.dumps(template(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deploy.oidc_roles", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true",
                   help="exit 1 when deploy/oidc-roles.json is not the generator's output")
    args = p.parse_args(argv)
    text = render()
    return write_or_check(TEMPLATE_PATH, text, "deploy.oidc_roles", check=args.check)


if __name__ == "__main__":
    sys.exit(main())
