"""The GitHub Actions deploy roles (deploy/oidc-roles.json): trust, policies, generator, cfn-lint, checkov.

Each stage's role trusts only `repo:<org>/<repo>:environment:<stage>` with the audience sts.amazonaws.com,
and holds exactly deploy/deployer_policy.py's policies for that stage: resolving the template's Fn::Sub
for an account and region gives the documents `python -m deploy.deployer_policy --stage S --account A
--region R` prints. The file is the generator's output, so a change to deployer_policy.py that is not
regenerated fails here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deploy import deployer_policy, oidc_roles

from helpers import PROJECT_DIR

TEMPLATE = json.loads(Path(oidc_roles.TEMPLATE_PATH).read_text(encoding="utf-8"))
RESOURCES = TEMPLATE["Resources"]
CFN_LINT = os.path.join(os.path.dirname(sys.executable), "cfn-lint")
CHECKOV = os.path.join(sys.prefix, "checkov", "bin", "checkov")  # its own venv inside .venv (make checkov)
ACCOUNT, REGION = "123456789012", "eu-west-1"
CLAIMS = "token.actions.githubusercontent.com"


def of_type(kind: str) -> dict[str, dict]:
    return {k: v for k, v in RESOURCES.items() if v["Type"] == kind}


def resolve(value, values: dict[str, str]):
    """Fn::Sub of the pseudo parameters, as CloudFormation would for `values`."""
    if isinstance(value, dict):
        if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
            text = value["Fn::Sub"]
            for name, replacement in values.items():
                text = text.replace("${" + name + "}", replacement)
            assert "${" not in text, text
            return text
        return {k: resolve(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, values) for v in value]
    return value


def test_the_template_is_the_generators_output():
    assert oidc_roles.main(["--check"]) == 0, "run `python -m deploy.oidc_roles`"


def test_check_fails_on_a_stale_file(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "oidc-roles.json"
    stale.write_text("{}\n", encoding="utf-8")
    monkeypatch.setattr(oidc_roles, "TEMPLATE_PATH", str(stale))
    assert oidc_roles.main(["--check"]) == 1
    assert "python -m deploy.oidc_roles" in capsys.readouterr().err


def test_the_check_flag_runs_as_a_command():
    done = subprocess.run([sys.executable, "-m", "deploy.oidc_roles", "--check"], cwd=PROJECT_DIR,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_one_oidc_provider_or_the_existing_one():
    (provider,) = of_type("AWS::IAM::OIDCProvider").values()
    assert provider["Condition"] == "CreateOidcProvider"
    assert provider["Properties"]["Url"] == f"https://{CLAIMS}"
    assert provider["Properties"]["ClientIdList"] == ["sts.amazonaws.com"]
    assert TEMPLATE["Conditions"]["CreateOidcProvider"] == {"Fn::Equals": [{"Ref": "ExistingOidcProviderArn"}, ""]}
    pattern = re.compile(TEMPLATE["Parameters"]["ExistingOidcProviderArn"]["AllowedPattern"])
    assert pattern.fullmatch("")
    assert pattern.fullmatch(f"arn:aws:iam::{ACCOUNT}:oidc-provider/{CLAIMS}")
    assert not pattern.fullmatch(f"arn:aws:iam::{ACCOUNT}:oidc-provider/accounts.google.com")


@pytest.mark.parametrize("stage", oidc_roles.STAGES)
def test_each_role_trusts_only_its_github_environment(stage):
    role = RESOURCES[f"{stage.capitalize()}DeployRole"]
    assert role["Condition"] == f"Create{stage.capitalize()}"
    props = role["Properties"]
    assert props["MaxSessionDuration"] == 3600
    assert props["RoleName"] == f"predictions-{stage}-github-deploy"
    (statement,) = props["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {"Federated": {"Fn::If": ["CreateOidcProvider", {"Ref": "GitHubOidcProvider"},
                                                               {"Ref": "ExistingOidcProviderArn"}]}}
    # Exact matches only (no StringLike, no wildcard): a job with `environment: <stage>` gets this subject.
    assert statement["Condition"] == {"StringEquals": {
        f"{CLAIMS}:aud": "sts.amazonaws.com",
        f"{CLAIMS}:sub": {"Fn::Sub": f"repo:${{GitHubOrg}}/${{GitHubRepo}}:environment:{stage}"}}}


def test_the_workflow_environments_are_the_roles_environments():
    deploy = yaml.safe_load((Path(PROJECT_DIR) / ".github" / "workflows" / "deploy.yml").read_text(encoding="utf-8"))
    environments = sorted(job["environment"] for job in deploy["jobs"].values() if "environment" in job)
    assert environments == sorted(oidc_roles.STAGES)


@pytest.mark.parametrize("stage", oidc_roles.STAGES)
def test_each_role_holds_exactly_the_stages_deployer_policies(stage):
    prefix = stage.capitalize()
    role_id = f"{prefix}DeployRole"
    policies = {k: v for k, v in of_type("AWS::IAM::ManagedPolicy").items() if v["Condition"] == f"Create{prefix}"}
    assert all(p["Properties"]["Roles"] == [{"Ref": role_id}] for p in policies.values())
    held = [resolve(p["Properties"]["PolicyDocument"], {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION})
            for p in policies.values()]
    values = deployer_policy.stage_values(stage, ACCOUNT, REGION)
    wanted = json.loads(deployer_policy.render(deployer_policy.text(), values))
    assert sorted(map(json.dumps, held)) == sorted(map(json.dumps, wanted.values()))
    for document in held:
        size = len(re.sub(r"\s", "", json.dumps(document)))
        assert size <= deployer_policy.MAX_POLICY_CHARS, size


def test_the_policies_follow_a_change_of_deployer_policy(monkeypatch):
    """A new statement in deployer_policy.py shows in the template, with the account and region as Fn::Sub."""
    real = deployer_policy.policies()
    first = next(iter(real))
    real[first]["Statement"].append(deployer_policy._allow(
        "NewThing", ["ssm:GetParameter"], "arn:aws:ssm:${Region}:${AccountId}:parameter/${AppName}/x"))
    monkeypatch.setattr(deployer_policy, "text", lambda: json.dumps(real, indent=2) + "\n")
    document = oidc_roles.stage_policies("prod")[first.replace("${AppName}", "predictions").replace("${Stage}", "prod")]
    (added,) = [s for s in document["Statement"] if s["Sid"] == "NewThing"]
    assert added["Resource"] == {"Fn::Sub": "arn:aws:ssm:${AWS::Region}:${AWS::AccountId}:parameter/predictions/x"}
    assert oidc_roles.render() != Path(oidc_roles.TEMPLATE_PATH).read_text(encoding="utf-8")


def test_an_unrendered_placeholder_is_refused():
    with pytest.raises(ValueError, match="not rendered"):
        oidc_roles._sub({"Resource": "arn:aws:s3:::${SomethingNew}"})


def test_a_deploy_role_cannot_change_itself_or_the_other_stage():
    """The deployer may manage the app's and the stage stack's roles: none of those patterns is a deploy role."""
    patterns = [deployer_policy.APP_ROLES, deployer_policy.STAGE_ROLES]
    for stage in oidc_roles.STAGES:
        values = deployer_policy.stage_values(stage, ACCOUNT, REGION)
        for other in oidc_roles.STAGES:
            arn = f"arn:aws:iam::{ACCOUNT}:role/{oidc_roles.role_name(other)}"
            for pattern in patterns:
                regex = re.escape(deployer_policy.render(pattern, values)).replace(r"\*", ".*")
                assert not re.fullmatch(regex, arn), (stage, arn, pattern)


def test_each_stage_can_be_created_alone():
    conditions = TEMPLATE["Conditions"]
    assert TEMPLATE["Parameters"]["Stages"]["AllowedValues"] == ["dev,prod", "dev", "prod"]
    assert conditions["CreateDev"] == {"Fn::Or": [{"Fn::Equals": [{"Ref": "Stages"}, "dev,prod"]},
                                                  {"Fn::Equals": [{"Ref": "Stages"}, "dev"]}]}
    assert conditions["CreateProd"] == {"Fn::Or": [{"Fn::Equals": [{"Ref": "Stages"}, "dev,prod"]},
                                                   {"Fn::Equals": [{"Ref": "Stages"}, "prod"]}]}
    for stage in oidc_roles.STAGES:
        output = TEMPLATE["Outputs"][f"{stage.capitalize()}DeployRoleArn"]
        assert output["Condition"] == f"Create{stage.capitalize()}"


@pytest.mark.slow
def test_cfn_lint_passes():
    done = subprocess.run([CFN_LINT, oidc_roles.TEMPLATE_PATH], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout


@pytest.mark.slow
def test_the_only_actions_cfn_lint_does_not_know_are_the_listed_ones(tmp_path):
    """Without the W3037 suppression, cfn-lint names exactly UNLISTED_ACTIONS: a typo would show."""
    bare = json.loads(json.dumps(TEMPLATE))
    for resource in bare["Resources"].values():
        assert resource.pop("Metadata", oidc_roles.CFN_LINT_METADATA) == oidc_roles.CFN_LINT_METADATA
    path = tmp_path / "bare.json"
    path.write_text(json.dumps(bare), encoding="utf-8")
    done = subprocess.run([CFN_LINT, "--format", "parseable", str(path)], capture_output=True, text=True, timeout=300)
    findings = re.findall(r":([EWI]\d{4}):([^\n]{0,200})", done.stdout)
    assert {rule for rule, _ in findings} <= {"W3037"}, findings
    unknown = {re.match(r"'([a-z0-9]+)' is not one of", message).group(1) for _, message in findings}
    assert unknown == {action.split(":")[1].lower() for action in oidc_roles.UNLISTED_ACTIONS}, unknown


@pytest.mark.slow
def test_checkov_passes():
    assert os.path.exists(CHECKOV), "checkov is missing: run `make checkov` (its own venv, see docs/deploy.md)"
    done = subprocess.run([CHECKOV, "-f", oidc_roles.TEMPLATE_PATH, "--framework", "cloudformation", "--skip-download",
                           "--output", "json"], capture_output=True, text=True, cwd=PROJECT_DIR, timeout=300)
    report = json.loads(done.stdout)
    report = report[0] if isinstance(report, list) else report
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0, failed
    assert summary["passed"] > 0 and summary["skipped"] == 0


def test_the_docs_command_creates_what_the_workflow_needs():
    doc = (Path(PROJECT_DIR) / "docs" / "pipeline.md").read_text(encoding="utf-8")
    assert "--template-file deploy/oidc-roles.json" in doc
    assert "CAPABILITY_NAMED_IAM" in doc
    for parameter in TEMPLATE["Parameters"]:
        assert parameter in doc, f"docs/pipeline.md does not explain the parameter {parameter}"
