"""One moto S3 server on loopback for the whole run, and batches published into it."""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from typing import Any

from chalice_app.config.settings import Settings
from chalice_app.contract import DEFAULT_PREFIX
from chalice_app.publishing import gate
from chalice_app.publishing.publish import publish_document
from chalice_app.publishing.sample import make_batch
from tools.devstack import FAKE_AWS

# What the Lambda runtime sets (among others): chalice_app picks the botocore-free S3 client by them.
LAMBDA_RUNTIME = {"AWS_LAMBDA_FUNCTION_NAME": "predictions-dev", "LAMBDA_TASK_ROOT": "/var/task"}


class MotoS3:
    """moto's ThreadedMotoServer bound to 127.0.0.1, with a boto3 client for seeding."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        # One access-log line per request would bury the report.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                                        aws_access_key_id="testing", aws_secret_access_key="testing")
        return self._client

    def child_env(self, bucket: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of a child: fake credentials, every AWS call to this server, and the variables
        by which the Lambda runtime is recognised (the container then picks its S3 client as on Lambda)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON"))}
        env.update(FAKE_AWS, AWS_ENDPOINT_URL=self.endpoint, PREDICTIONS_BUCKET=bucket,
                   PREDICTIONS_PREFIX=DEFAULT_PREFIX, STAGE="dev", **LAMBDA_RUNTIME)
        env.update(extra or {})
        return env

    def publish(self, bucket: str, date: str, count: int) -> float:
        """Publish a sample batch of `count` rows; returns the seconds publish_document took."""
        return self.publish_with_gate(bucket, date, count)[0]

    def publish_with_gate(self, bucket: str, date: str, count: int) -> tuple[float, float]:
        """(seconds publish_document took, seconds of the publish gate's work on that batch against the
        day before's profile: what it adds to a daily publish; the publish itself, alone in its bucket,
        profiles the batch but has nothing to compare with)."""
        doc = make_batch(date, count)
        before = make_batch((dt.date.fromisoformat(date) - dt.timedelta(days=1)).isoformat(), count)
        previous = gate.profile(before["predictions"], before["model"])[0]
        del before
        t = time.perf_counter()
        mine, samples = gate.profile(doc["predictions"], doc["model"])
        gate.compare(mine, previous, gate.GateConfig(), doc["predictions"], samples)
        gate_s = time.perf_counter() - t
        t = time.perf_counter()
        # Limits that let the 1M batch in (117 MB of JSON), as the bench children are given them.
        limits = Settings(max_batch_bytes=256 << 20, max_stored_bytes=256 << 20, max_batch_items=count)
        publish_document(self.client, bucket, DEFAULT_PREFIX, doc, force=True, limits=limits)
        return time.perf_counter() - t, gate_s

    def create_bucket(self, bucket: str) -> None:
        self.client.create_bucket(Bucket=bucket)

    def stop(self) -> None:
        self.server.stop()
