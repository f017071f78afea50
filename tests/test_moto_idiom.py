"""moto's documented idiom, exactly as its documentation shows it, against the app as a user imports
it: `with mock_aws():` (or `@mock_aws`) around the test, boto3 to create the bucket and a batch,
nothing else. mock_aws patches botocore only; the app reads S3 with botocore outside the Lambda
runtime (S3_CLIENT=auto), so nothing here can reach a real endpoint.

The suite's conftest routes the botocore-free client through moto for the tests that opt into it;
these tests undo that, so they see what a user's project sees.
"""

from __future__ import annotations

import json
import socket

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws

from app import app
from chalice_app.api import container
from chalice_app.store import s3_http

from helpers import BUCKET, PREFIX, PROJECT_DIR, make_doc

pytestmark = pytest.mark.slow  # moto, sockets or timers in every test: not in make test-fast

DATE = "2026-11-23"
REAL_HTTP = s3_http.HttpS3Client._http  # before conftest's per-test routing through moto


@pytest.fixture(autouse=True)
def as_a_users_project(monkeypatch):
    """No help from this suite: the real wire for the stdlib client, and no socket may leave the
    machine (a request to AWS would be the bug)."""
    monkeypatch.setattr(s3_http.HttpS3Client, "_http", REAL_HTTP)
    real_connect = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1", "localhost") and not str(host).startswith("/"):
            raise AssertionError(f"a unit test under mock_aws tried to reach {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


def publish(date: str = DATE) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}{date}/predictions.json", Body=json.dumps(make_doc(date, n=3)))
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}latest.json", Body=json.dumps({"date": date}))


def test_with_mock_aws_around_the_app_latest_is_200():
    with mock_aws():
        publish()
        with Client(app, stage_name="local", project_dir=PROJECT_DIR) as client:
            response = client.http.get("/predictions/latest")
    assert response.status_code == 200, response.body
    assert json.loads(response.body)["date"] == DATE
    assert container._state["s3_client_kind"] == "botocore"


@pytest.fixture
def no_credentials(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)


@mock_aws
def test_the_decorator_form_works_too_with_no_credentials_of_our_own(no_credentials):
    # mock_aws sets its own fake keys (after the fixture ran); nothing of this suite's is needed.
    publish()
    with Client(app, stage_name="local", project_dir=PROJECT_DIR) as client:
        listing = client.http.get("/predictions")
        item = client.http.get(f"/predictions/{DATE}/sku-001")
    assert listing.status_code == 200 and json.loads(listing.body) == {"latest": DATE, "dates": [DATE]}
    assert item.status_code == 200 and json.loads(item.body)["prediction"]["id"] == "sku-001"


def test_the_stdlib_client_is_only_for_those_who_ask(monkeypatch):
    """S3_CLIENT=stdlib under mock_aws goes to the network, which mock_aws does not patch: that is
    why "auto" keeps it to the Lambda runtime. Here the network is refused, so the API answers 503."""
    monkeypatch.setenv("S3_CLIENT", "stdlib")
    with mock_aws():
        publish()
        with Client(app, stage_name="local", project_dir=PROJECT_DIR) as client:
            response = client.http.get("/predictions/latest")
    assert container._state["s3_client_kind"] == "http"
    assert response.status_code == 503
