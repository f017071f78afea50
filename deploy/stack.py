"""The stage's CloudFormation stacks: create or update them through change sets, recover, report.

    python -m deploy.stack --stage prod              # create/update, wait, write the site function's settings
    python -m deploy.stack --stage prod --dry-run    # show the change set, change nothing
    python -m deploy.stack --stage prod --outputs    # print the stack's outputs as JSON

The stage stack is `predictions-<stage>-site` (deploy/stack.json). Its parameters come from the stage:
deploy/stages.json (domain, certificate, alarm e-mail, thresholds), .chalice/config.json (whether the warmer
and the site function exist) and the app stack `predictions-<stage>-app` (deploy/app_stack.py): the Regional
API's domain is read from that stack's outputs in CloudFormation, where every operator finds it, never from
a file on one machine; the origin secret CloudFront sends the API (OriginSecret, NoEcho) from Parameter
Store (deploy/origin_secret.py; created there when missing). After the stack is up, the site function's
SITE_BUCKET and SITE_DISTRIBUTION_ID (.chalice/config.json) and its policy (.chalice/policy-site-<stage>.json)
are written from the stack's outputs, only when they differ, so the app stack then deploys the right ones.

`run_change_set` is the one change-set flow both stacks use: it recovers a stack whose first creation
failed (ROLLBACK_COMPLETE: deleted and created again) and stops on any other failed or in-progress state
with the stack's own failure reasons.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chalice_app.config.stage_file import CONFIG_PATH, StageError, load_config, stage_environment
from deploy.command_errors import report
from deploy.stack_template import TEMPLATE_PATH

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHALICE_DIR = os.path.join(PROJECT_DIR, ".chalice")
STAGES_PATH = os.path.join(PROJECT_DIR, "deploy", "stages.json")
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
DONE = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE")
FAILED = ("FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "UPDATE_ROLLBACK_COMPLETE", "DELETE_FAILED")
# States a stack can be updated from: the last operation finished (an update that failed and was rolled
# back cleanly leaves the previous, working stack).
UPDATABLE = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE",
             "IMPORT_ROLLBACK_COMPLETE")
TEMPLATE_BODY_LIMIT = 51_200  # bytes CloudFormation takes inline; larger templates go through S3
REASONS_SHOWN = 5
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
    # Abuse and cost protection (docs/protection.md): the web ACL is off by default, the budget always on.
    "waf_enabled": "WafEnabled",
    "waf_rate_limit": "WafRateLimit",
    "monthly_budget_usd": "MonthlyBudgetUsd",
}

Progress = Callable[[str], None]


class StackError(Exception):
    """One clear line (or a few: a stack's failure reasons) for the user."""


def stack_name(stage: str, app_name: str = "predictions") -> str:
    return f"{app_name}-{stage}-site"


def app_stack_name(stage: str, app_name: str = "predictions") -> str:
    """The Chalice app's stack (deploy/app_stack.py): API, warmer, site function."""
    return f"{app_name}-{stage}-app"


def stage_settings(stage: str, path: str | None = None) -> dict[str, Any]:
    with open(path or STAGES_PATH, encoding="utf-8") as fh:
        stages = json.load(fh)
    unknown = set(stages.get(stage, {})) - set(STAGE_PARAMETERS)
    if unknown:
        raise StackError(f"deploy/stages.json, stage {stage}: unknown setting(s) {', '.join(sorted(unknown))}")
    return dict(stages.get(stage, {}))


def api_domain_from_outputs(outputs: dict[str, str], region: str) -> str:
    """The Regional API's domain from the app stack's `RestAPIId` output; "" without one."""
    api_id = outputs.get("RestAPIId", "")
    return f"{api_id}.execute-api.{region}.amazonaws.com" if api_id else ""


def api_domain(cfn: Any, stage: str, region: str, *, app_name: str = "predictions",
               progress: Progress = print) -> str:
    """The ApiDomain the stage stack gets: the app stack's API; "" only while neither stack knows one.

    The /api/* origin is never removed: when the stage stack already routes /api/* somewhere and the app
    stack does not exist (a stage deployed by `chalice deploy` before the app stack existed), the current
    domain is kept until the app stack gives its own; when the app stack exists but cannot be read or has
    no API output, the deploy stops rather than send an empty domain.
    """
    from botocore.exceptions import ClientError

    name = app_stack_name(stage, app_name)
    unreadable = ""
    try:
        app = _current(cfn, name)
    except ClientError as exc:
        app, unreadable = None, f"cannot be read ({exc})"
    domain = api_domain_from_outputs(outputs_of(app), region) if app else ""
    if domain:
        return domain
    if app and not unreadable:
        unreadable = f"is {app['StackStatus']} and has no RestAPIId output"
    site = _current(cfn, stack_name(stage, app_name))
    current = {p["ParameterKey"]: p.get("ParameterValue", "") for p in (site or {}).get("Parameters", [])}
    routed = current.get("ApiDomain", "")
    if not routed:
        return ""
    if unreadable:
        raise StackError(f"stack {name} {unreadable}, while stack {stack_name(stage, app_name)} routes /api/* to "
                         f"{routed}: refusing to remove the /api/* origin; fix the app stack (see docs/deploy.md, "
                         "When a deploy is stuck) and run the deploy again")
    progress(f"stack {name} does not exist yet: keeping the /api/* origin {routed} until it does")
    return routed


def switches(stage: str, env: Mapping[str, str]) -> tuple[bool, bool]:
    """(warmer on, site function on) for a stage's variables, by the very rules app.py registers the two
    functions with (so the stack, the app stack and the deploy's steps agree with what Chalice packages)."""
    from chalice_app.site_trigger import enabled
    from chalice_app.warming.scheduled import schedule_minutes

    try:
        return schedule_minutes(env) is not None, enabled(env)
    except ValueError as exc:
        raise StageError(f"stage {stage}: {exc}") from None


def parameters(stage: str, region: str, *, cfn: Any = None, stages_path: str | None = None,
               progress: Progress = print, deployed_dir: str | None = None, ssm: Any = None) -> dict[str, str]:
    """Every parameter of the stage's stack, as strings (what CloudFormation takes).

    `cfn` reads the API's domain from the stacks (a client for `region` when not given). `ssm` reads the
    stage's origin secret (created when missing, deploy/origin_secret.py): the value CloudFront sends the API
    (OriginSecret, NoEcho). `deployed_dir` is accepted and ignored: Chalice's record in .chalice/deployed/ is
    no longer read (docs/deploy.md).
    """
    del deployed_dir
    config = load_config()
    env = stage_environment(stage)
    settings = stage_settings(stage, stages_path)
    with open(TEMPLATE_PATH, encoding="utf-8") as fh:
        defaults = {k: str(v["Default"]) for k, v in json.load(fh)["Parameters"].items() if "Default" in v}
    if cfn is None:
        import boto3

        cfn = boto3.client("cloudformation", region_name=region)
    domain = api_domain(cfn, stage, region, app_name=config["app_name"], progress=progress)
    warmer, site_function = switches(stage, env)
    # Every parameter, defaults included, so a re-run compares equal to what the stack holds.
    values = {**defaults, "AppName": config["app_name"], "Stage": stage, "ApiDomain": domain,
              "WarmerEnabled": "true" if warmer else "false",
              "SiteFunctionEnabled": "true" if site_function else "false"}
    for key, name in STAGE_PARAMETERS.items():
        if settings.get(key) not in (None, ""):
            value = settings[key]
            values[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    values["OriginSecret"] = origin_secret_value(stage, region, ssm=ssm, progress=progress)
    if values.get("DomainName") and not values.get("CertificateArn") and \
            (not values.get("HostedZoneId") or region != "us-east-1"):
        raise StackError(f"stage {stage}: domain_name {values['DomainName']} needs certificate_arn (an ACM certificate "
                         "in us-east-1), or hosted_zone_id with the stack in us-east-1, where CloudFront takes "
                         "certificates from")
    return values


def origin_secret_value(stage: str, region: str, *, ssm: Any = None, progress: Progress = print) -> str:
    """The first value of the stage's origin secret (what CloudFront sends), created when missing."""
    from deploy import origin_secret

    if ssm is None:
        import boto3

        ssm = boto3.client("ssm", region_name=region)
    return origin_secret.ensure(ssm, origin_secret.parameter_name(stage), progress=progress)[0]


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


def failure_reasons(cfn: Any, name: str, limit: int = REASONS_SHOWN) -> list[str]:
    """The stack's own account of what went wrong: its newest *_FAILED events, newest first."""
    from botocore.exceptions import ClientError

    try:
        events = cfn.describe_stack_events(StackName=name).get("StackEvents", [])
    except ClientError:
        return []  # the status line is still worth showing without them
    failed = [e for e in events if str(e.get("ResourceStatus", "")).endswith("_FAILED")]
    failed.sort(key=lambda e: str(e.get("Timestamp", "")), reverse=True)
    return [f"{e.get('LogicalResourceId', '?')} {e['ResourceStatus']}: {e.get('ResourceStatusReason', '')}"
            for e in failed[:limit]]


def _with_reasons(message: str, reasons: Sequence[str]) -> str:
    return message + "".join(f"\n  {reason}" for reason in reasons)


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
            raise StackError(_with_reasons(
                f"stack {name}: {status} ({(stack or {}).get('StackStatusReason') or 'its failure reasons below'})",
                failure_reasons(cfn, name)))
        progress(f"stack {name}: {status}")
        time.sleep(delay)


def ready_stack(cfn: Any, name: str, *, progress: Progress = print, delay: float = 10.0) -> dict | None:
    """The stack as a change set can take it: None to create, the stack to update; else a StackError.

    ROLLBACK_COMPLETE is a first creation that failed: CloudFormation can neither update nor re-create it,
    so it is deleted (it holds no resources) and created again. Any other failed or in-progress state needs
    a human or time, so the deploy stops with the stack's reasons.
    """
    stack = _current(cfn, name)
    if not stack or stack["StackStatus"] == "REVIEW_IN_PROGRESS":  # REVIEW: a CREATE change set never run
        return stack
    status = stack["StackStatus"]
    if status == "ROLLBACK_COMPLETE":
        progress(_with_reasons(f"stack {name}: ROLLBACK_COMPLETE (its first creation failed, it holds nothing): "
                               "deleting it to create it again; it had failed with", failure_reasons(cfn, name)))
        cfn.delete_stack(StackName=name)
        _wait_stack(cfn, name, delay, progress)
        progress(f"stack {name}: deleted")
        return None
    if status in UPDATABLE:
        if status == "UPDATE_ROLLBACK_COMPLETE":  # the stack works; say why the last update did not
            progress(_with_reasons(f"stack {name}: its last update failed and was rolled back",
                                   failure_reasons(cfn, name)))
        return stack
    if status.endswith("_IN_PROGRESS"):
        raise StackError(_with_reasons(f"stack {name} is {status}: another deploy or a rollback is running; wait "
                                       "for it to finish and run the deploy again", failure_reasons(cfn, name)))
    raise StackError(_with_reasons(
        f"stack {name} is {status} ({stack.get('StackStatusReason') or 'no reason given'}): it cannot be updated "
        "as it is; see docs/deploy.md (When a deploy is stuck)", failure_reasons(cfn, name)))


def outputs_of(stack: dict | None) -> dict[str, str]:
    return {o["OutputKey"]: o.get("OutputValue", "") for o in (stack or {}).get("Outputs", [])}


def run_change_set(cfn: Any, name: str, params: dict[str, str], *, body: str, template_url: str | None = None,
                   capabilities: Sequence[str] = (), tags: dict[str, str] | None = None, description: str = "",
                   dry_run: bool = False, progress: Progress = print, delay: float = 10.0) -> dict[str, Any]:
    """Create or update stack `name` through a change set; {"changes", "outputs", "executed", "kind"}.

    CREATE the first time (or after a failed first creation), UPDATE after; a change set without changes is
    a no-op success. `body` is the template (compared on a re-run); `template_url` an S3 copy of it, sent
    instead of the body when given (templates over 51,200 bytes).
    """
    if dry_run and (_current(cfn, name) or {}).get("StackStatus") == "ROLLBACK_COMPLETE":
        # A dry run changes nothing, and a change set cannot be made for this stack before it is deleted.
        progress(_with_reasons(f"stack {name}: dry run, ROLLBACK_COMPLETE: a deploy would delete it and create it "
                               "again; its first creation failed with", failure_reasons(cfn, name)))
        return {"changes": [], "outputs": {}, "executed": False, "kind": "CREATE"}
    stack = ready_stack(cfn, name, progress=progress, delay=delay)
    kind = "UPDATE" if stack and stack["StackStatus"] != "REVIEW_IN_PROGRESS" else "CREATE"
    change_set = f"deploy-{int(time.time())}"
    request: dict[str, Any] = {"TemplateURL": template_url} if template_url else {"TemplateBody": body}
    if description:  # CloudFormation refuses an empty one
        request["Description"] = description
    cfn.create_change_set(StackName=name, ChangeSetName=change_set, ChangeSetType=kind, **request,
                          Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(params.items())],
                          Capabilities=list(capabilities),
                          Tags=[{"Key": k, "Value": v} for k, v in sorted((tags or {}).items())])
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
        return {"changes": [] if unchanged else changes, "outputs": outputs_of(stack), "executed": False,
                "kind": kind}
    progress(f"stack {name}: {kind.lower()} ({len(changes)} change(s)): {'; '.join(changes)}")
    cfn.execute_change_set(StackName=name, ChangeSetName=change_set)
    done = _wait_stack(cfn, name, delay, progress)
    return {"changes": changes, "outputs": outputs_of(done), "executed": True, "kind": kind}


def deploy_stack(cfn: Any, stage: str, params: dict[str, str], *, dry_run: bool = False,
                 progress: Progress = print, delay: float = 10.0, body: str | None = None) -> dict[str, Any]:
    """Create or update the stage's stack through a change set; {"changes": [...], "outputs": {...}}."""
    return run_change_set(cfn, stack_name(stage, params.get("AppName", "predictions")), params,
                          body=_template_body() if body is None else body, tags={"stage": stage},
                          description=f"make deploy STAGE={stage}", dry_run=dry_run, progress=progress, delay=delay)


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
        result = deploy_stack(cfn, args.stage, parameters(args.stage, region, cfn=cfn), dry_run=args.dry_run)
        if not args.dry_run:
            for path in write_site_function_settings(args.stage, result["outputs"]):
                print(f"wrote {path} from the stack's outputs")
    except Exception as exc:  # noqa: BLE001 - report() re-raises what is neither expected nor AWS's
        return report("deploy.stack", exc, (StackError, StageError))
    return 0


if __name__ == "__main__":
    sys.exit(main())
