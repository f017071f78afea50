"""`python -m deploy.smoke`: the deploy's smoke test, run for real against the local stack and a few stand-ins.

The local stack (tools/devstack.py with edge=True) is the chain production has: the local edge serving
deploy/stack.json's distribution, /api/* through the API Gateway stand-in to `chalice local`. A stage with
batches passes; one with none fails on /api/predictions/latest, then passes once a batch is published;
a wrong URL (moto's S3, a closed port) fails every check; --retries rides out a site that comes up late.
Bad usage exits 2, before any request.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from chalice_app.api.responses import BASE_HEADERS
from chalice_app.website.serving import SECURITY_HEADERS
from deploy import smoke

from helpers import PROJECT_DIR, make_doc

CHECKS = 1 + 1 + len(SECURITY_HEADERS) + 2 * (1 + len(smoke.API_HEADERS)) + 1 + 2


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deploy.smoke", *args], cwd=PROJECT_DIR, capture_output=True,
                          text=True, timeout=timeout)


def lines(output: str, word: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(word)]


# --- usage: no request is sent -----------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    [], ["--url", "https://d1.cloudfront.net", "--stage", "dev"], ["--url", "ftp://d1.cloudfront.net"],
    ["--url", "d1.cloudfront.net"], ["--url", "https://d1.cloudfront.net/?x=1"],
    ["--url", "https://d1.cloudfront.net", "--retries", "-1"], ["--url", "https://d1.cloudfront.net", "--wait", "x"],
    ["--url", "https://d1.cloudfront.net", "--timeout", "0"], ["--stage"],
])
def test_bad_usage_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        smoke.main(argv)
    assert stopped.value.code == 2
    assert "usage: python -m deploy.smoke" in capsys.readouterr().err


def test_help_explains_the_checks_and_exit_codes():
    done = run("--help")
    assert done.returncode == 0
    for words in ("--url", "--stage", "--retries", "--wait", "--timeout", "/api/health", "/api/predictions/latest",
                  "0 all passed, 1 a check failed", "\n2 bad usage", "predictions-<stage>-site"):
        assert words in done.stdout, words


def test_base_url_keeps_a_path_and_drops_the_slash():
    assert smoke.base_url("https://d1.cloudfront.net/") == "https://d1.cloudfront.net"
    assert smoke.base_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert smoke.base_url("https://example.com/preview/") == "https://example.com/preview"


# --- --stage: the URL from the stage stack's outputs (moto's CloudFormation) -------------------------


def stage_stack(cfn, stage: str, outputs: dict[str, str]) -> None:
    template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {k: {"Value": v} for k, v in outputs.items()}}
    cfn.create_stack(StackName=f"predictions-{stage}-site", TemplateBody=json.dumps(template))


def test_stage_reads_the_site_url_output():
    from moto import mock_aws

    with mock_aws():
        import boto3

        cfn = boto3.client("cloudformation", region_name="us-east-1")
        stage_stack(cfn, "dev", {"SiteUrl": "https://d111.cloudfront.net/", "DistributionDomainName": "d111"})
        stage_stack(cfn, "prod", {"DistributionDomainName": "d222.cloudfront.net"})
        assert smoke.stage_url("dev", cfn) == "https://d111.cloudfront.net/"
        assert smoke.stage_url("prod", cfn) == "https://d222.cloudfront.net/"


def test_stage_without_a_stack_exits_1_and_says_why(capsys):
    from moto import mock_aws

    with mock_aws():
        assert smoke.main(["--stage", "nowhere"]) == 1
    err = capsys.readouterr().err
    assert "cannot read the URL of stage nowhere" in err and "predictions-nowhere-site" in err


# --- stand-ins for a site: a closed port, one that comes up late -------------------------------------------


class FakeSite(http.server.ThreadingHTTPServer):
    """Answers as the deployed site would, after `failures` answers of 503."""

    daemon_threads = True

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.requests = 0
        super().__init__(("127.0.0.1", 0), FakeHandler)


class FakeHandler(http.server.BaseHTTPRequestHandler):
    server: FakeSite

    def do_GET(self) -> None:
        self.server.requests += 1
        if self.server.requests <= self.server.failures:
            self.answer(503, {"Content-Type": "text/plain"}, b"still propagating")
        elif self.path == "/":
            self.answer(200, {**SECURITY_HEADERS, "Content-Type": "text/html; charset=utf-8"}, b"<!doctype html>")
        elif self.path == "/api/health":
            self.answer(200, smoke.API_HEADERS, b'{"status": "ok"}')
        elif self.path == "/api/predictions/latest":
            self.answer(200, smoke.API_HEADERS, b'{"date": "2026-11-23", "items": []}')
        else:
            self.answer(404, {"Content-Type": "text/plain"}, b"")

    def answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_site() -> Iterator[callable]:
    servers: list[FakeSite] = []

    def start(failures: int = 0) -> tuple[FakeSite, str]:
        server = FakeSite(failures)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server, f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_retries_ride_out_a_site_that_comes_up_late(fake_site):
    server, url = fake_site(failures=4)  # the first attempt's 3 requests and one of the second's
    done = run("--url", url, "--retries", "3", "--wait", "0.1")
    assert done.returncode == 0, done.stdout
    assert "attempt 1 of 4: " in done.stdout and "attempt 2 of 4: " in done.stdout
    assert "(attempt 3 of 4)" in done.stdout
    final = done.stdout.split("smoke test of", 1)[1]
    assert len(lines(final, "PASS")) == CHECKS and not lines(final, "FAIL")
    assert server.requests == 9


@pytest.mark.slow
def test_retries_run_out(fake_site):
    server, url = fake_site(failures=1000)
    done = run("--url", url, "--retries", "2", "--wait", "0.05")
    assert done.returncode == 1
    assert "(attempt 3 of 3)" in done.stdout
    assert "FAIL  GET / status: expected 200, got 503" in done.stdout
    assert server.requests == 9


@pytest.mark.slow
def test_a_closed_port_fails_with_no_answer():
    from tools.devstack import free_port

    done = run("--url", f"http://127.0.0.1:{free_port()}", "--timeout", "2")
    assert done.returncode == 1
    failed = lines(done.stdout, "FAIL")
    assert len(failed) == 3 and all("no answer (ConnectionRefusedError" in line for line in failed), done.stdout


# --- the local stack: the site behind the local edge, the API behind it ------------------------------------


@pytest.mark.slow
def test_the_local_stack_passes_and_a_wrong_url_fails(tmp_path):
    from tools import devstack

    log = tmp_path / "stack.log"
    with devstack.local_stack(days=2, count=10, end_date="2026-11-23", edge=True, log_path=str(log)) as stack:
        done = run("--url", stack.edge_url + "/")
        assert done.returncode == 0, done.stdout + log.read_text(errors="replace")[-2000:]
        assert len(lines(done.stdout, "PASS")) == CHECKS, done.stdout
        assert f"PASS  GET / header Content-Security-Policy: expected {SECURITY_HEADERS['Content-Security-Policy']!r}" \
               in done.stdout
        assert f"PASS  GET /api/health header Referrer-Policy: expected {BASE_HEADERS['Referrer-Policy']!r}" \
               in done.stdout
        assert f"smoke: {CHECKS} of {CHECKS} checks passed" in done.stdout

        # chalice local itself (no edge): the API answers, but not under /api and without the site's headers.
        done = run("--url", stack.api_url)
        assert done.returncode == 1
        assert "FAIL  GET / status: expected 200, got " in done.stdout

        # moto's S3 endpoint: an HTTP server, but not the site.
        done = run("--url", stack.endpoint)
        assert done.returncode == 1
        assert "FAIL  GET / header Content-Type: expected text/html, got 'application/xml'" in done.stdout
        assert "FAIL  GET /api/health body status: expected 'ok', got not JSON" in done.stdout


@pytest.mark.slow
def test_a_stage_without_a_batch_fails_until_one_is_published(tmp_path):
    from tools import devstack

    log = tmp_path / "stack.log"
    # The site needs a batch to build from: start with one, then take it away, as on a stage whose bucket
    # holds none (the API has read nothing yet, so nothing is cached).
    with devstack.local_stack(days=1, count=5, end_date="2026-11-22", edge=True, log_path=str(log)) as stack:
        s3 = stack.s3()
        for item in s3.list_objects_v2(Bucket=stack.bucket).get("Contents", []):
            s3.delete_object(Bucket=stack.bucket, Key=item["Key"])
        done = run("--url", stack.edge_url)
        assert done.returncode == 1, done.stdout
        failed = lines(done.stdout, "FAIL")
        assert failed and all(line.startswith("FAIL  GET /api/predictions/latest ") for line in failed), done.stdout
        assert "FAIL  GET /api/predictions/latest status: expected 200, got 404" in done.stdout
        assert "PASS  GET /api/health body status" in done.stdout

        stack.publish(make_doc("2026-11-23", n=5))
        done = run("--url", stack.edge_url, "--retries", "10", "--wait", "1")
        assert done.returncode == 0, done.stdout
        assert "PASS  GET /api/predictions/latest body date: expected a YYYY-MM-DD date, got '2026-11-23'" \
               in done.stdout
