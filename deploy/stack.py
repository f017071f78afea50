"""The stage's CloudFormation stack (deploy/stack.json): create or update it through a change set.

    python -m deploy.stack --stage prod              # create/update, wait, write the site function's settings
    python -m deploy.stack --stage prod --dry-run    # show the change set, change nothing
    python -m deploy.stack --stage prod --outputs    # print the stack's outputs as JSON

The stack is `predictions-<stage>-site`. Its parameters come from the stage: deploy/stages.json (domain,
certificate, alarm e-mail, thresholds), .chalice/config.json (whether the warmer and the site function
exist) and Chalice's record of the API (`.chalice/deployed/<stage>.json`: the Regional API's domain, empty
before the first `chalice deploy`). After the stack is up, the site function's SITE_BUCKET and
SITE_DISTRIBUTION_ID (.chalice/config.json) and its policy (.chalice/policy-site-<stage>.json) are
written from the stack's outputs, only when they differ, so `chalice deploy` then deploys the right ones.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from chalice_app.config.stage_file import CONFIG_PATH, StageError, load_config, stage_environment
from deploy.stack_template import TEMPLATE_PATH

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHALICE_DIR = os.path.join(PROJECT_DIR, ".chalice")
DEPLOYED_DIR = os.path.join(CHALICE_DIR, "deployed")
STAGES_PATH = os.path.join(PROJECT_DIR, "deploy", "stages.json")
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
DONE = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE")
FAILED = ("FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "UPDATE_ROLLBACK_COMPLETE", "DELETE_FAILED")
# deploy/stages.json key -> stack parameter
STAGE_PARAMETERS = {
    "domain_name": "DomainName",
    "hosted_zone_id": "HostedZoneId",
    "certificate_arn": "CertificateArn",
    "alarm_email": "AlarmEmail",
    "stale_batch_hours": "StaleBatchHours",
    "api_error_rate": "ApiErrorRate",
    "api_p99_latency_ms": "ApiP99LatencyMs",
    "cloudfront_error_rate_percent": "CloudFrontErrorRatePercent",
    "log_retention_days": "LogRetentionDays",
}

Progress = Callable[[str], None]


class StackError(Exception):
    """One clear line for the user."""


def stack_name(stage: str, app_name: str = "predictions") -> str:
    return f"{app_name}-{stage}-site"


def stage_settings(stage: str, path: str | None = None) -> dict[str, Any]:
    with open(path or STAGES_PATH, encoding="utf-8") as fh:
        stages = json.load(fh)
    unknown = set(stages.get(stage, {})) - set(STAGE_PARAMETERS)
    if unknown:
        raise StackError(f"deploy/stages.json, stage {stage}: unknown setting(s) {', '.join(sorted(unknown))}")
    return dict(stages.get(stage, {}))


def api_domain(stage: str, deployed_dir: str | None = None) -> str:
    """The Regional API's domain ({restapi_id}.execute-api.{region}.amazonaws.com) from Chalice's record;
    "" before the first `chalice deploy`."""
    try:
        with open(os.path.join(deployed_dir or DEPLOYED_DIR, f"{stage}.json"), encoding="utf-8") as fh:
            resources = json.load(fh).get("resources", [])
    except FileNotFoundError:
        return ""
    for resource in resources:
        if resource.get("resource_type") == "rest_api" and resource.get("rest_api_url"):
            return urlparse(resource["rest_api_url"]).netloc
    return ""


def _on(env: dict[str, str], name: str) -> str:
    return "true" if env.get(name, "").strip().lower() in ("true", "1", "yes", "on") else "false"


def parameters(stage: str, region: str, *, deployed_dir: str | None = None,
               stages_path: str | None = None) -> dict[str, str]:
    """Every parameter of the stage's stack, as strings (what CloudFormation takes)."""
    config = load_config()
    env = stage_environment(stage)
    settings = stage_settings(stage, stages_path)
    with open(TEMPLATE_PATH, encoding="utf-8") as fh:
        defaults = {k: str(v["Default"]) for k, v in json.load(fh)["Parameters"].items() if "Default" in v}
    # Every parameter, defaults included, so a re-run compares equal to what the stack holds.
    values = {**defaults, "AppName": config["app_name"], "Stage": stage, "ApiDomain": api_domain(stage, deployed_dir),
              "WarmerEnabled": _on(env, "WARMER_ENABLED"), "SiteFunctionEnabled": _on(env, "SITE_REBUILD_ENABLED")}
    for key, name in STAGE_PARAMETERS.items():
        if settings.get(key) not in (None, ""):
            values[name] = str(settings[key])
    if values.get("DomainName") and not values.get("CertificateArn") and \
            (not values.get("HostedZoneId") or region != "us-east-1"):
        raise StackError(f"stage {stage}: domain_name {values['DomainName']} needs certificate_arn (an ACM certificate "
                         "in us-east-1), or hosted_zone_id with the stack in us-east-1, where CloudFront takes "
                         "certificates from")
    return values


