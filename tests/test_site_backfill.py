"""A backfilled date reaches the site: publishing a missed day older than latest moves no pointer,
so the site function's rule also matches the dated batch `{prefix}<date>/predictions.json`, and
its event rebuilds what changed (the date's pages, the date list, the next date's comparison).

The rule's pattern is checked through moto's EventBridge: a rule, an SQS target, S3-shaped events.
"""

from __future__ import annotations

import json

import pytest
import test_site_fingerprint
from test_site_fingerprint import change_of_row

from chalice_app.contract import batch_key, pointer_key, report_key
from chalice_app.site_trigger import event_pattern

from helpers import BUCKET, PREFIX
from site_helpers import Page, visible_text

pytestmark = pytest.mark.slow  # moto, sockets or timers in every test: not in make test-fast

stage = test_site_fingerprint.stage  # the stage in moto, with the site function and a distribution


def test_an_event_for_a_backfilled_batch_puts_the_date_on_the_site(stage):
    for date, factor in (("2026-11-18", 4.0), ("2026-11-20", 6.0)):
        stage.publish(date, factor)
    stage.run(days=7)
    assert "d/2026-11-19.html" not in stage.objects()

    stage.publish("2026-11-19", 5.0)  # the missed day, published late: latest stays 2026-11-20
    pointer = json.loads(stage.s3.get_object(Bucket=BUCKET, Key=pointer_key(PREFIX))["Body"].read())
    assert pointer["date"] == "2026-11-20"
    summary = stage.run(days=7, key=batch_key(PREFIX, "2026-11-19"))

    assert summary["skipped"] is False and summary["event_key"] == batch_key(PREFIX, "2026-11-19")
    keys = stage.objects()
    assert {"d/2026-11-19.html", "d/2026-11-19/page-2.html", "d/2026-11-19/page-3.html", "d/2026-11-19.csv",
            "d/2026-11-19.json"} <= set(keys)
    for listing in ("dates.html", "index.html"):
        assert ("/d/2026-11-19.html", "2026-11-19") in Page(stage.text(listing)).links
    # Its neighbours link it, and the next date now compares with it.
    assert ("/d/2026-11-19.html", "2026-11-19") in [(h, t.split()[-1]) for h, t in Page(
        stage.text("d/2026-11-18.html")).links if h == "/d/2026-11-19.html"]
    assert "since 2026-11-19" in visible_text(stage.text("d/2026-11-20/page-2.html"))
    assert change_of_row(stage, "d/2026-11-20/page-2.html", "sku-100").startswith("+100")
    assert 'data-batch-date="2026-11-20"' in stage.text("index.html")  # latest is still latest
    # The duplicate event, and the pointer's own event, change nothing more.
    assert stage.run(days=7, key=batch_key(PREFIX, "2026-11-19"))["skipped"] is True
    assert stage.run(days=7)["skipped"] is True


@pytest.fixture
def rule():
    """The site function's rule as EventBridge holds it, delivering to a queue we can read."""
    from moto import mock_aws

    with mock_aws():
        import boto3

        events = boto3.client("events", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")

        def matched(pattern: dict, events_in: list[dict]) -> list[str]:
            queue = sqs.create_queue(QueueName=f"site-{len(sqs.list_queues().get('QueueUrls', []))}")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            name = queue.rsplit("/", 1)[-1]
            events.put_rule(Name=name, EventPattern=json.dumps(pattern))
            events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn}])
            for entry in events_in:
                events.put_events(Entries=[entry])
            got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
            return sorted(json.loads(m["Body"])["detail"]["object"]["key"] for m in got)

        yield matched


def s3_event(key: str, bucket: str = BUCKET, detail_type: str = "Object Created") -> dict:
    return {"Source": "aws.s3", "DetailType": detail_type,
            "Detail": json.dumps({"bucket": {"name": bucket}, "object": {"key": key, "size": 1},
                                  "reason": "PutObject"})}


def test_the_rule_matches_the_pointer_dated_batches_and_their_reports_and_nothing_else(rule):
    pattern = event_pattern(BUCKET, PREFIX)
    # The report: the publish command writes it after the batch, and the date's pages show it.
    wanted = [pointer_key(PREFIX), batch_key(PREFIX, "2026-11-19"), batch_key(PREFIX, "2025-01-02"),
              report_key(PREFIX, "2026-11-19")]
    others = [s3_event(key) for key in (f"{PREFIX}audit/20261119T000000Z-publish-2026-11-19.json",
                                        f"{PREFIX}2026-11-19/_SUCCESS",
                                        f"{PREFIX}_SUCCESS", f"{PREFIX}2026-11-19/predictions.json.tmp",
                                        "other/2026-11-19/predictions.json", f"{PREFIX}latest.json.bak")]
    others += [s3_event(batch_key(PREFIX, "2026-11-19"), bucket="someone-else"),
               s3_event(pointer_key(PREFIX), detail_type="Object Deleted")]
    assert rule(pattern, [s3_event(key) for key in wanted] + others) == sorted(wanted)


def test_the_prefix_is_matched_literally(rule):
    pattern = event_pattern(BUCKET, "runs*/")
    keys = ["runs*/2026-11-19/predictions.json", "runsX/2026-11-19/predictions.json", "runs*/latest.json"]
    assert rule(pattern, [s3_event(key) for key in keys]) == ["runs*/2026-11-19/predictions.json", "runs*/latest.json"]


def test_the_pattern_names_the_pointer_the_batches_and_their_reports():
    assert event_pattern(BUCKET, "predictions")["detail"]["object"]["key"] == [
        "predictions/latest.json", {"wildcard": "predictions/*/predictions.json"},
        {"wildcard": "predictions/*/report.json"}]
