"""Make the stage's predictions bucket send its events to EventBridge, keeping every other notification.

The site function's rule (chalice_app/site_trigger.py) matches S3 "Object Created" events of the
pointer, which S3 sends to EventBridge only when the bucket's notification configuration has an
`EventBridgeConfiguration`. PutBucketNotificationConfiguration replaces the whole configuration,
so this reads it, adds EventBridge and writes it back with every topic, queue and Lambda
configuration it already had; when EventBridge is already on it writes nothing.

    python -m deploy.bucket_events --stage dev [--dry-run]     (a step of `make deploy`)

The same by hand, when the bucket has no other notification (otherwise merge them in):
    aws s3api put-bucket-notification-configuration --bucket BUCKET \
        --notification-configuration '{"EventBridgeConfiguration": {}}'
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

KEEP = ("TopicConfigurations", "QueueConfigurations", "LambdaFunctionConfigurations", "EventBridgeConfiguration")


def ensure_eventbridge(s3: Any, bucket: str, *, dry_run: bool = False) -> bool:
    """Turn on EventBridge delivery for `bucket`; True when it changed something (or would, with dry_run)."""
    current = s3.get_bucket_notification_configuration(Bucket=bucket)
    config = {key: current[key] for key in KEEP if key in current}
    if "EventBridgeConfiguration" in config:
        return False
    if not dry_run:
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={**config, "EventBridgeConfiguration": {}},
            SkipDestinationValidation=True)  # the existing destinations were validated when they were added
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deploy.bucket_events",
                                description="Send the stage's predictions bucket events to EventBridge "
                                            "(keeps its other notifications).")
    p.add_argument("--stage", required=True)
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args(argv)
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from chalice_app.config.stage_file import StageError, stage_environment

    try:
        bucket = stage_environment(args.stage)["PREDICTIONS_BUCKET"]
        changed = ensure_eventbridge(boto3.client("s3"), bucket, dry_run=args.dry_run)
    except (StageError, KeyError, ClientError, BotoCoreError) as exc:
        print(f"bucket_events: error: {exc}", file=sys.stderr)
        return 1
    verb = ("would turn on" if args.dry_run else "turned on") if changed else "already on"
    print(f"EventBridge notifications of s3://{bucket}: {verb}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