def _template_body() -> str:
    with open(TEMPLATE_PATH, encoding="utf-8") as fh:
        return json.dumps(json.load(fh), separators=(",", ":"))  # the same template, under the 51,200-byte limit


def _current(cfn: Any, name: str) -> dict | None:
    from botocore.exceptions import ClientError

    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return stacks[0] if stacks else None


def _wait_change_set(cfn: Any, name: str, change_set: str, delay: float) -> dict:
    while True:
        found = cfn.describe_change_set(StackName=name, ChangeSetName=change_set)
        if found["Status"] in ("CREATE_COMPLETE", "FAILED"):
            return found
        time.sleep(delay)


def _wait_stack(cfn: Any, name: str, delay: float, progress: Progress) -> dict:
    while True:
        stack = _current(cfn, name)
        status = stack["StackStatus"] if stack else "DELETE_COMPLETE"
        if status in DONE or status == "DELETE_COMPLETE":
            return stack or {}
        if status.endswith(FAILED):
            raise StackError(f"stack {name}: {status} ({(stack or {}).get('StackStatusReason', 'see its events')})")
        progress(f"stack {name}: {status}")
        time.sleep(delay)


def outputs_of(stack: dict) -> dict[str, str]:
    return {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}


def deploy_stack(cfn: Any, stage: str, params: dict[str, str], *, dry_run: bool = False,
                 progress: Progress = print, delay: float = 10.0, body: str | None = None) -> dict[str, Any]:
    """Create or update the stage's stack through a change set; {"changes": [...], "outputs": {...}}."""
    name = stack_name(stage, params.get("AppName", "predictions"))
    body = _template_body() if body is None else body
    stack = _current(cfn, name)
    kind = "UPDATE" if stack and stack["StackStatus"] != "REVIEW_IN_PROGRESS" else "CREATE"
    if stack and kind == "UPDATE" and not stack["StackStatus"].endswith("_COMPLETE"):
        raise StackError(f"stack {name} is {stack['StackStatus']}: wait for it, or fix it in the console")
    change_set = f"deploy-{int(time.time())}"
    cfn.create_change_set(StackName=name, ChangeSetName=change_set, ChangeSetType=kind, TemplateBody=body,
                          Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(params.items())],
                          Tags=[{"Key": "stage", "Value": stage}],
                          Description=f"make deploy STAGE={stage}")
    found = _wait_change_set(cfn, name, change_set, delay)
    changes = [f"{c['ResourceChange']['Action']} {c['ResourceChange']['LogicalResourceId']} "
               f"({c['ResourceChange']['ResourceType']})" for c in found.get("Changes", [])]
    reason = found.get("StatusReason", "") or ""
    unchanged = found["Status"] == "FAILED" and any(text in reason for text in NO_CHANGES)
    if kind == "UPDATE" and not unchanged and not changes:
        # Some emulators report no resource changes for a parameter change: compare what would be sent.
        old = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
        current = cfn.get_template(StackName=name)["TemplateBody"]
        current = json.loads(current) if isinstance(current, str) else current
        unchanged = old == params and current == json.loads(body)
    if found["Status"] == "FAILED" and not unchanged:
        raise StackError(f"change set of stack {name} failed: {reason}")
    if unchanged or dry_run:
        cfn.delete_change_set(StackName=name, ChangeSetName=change_set)
        if kind == "CREATE" and dry_run:
            cfn.delete_stack(StackName=name)  # the REVIEW_IN_PROGRESS placeholder a CREATE change set leaves
        progress(f"stack {name}: " + ("no changes" if unchanged else f"dry run, {kind.lower()} would do: "
                                      + ("; ".join(changes) or "nothing")))
        return {"changes": [] if unchanged else changes, "outputs": outputs_of(stack or {}), "executed": False}
    progress(f"stack {name}: {kind.lower()} ({len(changes)} change(s)): {'; '.join(changes)}")
    cfn.execute_change_set(StackName=name, ChangeSetName=change_set)
    done = _wait_stack(cfn, name, delay, progress)
    return {"changes": changes, "outputs": outputs_of(done), "executed": True}


