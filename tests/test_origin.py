"""The origin check (chalice_app/api/origin.py): only what CloudFront sends, with its X-Origin-Verify
header, is answered; nothing else reads S3. The secret is read from Parameter Store (in-process moto)
once per container, again after its TTL, and a rotation's two values are both accepted."""

from __future__ import annotations

import json

import pytest
from apigw import proxy_event

from app import app
from chalice_app.api import origin, warmup
from deploy import stack_template

from helpers import body

PARAMETER = "/predictions/origin-secrets/local"  # the local stage's ORIGIN_SECRET_PARAMETER
NEW, OLD = "n" * 43, "o" * 43


@pytest.fixture
def ssm(s3):
    """moto's SSM (s3 has entered mock_aws) holding the local stage's secret: a rotation half done."""
    import boto3

    client = boto3.client("ssm", region_name="us-east-1")
    client.put_parameter(Name=PARAMETER, Value=f"{NEW},{OLD}", Type="SecureString")
    return client


@pytest.fixture
def checked(origin_check_on, ssm, put_batch):
    put_batch("2026-11-23")
    return ssm


def test_the_header_is_the_one_the_template_sends():
    assert origin.HEADER == stack_template.ORIGIN_HEADER == "X-Origin-Verify"


def test_without_the_header_a_403_in_the_api_shape_and_no_s3_read(checked, api, s3_spy):
    for path in ("/predictions/latest", "/predictions", "/health", "/predictions/latest/sku-001"):
        response = api.get(path)
        assert response.status_code == 403, path
        assert body(response) == {"error": {"code": "forbidden",
                                            "message": "this API answers through the site's domain only"}}
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert s3_spy.ops == []


def test_a_wrong_or_empty_header_is_refused_too(checked, api, s3_spy):
    for value in ("", "x", NEW[:-1], NEW + "x", f"{NEW},{OLD}", NEW.upper()):
        assert api.get("/predictions/latest", headers={origin.HEADER: value}).status_code == 403, value
    assert s3_spy.ops == []


def test_every_value_of_the_parameter_is_accepted(checked, api):
    for value in (NEW, OLD):
        response = api.get("/predictions/latest", headers={origin.HEADER: value})
        assert response.status_code == 200 and body(response)["date"] == "2026-11-23"
    # Header names are case-insensitive (CloudFront and API Gateway may change their case).
    assert api.get("/health", headers={"x-origin-verify": NEW}).status_code == 200


def test_an_unreadable_secret_refuses_everything_with_a_503_before_any_s3_read(origin_check_on, s3, api, s3_spy,
                                                                                capsys):
    response = api.get("/predictions/latest", headers={origin.HEADER: NEW})  # no parameter in moto
    assert response.status_code == 503
    assert body(response)["error"]["code"] == "origin_check_unavailable"
    assert response.headers["Retry-After"] == "5"
    assert s3_spy.ops == []
    line = json.loads(capsys.readouterr().out.strip().splitlines()[0])
    assert line["event"] == "origin_secret_unavailable" and line["code"] == "ParameterNotFound"
    assert NEW not in json.dumps(line)


def test_read_once_per_ttl_and_a_rotation_is_seen_after_it(monkeypatch):
    from conftest import REAL_PARAMETER_NAME

    monkeypatch.setattr(origin, "parameter_name", REAL_PARAMETER_NAME)

    class Ssm:
        def __init__(self):
            self.value, self.calls = f"{NEW},{OLD}", 0

        def get_parameter(self, Name, WithDecryption):  # botocore's names
            assert Name == PARAMETER and WithDecryption is True
            self.calls += 1
            return {"Parameter": {"Value": self.value}}

    env = {origin.PARAMETER_ENV: PARAMETER, origin.TTL_ENV: "60"}
    ssm = Ssm()
    assert origin.accepted_values(env, client=ssm, now=100.0) == (NEW, OLD)
    ssm.value = NEW  # the rotation's last step: the old value dropped
    assert origin.accepted_values(env, client=ssm, now=159.0) == (NEW, OLD) and ssm.calls == 1
    assert origin.accepted_values(env, client=ssm, now=160.0) == (NEW,) and ssm.calls == 2
    assert origin.current_secret(env, client=ssm) == NEW


