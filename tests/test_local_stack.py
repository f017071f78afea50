"""`make run`'s stack for real: tools.devstack.local_stack, its sample data, the publish CLI, make run.

local_stack() is the one way the local stack is assembled (make run, make load, make lighthouse and
the end-to-end tests): here it must start every part on 127.0.0.1 and stop every part it started,
however the with-block ends.
"""

from __future__ import annotations

import datetime
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager

import pytest

from tools import devstack

from helpers import PROJECT_DIR

pytestmark = pytest.mark.slow

# The lifecycle tests run while the module's stack may be up, and moto's state is one per process:
# they add one old batch (it never becomes the latest) and keep what is there (fresh=False).
OLD_DATE = "2020-01-01"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.LocalStack]:
    log = tmp_path_factory.mktemp("stack") / "stack.log"
    with devstack.local_stack(days=3, count=30, end_date="2026-11-23", log_path=str(log)) as stack:
        yield stack


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    """GET a JSON answer; an HTTP error's status and body too."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def listening(port: int) -> bool:
    try:
        socket.create_connection((devstack.LOOPBACK, port), timeout=2).close()
    except OSError:
        return False
    return True


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def assert_running(stack: devstack.LocalStack) -> None:
    assert stack.processes and all(proc.poll() is None for proc in stack.processes)
    assert all(listening(port) for port in stack.ports)


def assert_stopped(stack: devstack.LocalStack) -> None:
    for proc in stack.processes:
        assert proc.poll() is not None, proc.args
        assert not group_alive(proc.pid), proc.args  # chalice local / the edge, and their process groups
    assert [port for port in stack.ports if listening(port)] == []
    if stack.site_dir is not None:
        assert not os.path.exists(stack.site_dir)  # the temporary build is removed


def test_chalice_local_serves_the_seeded_sample(stack):
    status, page = get(f"{stack.api_url}/predictions/latest?limit=5", stack.origin_headers)
    assert status == 200
    assert page["date"] == "2026-11-23"
    assert page["count"] == 30 and len(page["items"]) == 5


def test_everything_listens_on_loopback_only(stack):
    for url in (stack.endpoint, stack.api_url):
        assert url.startswith("http://127.0.0.1:")
    assert stack.env["AWS_ENDPOINT_URL"] == stack.endpoint


def test_the_printed_publish_command_publishes_to_the_local_bucket(stack, tmp_path):
    path = tmp_path / "next.csv"
    path.write_text("id,label,value\nsku-new,Fresh figs,7.5\n")
    command = stack.publish_command(str(path), "2026-11-24", "--model-name", "demand-forecast",
                                    "--model-version", "3.3.0")
    assert "predictions-publish " in command and " --date 2026-11-24 --stage local " in command
    # The line `make run` prints carries the environment it needs: run it with no AWS settings at all.
    bare = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run(command, shell=True, env=bare, capture_output=True, text=True, timeout=60)
    # One product after days of many: the gate refuses it, as the README's quick start shows.
    assert done.returncode == 3, done.stderr
    assert "gate: refused" in done.stderr and "FAILED row_count: 1 rows, was " in done.stderr
    forced = f"{command} --force --reason 'one product, to try the API'"
    done = subprocess.run(forced, shell=True, env=bare, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "(now latest)" in done.stdout
    status, answer = get(f"{stack.api_url}/predictions/2026-11-24/sku-new", stack.origin_headers)
    assert status == 200
    assert answer["prediction"] == {"id": "sku-new", "label": "Fresh figs", "value": 7.5}
    assert answer["model"]["version"] == "3.3.0"


def test_publish_command_as_make_run_prints_it():
    local = devstack.LocalStack("http://127.0.0.1:9000", "predictions-local", "predictions/",
                                devstack.aws_env("http://127.0.0.1:9000"))
    command = local.publish_command()
    assert command.startswith("AWS_ENDPOINT_URL=http://127.0.0.1:9000 AWS_ACCESS_KEY_ID=testing "
                              "AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 ")
    assert command.endswith("predictions-publish FILE --date YYYY-MM-DD --stage local")


def test_local_stack_env_drops_real_credentials(monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "production")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "real-secret")
    env = devstack.aws_env("http://127.0.0.1:9")
    assert "AWS_PROFILE" not in env
    assert env["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9"


# ---- the context manager starts everything and stops everything ---------------------------------


def small_stack(tmp_path, **kwargs) -> AbstractContextManager[devstack.LocalStack]:
    """A whole stack (moto, chalice local, a site build, the edge) of one small old batch."""
    return devstack.local_stack(days=1, count=5, end_date=OLD_DATE, site=True, edge=True, fresh=False,
                                log_path=str(tmp_path / "stack.log"), **kwargs)


def test_local_stack_starts_every_part_and_stops_all_of_them(tmp_path):
    lines: list[str] = []
    with small_stack(tmp_path, progress=lines.append) as stack:
        assert_running(stack)
        # chalice local, the API Gateway stand-in, the edge; plus moto in this process.
        assert len(stack.processes) == 3 and len(set(stack.ports)) == 4
        assert all(url.startswith("http://127.0.0.1:")
                   for url in (stack.endpoint, stack.api_url, stack.gateway_url, stack.edge_url))
        assert os.path.exists(os.path.join(stack.site_dir, "index.html"))
        assert stack.build_seconds is not None and stack.build_seconds > 0
        assert get(f"{stack.api_url}/health", stack.origin_headers)[0] == 200
        status, listing = get(f"{stack.edge_url}/api/predictions")  # edge -> stand-in -> chalice local
        assert status == 200 and OLD_DATE in listing["dates"]
        # The origin lock (docs/protection.md): the edge adds X-Origin-Verify from the local Parameter Store,
        # as CloudFront does from the template; straight at chalice local or the stand-in, a 403.
        forbidden = {"error": {"code": "forbidden", "message": "this API answers through the site's domain only"}}
        assert get(f"{stack.api_url}/predictions") == (403, forbidden)
        assert get(f"{stack.gateway_url}/api/predictions") == (403, forbidden)
        wrong = {"X-Origin-Verify": "guessed-by-a-viewer-0123"}
        assert get(f"{stack.api_url}/predictions", wrong) == (403, forbidden)
        assert get(f"{stack.edge_url}/api/health", wrong)[0] == 200  # the edge's own header replaces a viewer's
        assert get(f"{stack.gateway_url}/api/predictions", stack.origin_headers)[0] == 200
        assert stack.s3().head_bucket(Bucket=stack.bucket)
    assert [line.split()[0] for line in lines] == ["S3", "API", "Site"]
    assert_stopped(stack)
    assert stack.moto is not None


def _raise_runtime_error() -> None:
    raise RuntimeError("boom")


def _raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt


def _send_sigterm() -> None:
    # local_stack turns SIGTERM into KeyboardInterrupt while it runs (in the main thread).
    assert signal.getsignal(signal.SIGTERM) is devstack._interrupt
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)
    raise AssertionError("SIGTERM did not interrupt")


@pytest.mark.parametrize(("end", "error"), [(_raise_runtime_error, RuntimeError),
                                            (_raise_keyboard_interrupt, KeyboardInterrupt),
                                            (_send_sigterm, KeyboardInterrupt)],
                         ids=["exception", "ctrl-c", "sigterm"])
def test_local_stack_stops_everything_when_the_block_fails(tmp_path, end, error):
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    started: list[devstack.LocalStack] = []
    with pytest.raises(error), small_stack(tmp_path) as stack:
        started.append(stack)
        assert_running(stack)
        end()
    assert len(started) == 1
    assert_stopped(started[0])
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_local_stack_stops_what_it_started_when_a_later_part_fails(tmp_path):
    s3_port, api_port = devstack.free_port(), devstack.free_port()
    with socket.socket() as busy:
        busy.bind((devstack.LOOPBACK, 0))
        busy.listen()
        edge_port = busy.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"{edge_port} is already in use"), \
                small_stack(tmp_path, s3_port=s3_port, api_port=api_port, edge_port=edge_port):
            raise AssertionError("the stack started on a busy port")
    # moto and chalice local were up when the edge's port turned out to be taken: both are gone.
    assert not listening(s3_port) and not listening(api_port)


# ---- make run ----------------------------------------------------------------------------------


def test_make_run_prints_the_urls_and_the_publish_command_and_ctrl_c_stops_it(tmp_path):
    ports = {"s3": devstack.free_port(), "api": devstack.free_port(), "site": devstack.free_port()}
    argv = [sys.executable, "-m", "tools.devstack", "--s3-port", str(ports["s3"]), "--api-port", str(ports["api"]),
            "--site-port", str(ports["site"]), "--days", "2", "--count", "10", "--site-dir", str(tmp_path / "site")]
    with open(tmp_path / "stderr.log", "wb") as stderr:
        # SIGINT as a terminal's Ctrl-C sends it (a background job may have inherited it ignored).
        proc = subprocess.Popen(argv, cwd=PROJECT_DIR, env=devstack.aws_env("http://127.0.0.1:9"),
                                stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while "Ctrl-C stops everything." not in seen:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, f"make run ended early: {seen}\n{(tmp_path / 'stderr.log').read_text()}"
            seen.append(line)
        s3, api, site = (f"http://127.0.0.1:{ports[name]}" for name in ("s3", "api", "site"))
        assert f"S3 (moto)  {s3}  seeding s3://predictions-local: 2 days x 10" in seen
        # chalice local answers only with CloudFront's header: the line shows the one that works.
        (api_line,) = [line for line in seen if line.startswith(f"API        {api}   ")]
        header = api_line.split("curl -H '", 1)[1].split("' ", 1)[0]
        assert api_line.endswith(f"' {api}/predictions/latest") and header.startswith("X-Origin-Verify: ")
        name, value = header.split(": ", 1)
        assert get(f"{api}/predictions", {name: value})[0] == 200 and get(f"{api}/predictions")[0] == 403
        assert f"Site       {site}" in seen
        publish = next(line for line in seen if line.startswith("Publish    "))
        assert publish.startswith(f"Publish    AWS_ENDPOINT_URL={s3} AWS_ACCESS_KEY_ID=testing ")
        tomorrow = (datetime.datetime.now(datetime.UTC).date() + datetime.timedelta(days=1)).isoformat()
        assert publish.endswith(f"predictions-publish build/next-batch.csv --date {tomorrow} --stage local "
                                "--model-name demand-forecast --model-version 3.2.0")
        assert get(f"{site}/api/predictions")[0] == 200
        # It runs as printed, pasted into another terminal with no AWS settings: the next day's batch is latest.
        bare = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        done = subprocess.run(publish.removeprefix("Publish    "), shell=True, cwd=PROJECT_DIR, env=bare,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "gate: passed" in done.stderr and f"latest -> {tomorrow}" in done.stderr
        deadline = time.monotonic() + 15  # the local stage trusts its pointer for POINTER_TTL_SECONDS (2 s)
        while get(f"{api}/predictions", {name: value})[1]["latest"] != tomorrow:
            assert time.monotonic() < deadline, "the published batch never became latest"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            devstack.stop(proc)
    rest = []
    while (line := lines.get(timeout=10)) is not None:
        rest.append(line)
    assert rest[-1:] == ["stopped."]
    assert [port for port in ports.values() if listening(port)] == []


# ---- the site follows the publish (make run's follower: the site function's handler, locally) ----


def test_a_publish_re_renders_the_served_site_through_the_handler(tmp_path):
    from chalice_app.publishing.sample import make_batch

    new_date = "2020-01-02"
    lines: list[str] = []
    # fresh: earlier tests of this process may have left a newer pointer in moto's shared state.
    with devstack.local_stack(days=1, count=5, end_date=OLD_DATE, site=True, edge=True, follow=True,
                              log_path=str(tmp_path / "stack.log"), progress=lines.append) as stack:
        assert stack.follower is not None
        started = time.monotonic()
        stack.publish(make_batch(new_date, 250), force=True)  # 250 rows after 5: the gate would refuse it
        manifest = stack.wait_for_site(new_date, timeout=30)
        seconds = time.monotonic() - started
        assert seconds < 10, seconds
        assert new_date in manifest["dates"]
        with urllib.request.urlopen(f"{stack.edge_url}/", timeout=10) as answer:
            assert f'data-batch-date="{new_date}"' in answer.read().decode()
        with urllib.request.urlopen(f"{stack.edge_url}/d/{new_date}/page-3.html", timeout=10) as answer:
            assert answer.status == 200
        summary = stack.follower.results[-1]
        assert summary["latest"] == new_date and not summary["skipped"] and summary["invalidated"]
        assert stack.follower.errors == []
        assert any(line.startswith("Site       rebuilt for 2020-01-02") for line in lines)
        # The pointer did not move again: nothing more happens.
        time.sleep(1.5)
        assert len([r for r in stack.follower.results if not r["skipped"]]) == 1
    assert not stack.follower._thread.is_alive()


def test_make_run_seeds_one_forced_batch_to_look_at():
    """`make run` seeds its second day with a quarter of the rows missing, published with --force: a forced
    batch, its report, its audit line (and, with the site, its page and feed entry) to look at."""
    from chalice_app.contract import report_key
    from chalice_app.publishing import audit

    with devstack.local_stack(days=3, count=40, end_date="2026-11-23", api=False, forced_demo=True) as stack:
        assert stack.forced_date == "2026-11-22"
        client = stack.s3()
        report = json.loads(client.get_object(Bucket=stack.bucket, Key=report_key(stack.prefix, "2026-11-22"))
                            ["Body"].read())
        assert report["verdict"] == "forced" and report["forced"]["reason"] == devstack.FORCED_DEMO_REASON
        assert json.loads(client.get_object(Bucket=stack.bucket, Key=report_key(stack.prefix, "2026-11-23"))
                          ["Body"].read())["verdict"] == "passed"
        actions = [(e["action"], e["to"], e["reason"]) for e in audit.read_log(client, stack.bucket, stack.prefix)]
        assert ("publish-forced", "2026-11-22", devstack.FORCED_DEMO_REASON) in actions
