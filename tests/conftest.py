"""Shared fixtures: fake AWS, an in-process moto bucket, the API as a Chalice test client."""

from __future__ import annotations

import gzip
import json
import os
import sys
from collections.abc import Callable, Iterator

import pytest

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_DIR)

BUCKET = "predictions-local"  # the local stage's bucket in .chalice/config.json
PREFIX = "predictions/"


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing in a test can reach a real account, and in-process moto is never bypassed."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(autouse=True)
def fresh_container() -> Iterator[None]:
    """Each test starts as a new Lambda container would: no settings, no store, cold."""
    from chalice_app import container

    container.reset()
    yield
    container.reset()


@pytest.fixture
def s3() -> Iterator[object]:
    from moto import mock_aws

    with mock_aws():
        import boto3

        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def make_doc(date: str, rows: list[dict] | None = None, n: int = 5) -> dict:
    if rows is None:
        rows = [{"id": f"sku-{i:03d}", "label": f"Item {i}", "value": float(i)} for i in range(n)]
    return {"date": date, "generated_at": f"{date}T04:00:00Z",
            "model": {"name": "demand-forecast", "version": "3.2.0"}, "predictions": rows}


@pytest.fixture
def put_batch(s3: object) -> Callable[..., dict]:
    """Write a batch straight into the bucket (bypassing publish), optionally gzip-compressed."""

    def put(date: str, rows: list[dict] | None = None, *, n: int = 5, gzipped: bool = False,
            pointer: bool = True) -> dict:
        doc = make_doc(date, rows, n)
        body = json.dumps(doc).encode()
        extra = {}
        if gzipped:
            body = gzip.compress(body)
            extra["ContentEncoding"] = "gzip"
        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}{date}/predictions.json", Body=body, **extra)
        if pointer:
            s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}latest.json", Body=json.dumps({"date": date}))
        return doc

    return put


@pytest.fixture
def api(s3: object) -> Iterator[object]:
    """The real Chalice app through chalice.test.Client, on the local stage's configuration."""
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local", project_dir=PROJECT_DIR) as client:
        yield client.http


def body(response: object) -> dict:
    return json.loads(response.body)