def read_outputs(cfn: Any, stage: str) -> dict[str, str]:
    stack = _current(cfn, stack_name(stage))
    if not stack:
        raise StackError(f"stack {stack_name(stage)} not found: run `python -m deploy.stack --stage {stage}` "
                         "(or `make deploy`) first")
    return outputs_of(stack)


def delete_stack(cfn: Any, s3: Any, stage: str, *, dry_run: bool = False, progress: Progress = print,
                 delay: float = 10.0) -> list[str]:
    """Empty both buckets (every version and delete marker), then delete the stack."""
    name = stack_name(stage)
    stack = _current(cfn, name)
    if not stack:
        raise StackError(f"stack {name} not found: nothing to delete")
    outputs = outputs_of(stack)
    buckets = [b for b in (outputs.get("SiteBucketName"), outputs.get("LogBucketName")) if b]
    plan = [f"every object version in bucket {b}" for b in buckets] + [f"stack {name}"]
    if dry_run:
        for item in plan:
            progress(f"dry run: would delete {item}")
        return plan
    for bucket in buckets:
        empty_bucket(s3, bucket)
    cfn.delete_stack(StackName=name)
    _wait_stack(cfn, name, delay, progress)
    for item in plan:
        progress(f"deleted {item}")
    return plan


def empty_bucket(s3: Any, bucket: str) -> None:
    from botocore.exceptions import ClientError

    try:
        pages = list(s3.get_paginator("list_object_versions").paginate(Bucket=bucket))
    except ClientError as exc:
        if "NoSuchBucket" in str(exc):
            return
        raise
    for page in pages:
        items = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                 for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        for start in range(0, len(items), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": items[start:start + 1000], "Quiet": True})


# -- the site function's settings, from the outputs ----------------------------------------------

def site_function_policy(stage: str, app_name: str, predictions_bucket: str, prefix: str, site_bucket: str,
                         distribution_id: str) -> dict:
    """.chalice/policy-site-<stage>.json: read the predictions prefix, write the site, invalidate, log."""
    def allow(sid: str, actions: list[str], resources: list[str], **extra: Any) -> dict:
        return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources, **extra}

    return {"Version": "2012-10-17", "Statement": [
        allow("ReadBatchesAndPointer", ["s3:GetObject"], [f"arn:aws:s3:::{predictions_bucket}/{prefix}*"]),
        allow("ListDatesUnderThePrefixOnly", ["s3:ListBucket"], [f"arn:aws:s3:::{predictions_bucket}"],
              Condition={"StringLike": {"s3:prefix": [prefix, f"{prefix}*"]}}),
        allow("ListTheSiteBucket", ["s3:ListBucket"], [f"arn:aws:s3:::{site_bucket}"]),
        allow("WriteTheSiteBucketOnly", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
              [f"arn:aws:s3:::{site_bucket}/*"]),
        allow("InvalidateTheStageDistributionOnly", ["cloudfront:CreateInvalidation"],
              [f"arn:aws:cloudfront::*:distribution/{distribution_id}"]),
        allow("WriteOwnLogs", ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
              [f"arn:aws:logs:*:*:log-group:/aws/lambda/{app_name}-{stage}-site:*"]),
    ]}


