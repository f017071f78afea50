"""`chalice package --stage S`: the site function, its EventBridge rule on the pointer and its own role."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from chalice_app.config.stage_file import load_config

from helpers import PROJECT_DIR

pytestmark = pytest.mark.slow
CONFIG = load_config()
CHALICE_DIR = os.path.join(PROJECT_DIR, ".chalice")
STAGES = ("local", "dev", "prod")


def policy(name: str) -> list[dict]:
    with open(os.path.join(CHALICE_DIR, name), encoding="utf-8") as fh:
        return json.load(fh)["Statement"]


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    out = tmp_path_factory.mktemp("site-package")
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    env.pop("SITE_REBUILD_ENABLED", None)  # only config.json decides
    chalice = os.path.join(os.path.dirname(sys.executable), "chalice")
    for stage in STAGES:
        subprocess.run([chalice, "package", "--stage", stage, str(out / stage)], cwd=PROJECT_DIR, env=env,
                       check=True, capture_output=True, timeout=120)
    return out


def resources(packages, stage: str) -> dict:
    return json.loads((packages / stage / "sam.json").read_text())["Resources"]


@pytest.mark.parametrize("stage", STAGES)
def test_the_rule_matches_the_stage_pointer_batches_and_reports_where_the_site_function_is_on(packages, stage):
    res = resources(packages, stage)
    env = CONFIG["stages"][stage]["environment_variables"]
    if env.get("SITE_REBUILD_ENABLED") != "true":
        assert "Site" not in res and "SiteRole" not in res
        return
    site = res["Site"]["Properties"]
    assert site["Handler"] == "chalice_app.site_trigger.rebuild_site"
    (rule,) = site["Events"].values()
    assert rule["Type"] == "CloudWatchEvent"
    assert rule["Properties"]["Pattern"] == {
        "source": ["aws.s3"], "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [env["PREDICTIONS_BUCKET"]]},
                   "object": {"key": [env["PREDICTIONS_PREFIX"] + "latest.json",
                                      {"wildcard": env["PREDICTIONS_PREFIX"] + "*/predictions.json"},
                                      {"wildcard": env["PREDICTIONS_PREFIX"] + "*/report.json"}]}}}
    function = CONFIG["stages"][stage]["lambda_functions"]["site"]
    assert site["ReservedConcurrentExecutions"] == 1  # one rebuild at a time per stage
    assert site["Timeout"] == function["lambda_timeout"] and site["MemorySize"] == function["lambda_memory_size"]
    variables = site["Environment"]["Variables"]
    for name in ("SITE_BUCKET", "SITE_DISTRIBUTION_ID", "SITE_DAYS"):
        assert variables[name] == function["environment_variables"][name]
    # Its own role, from its own policy file; the API's role gains nothing and sees none of its settings.
    assert site["Role"] == {"Fn::GetAtt": ["SiteRole", "Arn"]}
    role = res["SiteRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert role == policy(f"policy-site-{stage}.json")
    api_role = res["ApiHandlerRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert api_role == policy(f"policy-{stage}.json")
    assert "SITE_BUCKET" not in res["APIHandler"]["Properties"]["Environment"]["Variables"]
