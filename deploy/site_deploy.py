"""`build_site.py --stage S --publish` and `--delete-site`: the stage's bucket, OAC, distribution.

Each `ensure_*` creates what is missing and changes only what differs, so a second run with
nothing changed makes no write at all. What was created is recorded in
`.chalice/deployed/<stage>-site.json`, beside Chalice's own record of the API.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from chalice_app.aws_clients import error_code
from chalice_app.website.serving import cache_control_for, content_type_for, response_headers_policy_config
from chalice_app.website.sync import SyncPlan, apply_sync, local_files, plan_sync, remote_files
from deploy import site_config

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEPLOYED_DIR = os.path.join(PROJECT_DIR, ".chalice", "deployed")
APP_NAME = "predictions"

Progress = Callable[[str], None]


class DeployError(Exception):
    """One clear line for the user; nothing after the failing step was done."""


@dataclass
class Clients:
    s3: Any
    cloudfront: Any
    sts: Any

    @classmethod
    def create(cls) -> Clients:
        import boto3

        # CloudFront is global: its API lives in us-east-1 whatever the stage's region.
        return cls(boto3.client("s3"), boto3.client("cloudfront", region_name="us-east-1"), boto3.client("sts"))


@dataclass
class SiteReport:
    stage: str
    bucket: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    plan: SyncPlan = field(default_factory=SyncPlan)
    invalidation_id: str | None = None
    url: str | None = None
    dry_run: bool = False


# -- state -------------------------------------------------------------------------------------


def state_path(stage: str, deployed_dir: str = DEPLOYED_DIR) -> str:
    return os.path.join(deployed_dir, f"{stage}-site.json")


def load_state(stage: str, deployed_dir: str = DEPLOYED_DIR) -> dict:
    try:
        with open(state_path(stage, deployed_dir), encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return {}


def save_state(stage: str, state: dict, deployed_dir: str = DEPLOYED_DIR) -> None:
    os.makedirs(deployed_dir, exist_ok=True)
    with open(state_path(stage, deployed_dir), "w", encoding="utf-8") as fh:
        json.dump(state, fh, indent=2, sort_keys=True)
        fh.write("\n")


def api_domain(stage: str, deployed_dir: str = DEPLOYED_DIR) -> str:
    """The stage's API Gateway domain, from what `chalice deploy` recorded."""
    path = os.path.join(deployed_dir, f"{stage}.json")
    try:
        with open(path, encoding="utf-8") as fh:
            resources = json.load(fh).get("resources", [])
    except FileNotFoundError:
        shown = os.path.relpath(path, PROJECT_DIR) if path.startswith(PROJECT_DIR) else path
        raise DeployError(f"{shown} not found: run `chalice deploy --stage {stage}` "
                          "first, so the site can route /api/* to the stage's API") from None
    for resource in resources:
        if resource.get("resource_type") == "rest_api" and resource.get("rest_api_url"):
            return urlparse(resource["rest_api_url"]).netloc
    raise DeployError(f"{path} records no rest_api_url: run `chalice deploy --stage {stage}` again")


# -- ensure ------------------------------------------------------------------------------------


def ensure_bucket(s3: Any, bucket: str, report: SiteReport) -> None:
    """Private bucket: Block Public Access on, default encryption, no website hosting."""
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
            raise
        region = s3.meta.region_name
        extra = {} if region in (None, "us-east-1") else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **extra)
        report.created.append(f"bucket {bucket}")
    wanted_block = site_config.public_access_block()
    try:
        current = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except ClientError:
        current = None
    if current != wanted_block:
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=wanted_block)
        report.updated.append("block public access")
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    except ClientError:
        rules = []
    if not rules:
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=site_config.encryption_config())
        report.updated.append("default encryption")


def ensure_oac(cloudfront: Any, name: str, report: SiteReport) -> str:
    for page in cloudfront.get_paginator("list_origin_access_controls").paginate():
        for item in page.get("OriginAccessControlList", {}).get("Items", []) or []:
            if item["Name"] == name:
                return item["Id"]
    created = cloudfront.create_origin_access_control(OriginAccessControlConfig=site_config.oac_config(name))
    report.created.append(f"origin access control {name}")
    return created["OriginAccessControl"]["Id"]


def ensure_headers_policy(cloudfront: Any, name: str, report: SiteReport) -> str:
    wanted = response_headers_policy_config(name)
    listing = cloudfront.list_response_headers_policies(Type="custom")
    for item in listing.get("ResponseHeadersPolicyList", {}).get("Items", []) or []:
        policy = item["ResponseHeadersPolicy"]
        if policy["ResponseHeadersPolicyConfig"]["Name"] == name:
            if policy["ResponseHeadersPolicyConfig"] != wanted:
                etag = cloudfront.get_response_headers_policy(Id=policy["Id"])["ETag"]
                cloudfront.update_response_headers_policy(Id=policy["Id"], IfMatch=etag,
                                                          ResponseHeadersPolicyConfig=wanted)
                report.updated.append(f"response headers policy {name}")
            return policy["Id"]
    created = cloudfront.create_response_headers_policy(ResponseHeadersPolicyConfig=wanted)
    report.created.append(f"response headers policy {name}")
    return created["ResponseHeadersPolicy"]["Id"]


