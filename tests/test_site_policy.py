"""The site function's policy per stage: read the predictions prefix, write the site bucket, invalidate
the stage's distribution, write its own logs, and nothing else."""

from __future__ import annotations

import json
import os

import pytest

from chalice_app.config.stage_file import load_config

from helpers import PROJECT_DIR

CONFIG = load_config()
ON = [s for s, c in CONFIG["stages"].items() if c["environment_variables"].get("SITE_REBUILD_ENABLED") == "true"]


@pytest.mark.parametrize("stage", ON)
def test_least_privilege(stage):
    stage_cfg = CONFIG["stages"][stage]
    function = stage_cfg["lambda_functions"]["site"]
    assert function["iam_policy_file"] == f"policy-site-{stage}.json"
    with open(os.path.join(PROJECT_DIR, ".chalice", function["iam_policy_file"]), encoding="utf-8") as fh:
        statements = json.load(fh)["Statement"]
    env = stage_cfg["environment_variables"]
    bucket, prefix = env["PREDICTIONS_BUCKET"], env["PREDICTIONS_PREFIX"]
    site, dist = function["environment_variables"]["SITE_BUCKET"], function["environment_variables"][
        "SITE_DISTRIBUTION_ID"]
    grants = sorted((a, r) for s in statements for a in s["Action"] for r in s["Resource"])
    assert grants == sorted([
        ("s3:GetObject", f"arn:aws:s3:::{bucket}/{prefix}*"),
        ("s3:ListBucket", f"arn:aws:s3:::{bucket}"),
        ("s3:ListBucket", f"arn:aws:s3:::{site}"),
        ("s3:GetObject", f"arn:aws:s3:::{site}/*"),
        ("s3:PutObject", f"arn:aws:s3:::{site}/*"),
        ("s3:DeleteObject", f"arn:aws:s3:::{site}/*"),
        ("cloudfront:CreateInvalidation", f"arn:aws:cloudfront::*:distribution/{dist}"),
        *[(a, f"arn:aws:logs:*:*:log-group:/aws/lambda/{CONFIG['app_name']}-{stage}-site:*")
          for a in ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")],
    ])
    listing = next(s for s in statements if s["Resource"] == [f"arn:aws:s3:::{bucket}"])
    assert listing["Condition"] == {"StringLike": {"s3:prefix": [prefix, prefix + "*"]}}
    assert function["reserved_concurrency"] == 1
