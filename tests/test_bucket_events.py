"""deploy/bucket_events.py: EventBridge delivery turned on without losing the bucket's other notifications."""

from __future__ import annotations

from deploy.bucket_events import ensure_eventbridge

from helpers import BUCKET


def config(s3) -> dict:
    """What S3 answers, plus EventBridgeConfiguration from moto's backend: moto stores it but does
    not return it from GetBucketNotificationConfiguration (real S3 does)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    got = s3.get_bucket_notification_configuration(Bucket=BUCKET)
    got.pop("ResponseMetadata", None)
    stored = s3_backends[DEFAULT_ACCOUNT_ID]["global"].get_bucket(BUCKET).notification_configuration
    if stored is not None and stored.event_bridge is not None:
        got["EventBridgeConfiguration"] = stored.event_bridge
    return got


def test_turns_eventbridge_on_once_and_keeps_existing_notifications(s3):
    import boto3

    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = sqs.create_queue(QueueName="audit")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    existing = {"QueueConfigurations": [{"Id": "audit", "QueueArn": arn, "Events": ["s3:ObjectRemoved:*"]}]}
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration=existing)

    assert ensure_eventbridge(s3, BUCKET, dry_run=True) is True
    assert "EventBridgeConfiguration" not in config(s3)  # a dry run writes nothing
    assert ensure_eventbridge(s3, BUCKET) is True
    after = config(s3)
    assert "EventBridgeConfiguration" in after
    assert after["QueueConfigurations"][0]["QueueArn"] == arn  # kept
    assert after["QueueConfigurations"][0]["Events"] == ["s3:ObjectRemoved:*"]

    calls = []
    real = s3.put_bucket_notification_configuration
    s3.put_bucket_notification_configuration = lambda **kw: calls.append(kw) or real(**kw)
    answer = config(s3)
    s3.get_bucket_notification_configuration = lambda **kw: answer  # as real S3 answers
    assert ensure_eventbridge(s3, BUCKET) is False  # idempotent: already on, nothing written
    assert calls == []


def test_a_bucket_without_notifications(s3):
    assert ensure_eventbridge(s3, BUCKET) is True
    assert config(s3).get("EventBridgeConfiguration") == {}
