"""`make run`: the whole stack on this machine, no AWS account needed.

moto's S3 server on 127.0.0.1 seeded with sample batches, `chalice local --stage local` against
it, and (when a site build exists) the local edge. Ctrl-C stops everything this started.
The pieces are functions so the end-to-end tests start exactly the same stack.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    # Credentials come from the environment; never wait on an instance metadata service.
    "AWS_EC2_METADATA_DISABLED": "true",
}


def free_port() -> int:
    """A port nothing listens on right now, on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def aws_env(endpoint: str) -> dict[str, str]:
    """An environment in which every AWS call goes to moto on loopback, never to a real account."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, **FAKE_AWS, "AWS_ENDPOINT_URL": endpoint}


def start_moto(port: int = 0) -> tuple[Any, str]:
    """moto's S3 server bound to 127.0.0.1 only; returns (server, endpoint URL)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    return server, f"http://{host}:{bound}"


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def seed(endpoint: str, bucket: str, days: int = 7, count: int = 200, end_date: str | None = None) -> None:
    """Create the bucket and publish sample batches through the publish code path."""
    from chalice_app.contract import DEFAULT_PREFIX
    from chalice_app.publishing.publish import publish_document
    from chalice_app.publishing.sample import dates_ending, make_batch

    client = s3_client(endpoint)
    client.create_bucket(Bucket=bucket)
    end = end_date or time.strftime("%Y-%m-%d", time.gmtime())
    for date in dates_ending(end, days):
        publish_document(client, bucket, DEFAULT_PREFIX, make_batch(date, count), force=True)


def start_chalice_local(endpoint: str, port: int, stage: str = "local") -> subprocess.Popen:
    chalice = os.path.join(os.path.dirname(sys.executable), "chalice")
    return subprocess.Popen(
        [chalice, "local", "--stage", stage, "--no-autoreload", "--host", "127.0.0.1", "--port", str(port)],
        cwd=PROJECT_DIR, env=aws_env(endpoint), start_new_session=True,
    )


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Wait until `url` answers at all (any HTTP status), or fail with what went wrong."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before {url} answered")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout:.0f} s") from None
            time.sleep(0.1)


@contextlib.contextmanager
def local_api(bucket: str, *, days: int, count: int, end_date: str) -> Iterator[tuple[str, str]]:
    """moto S3 seeded with sample batches and `chalice local` against it: (S3 endpoint, API URL)."""
    server, endpoint = start_moto()
    try:
        seed(endpoint, bucket, days=days, count=count, end_date=end_date)
        port = free_port()
        api = start_chalice_local(endpoint, port)
        try:
            wait_http(f"http://127.0.0.1:{port}/health", proc=api)
            yield endpoint, f"http://127.0.0.1:{port}"
        finally:
            stop(api)
    finally:
        server.stop()


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Run moto S3 + sample data + chalice local (+ the site) locally.")
    p.add_argument("--s3-port", type=int, default=9000, help="moto S3 server port (default 9000)")
    p.add_argument("--api-port", type=int, default=8000, help="chalice local port (default 8000)")
    p.add_argument("--site-port", type=int, default=8080, help="local edge port (default 8080)")
    p.add_argument("--days", type=int, default=7, help="sample days to seed (default 7)")
    p.add_argument("--count", type=int, default=200, help="predictions per day (default 200)")
    args = p.parse_args(argv)

    from chalice_app.config.stage_file import stage_environment

    # SIGTERM (timeout, CI, a closed terminal) must clean up like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    bucket = stage_environment("local")["PREDICTIONS_BUCKET"]
    server, endpoint = start_moto(args.s3_port)
    procs: list[subprocess.Popen] = []
    try:
        print(f"S3 (moto)  {endpoint}  seeding s3://{bucket}: {args.days} days x {args.count}", flush=True)
        seed(endpoint, bucket, args.days, args.count)
        api = start_chalice_local(endpoint, args.api_port)
        procs.append(api)
        api_url = f"http://127.0.0.1:{args.api_port}"
        wait_http(f"{api_url}/health", proc=api)
        print(f"API        {api_url}   try: curl {api_url}/predictions/latest", flush=True)
        site_url = _start_site(endpoint, api_url, args.site_port, procs)
        if site_url:
            print(f"Site       {site_url}", flush=True)
        print(f"Publish    AWS_ENDPOINT_URL={endpoint} python -m chalice_app.publishing.publish FILE --date D "
              "--stage local ...", flush=True)
        print("Ctrl-C stops everything.", flush=True)
        while all(proc.poll() is None for proc in procs):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in procs:
            stop(proc)
        server.stop()
        print("stopped.", flush=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _start_site(endpoint: str, api_url: str, port: int, procs: list[subprocess.Popen]) -> str | None:
    """Build the site from the local bucket and serve it through the local edge (when present)."""
    if not os.path.exists(os.path.join(PROJECT_DIR, "build_site.py")):
        return None
    out = os.path.join(PROJECT_DIR, "build", "site-local")
    subprocess.run([sys.executable, "build_site.py", "--stage", "local", "--out", out],
                   cwd=PROJECT_DIR, env=aws_env(endpoint), check=True)
    edge = subprocess.Popen([sys.executable, "-m", "tools.edge", "--root", out, "--api", api_url,
                             "--port", str(port)], cwd=PROJECT_DIR, start_new_session=True)
    procs.append(edge)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/", proc=edge)
    return url


if __name__ == "__main__":
    sys.exit(main())
