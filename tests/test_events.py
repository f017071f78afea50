"""Raw API Gateway proxy events into app.app: what Lambda really runs, and hostile path parameters."""

from __future__ import annotations

import json
import re

import pytest
from apigw import proxy_event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import app

from helpers import BUCKET

pytestmark = pytest.mark.slow  # moto, sockets or timers in every test: not in make test-fast

ALLOWED_KEY = re.compile(r"predictions/(latest\.json|\d{4}-\d{2}-\d{2}/predictions\.json)")
ALLOWED_LIST = "ListObjectsV2:predictions/"


@pytest.fixture(autouse=True)
def _batch(put_batch, local_env):
    """The local stage over a bucket holding one batch (the S3 spy records what the API asks of it)."""
    put_batch("2026-11-23")


def call(event: dict) -> dict:
    return app(event, None)


def test_a_raw_event_is_routed_and_answered(s3_spy):
    response = call(proxy_event("/predictions/{date}", {"date": "latest"}, {"limit": "2"}))
    assert response["statusCode"] == 200
    assert [(c.op, c.bucket, c.key) for c in s3_spy.calls] == [
        ("GetObject", BUCKET, "predictions/latest.json"),
        ("GetObject", BUCKET, "predictions/2026-11-23/predictions.json"),
    ]
    assert len(json.loads(response["body"])["items"]) == 2
    assert response["headers"]["ETag"]


def test_a_raw_event_with_if_none_match_gets_304():
    first = call(proxy_event("/predictions/{date}/{pid}", {"date": "2026-11-23", "pid": "sku-001"}))
    again = call(proxy_event("/predictions/{date}/{pid}", {"date": "2026-11-23", "pid": "sku-001"},
                             headers={"If-None-Match": first["headers"]["ETag"]}))
    assert again["statusCode"] == 304


HOSTILE = ["../latest", "..", ".", "latest.json", "2026-11-23/../../secret", "2026-11-23%2F..",
           "2026-11-23\x00", "2026-11-23 ", " latest", "LATEST", "2026-11-23/predictions.json",
           "..%2F..%2Fetc", "２０２６-１１-２３", "2026-1-3", "+2026-11-23", "9999-99-99"]


@pytest.mark.parametrize("date", HOSTILE)
def test_hostile_dates_are_refused_without_touching_s3(s3_spy, date):
    response = call(proxy_event("/predictions/{date}", {"date": date}))
    assert response["statusCode"] == 400
    assert s3_spy.calls == []


@pytest.mark.parametrize("pid", ["../latest.json", "a/b", ".hidden", "x" * 129, "sku 1", "sku-1\n", "ü"])
def test_hostile_ids_are_refused_without_touching_s3(s3_spy, pid):
    response = call(proxy_event("/predictions/{date}/{pid}", {"date": "2026-11-23", "pid": pid}))
    assert response["statusCode"] == 400
    assert s3_spy.calls == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(date=st.text(max_size=40), pid=st.text(max_size=140))
def test_no_path_parameter_reads_outside_the_contract_keys(s3_spy, date, pid):
    for event in (proxy_event("/predictions/{date}", {"date": date}),
                  proxy_event("/predictions/{date}/{pid}", {"date": date, "pid": pid})):
        response = call(event)
        assert response["statusCode"] in (200, 400, 404)
        assert "Traceback" not in response["body"]
    for c in s3_spy.calls:
        assert c.bucket == BUCKET, c
        assert (c.op == "GetObject" and ALLOWED_KEY.fullmatch(c.key)) or c.target == ALLOWED_LIST, c
