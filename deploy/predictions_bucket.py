"""Create a stage's predictions bucket, right in any region, private, encrypted and versioned.

    python -m deploy.predictions_bucket --stage prod [--bucket NAME]

The name is the stage's PREDICTIONS_BUCKET in .chalice/config.json unless --bucket says otherwise. S3 takes
no LocationConstraint in us-east-1 (it refuses `LocationConstraint=us-east-1`) and needs one everywhere else.
Idempotent: an existing bucket of this account is kept ("exists already") and gets the same settings:
Block Public Access (all four), default encryption SSE-S3, versioning on (a bad batch can be rolled back).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from chalice_app.config.stage_file import CONFIG_PATH, StageError, stage_environment
from deploy.command_errors import report

US_EAST_1 = "us-east-1"
BLOCK_ALL = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
             "RestrictPublicBuckets": True}
SSE_S3 = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]}

Progress = Callable[[str], None]


class BucketError(Exception):
    """One clear line for the user."""


def create_bucket_request(bucket: str, region: str) -> dict:
    """create_bucket's arguments: a LocationConstraint everywhere but us-east-1, where S3 refuses one."""
    request: dict[str, Any] = {"Bucket": bucket, "ObjectOwnership": "BucketOwnerEnforced"}
    if region != US_EAST_1:
        request["CreateBucketConfiguration"] = {"LocationConstraint": region}
    return request


def _region_of(s3: Any, bucket: str) -> str:
    return s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or US_EAST_1  # None means us-east-1


def _exists(s3: Any, bucket: str) -> bool:
    """True when this account has the bucket; False when nobody has it. Asked before creating because
    create_bucket in us-east-1 answers success for a bucket the account already has."""
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
        return True
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchBucket", "NotFound"):
            return False
        if code in ("403", "AccessDenied", "Forbidden"):
            raise BucketError(f"bucket {bucket} exists but this account cannot reach it (another account's, bucket "
                              "names are global): choose another name, set it in .chalice/config.json and the "
                              "stage's policy") from None
        raise


def ensure_bucket(s3: Any, bucket: str, region: str, progress: Progress = print) -> bool:
    """Create `bucket` in `region` unless this account has it; apply the settings either way. True if created."""
    from botocore.exceptions import ClientError

    created = not _exists(s3, bucket)
    if created:
        try:
            s3.create_bucket(**create_bucket_request(bucket, region))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code", "") == "BucketAlreadyExists":  # taken in between
                raise BucketError(f"bucket {bucket} belongs to another AWS account (bucket names are global): "
                                  "choose another name") from None
            raise
    else:
        where = _region_of(s3, bucket)
        if where != region:
            raise BucketError(f"bucket {bucket} exists already in {where}, not in {region}: deploy the stage to "
                              f"{where} (AWS_DEFAULT_REGION) or choose another bucket")
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=BLOCK_ALL)
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=SSE_S3)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    progress(f"bucket {bucket}: " + (f"created in {region}" if created else f"exists already in {region}")
             + "; Block Public Access on, default encryption SSE-S3, versioning on")
    return created


def _client() -> tuple[Any, str]:
    import boto3

    session = boto3.session.Session()
    if not session.region_name:
        raise BucketError("no region: set AWS_DEFAULT_REGION (or --region)")
    return session.client("s3"), session.region_name


def main(argv: list[str] | None = None, client: Callable[[], tuple[Any, str]] = _client,
         config_path: str = CONFIG_PATH) -> int:
    p = argparse.ArgumentParser(
        prog="python -m deploy.predictions_bucket",
        description="Create the stage's predictions bucket (PREDICTIONS_BUCKET of .chalice/config.json) in the "
                    "current region, with Block Public Access, SSE-S3 and versioning. Safe to run again.")
    p.add_argument("--stage", required=True, help="a stage of .chalice/config.json (dev, prod)")
    p.add_argument("--bucket", help="the bucket's name (default: the stage's PREDICTIONS_BUCKET)")
    p.add_argument("--region", help="the region (default: AWS_DEFAULT_REGION / the profile's region)")
    args = p.parse_args(argv)
    try:
        bucket = args.bucket or stage_environment(args.stage, config_path).get("PREDICTIONS_BUCKET", "")
        if not bucket:
            raise BucketError(f"stage {args.stage} has no PREDICTIONS_BUCKET in .chalice/config.json: pass --bucket")
        s3, region = client()
        if args.region and args.region != region:
            import boto3

            s3, region = boto3.client("s3", region_name=args.region), args.region
        ensure_bucket(s3, bucket, region)
    except Exception as exc:  # noqa: BLE001 - report() re-raises what is neither expected nor AWS's
        return report("deploy.predictions_bucket", exc, (BucketError, StageError))
    return 0


if __name__ == "__main__":
    sys.exit(main())
