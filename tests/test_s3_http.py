"""The botocore-free S3 client (chalice_app/store/s3_http.py): signing identical to botocore's,
credentials, addressing, TLS, retries and timeouts on real sockets.

Faults through the whole API run for both clients in tests/test_faults.py."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
import time
from unittest import mock

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from hypothesis import given, settings
from hypothesis import strategies as st

from chalice_app.config.settings import Settings
from chalice_app.store import s3_http
from chalice_app.store.sources import NotFound, S3Source, SourceUnavailable

# -- SigV4: byte for byte botocore's ----------------------------------------------------------------

ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"
ids = st.text(ID_CHARS, min_size=1, max_size=128)
# Prefixes and listing tokens are free text: every Unicode character but the surrogates.
free_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
regions = st.sampled_from(["us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1", "cn-north-1", "il-central-1"])
secrets = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=60)
tokens = st.none() | st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=400)
dates = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 12, 31))
etags = st.none() | st.text("0123456789abcdef", min_size=32, max_size=32).map(lambda h: f'"{h}"') | secrets
hosts = st.sampled_from(["bucket.s3.us-east-1.amazonaws.com", "s3.eu-west-1.amazonaws.com",
                         "127.0.0.1:5000", "localhost:4566"])
schemes = st.sampled_from(["https", "http"])


def botocore_authorization(scheme: str, host: str, path: str, query: str, headers: dict[str, str],
                           creds: s3_http.Credentials, region: str, when: dt.datetime) -> AWSRequest:
    url = f"{scheme}://{host}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method="GET", url=url, headers=dict(headers))
    request.context = {}
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        S3SigV4Auth(BotoCredentials(creds.access_key, creds.secret_key, creds.token), "s3", region).add_auth(request)
    return request


@settings(max_examples=300, deadline=None)
@given(prefix=free_text, date=st.dates(), pid=ids, region=regions, access=st.text(ID_CHARS, min_size=16, max_size=20),
       secret=secrets, token=tokens, when=dates, etag=etags, host=hosts, scheme=schemes,
       listing=st.booleans(), continuation=st.none() | free_text)
def test_signing_matches_botocore_byte_for_byte(prefix, date, pid, region, access, secret, token, when, etag, host,
                                                scheme, listing, continuation):
    creds = s3_http.Credentials(access, secret, token)
    if listing:
        path = "/"
        query = s3_http.query_string({"list-type": "2", "prefix": prefix, "encoding-type": "url",
                                      **({"continuation-token": continuation} if continuation else {})})
        headers: dict[str, str] = {}
    else:
        path = "/" + s3_http.quote_key(f"{prefix}{date.isoformat()}/{pid}.json")
        query = ""
        headers = {"if-none-match": etag} if etag else {}
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    ours = s3_http.sign("GET", s3_http.host_header(scheme, host), path, query, headers, creds, region, amz_date)
    theirs = botocore_authorization(scheme, host, path, query, headers, creds, region, when)
    assert ours["authorization"] == theirs.headers["Authorization"]
    assert ours["x-amz-date"] == theirs.headers["X-Amz-Date"]
    assert ours["x-amz-content-sha256"] == theirs.headers["X-Amz-Content-SHA256"]
    assert ours.get("x-amz-security-token") == theirs.headers.get("X-Amz-Security-Token")


def test_the_host_header_drops_default_ports_as_botocore_does():
    assert s3_http.host_header("https", "b.s3.us-east-1.amazonaws.com:443") == "b.s3.us-east-1.amazonaws.com"
    assert s3_http.host_header("http", "127.0.0.1:80") == "127.0.0.1"
    assert s3_http.host_header("http", "127.0.0.1:5000") == "127.0.0.1:5000"


# -- credentials, addressing, TLS -------------------------------------------------------------------


def test_credentials_only_from_the_environment_as_lambda_sets_them():
    env = {"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t"}
    assert s3_http.env_credentials(env) == s3_http.Credentials("AKIA", "s", "t")
    assert s3_http.env_credentials({**env, "AWS_SESSION_TOKEN": ""}) == s3_http.Credentials("AKIA", "s", None)
    # Anything else is the botocore client's (its credential chain): profiles, container, instance, SSO.
    assert s3_http.env_credentials({}) is None
    assert s3_http.env_credentials({"AWS_PROFILE": "dev"}) is None
    assert s3_http.env_credentials({**env, "AWS_PROFILE": "dev"}) is None
    assert s3_http.env_credentials({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1"}) is None
    assert s3_http.make_client(Settings(), {}) is None


LAMBDA_RUNTIME = {"AWS_LAMBDA_FUNCTION_NAME": "predictions-prod", "LAMBDA_TASK_ROOT": "/var/task",
                  "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001", "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13"}


def test_the_stdlib_client_runs_only_inside_lambda_or_when_asked_for():
    # Chalice itself sets AWS_EXECUTION_ENV in every process that imports an app: not a signal.
    assert not s3_http.in_lambda_runtime({"AWS_EXECUTION_ENV": "AWS_Lambda aws-chalice/1.34.0"})
    assert not s3_http.in_lambda_runtime({"AWS_LAMBDA_FUNCTION_NAME": "f"})
    assert s3_http.in_lambda_runtime(LAMBDA_RUNTIME)
    assert s3_http.in_lambda_runtime({"AWS_LAMBDA_FUNCTION_NAME": "f", "LAMBDA_TASK_ROOT": "/var/task"})
    assert s3_http.use_stdlib("auto", LAMBDA_RUNTIME) and not s3_http.use_stdlib("auto", {})
    assert s3_http.use_stdlib("stdlib", {}) and not s3_http.use_stdlib("botocore", LAMBDA_RUNTIME)


def test_s3_client_setting_is_validated():
    from chalice_app.config.settings import SettingsError, load_settings

    assert load_settings({}).s3_client == "auto"
    assert load_settings({"S3_CLIENT": " Stdlib "}).s3_client == "stdlib"
    with pytest.raises(SettingsError, match="S3_CLIENT"):
        load_settings({"S3_CLIENT": "urllib"})
    assert load_settings({"S3_REQUEST_DEADLINE_SECONDS": "2.5"}).s3_request_deadline == 2.5
    with pytest.raises(SettingsError, match="S3_REQUEST_DEADLINE_SECONDS"):
        load_settings({"S3_REQUEST_DEADLINE_SECONDS": "0"})


def test_the_container_picks_the_client_once(monkeypatch, capsys):
    from chalice_app.api import container

    # Outside Lambda (a laptop, chalice local, a test under mock_aws): botocore, credentials or not.
    container._state["settings"] = Settings(bucket="b")
    assert not isinstance(container.store().source.client, s3_http.HttpS3Client)
    assert container._state["s3_client_kind"] == "botocore"
    # Inside the Lambda runtime: the botocore-free client, with the stage's deadline.
    container.reset()
    for name, value in LAMBDA_RUNTIME.items():
        monkeypatch.setenv(name, value)
    container._state["settings"] = Settings(bucket="b", s3_request_deadline=3.0)
    store = container.store()
    assert isinstance(store.source.client, s3_http.HttpS3Client) and store.source.client.deadline == 3.0
    assert store.source.deadline == 3.0
    assert container._state["s3_client_kind"] == "http"
    # S3_CLIENT=botocore wins, even inside Lambda.
    container.reset()
    container._state["settings"] = Settings(bucket="b", s3_client="botocore")
    assert container._state.get("s3_client_kind") == "http" and container.store() is not None
    assert container._state["s3_client_kind"] == "botocore"
    # S3_CLIENT=stdlib outside Lambda opts in; without environment credentials it falls back, logged.
    for name in LAMBDA_RUNTIME:
        monkeypatch.delenv(name)
    container.reset()
    container._state["settings"] = Settings(bucket="b", s3_client="stdlib")
    assert isinstance(container.store().source.client, s3_http.HttpS3Client)
    container.reset()
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.setenv("AWS_PROFILE", "default")
    monkeypatch.setattr("chalice_app.aws_clients.make_s3_client", lambda cfg: "botocore-client")
    container._state["settings"] = Settings(bucket="b", s3_client="stdlib")
    assert container.store().source.client == "botocore-client"
    assert container._state["s3_client_kind"] == "botocore"
    assert '"event":"s3_client_fallback"' in capsys.readouterr().out


def test_addressing_is_virtual_hosted_in_the_buckets_region():
    client = s3_http.HttpS3Client(s3_http.Credentials("a", "s"), "eu-west-1")
    assert client._address("my-bucket", "/k") == ("https", "my-bucket.s3.eu-west-1.amazonaws.com", "/k")
    assert client._address("my.dotted.bucket", "/k") == ("https", "s3.eu-west-1.amazonaws.com", "/my.dotted.bucket/k")
    local = s3_http.HttpS3Client(s3_http.Credentials("a", "s"), "us-east-1", endpoint="http://127.0.0.1:5000")
    assert local._address("b", "/k") == ("http", "127.0.0.1:5000", "/b/k")
    env = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "eu-central-1",
           "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    made = s3_http.make_client(Settings(s3_connect_timeout=0.7, s3_read_timeout=1.5, s3_max_attempts=3), env)
    assert (made.region, made.endpoint, made.connect_timeout, made.read_timeout, made.max_attempts) == (
        "eu-central-1", "http://127.0.0.1:9", 0.7, 1.5, 3)


def test_tls_is_verified_against_the_ca_bundle_botocore_ships():
    context = s3_http.tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    import botocore

    assert s3_http.ca_bundle() is not None and s3_http.ca_bundle().startswith(botocore.__path__[0])
    assert context.cert_store_stats()["x509_ca"] > 50


def test_a_server_with_an_untrusted_certificate_is_refused(tmp_path):
    """A loopback TLS server with a self-signed certificate: the handshake must fail."""
    import subprocess

    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                           "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                           "-addext", "subjectAltName=IP:127.0.0.1"], capture_output=True)
    if made.returncode != 0:
        pytest.skip("openssl cannot make a certificate here")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    port = sock.getsockname()[1]

    def serve():
        for _ in range(2):
            try:
                conn, _ = sock.accept()
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    threading.Thread(target=serve, daemon=True).start()
    client = s3_http.HttpS3Client(s3_http.Credentials("a", "s"), "us-east-1", endpoint=f"https://127.0.0.1:{port}",
                                  max_attempts=1)
    with pytest.raises(s3_http.EndpointConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        client.get_object(Bucket="b", Key="k")
    sock.close()


# -- the wire: a loopback server that answers as S3 would -----------------------------------------------


class FakeS3:
    """A tiny HTTP/1.1 server on loopback; `answers` is a list of (status, headers, body) or 'hang'."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _conn(self, conn):
        while True:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    conn.close()
                    return
                data += chunk
            self.requests.append(data)
            answer = self.answers.pop(0) if self.answers else (500, {}, b"")
            if answer == "hang":
                self.held.append(conn)
                return
            status, headers, body = answer
            head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in
                                                        {"Content-Length": str(len(body)), **headers}.items())
            conn.sendall(head.encode() + b"\r\n" + body)
            if headers.get("Connection") == "close":
                conn.close()
                return

    def close(self):
        self.sock.close()
        for conn in self.held:
            conn.close()