def _write_json(path: str, data: dict) -> bool:
    text = json.dumps(data, indent=2) + "\n"
    try:
        with open(path, encoding="utf-8") as fh:
            if fh.read() == text:
                return False
    except FileNotFoundError:
        pass
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return True


def write_site_function_settings(stage: str, outputs: dict[str, str], *, config_path: str | None = None,
                                 chalice_dir: str | None = None) -> list[str]:
    """Point the site function (config and policy) at the stack's bucket and distribution; the files changed."""
    config_path, chalice_dir = config_path or CONFIG_PATH, chalice_dir or CHALICE_DIR
    config = load_config(config_path)
    stage_cfg = config["stages"][stage]
    function = stage_cfg.get("lambda_functions", {}).get("site")
    if not function:
        return []
    bucket, dist = outputs.get("SiteBucketName"), outputs.get("DistributionId")
    if not bucket or not dist:
        raise StackError(f"stack {stack_name(stage)} has no SiteBucketName/DistributionId output")
    env = {**config.get("environment_variables", {}), **stage_cfg.get("environment_variables", {})}
    changed = []
    function.setdefault("environment_variables", {}).update(SITE_BUCKET=bucket, SITE_DISTRIBUTION_ID=dist)
    if _write_json(config_path, config):
        changed.append(os.path.relpath(config_path, PROJECT_DIR))
    policy_path = os.path.join(chalice_dir, function["iam_policy_file"])
    policy = site_function_policy(stage, config["app_name"], env["PREDICTIONS_BUCKET"], env["PREDICTIONS_PREFIX"],
                                  bucket, dist)
    if _write_json(policy_path, policy):
        changed.append(os.path.relpath(policy_path, PROJECT_DIR))
    return changed


# -- command line ------------------------------------------------------------------------------

def _clients() -> tuple[Any, Any, str]:
    import boto3

    session = boto3.session.Session()
    if not session.region_name:
        raise StackError("no region: set AWS_DEFAULT_REGION")
    return session.client("cloudformation"), session.client("s3"), session.region_name


def main(argv: list[str] | None = None, clients: Callable[[], tuple[Any, Any, str]] = _clients) -> int:
    p = argparse.ArgumentParser(prog="python -m deploy.stack", description="Create or update a stage's stack.")
    p.add_argument("--stage", required=True)
    p.add_argument("--dry-run", action="store_true", help="show the change set and change nothing")
    p.add_argument("--outputs", action="store_true", help="print the stack's outputs as JSON")
    p.add_argument("--delete", action="store_true", help="empty the stack's buckets and delete the stack")
    args = p.parse_args(argv)
    try:
        cfn, s3, region = clients()
        if args.outputs:
            print(json.dumps(read_outputs(cfn, args.stage), indent=2, sort_keys=True))
            return 0
        if args.delete:
            delete_stack(cfn, s3, args.stage, dry_run=args.dry_run)
            return 0
        result = deploy_stack(cfn, args.stage, parameters(args.stage, region), dry_run=args.dry_run)
        if not args.dry_run:
            for path in write_site_function_settings(args.stage, result["outputs"]):
                print(f"wrote {path} from the stack's outputs")
    except (StackError, StageError) as exc:
        print(f"deploy.stack: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if not type(exc).__module__.startswith(("botocore", "boto3")):
            raise
        print(f"deploy.stack: error: AWS: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
