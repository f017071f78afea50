"""`build_site.py --stage S --publish` and `--delete-site`: the stage's files into the stack's bucket.

The bucket, the distribution and everything around them are the stage's CloudFormation stack
(deploy/stack.json, deployed by deploy/stack.py); this module only reads the stack's outputs, uploads
what changed, deletes what is gone and invalidates the changed HTML paths. `--delete-site` empties the
stack's buckets (every version) and deletes the stack.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chalice_app.website.serving import cache_control_for, content_type_for
from chalice_app.website.sync import (
    API_EVERYTHING,
    MANIFEST,
    SyncPlan,
    apply_sync,
    local_files,
    plan_sync,
    remote_files,
)
from deploy import stack

Progress = Callable[[str], None]


class DeployError(Exception):
    """One clear line for the user; nothing after the failing step was done."""


@dataclass
class Clients:
    s3: Any
    cloudfront: Any
    cloudformation: Any

    @classmethod
    def create(cls) -> Clients:
        import boto3

        # CloudFront is global: its API lives in us-east-1 whatever the stage's region.
        return cls(boto3.client("s3"), boto3.client("cloudfront", region_name="us-east-1"),
                   boto3.client("cloudformation"))


@dataclass
class SiteReport:
    stage: str
    bucket: str
    plan: SyncPlan = field(default_factory=SyncPlan)
    invalidation_id: str | None = None
    url: str | None = None
    dry_run: bool = False


def site_outputs(clients: Clients, stage: str) -> dict[str, str]:
    """The stack's SiteBucketName, DistributionId and SiteUrl; a clear error when the stack is missing."""
    try:
        outputs = stack.read_outputs(clients.cloudformation, stage)
    except stack.StackError as exc:
        raise DeployError(str(exc)) from None
    missing = [k for k in ("SiteBucketName", "DistributionId", "SiteUrl") if not outputs.get(k)]
    if missing:
        raise DeployError(f"stack {stack.stack_name(stage)} lacks the output(s) {', '.join(missing)}")
    return outputs


def config_digest(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def _headers_for(key: str) -> dict[str, str]:
    return {"ContentType": content_type_for(key), "CacheControl": cache_control_for(key)}


def publish_site(stage: str, out_dir: str, *, clients: Clients, dry_run: bool = False,
                 progress: Progress = print) -> SiteReport:
    """Upload what changed, delete what is gone, invalidate the changed HTML paths."""
    outputs = site_outputs(clients, stage)
    bucket, dist_id = outputs["SiteBucketName"], outputs["DistributionId"]
    report = SiteReport(stage, bucket, dry_run=dry_run)
    local = local_files(out_dir)
    if not local:
        raise DeployError(f"{out_dir} is empty: build the site first")
    report.plan = plan_sync(local, remote_files(clients.s3, bucket))
    if dry_run:
        progress(f"dry run: site bucket {bucket}, distribution {dist_id}: {report.plan.summary()}")
        return report
    progress(f"site: {report.plan.summary()}")
    apply_sync(clients.s3, bucket, out_dir, report.plan, _headers_for, progress)
    paths = report.plan.invalidations
    if MANIFEST in report.plan.uploads and paths != ["/*"]:
        # A new manifest: the batches the site shows changed, and CloudFront may keep the API's answers
        # until the next publish (docs/api.md). This command does not know which: all of them, one path.
        paths = [*paths, API_EVERYTHING]
    if paths:
        invalidation = clients.cloudfront.create_invalidation(
            DistributionId=dist_id,
            InvalidationBatch={"Paths": {"Quantity": len(paths), "Items": paths},
                               "CallerReference": config_digest({"paths": paths, "files": local})[:32]})
        report.invalidation_id = invalidation["Invalidation"]["Id"]
        progress(f"invalidated {len(paths)} path(s)")
    report.url = outputs["SiteUrl"]
    return report


def delete_site(stage: str, *, clients: Clients, dry_run: bool = False, progress: Progress = print,
                delay: float = 10.0) -> list[str]:
    """Empty the stack's buckets (every version) and delete the stack. The predictions bucket is never touched."""
    try:
        return stack.delete_stack(clients.cloudformation, clients.s3, stage, dry_run=dry_run, progress=progress,
                                  delay=delay)
    except stack.StackError as exc:
        raise DeployError(str(exc)) from None