def s3_error(code: str) -> bytes:
    return f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>m</Message></Error>".encode()


def source_on(server: FakeS3, **kw) -> S3Source:
    client = s3_http.HttpS3Client(s3_http.Credentials("a", "s", "tok"), "us-east-1", endpoint=server.url,
                                  connect_timeout=kw.pop("connect", 0.5), read_timeout=kw.pop("read", 0.5),
                                  max_attempts=kw.pop("attempts", 2))
    client.delay = lambda attempt, throttled: 0.0
    return S3Source(client, "b", **kw)


def test_get_200_304_404_403_and_xml_errors_map_as_today():
    server = FakeS3([(200, {"ETag": '"e1"'}, b'{"a": 1}'), (304, {}, b""), (404, {}, s3_error("NoSuchKey")),
                     (403, {}, s3_error("AccessDenied")), (503, {}, s3_error("SlowDown")),
                     (503, {}, s3_error("SlowDown")), (500, {}, b"not xml"), (200, {"ETag": '"e2"'}, b"ok")])
    source = source_on(server)
    fetched = source.get("predictions/k.json")
    assert (fetched.body, fetched.etag) == (b'{"a": 1}', '"e1"')
    assert source.get("predictions/k.json", '"e1"') is None
    request = server.requests[1].decode().lower()
    assert 'if-none-match: "e1"' in request and "x-amz-security-token: tok" in request
    assert "get /b/predictions/k.json http/1.1" in request
    with pytest.raises(NotFound):
        source.get("k")
    with pytest.raises(SourceUnavailable) as denied:
        source.get("k")
    assert denied.value.code == "AccessDenied"
    with pytest.raises(SourceUnavailable) as throttled:
        source.get("k")  # two SlowDowns: both attempts spent
    assert throttled.value.code == "SlowDown"
    assert source.get("k").body == b"ok"  # a 500 without XML (code "500"), retried
    server.close()