def find_distribution(cloudfront: Any, comment: str) -> str | None:
    """The id of the distribution this deploy made for a stage (named by its Comment), if any."""
    for page in cloudfront.get_paginator("list_distributions").paginate():
        for item in page.get("DistributionList", {}).get("Items", []) or []:
            if item.get("Comment") == comment:
                return item["Id"]
    return None


def config_digest(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def ensure_distribution(cloudfront: Any, config: dict, state: dict, report: SiteReport) -> dict:
    """Create the distribution, or update it when the configuration we want has changed.

    The digest of what we last sent is recorded, so an unchanged configuration costs no write.
    """
    digest = config_digest(config)
    dist_id = state.get("distribution_id")
    if dist_id:
        current = cloudfront.get_distribution_config(Id=dist_id)
        if state.get("distribution_config_sha256") != digest:
            wanted = dict(config, CallerReference=current["DistributionConfig"]["CallerReference"])
            cloudfront.update_distribution(Id=dist_id, IfMatch=current["ETag"], DistributionConfig=wanted)
            report.updated.append(f"distribution {dist_id}")
        found = cloudfront.get_distribution(Id=dist_id)["Distribution"]
    else:
        found = cloudfront.create_distribution(DistributionConfig=config)["Distribution"]
        report.created.append(f"distribution {found['Id']}")
    state.update(distribution_id=found["Id"], distribution_arn=found["ARN"], domain=found["DomainName"],
                 distribution_config_sha256=digest)
    return found


def ensure_bucket_policy(s3: Any, bucket: str, distribution_arn: str, report: SiteReport) -> None:
    from botocore.exceptions import ClientError

    wanted = site_config.bucket_policy(bucket, distribution_arn)
    try:
        current = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    except ClientError:
        current = None
    if current != json.loads(wanted):
        s3.put_bucket_policy(Bucket=bucket, Policy=wanted)
        report.updated.append("bucket policy (CloudFront distribution only)")


# -- the two commands --------------------------------------------------------------------------


def _headers_for(key: str) -> dict[str, str]:
    return {"ContentType": content_type_for(key), "CacheControl": cache_control_for(key)}


def publish_site(stage: str, out_dir: str, *, clients: Clients, dry_run: bool = False,
                 progress: Progress = print, deployed_dir: str = DEPLOYED_DIR) -> SiteReport:
    """Bucket, OAC, headers policy, distribution, bucket policy, upload, invalidate — in that order."""
    domain = api_domain(stage, deployed_dir)
    state = load_state(stage, deployed_dir)
    account = clients.sts.get_caller_identity()["Account"]
    function = site_function_settings(stage)
    bucket = state.get("bucket") or os.environ.get("SITE_BUCKET") or function.get("SITE_BUCKET") or \
        site_config.site_bucket_name(APP_NAME, stage, account)
    report = SiteReport(stage, bucket, dry_run=dry_run)
    local = local_files(out_dir)
    if not local:
        raise DeployError(f"{out_dir} is empty: build the site first")
    if dry_run:
        report.plan = plan_sync(local, _remote_or_empty(clients.s3, bucket))
        progress(f"dry run: site bucket {bucket}; distribution "
                 f"{state.get('distribution_id') or 'would be created'}; /api/* -> {domain}")
        progress(f"dry run: {report.plan.summary()}")
        return report
    ensure_bucket(clients.s3, bucket, report)
    state["bucket"] = bucket
    oac_id = ensure_oac(clients.cloudfront, f"{APP_NAME}-site-{stage}", report)
    headers_id = ensure_headers_policy(clients.cloudfront, f"{APP_NAME}-site-{stage}-headers", report)
    config = site_config.distribution_config(
        stage=stage, caller_reference=f"{APP_NAME}-site-{stage}", bucket_domain=f"{bucket}.s3.amazonaws.com",
        oac_id=oac_id, api_domain=domain, headers_policy_id=headers_id)
    if not state.get("distribution_id"):
        # The record is lost (another machine, a clean checkout): adopt the stage's distribution.
        state["distribution_id"] = find_distribution(clients.cloudfront, config["Comment"])
        if state["distribution_id"]:
            progress(f"found the stage's distribution {state['distribution_id']} (no local record)")
    had_distribution = bool(state.get("distribution_id"))
    dist = ensure_distribution(clients.cloudfront, config, state, report)
    for name, actual in (("SITE_BUCKET", bucket), ("SITE_DISTRIBUTION_ID", dist["Id"])):
        if function and function.get(name) != actual:
            # The site function (and its policy) must name what this deploy created; see docs/deploy.md.
            progress(f"warning: set {name}={actual} in .chalice/config.json (lambda_functions.site) and "
                     f".chalice/policy-site-{stage}.json, then `chalice deploy --stage {stage}`: "
                     "until then the site does not follow the publish")
    save_state(stage, state, deployed_dir)  # recorded before uploading: a failed upload can be re-run
    ensure_bucket_policy(clients.s3, bucket, dist["ARN"], report)
    report.plan = plan_sync(local, remote_files(clients.s3, bucket))
    progress(f"site: {report.plan.summary()}")
    apply_sync(clients.s3, bucket, out_dir, report.plan, _headers_for, progress)
    paths = report.plan.invalidations
    if paths and had_distribution:  # a new distribution has nothing cached to invalidate
        invalidation = clients.cloudfront.create_invalidation(
            DistributionId=dist["Id"],
            InvalidationBatch={"Paths": {"Quantity": len(paths), "Items": paths},
                               "CallerReference": config_digest({"paths": paths, "files": local})[:32]})
        report.invalidation_id = invalidation["Invalidation"]["Id"]
        progress(f"invalidated {len(paths)} path(s)")
    report.url = f"https://{dist['DomainName']}/"
    return report


def site_function_settings(stage: str) -> dict[str, str]:
    """The site function's own environment in .chalice/config.json ({} when the stage has none)."""
    from chalice_app.config.stage_file import StageError, load_config

    try:
        stages = load_config().get("stages", {})
    except StageError:
        return {}
    function = stages.get(stage, {}).get("lambda_functions", {}).get("site", {})
    return dict(function.get("environment_variables", {}))


def _remote_or_empty(s3: Any, bucket: str) -> dict[str, str]:
    from botocore.exceptions import ClientError

    try:
        return remote_files(s3, bucket)
    except ClientError as exc:
        if error_code(exc) in ("NoSuchBucket", "404", "AccessDenied"):
            return {}
        raise


def delete_site(stage: str, *, clients: Clients, dry_run: bool = False, progress: Progress = print,
                deployed_dir: str = DEPLOYED_DIR) -> list[str]:
    """Tear down what publish_site recorded: distribution (disabled first), OAC, policy, bucket."""
    state = load_state(stage, deployed_dir)
    if not state:
        raise DeployError(f"nothing recorded for stage {stage!r} ({state_path(stage, deployed_dir)}): "
                          "no site to delete")
    plan = []
    if state.get("distribution_id"):
        plan.append(f"distribution {state['distribution_id']}")
    if state.get("bucket"):
        plan.append(f"bucket {state['bucket']} and its objects")
    plan += [f"origin access control {APP_NAME}-site-{stage}",
             f"response headers policy {APP_NAME}-site-{stage}-headers"]
    if dry_run:
        for item in plan:
            progress(f"dry run: would delete {item}")
        return plan
    cf = clients.cloudfront
    if state.get("distribution_id"):
        _delete_distribution(cf, state["distribution_id"], progress)
    _delete_named(cf, f"{APP_NAME}-site-{stage}", f"{APP_NAME}-site-{stage}-headers")
    if state.get("bucket"):
        _empty_and_delete_bucket(clients.s3, state["bucket"])
    os.remove(state_path(stage, deployed_dir))
    for item in plan:
        progress(f"deleted {item}")
    return plan


def _delete_distribution(cf: Any, dist_id: str, progress: Progress) -> None:
    current = cf.get_distribution_config(Id=dist_id)
    etag = current["ETag"]
    if current["DistributionConfig"]["Enabled"]:
        config = dict(current["DistributionConfig"], Enabled=False)
        etag = cf.update_distribution(Id=dist_id, IfMatch=etag, DistributionConfig=config)["ETag"]
        progress(f"disabled distribution {dist_id}; waiting until it is deployed (takes minutes on AWS)")
        cf.get_waiter("distribution_deployed").wait(Id=dist_id, WaiterConfig={"Delay": 20, "MaxAttempts": 60})
    cf.delete_distribution(Id=dist_id, IfMatch=etag)


def _delete_named(cf: Any, oac_name: str, policy_name: str) -> None:
    for item in cf.list_origin_access_controls().get("OriginAccessControlList", {}).get("Items", []) or []:
        if item["Name"] == oac_name:
            etag = cf.get_origin_access_control(Id=item["Id"])["ETag"]
            cf.delete_origin_access_control(Id=item["Id"], IfMatch=etag)
    listing = cf.list_response_headers_policies(Type="custom")
    for item in listing.get("ResponseHeadersPolicyList", {}).get("Items", []) or []:
        policy = item["ResponseHeadersPolicy"]
        if policy["ResponseHeadersPolicyConfig"]["Name"] == policy_name:
            etag = cf.get_response_headers_policy(Id=policy["Id"])["ETag"]
            cf.delete_response_headers_policy(Id=policy["Id"], IfMatch=etag)


def _empty_and_delete_bucket(s3: Any, bucket: str) -> None:
    keys = list(remote_files(s3, bucket))
    for start in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]],
                                                 "Quiet": True})
    s3.delete_bucket(Bucket=bucket)
