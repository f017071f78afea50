"""The stage throttle as the local API Gateway stand-in applies it: a token bucket, 429 past the burst.

API Gateway's stage method throttling (`api_throttle` in .chalice/config.json, deploy/app_template.py) is a
token bucket: `burst_limit` requests at once, `rate_limit` more a second; what finds no token gets the
THROTTLED gateway response without reaching the function.
"""

from __future__ import annotations

import http.client
import http.server
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalice_app.config.stage_file import load_config
from tools import api_gateway_local, load
from tools.api_gateway_local import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_gives_the_burst_at_once_then_refuses():
    bucket = TokenBucket(rate=10, burst=5, clock=Clock())
    assert [bucket.take() for _ in range(7)] == [True] * 5 + [False] * 2
    assert bucket.refused == 2


def test_the_bucket_refills_at_the_rate_up_to_the_burst_only():
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    for _ in range(5):
        bucket.take()
    clock.now += 0.25  # 2.5 tokens
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    clock.now += 60  # a long pause fills the bucket, never past the burst
    assert sum(bucket.take() for _ in range(10)) == 5


@pytest.mark.parametrize(("rate", "burst"), [(0, 5), (1, 0)])
def test_a_bucket_without_tokens_is_refused(rate, burst):
    with pytest.raises(ValueError, match="must be positive"):
        TokenBucket(rate, burst)


def test_the_local_stand_in_takes_the_stage_throttle_from_the_config():
    config = load_config()
    for stage in config["stages"]:
        bucket = api_gateway_local.stage_throttle(stage)
        throttle = config["stages"][stage]["api_throttle"]
        assert (bucket.rate, bucket.burst) == (throttle["rate_limit"], throttle["burst_limit"])


def test_an_unknown_stage_is_named():
    with pytest.raises(ValueError, match="unknown stage 'nope'"):
        api_gateway_local.stage_throttle("nope")


class Upstream(http.server.ThreadingHTTPServer):
    """A stand-in for chalice local that counts what reaches it."""

    daemon_threads = True

    def __init__(self) -> None:
        self.hits = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                with outer.lock:
                    outer.hits += 1
                body = b'{"status": "ok"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def throttled_gateway():
    upstream = Upstream()
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    # A rate so low that no token comes back while the test runs: exactly the burst gets through.
    gateway = api_gateway_local.start_in_thread(f"http://127.0.0.1:{upstream.server_address[1]}",
                                                throttle=TokenBucket(rate=0.001, burst=8))
    yield gateway, upstream
    gateway.stop()
    upstream.shutdown()
    upstream.server_close()


def _get(gateway, path: str = "/api/health"):
    conn = http.client.HTTPConnection("127.0.0.1", gateway.server_address[1], timeout=10)
    try:
        conn.request("GET", path, headers={"Host": gateway.domain})
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


@pytest.mark.slow
def test_past_the_burst_api_gateway_answers_429_in_the_api_error_shape_with_retry_after(throttled_gateway):
    gateway, upstream = throttled_gateway
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: _get(gateway), range(20)))
    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [200] * 8 + [429] * 12
    assert upstream.hits == 8  # a throttled request never reaches the function
    for status, headers, body in answers:
        if status == 429:
            assert json.loads(body)["error"]["code"] == "throttled"
            assert headers["retry-after"] == "1" and headers["content-type"].startswith("application/json")


def test_the_load_counts_api_gateway_429s_as_throttled_not_errors():
    request = load.Request("latest_page", "/predictions/latest")
    shaped = json.dumps({"error": {"code": "throttled", "message": "too many requests"}}).encode()
    assert load.check(request, 429, shaped, {"retry-after": "1"}) is None
    assert "without the throttled error shape" in load.check(request, 429, shaped, {})
    assert "without the throttled error shape" in load.check(request, 429, b"Too Many Requests", {"retry-after": "1"})
    report = load.Report(results=[load.Result("x", 429, 0.01), load.Result("x", 200, 0.01)], requested=2,
                         elapsed=1.0)
    assert report.summary()["throttled"] == 1 and report.summary()["errors"] == 0
