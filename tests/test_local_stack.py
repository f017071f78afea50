"""`make run`'s stack for real: moto's S3 server, sample data, `chalice local`, the publish CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

from tools import devstack

from helpers import BUCKET, PROJECT_DIR

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack():
    with devstack.local_api(BUCKET, days=3, count=30, end_date="2026-11-23") as (endpoint, api_url):
        yield endpoint, api_url


def get(url: str) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_chalice_local_serves_the_seeded_sample(stack):
    _, api = stack
    status, page = get(f"{api}/predictions/latest?limit=5")
    assert status == 200
    assert page["date"] == "2026-11-23"
    assert page["count"] == 30 and len(page["items"]) == 5


def test_moto_server_listens_on_loopback_only(stack):
    endpoint, _ = stack
    assert endpoint.startswith("http://127.0.0.1:")


def test_publish_cli_against_the_local_bucket_is_served(stack, tmp_path):
    endpoint, api = stack
    path = tmp_path / "next.csv"
    path.write_text("id,label,value\nsku-new,Fresh figs,7.5\n")
    done = subprocess.run(
        [sys.executable, "-m", "chalice_app.publishing.publish", str(path), "--date", "2026-11-24", "--stage", "local",
         "--model-name", "demand-forecast", "--model-version", "3.3.0"],
        cwd=PROJECT_DIR, env=devstack.aws_env(endpoint), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "(now latest)" in done.stdout
    status, answer = get(f"{api}/predictions/2026-11-24/sku-new")
    assert status == 200
    assert answer["prediction"] == {"id": "sku-new", "label": "Fresh figs", "value": 7.5}
    assert answer["model"]["version"] == "3.3.0"


def test_local_stack_env_drops_real_credentials(monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "production")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "real-secret")
    env = devstack.aws_env("http://127.0.0.1:9")
    assert "AWS_PROFILE" not in env
    assert env["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9"