def test_a_failed_re_read_keeps_the_values_read_before(monkeypatch, capsys):
    from conftest import REAL_PARAMETER_NAME

    monkeypatch.setattr(origin, "parameter_name", REAL_PARAMETER_NAME)

    class Flaky:
        fail = False

        def get_parameter(self, **_):
            if self.fail:
                raise TimeoutError("SSM hangs")
            return {"Parameter": {"Value": f" {NEW} , ,{OLD} "}}

    env = {origin.PARAMETER_ENV: PARAMETER}
    ssm = Flaky()
    assert origin.accepted_values(env, client=ssm, now=0.0) == (NEW, OLD)
    ssm.fail = True
    assert origin.accepted_values(env, client=ssm, now=1000.0) == (NEW, OLD)
    assert "keeping the values read before" in capsys.readouterr().out
    # The next try waits RETRY_SECONDS: an outage costs one slow request every few seconds, not every one.
    assert origin.accepted_values(env, client=ssm, now=1000.0 + origin.RETRY_SECONDS - 0.1) == (NEW, OLD)
    assert capsys.readouterr().out == ""


def test_the_check_is_off_without_the_variable():
    assert origin.refusal({}, {}) is None  # conftest's default: what a stage without the variable gets
    from conftest import REAL_PARAMETER_NAME

    assert REAL_PARAMETER_NAME({}) == "" and REAL_PARAMETER_NAME({origin.PARAMETER_ENV: " /p "}) == "/p"
    with pytest.raises(origin.SecretUnavailable):
        origin.current_secret({})


def test_warm_ups_need_no_header_and_read_the_secret_ahead(checked, local_env, s3_spy):
    response = app(warmup.build_event(hold_ms=0, run_id="t", index=0, of=1), None)
    report = json.loads(response["body"])
    assert response["statusCode"] == 200 and report["preloaded"] is True and report["origin_secret"] is True
    # The next request through CloudFront finds the secret and the batch in memory: no SSM, no S3 call.
    checked.delete_parameter(Name=PARAMETER)
    s3_spy.clear()
    ok = app(proxy_event("/predictions/{date}", {"date": "latest"}, headers={origin.HEADER: OLD}), None)
    assert ok["statusCode"] == 200 and s3_spy.ops == []
    refused = app(proxy_event("/predictions/{date}", {"date": "latest"}), None)
    assert refused["statusCode"] == 403 and json.loads(refused["body"])["error"]["code"] == "forbidden"


def test_the_local_edge_adds_the_header_as_the_template_says_and_replaces_a_viewers(tmp_path):
    """tools/edge.py: OriginCustomHeaders of deploy/stack.json on /api/* only; a viewer's own header of
    that name never reaches the API (CloudFront overwrites it)."""
    import http.client
    import http.server
    import threading

    from tools.edge import start_in_thread

    seen: list[list[str]] = []

    class Origin(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get_all(origin.HEADER) or [])
            body = b'{"status": "ok"}'
            self.send_response(200)
            for name, value in (("Content-Type", "application/json"), ("Cache-Control", "no-store"),
                                ("Content-Length", str(len(body)))):
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    api = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=api.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    (tmp_path / "index.html").write_text("<!doctype html><title>t</title>")
    edge = start_in_thread(str(tmp_path), api_domain=f"127.0.0.1:{api.server_address[1]}", origin_secret=NEW)
    try:
        for headers in ({}, {origin.HEADER: "a-viewer-guess-0123456789"}):
            conn = http.client.HTTPConnection("127.0.0.1", edge.server_address[1], timeout=10)
            conn.request("GET", "/api/health", headers=headers)
            assert conn.getresponse().status == 200
            conn.close()
    finally:
        edge.stop()
        api.shutdown()
        api.server_close()
    assert seen == [[NEW], [NEW]]
