"""Each publish puts a `Batch Published` event on EventBridge's default bus (publishing/notify.py), which
a rule can route anywhere; a failure to send it warns and never fails the publish."""

from __future__ import annotations

import json

import boto3
import pytest

from chalice_app.publishing import notify
from chalice_app.publishing import publish as publish_module
from chalice_app.publishing.sample import make_batch

from helpers import BUCKET, PREFIX

pytestmark = pytest.mark.slow  # moto, sockets or timers in every test: not in make test-fast


@pytest.fixture
def queue(s3):
    """An SQS queue behind a rule on the documented pattern (docs/publishing.md), as a team would set one up."""
    events = boto3.client("events", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="batches")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="batch-published", EventPattern=json.dumps(
        {"source": [notify.SOURCE], "detail-type": [notify.DETAIL_TYPE]}))
    events.put_targets(Rule="batch-published", Targets=[{"Id": "q", "Arn": arn}])
    return sqs, url, events


def received(sqs, url) -> list[dict]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def run(s3, events, tmp_path, doc: dict, *extra: str) -> int:
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(doc))
    return publish_module.main([str(path), "--date", doc["date"], "--bucket", BUCKET, "--quiet", *extra],
                               client=s3, events=events)


def test_a_publish_sends_what_it_published_and_what_the_gate_said(s3, queue, tmp_path):
    sqs, url, events = queue
    assert run(s3, events, tmp_path, make_batch("2026-11-22", 300)) == 0
    smaller = make_batch("2026-11-23", 300)
    smaller["predictions"] = smaller["predictions"][:200]
    assert run(s3, events, tmp_path, smaller, "--force", "--reason", "a region closed") == 0
    got = received(sqs, url)
    assert [e["detail-type"] for e in got] == [notify.DETAIL_TYPE] * 2 and got[0]["source"] == notify.SOURCE
    first, second = sorted((e["detail"] for e in got), key=lambda d: d["date"])
    assert first["verdict"] == "passed" and first["latest"] is True and first["count"] == 300
    assert second["verdict"] == "forced" and second["forced"]["reason"] == "a region closed"
    assert second["key"] == f"{PREFIX}2026-11-23/predictions.json"
    assert second["report"] == f"{PREFIX}2026-11-23/report.json" and second["previous"] == "2026-11-22"
    assert {f["rule"] for f in second["failed"]} == {"row_count", "ids_dropped"}
    assert second["model"] == {"name": "demand-forecast", "version": "3.2.0"}


def test_a_refused_batch_sends_nothing(s3, queue, tmp_path):
    sqs, url, events = queue
    assert run(s3, events, tmp_path, make_batch("2026-11-22", 300)) == 0
    received(sqs, url)
    smaller = make_batch("2026-11-23", 300)
    smaller["predictions"] = smaller["predictions"][:100]
    assert run(s3, events, tmp_path, smaller) == 3
    assert received(sqs, url) == []


class Refusing:
    def __init__(self, answer: dict | None = None) -> None:
        self.answer = answer

    def put_events(self, Entries: list) -> dict:
        if self.answer is None:
            raise RuntimeError("AccessDeniedException: not authorized to perform events:PutEvents")
        return self.answer


@pytest.mark.parametrize("events", [Refusing(), Refusing({"FailedEntryCount": 1, "Entries": [
    {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}]})], ids=["raises", "refuses"])
def test_an_event_that_cannot_be_sent_warns_and_the_publish_stands(s3, tmp_path, capsys, events):
    assert run(s3, events, tmp_path, make_batch("2026-11-22", 50)) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "Batch Published event" in err and "the batch is published" in err
    assert s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}latest.json")
