"""The API side of a warm-up, through raw events into app.app: what Lambda really runs."""

from __future__ import annotations

import json
import time

import pytest
from apigw import proxy_event

from app import app
from chalice_app.api import container, warmup

pytestmark = pytest.mark.slow  # moto, sockets or timers in every test: not in make test-fast


@pytest.fixture
def local_stage(s3, local_env) -> None:
    """The local stage's settings over the in-process bucket."""


def warm(hold_ms: int = 0, index: int = 0, of: int = 1) -> tuple[int, dict]:
    response = app(warmup.build_event(hold_ms=hold_ms, run_id="t1", index=index, of=of), None)
    return response["statusCode"], json.loads(response["body"])


def get(resource: str, params: dict | None = None, **kwargs) -> dict:
    return app(proxy_event(resource, params, **kwargs), None)


def test_warmup_preloads_so_the_next_requests_make_no_s3_call(local_stage, s3_spy, put_batch):
    put_batch("2026-11-22", pointer=False)
    put_batch("2026-11-23", n=7)
    status, report = warm()
    assert status == 200
    assert report["warmup"] is True and report["preloaded"] is True
    assert report["latest"] == "2026-11-23" and report["items"] == 7
    assert set(s3_spy.ops) == {"GetObject", "ListObjectsV2"}
    s3_spy.clear()
    for resource, params in (("/predictions/{date}", {"date": "latest"}), ("/predictions", None),
                             ("/predictions/{date}/{pid}", {"date": "2026-11-23", "pid": "sku-003"})):
        assert get(resource, params)["statusCode"] == 200
    assert s3_spy.ops == []


def test_warmup_says_whether_this_container_was_cold(local_stage, put_batch):
    put_batch("2026-11-23")
    assert warm()[1]["cold"] is True
    assert warm()[1]["cold"] is False
    # The warm-up took the cold start: the first real request finds a warm container.
    assert json.loads(get("/health")["body"])["cold"] is False


def test_warmup_names_its_container_and_echoes_the_run(local_stage, put_batch):
    put_batch("2026-11-23")
    first, second = warm()[1], warm()[1]
    assert first["container"] == second["container"] == container.container_id()
    assert first["run"] == "t1" and first["stage"] == "local"
    container.reset()  # a new container gets a new name
    assert warm()[1]["container"] != first["container"]


def test_warmup_holds_its_container_when_asked(local_stage, put_batch):
    put_batch("2026-11-23")
    started = time.monotonic()
    status, report = warm(hold_ms=150, index=1, of=3)
    assert status == 200 and report["held_ms"] == 150
    assert time.monotonic() - started >= 0.15


def test_hold_is_bounded_whatever_the_event_asks():
    assert warmup.hold_ms({"hold_ms": 10**9}) == warmup.MAX_HOLD_MS
    assert warmup.hold_ms({"hold_ms": -5}) == 0
    assert warmup.hold_ms({"hold_ms": "150"}) == 0
    assert warmup.hold_ms({"hold_ms": True}) == 0
    assert warmup.hold_ms({}) == 0


def test_warmup_of_an_empty_bucket_is_a_success_with_nothing_to_load(local_stage):
    status, report = warm()
    assert status == 200
    assert report["preloaded"] is False and report["latest"] is None


def test_warmup_when_s3_fails_is_a_503_the_warmer_can_count(local_stage, s3_spy, put_batch):
    put_batch("2026-11-23")
    s3_spy.fail(status=503)
    status, report = warm()
    assert status == 503
    assert report["error"]["code"] == "storage_unavailable"
    assert report["cold"] is True and report["preloaded"] is False


def test_warmup_without_a_bucket_is_a_503(s3, local_env, monkeypatch):
    monkeypatch.setenv("PREDICTIONS_BUCKET", "")
    status, report = warm()
    assert status == 503 and report["error"]["code"] == "not_configured"


# -- nobody else can warm up ----------------------------------------------------------------------


def test_the_internet_gets_the_unknown_route_403_for_the_warmup_path(api):
    # chalice's test client routes like API Gateway: no resource, no Lambda invocation at all.
    warmup_path = api.get(warmup.PATH)
    unknown = api.get("/no-such-route")
    assert warmup_path.status_code == unknown.status_code == 403
    assert warmup_path.body == unknown.body
    assert container._state["store"] is None  # the app never ran: no S3 client, no S3 call


def test_a_warmup_path_event_without_the_marker_is_a_404_and_no_s3_call(local_stage, s3_spy):
    response = get(warmup.PATH)
    assert response["statusCode"] == 404
    assert json.loads(response["body"])["error"]["code"] == "not_found"
    assert s3_spy.ops == []


@pytest.mark.parametrize("forged", [
    {"headers": {warmup.MARKER: '{"hold_ms": 1000}', "X-Warmup": "1"}},
    {"query": {warmup.MARKER: "1"}},
])
def test_client_controlled_fields_never_make_a_warmup(local_stage, s3_spy, forged):
    response = get("/health", **forged)
    assert json.loads(response["body"])["status"] == "ok"  # an ordinary health answer (or a 400)
    assert "warmup" not in json.loads(response["body"])
    assert s3_spy.ops == []


def test_only_a_dict_marker_in_request_context_counts():
    class Request:
        def __init__(self, context):
            self.context = context

    assert warmup.marker_of(Request({warmup.MARKER: {"hold_ms": 0}})) == {"hold_ms": 0}
    assert warmup.marker_of(Request({warmup.MARKER: "yes"})) is None
    assert warmup.marker_of(Request({})) is None
    assert warmup.marker_of(None) is None
