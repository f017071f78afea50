"""Stage configuration and the IAM policy files: least privilege, consistent with the stages."""

from __future__ import annotations

import glob
import json
import os

import pytest

from chalice_app.config.settings import SettingsError, load_settings
from chalice_app.config.stage_file import StageError, load_config, stage_environment

from helpers import PROJECT_DIR

CONFIG = load_config()
STAGES = ("local", "dev", "prod")
POLICY_FILES = sorted(glob.glob(os.path.join(PROJECT_DIR, ".chalice", "policy-*.json")))


def statements(path: str) -> list[dict]:
    with open(path) as fh:
        return json.load(fh)["Statement"]


def test_stages_and_api_gateway_stage():
    assert CONFIG["app_name"] == "predictions"
    assert CONFIG["api_gateway_stage"] == "api"
    assert CONFIG["autogen_policy"] is False
    assert set(STAGES) <= set(CONFIG["stages"])


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_names_its_bucket_and_policy(stage):
    env = stage_environment(stage)
    assert env["PREDICTIONS_BUCKET"]
    assert CONFIG["stages"][stage]["iam_policy_file"] == f"policy-{stage}.json"
    assert load_settings(env).bucket == env["PREDICTIONS_BUCKET"]


@pytest.mark.parametrize("stage", STAGES)
def test_api_policy_reads_only_the_stage_prefix(stage):
    env = stage_environment(stage)
    bucket, prefix = env["PREDICTIONS_BUCKET"], env.get("PREDICTIONS_PREFIX", "predictions/")
    by_action = {a: s for s in statements(os.path.join(PROJECT_DIR, ".chalice", f"policy-{stage}.json"))
                 for a in s["Action"]}
    assert by_action["s3:GetObject"]["Resource"] == [f"arn:aws:s3:::{bucket}/{prefix}*"]
    assert by_action["s3:ListBucket"]["Resource"] == [f"arn:aws:s3:::{bucket}"]
    assert by_action["s3:ListBucket"]["Condition"] == {"StringLike": {"s3:prefix": [prefix, prefix + "*"]}}
    assert not {a for a in by_action if a.startswith("s3:")} - {"s3:GetObject", "s3:ListBucket"}


@pytest.mark.parametrize("path", POLICY_FILES, ids=os.path.basename)
def test_no_policy_grants_a_wildcard_action_or_resource(path):
    for statement in statements(path):
        assert statement["Effect"] == "Allow"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert all("*" not in action for action in actions), actions
        assert all(resource != "*" and not resource.endswith(":::*") for resource in resources), resources


def test_unknown_stage_is_a_clear_error():
    with pytest.raises(StageError, match="unknown stage 'qa'"):
        stage_environment("qa")


def test_only_the_bucket_is_required_everything_else_has_defaults():
    settings = load_settings({"PREDICTIONS_BUCKET": "b"})
    assert settings.bucket == "b"
    assert settings.prefix == "predictions/"
    assert settings.s3_read_timeout <= 5 and settings.s3_max_attempts <= 3


def test_a_bad_setting_names_the_variable():
    with pytest.raises(SettingsError, match="S3_READ_TIMEOUT_SECONDS='soon'"):
        load_settings({"PREDICTIONS_BUCKET": "b", "S3_READ_TIMEOUT_SECONDS": "soon"})


def test_prefix_is_normalised():
    assert load_settings({"PREDICTIONS_PREFIX": "/preds"}).prefix == "preds/"


@pytest.mark.parametrize("stage", sorted(CONFIG["stages"]))
def test_every_stage_locks_its_api_to_cloudfront_and_may_read_only_its_own_secret(stage):
    """The origin check is on in every stage (docs/protection.md): ORIGIN_SECRET_PARAMETER names the stage's
    own parameter, outside CONFIG_SSM_PATH, and the API's role may read that one parameter and no other."""
    name = stage_environment(stage).get("ORIGIN_SECRET_PARAMETER", "")
    assert name == f"/predictions/origin-secrets/{stage}", f"stage {stage} must set ORIGIN_SECRET_PARAMETER"
    assert not name.startswith(stage_environment(stage).get("CONFIG_SSM_PATH") or "\0")
    from deploy.origin_secret import policy_files

    # The API's policy, and the pre-traffic hook's where the stage has one (it sends the header itself).
    for policy_file in policy_files(stage):
        policy = statements(os.path.join(PROJECT_DIR, ".chalice", policy_file))
        reads = [s for s in policy if "ssm:GetParameter" in s["Action"]]
        assert len(reads) == 1 and reads[0]["Action"] == ["ssm:GetParameter"], policy_file
        assert all(r.startswith("arn:aws:ssm:") and r.endswith(f":parameter{name}") for r in reads[0]["Resource"])
        assert not [a for s in policy for a in s["Action"] if a.startswith("kms:")]  # aws/ssm needs none