def test_listing_follows_continuation_tokens_and_decodes_keys():
    page1 = (b"<ListBucketResult xmlns='http://s3.amazonaws.com/doc/2006-03-01/'><EncodingType>url</EncodingType>"
             b"<IsTruncated>true</IsTruncated><NextContinuationToken>t+/=1</NextContinuationToken>"
             b"<Contents><Key>p/2026-11-23/predictions.json</Key></Contents>"
             b"<Contents><Key>p/2026-11-24/x%20y.json</Key></Contents></ListBucketResult>")
    page2 = (b"<ListBucketResult><IsTruncated>false</IsTruncated>"
             b"<Contents><Key>p/2026-11-22/predictions.json</Key></Contents></ListBucketResult>")
    server = FakeS3([(200, {}, page1), (200, {}, page2)])
    assert source_on(server).list_dates("p/") == ["2026-11-23", "2026-11-22"]
    second = server.requests[1].decode()
    assert "continuation-token=t%2B%2F%3D1" in second and "list-type=2" in second and "prefix=p%2F" in second
    server.close()


def test_bounded_reads_and_size_limits_hold():
    from chalice_app.store.sources import ObjectTooLarge

    server = FakeS3([(200, {}, b"x" * 100), (200, {}, b"y" * 10)])
    source = source_on(server, max_stored_bytes=50)
    with pytest.raises(ObjectTooLarge):
        source.get("k")
    assert source.get("k").body == b"y" * 10  # the connection of the refused body was dropped, not reused
    server.close()


