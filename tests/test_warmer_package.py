"""`chalice package --stage S`: the warmer's schedule, function and role per stage, and its policies."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import zipfile

import pytest

from chalice_app.config.stage_file import load_config

from helpers import PROJECT_DIR

CONFIG = load_config()
CHALICE_DIR = os.path.join(PROJECT_DIR, ".chalice")
EXPECTED = {"local": None, "dev": ("rate(15 minutes)", "1"), "prod": ("rate(5 minutes)", "3")}


def policy(name: str) -> list[dict]:
    with open(os.path.join(CHALICE_DIR, name), encoding="utf-8") as fh:
        return json.load(fh)["Statement"]


# -- the policy files (fast) ----------------------------------------------------------------------


@pytest.mark.parametrize("stage", sorted(EXPECTED))
def test_the_warmer_policy_invokes_only_its_stage_api_and_writes_only_its_logs(stage):
    function = CONFIG["stages"][stage]["lambda_functions"]["warmer"]
    assert function["iam_policy_file"] == f"policy-warmer-{stage}.json"
    target = function["environment_variables"]["WARM_TARGET_FUNCTION"]
    # The bare function (chalice deploy); the app stack's merge template qualifies it with the alias live,
    # which the policy allows too (tests/test_canary.py).
    assert target == f"{CONFIG['app_name']}-{stage}"
    by_action = {a: s for s in policy(function["iam_policy_file"]) for a in s["Action"]}
    assert set(by_action) == {"lambda:InvokeFunction", "logs:CreateLogGroup", "logs:CreateLogStream",
                              "logs:PutLogEvents"}
    alias = [f"arn:aws:lambda:*:*:function:{target}:live"] if stage in ("dev", "prod") else []
    assert by_action["lambda:InvokeFunction"]["Resource"] == [f"arn:aws:lambda:*:*:function:{target}", *alias]
    assert by_action["logs:PutLogEvents"]["Resource"] == [
        f"arn:aws:logs:*:*:log-group:/aws/lambda/{CONFIG['app_name']}-{stage}-warmer:*"]


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(CHALICE_DIR, "policy-*.json"))),
                         ids=os.path.basename)
def test_only_the_warmer_and_the_pre_traffic_hook_policies_mention_lambda(path):
    actions = {a for s in policy(os.path.basename(path)) for a in s["Action"]}
    invokes = os.path.basename(path).startswith(("policy-warmer-", "policy-pretraffic-"))
    assert bool({a for a in actions if a.startswith("lambda:")}) == invokes


# -- chalice package (slow) -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    out = tmp_path_factory.mktemp("warmer-package")
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    for name in ("WARMER_ENABLED", "WARMER_RATE_MINUTES"):  # only config.json may decide
        env.pop(name, None)
    chalice = os.path.join(os.path.dirname(sys.executable), "chalice")
    for stage in EXPECTED:
        subprocess.run([chalice, "package", "--stage", stage, str(out / stage)], cwd=PROJECT_DIR, env=env,
                       check=True, capture_output=True, timeout=120)
    return out


def template(packages, stage: str) -> dict:
    return json.loads((packages / stage / "sam.json").read_text())["Resources"]


def schedules(resources: dict) -> list[str]:
    return [event["Properties"]["Schedule"] for r in resources.values()
            for event in r.get("Properties", {}).get("Events", {}).values() if event["Type"] == "Schedule"]


@pytest.mark.slow
@pytest.mark.parametrize("stage", sorted(EXPECTED))
def test_each_stage_gets_its_schedule_or_none(packages, stage):
    resources = template(packages, stage)
    expected = EXPECTED[stage]
    if expected is None:
        assert schedules(resources) == []
        assert "Warmer" not in resources and "WarmerRole" not in resources
        return
    rate, concurrency = expected
    assert schedules(resources) == [rate]
    warmer = resources["Warmer"]["Properties"]
    assert warmer["Handler"] == "chalice_app.warming.scheduled.warm_api"
    assert warmer["MemorySize"] == 128 and warmer["Timeout"] == 30
    variables = warmer["Environment"]["Variables"]
    assert variables["WARM_TARGET_FUNCTION"] == f"predictions-{stage}"  # plain chalice package: no alias
    assert variables["WARMER_CONCURRENCY"] == concurrency
    assert warmer["Role"] == {"Fn::GetAtt": ["WarmerRole", "Arn"]}


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_warmer_role_is_its_own_policy_file_and_the_api_role_gains_nothing(packages, stage):
    resources = template(packages, stage)
    warmer_role = resources["WarmerRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    assert warmer_role["Statement"] == policy(f"policy-warmer-{stage}.json")
    api_role = resources["ApiHandlerRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    assert api_role["Statement"] == policy(f"policy-{stage}.json")
    # Only the warmer's own knobs reach the API function; what it invokes and how often do not.
    api_variables = resources["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert "WARM_TARGET_FUNCTION" not in api_variables and "WARMER_CONCURRENCY" not in api_variables


PROBE = r"""
import json, sys
import app
api_modules = sorted(m for m in sys.modules if m.split(".")[0] in ("boto3", "botocore"))
import chalice_app.warming.scheduled as warmer
print(json.dumps({"api_modules": api_modules, "handler": type(warmer.warm_api).__name__,
                  "sources": [s.schedule_expression.to_string() for s in app.app.event_sources
                              if hasattr(s, "schedule_expression")]}))  # the site rule is not a schedule
"""


@pytest.mark.slow
def test_the_packaged_handler_exists_and_the_api_import_stays_lean(packages, tmp_path):
    with zipfile.ZipFile(packages / "prod" / "deployment.zip") as zf:
        zf.extractall(tmp_path)
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path),
           **{k: v for k, v in CONFIG["stages"]["prod"]["environment_variables"].items()}}
    # As Lambda runs it: only the zip on PYTHONPATH, no site-packages, no cwd.
    done = subprocess.run([sys.executable, "-s", "-S", "-P", "-c", PROBE], env=env, cwd="/",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["sources"] == ["rate(5 minutes)"]
    assert out["handler"] == "EventSourceHandler"  # Lambda calls it with (event, context)
    assert out["api_modules"] == []  # registering the warmer created no client and imported no SDK


@pytest.mark.slow
def test_the_prod_template_passes_cfn_lint(packages):
    cfn_lint = os.path.join(os.path.dirname(sys.executable), "cfn-lint")
    done = subprocess.run([cfn_lint, str(packages / "prod" / "sam.json")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
