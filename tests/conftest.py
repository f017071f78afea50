"""Shared fixtures: fake AWS, an in-process moto bucket, the API as a Chalice test client."""

from __future__ import annotations

import gzip
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from chalice_app.api import origin as _origin

from helpers import BUCKET, CHROMIUM, CHROMIUM_ARGS, PREFIX, PROJECT_DIR, make_doc

REAL_PARAMETER_NAME = _origin.parameter_name  # before origin_check_off replaces it

# `make test-fast` runs what is not marked slow: pure unit tests, seconds in all. Entering moto per test costs
# 0.1-0.3 s, so a test using these fixtures is slow by this rule; modules of servers, sockets, subprocesses or
# moto throughout say so with `pytestmark = pytest.mark.slow`.
MOTO_PER_TEST = frozenset({"s3", "api", "put_batch", "aws", "ssm", "s3_spy", "black_hole"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if MOTO_PER_TEST.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)

if TYPE_CHECKING:
    from s3_spy import S3Spy


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
def http_s3_through_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API's botocore-free S3 client (chalice_app/store/s3_http.py) reaches in-process moto too."""
    from s3_spy import route_http_client_through_moto

    route_http_client_through_moto(monkeypatch)


@pytest.fixture(autouse=True)
def fresh_container() -> Iterator[None]:
    """Each test starts as a new Lambda container would: no settings, no store, cold."""
    from chalice_app.api import container

    container.reset()
    yield
    container.reset()


@pytest.fixture(autouse=True)
def origin_check_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every stage sets ORIGIN_SECRET_PARAMETER (chalice.test.Client applies it per request), but a unit
    test has no secret to send: the check is off, as with the variable unset, unless a test asks for
    `origin_check_on` (tests/test_origin.py)."""
    from chalice_app.api import origin

    monkeypatch.setattr(origin, "parameter_name", lambda env=None: "")


@pytest.fixture
def origin_check_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The origin check as deployed: on whenever ORIGIN_SECRET_PARAMETER is set."""
    from chalice_app.api import origin

    monkeypatch.setattr(origin, "parameter_name", REAL_PARAMETER_NAME)


@pytest.fixture
def local_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment `chalice local --stage local` gives the app, from .chalice/config.json."""
    from chalice_app.config.stage_file import stage_environment

    for name, value in stage_environment("local").items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def s3() -> Iterator[object]:
    from moto import mock_aws

    with mock_aws():
        import boto3

        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture(scope="module")
def module_s3() -> Iterator[object]:
    """One in-process moto bucket for a whole module: entering mock_aws per test costs ~0.3 s."""
    from moto import mock_aws

    with pytest.MonkeyPatch.context() as mp, mock_aws():
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_DEFAULT_REGION": "us-east-1"}.items():
            mp.setenv(name, value)
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        import boto3

        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


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


@pytest.fixture
def s3_spy(monkeypatch: pytest.MonkeyPatch) -> S3Spy:
    """The S3 spy and fault injector (tests/s3_spy.py) on the API container's own S3 client.

    It attaches whenever the container hands out its store, so it sees every call from the
    container's first one, whichever fixture or test provides the settings, and after a
    container.reset() too. A client built outside the container can be added with .attach().
    """
    from chalice_app.api import container

    from s3_spy import S3Spy, skip_backoff_after_injected_faults

    spy = S3Spy()
    real_store = container.store

    def store():
        current = real_store()
        spy.attach(current.source.client)
        return current

    monkeypatch.setattr(container, "store", store)
    skip_backoff_after_injected_faults(monkeypatch)
    return spy


@pytest.fixture(scope="session")
def botocore_session():
    # Created after moto is imported, so it carries moto's before-send handler.
    import botocore.session
    import moto  # noqa: F401

    return botocore.session.get_session()


@pytest.fixture
def shared_botocore_session(botocore_session, monkeypatch):
    """A test that makes many "new containers" would pay ~80 ms of model loading for each new
    botocore session; sharing one is safe because clients copy the session's event hooks."""
    import botocore.session

    monkeypatch.setattr(botocore.session, "get_session", lambda: botocore_session)


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A TCP server on loopback that accepts connections and never answers: S3 hanging."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held, stop = [], threading.Event()

    def accept():
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    sock.close()


@pytest.fixture(scope="session")
def chromium_tmpdir() -> Iterator[str]:
    """Chromium leaves org.chromium.Chromium.* folders in TMPDIR: give it its own, then remove it."""
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="site-browser-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict, chromium_tmpdir: str) -> dict:
    """pytest-playwright launches Debian's Chromium (a downloaded browser cannot run here)."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS,
            "env": {**os.environ, "TMPDIR": chromium_tmpdir}}