def test_a_short_body_is_incomplete_read_error_not_retried():
    server = FakeS3([(200, {"Content-Length": "100", "Connection": "close"}, b"short")])
    with pytest.raises(SourceUnavailable) as exc:
        source_on(server).get("k")
    assert exc.value.code == "IncompleteReadError"
    assert len(server.requests) == 1
    server.close()


@pytest.mark.slow
def test_a_hanging_server_costs_attempts_times_read_timeout():
    server = FakeS3(["hang", "hang"])
    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as exc:
        source_on(server, read=0.3, attempts=2).get("k")
    elapsed = time.monotonic() - started
    assert exc.value.code == "ReadTimeoutError"
    assert len(server.requests) == 2 and 0.6 <= elapsed < 1.5
    server.close()


def test_a_refused_connection_is_endpoint_connection_error_retried():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there
    client = s3_http.HttpS3Client(s3_http.Credentials("a", "s"), "us-east-1", endpoint=f"http://127.0.0.1:{port}",
                                  max_attempts=3)
    sends = []
    client.delay = lambda attempt, throttled: sends.append(attempt) or 0.0
    with pytest.raises(SourceUnavailable) as exc:
        S3Source(client, "b").get("k")
    assert exc.value.code == "EndpointConnectionError" and sends == [1, 2]


def test_backoff_is_botocores_standard_mode():
    client = s3_http.HttpS3Client(s3_http.Credentials("a", "s"), "us-east-1")
    with mock.patch("random.random", return_value=1.0):
        assert client.delay(1, throttled=False) == pytest.approx(0.05)
        assert client.delay(3, throttled=False) == pytest.approx(0.2)
        assert client.delay(1, throttled=True) == pytest.approx(1.0)
        assert client.delay(10, throttled=True) == pytest.approx(20.0)


def test_a_kept_alive_connection_is_reused():
    server = FakeS3([(200, {"ETag": '"1"'}, b"a"), (200, {"ETag": '"2"'}, b"b")])
    source = source_on(server)
    assert source.get("k").body == b"a" and source.get("k").body == b"b"
    assert len(server.requests) == 2
    server.close()


def test_user_metadata_comes_back_as_botocore_gives_it():
    # What the publish command records (x-amz-meta-*), by which the API knows a batch it validated.
    server = FakeS3([(200, {"ETag": '"e1"', "x-amz-meta-sha256": "ab", "X-Amz-Meta-Validated": "publish-v1",
                            "x-amz-request-id": "r"}, b"{}")])
    fetched = source_on(server).get("k")
    assert fetched.metadata == {"sha256": "ab", "validated": "publish-v1"}
