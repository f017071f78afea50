"""`make run`: the whole stack on this machine, no AWS account needed.

moto's S3 server on 127.0.0.1 seeded with sample batches, `chalice local --stage local` against
it, the site built from that bucket and the local edge serving it. Ctrl-C stops everything.

`local_stack()` is the one place that assembles this stack: `make run`, `make load`,
`make lighthouse` and the end-to-end tests all start it through it, so they run the same thing.

    with local_stack(days=3, count=100, site=True, edge=True) as stack:
        stack.endpoint, stack.api_url, stack.edge_url, stack.site_dir, stack.env
        stack.publish(doc)              # a batch into the local bucket, through the publish code
        stack.publish_command()         # the shell line that does the same with predictions-publish
        stack.wait_for_site(date)       # with follow=True: until the site was re-rendered for `date`
        stack.origin_headers            # X-Origin-Verify: what a call straight at chalice local needs

Everything binds 127.0.0.1, and everything the context manager started is stopped when the
with-block ends, however it ends (an exception, Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOOPBACK = "127.0.0.1"
NEXT_BATCH = os.path.join(PROJECT_DIR, "build", "next-batch.csv")  # what make run's Publish line publishes
STAGE = "local"  # the stage `chalice local --stage local` serves: its bucket is the one seeded
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    # Credentials come from the environment; never wait on an instance metadata service.
    "AWS_EC2_METADATA_DISABLED": "true",
}
BUILD_TIMEOUT = 300.0  # seconds for build_site.py
START_TIMEOUT = 30.0  # seconds for chalice local or the edge to answer

Progress = Callable[[str], None]


def free_port() -> int:
    """A port nothing listens on right now, on loopback."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_in_use(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a TIME_WAIT leftover is not "in use"
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return True
    return False


def aws_env(endpoint: str) -> dict[str, str]:
    """An environment in which every AWS call goes to moto on loopback, never to a real account."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, **FAKE_AWS, "AWS_ENDPOINT_URL": endpoint}


def site_available() -> bool:
    """Whether the site can be built and served (build_site.py and the local edge are there)."""
    return all(os.path.exists(os.path.join(PROJECT_DIR, p)) for p in ("build_site.py", "tools/edge.py"))


def start_moto(port: int = 0) -> tuple[Any, str]:
    """moto's S3 server bound to 127.0.0.1 only; returns (server, endpoint URL)."""
    from moto.server import ThreadedMotoServer

    # moto's start() waits forever when its thread cannot bind: refuse a busy port up front.
    if port and port_in_use(port):
        raise RuntimeError(f"{LOOPBACK}:{port} is already in use (S3 port)")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    return server, f"http://{host}:{bound}"


def reset_moto(endpoint: str) -> None:
    """Forget every bucket: moto keeps one in-memory state per process, shared by all its servers."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()


def local_distribution(endpoint: str) -> tuple[Any, str]:
    """A CloudFront distribution at moto for the local stack: the site follower's invalidations go to it,
    and the local edge applies them (tools/edge_cache.InvalidationFeed). Returns (client, its id)."""
    import boto3

    from deploy import site_config

    client = boto3.client("cloudfront", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    config = site_config.distribution_config(
        stage=STAGE, caller_reference=f"local-{time.time_ns()}", bucket_domain="site.s3.amazonaws.com",
        oac_id="", api_domain="api.execute-api.us-east-1.amazonaws.com", headers_policy_id="local")
    return client, client.create_distribution(DistributionConfig=config)["Distribution"]["Id"]


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def stage_bucket(stage: str = STAGE) -> tuple[str, str]:
    """(bucket, prefix) of a stage, exactly as the publish command resolves them."""
    from chalice_app.publishing.publish import resolve_target

    return resolve_target(stage, None, None)


FORCED_DEMO_REASON = "demo: a quarter of the stores did not report (make run)"


def seed(endpoint: str, bucket: str, days: int = 7, count: int = 200, end_date: str | None = None,
         prefix: str | None = None, forced_demo: bool = False) -> str | None:
    """Create the bucket (if new) and publish `days` sample batches through the publish code path.

    forced_demo (make run): the second day has a quarter of its rows missing, which the publish gate
    refuses, and is published with --force and FORCED_DEMO_REASON, so that a forced batch, its report on
    its page, its audit line and its feed entry can be seen. Returns that date (None without it)."""
    from botocore.exceptions import ClientError

    from chalice_app.contract import DEFAULT_PREFIX
    from chalice_app.publishing.publish import publish_document
    from chalice_app.publishing.sample import dates_ending, make_batch

    client = s3_client(endpoint)
    try:
        client.create_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    end = end_date or time.strftime("%Y-%m-%d", time.gmtime())
    forced = None
    for n, date in enumerate(dates_ending(end, days) if days > 0 else []):
        doc = make_batch(date, count)
        reason = "sample data for the local stack"
        if forced_demo and n == 1 and days >= 3:
            doc["predictions"] = doc["predictions"][: count * 3 // 4]
            forced, reason = date, FORCED_DEMO_REASON
        # force: a stack started again over the same moto state replaces its sample dates.
        publish_document(client, bucket, prefix or DEFAULT_PREFIX, doc, force=True, reason=reason, by="make run")
    return forced


def seed_origin_secret(endpoint: str, stage: str = STAGE) -> str:
    """The stage's origin secret in moto's Parameter Store, as deploy/origin_secret.py creates it in AWS: the
    X-Origin-Verify value the local edge sends and chalice local checks. An existing one is kept."""
    import boto3

    from deploy import origin_secret

    ssm = boto3.client("ssm", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    return origin_secret.ensure(ssm, origin_secret.parameter_name(stage), progress=lambda _: None)[0]


def start_chalice_local(endpoint: str, port: int, stage: str = STAGE,
                        output: IO[Any] | None = None, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    """`chalice local` on 127.0.0.1:port against moto, in its own process group (see stop()); extra_env:
    settings the stage's config.json leaves unset (EDGE_CACHE)."""
    chalice = os.path.join(os.path.dirname(sys.executable), "chalice")
    return subprocess.Popen(
        [chalice, "local", "--stage", stage, "--no-autoreload", "--host", LOOPBACK, "--port", str(port)],
        cwd=PROJECT_DIR, env={**aws_env(endpoint), **(extra_env or {})}, start_new_session=True,
        stdout=output, stderr=subprocess.STDOUT if output is not None else None,
    )


def start_gateway(api_url: str, port: int, *, env: dict[str, str] | None = None, quiet: bool = False,
                  output: IO[Any] | None = None, stage: str | None = STAGE) -> subprocess.Popen:
    """The API Gateway stand-in (tools/api_gateway_local.py) in front of chalice local, in its own process group,
    with `stage`'s throttle (.chalice/config.json `api_throttle`; None: no throttle)."""
    argv = [sys.executable, "-m", "tools.api_gateway_local", "--api", api_url, "--port", str(port),
            *(["--stage", stage] if stage else [])]
    return subprocess.Popen(argv + (["--quiet"] if quiet else []), cwd=PROJECT_DIR, env=env,
                            start_new_session=True, stdout=output,
                            stderr=subprocess.STDOUT if output is not None else None)


def start_edge(root: str, api_domain: str, port: int, *, env: dict[str, str] | None = None, quiet: bool = False,
               output: IO[Any] | None = None, distribution_id: str = "") -> subprocess.Popen:
    """The local edge (tools/edge.py: deploy/stack.json's distribution) on 127.0.0.1:port, in its own
    process group; api_domain (host:port of the API Gateway stand-in) is the template's ApiDomain;
    distribution_id: the moto distribution whose invalidations it applies."""
    argv = [sys.executable, "-m", "tools.edge", "--root", root, "--api-domain", api_domain, "--port", str(port)]
    argv += ["--distribution-id", distribution_id] if distribution_id else []
    return subprocess.Popen(argv + (["--quiet"] if quiet else []), cwd=PROJECT_DIR, env=env,
                            start_new_session=True, stdout=output,
                            stderr=subprocess.STDOUT if output is not None else None)


def wait_http(url: str, timeout: float = START_TIMEOUT, proc: subprocess.Popen | None = None) -> None:
    """Wait until `url` answers at all (any HTTP status), or fail with what went wrong."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{os.path.basename(str(proc.args[0]))} exited with {proc.returncode} "
                               f"before {url} answered")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout:.0f} s") from None
            time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    """End a process started in its own session, and its whole group: SIGTERM, then SIGKILL after 5 s.

    Signals go only while the process is not yet reaped, so its group id is still its own.
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# -- the stack ------------------------------------------------------------------------------------


@dataclass
class LocalStack:
    """What local_stack() started. URLs are None for the parts not asked for."""

    endpoint: str  # moto's S3 server, http://127.0.0.1:PORT
    bucket: str  # the local stage's bucket, seeded with the sample batches
    prefix: str
    env: dict[str, str]  # os.environ without real AWS settings, plus fake credentials and AWS_ENDPOINT_URL
    api_url: str | None = None  # chalice local --stage local
    gateway_url: str | None = None  # the API Gateway stand-in in front of api_url (edge=True): stage /api
    site_dir: str | None = None  # the built site
    edge_url: str | None = None  # the local edge: deploy/stack.json's distribution, /api/* to gateway_url
    log_path: str | None = None  # where the started processes write, when not to this terminal
    build_seconds: float | None = None  # how long build_site.py took
    forced_date: str | None = None  # the sample date published with --force (forced_demo, make run)
    seeded: tuple[str, int] | None = None  # (the newest seeded date, rows a day): what the next batch follows
    origin_secret: str | None = None  # what the edge sends chalice local as X-Origin-Verify (api=True)
    follower: SiteFollower | None = None  # re-renders site_dir when the pointer moves (site=True)
    distribution_id: str | None = None  # moto's distribution the follower invalidates (follow and edge)
    processes: list[subprocess.Popen] = field(default_factory=list)  # chalice local, the gateway, the edge
    moto: Any = None  # the ThreadedMotoServer (in this process)

    @property
    def ports(self) -> list[int]:
        """Every port the stack listens on (all on 127.0.0.1)."""
        urls = (self.endpoint, self.api_url, self.gateway_url, self.edge_url)
        return [int(url.rsplit(":", 1)[1]) for url in urls if url]

    def s3(self) -> Any:
        """A boto3 S3 client of moto's server."""
        return s3_client(self.endpoint)

    @property
    def origin_headers(self) -> dict[str, str]:
        """What a direct call to chalice local or the API Gateway stand-in needs: CloudFront's header."""
        from chalice_app.api import origin

        return {origin.HEADER: self.origin_secret} if self.origin_secret else {}

    def wait_for_site(self, date: str, timeout: float = 30.0) -> dict:
        """Wait until the site folder's manifest names `date` as latest (the follower rebuilt it)."""
        import json

        assert self.site_dir is not None, "the stack was started without site=True"
        deadline = time.monotonic() + timeout
        while True:
            try:
                with open(os.path.join(self.site_dir, "manifest.json"), encoding="utf-8") as fh:
                    manifest = json.load(fh)
                followed = self.follower is None or any(r.get("latest") == date for r in self.follower.results)
                if manifest.get("latest") == date and followed:
                    return manifest
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the site did not show {date} within {timeout:.0f} s")
            time.sleep(0.1)

    def publish(self, doc: dict, *, force: bool = False) -> Any:
        """Publish a batch document to the local bucket through the publish code (a PublishResult)."""
        from chalice_app.publishing.publish import publish_document

        return publish_document(self.s3(), self.bucket, self.prefix, doc, force=force)

    @property
    def publish_env(self) -> dict[str, str]:
        """The environment the publish command needs to reach this stack's bucket, and nothing else."""
        names = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
        return {name: self.env[name] for name in names}

    def publish_argv(self, file: str = "FILE", date: str = "YYYY-MM-DD", *extra: str) -> list[str]:
        """The publish command for this stack (run it with env=stack.env)."""
        return [*publish_program(), file, "--date", date, "--stage", STAGE, *extra]

    def write_next_batch(self, path: str) -> list[str]:
        """Write the day after the newest seeded batch, as a model job's CSV (same products, same columns, the
        same model), to `path`; the arguments that publish it: FILE --date D --model-name N --model-version V.
        It passes the publish gate: its rows, fields and distributions are those of the days before."""
        import csv

        from chalice_app.publishing.sample import MODEL, make_batch

        if self.seeded is None:
            raise RuntimeError("no sample batch was seeded: nothing to follow")
        newest, count = self.seeded
        date = (dt.date.fromisoformat(newest) + dt.timedelta(days=1)).isoformat()
        doc = make_batch(date, count)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=[f["name"] for f in doc["fields"]])
            writer.writeheader()
            writer.writerows(doc["predictions"])
        return [path, date, "--model-name", MODEL["name"], "--model-version", MODEL["version"]]

    def publish_command(self, file: str = "FILE", date: str = "YYYY-MM-DD", *extra: str) -> str:
        """The same as a shell line, its environment included, to paste into another terminal."""
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.publish_env.items())
        return f"{env} {shlex.join(self.publish_argv(file, date, *extra))}"


class SiteFollower:
    """What the site function does in AWS, on this machine: watch the local pointer (a HEAD every
    `interval` seconds on moto, standing in for S3 -> EventBridge) and, when it moves, call the same
    handler (chalice_app.website.rebuild.handle) with an EventBridge-shaped event, the site being
    the folder the edge serves. With a distribution (follow and edge), the handler's invalidation goes
    to moto and the edge applies it (the API's answers included); the edge also empties its cache of
    pages when the build's manifest.json changes."""

    def __init__(self, endpoint: str, bucket: str, prefix: str, site_dir: str, days: int | None,
                 interval: float = 0.5, say: Progress | None = None, cloudfront: Any = None,
                 distribution_id: str = "") -> None:
        from chalice_app.config.stage_file import stage_environment
        from chalice_app.website import rebuild

        self.rebuild = rebuild
        self.client = s3_client(endpoint)
        self.bucket, self.prefix, self.interval = bucket, prefix, interval
        self.env = {**stage_environment(STAGE), "SITE_BUCKET": "", "SITE_DISTRIBUTION_ID": distribution_id,
                    "SITE_DAYS": str(days or 7)}
        self.cloudfront = cloudfront
        self.site = rebuild.DirSite(site_dir)
        self.say = say or (lambda _: None)
        self.results: list[dict] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="site-follower", daemon=True)

    def event(self) -> dict:
        """The EventBridge event S3 sends for the pointer (the fields the handler reads)."""
        key = f"{self.prefix}latest.json"
        return {"version": "0", "detail-type": "Object Created", "source": "aws.s3",
                "resources": [f"arn:aws:s3:::{self.bucket}"],
                "detail": {"bucket": {"name": self.bucket}, "object": {"key": key}, "reason": "PutObject"}}

    def start(self) -> None:
        # The site was just built from the current pointer: only a move from here on rebuilds.
        self.site._mark = self.rebuild.pointer_mark(self.client, self.bucket, self.prefix)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                mark = self.rebuild.pointer_mark(self.client, self.bucket, self.prefix)
                if mark is None or mark == self.site.mark():
                    continue
                clients = self.rebuild.Clients(self.client, self.cloudfront)
                summary = self.rebuild.handle(self.event(), self.env, clients=clients, site=self.site,
                                              sleep=self._stop.wait)
            except Exception as exc:  # noqa: BLE001 - reported; the next poll retries
                self.errors.append(f"{type(exc).__name__}: {exc}")
                self.say(f"Site       rebuild failed: {exc}")
                self._stop.wait(5)
                continue
            self.results.append(summary)
            if not summary.get("skipped"):
                self.say(f"Site       rebuilt for {summary['latest']}: {summary['files_changed']} file(s) changed "
                         f"in {summary['ms']:.0f} ms")


def publish_program() -> list[str]:
    """This environment's predictions-publish console script (relative to the current folder when inside it)."""
    script = os.path.join(os.path.dirname(sys.executable), "predictions-publish")
    if not os.path.exists(script):  # the project is not installed: the module does the same
        return [sys.executable, "-m", "chalice_app.publishing.publish"]
    relative = os.path.relpath(script)
    return [script if relative.startswith("..") else relative]


@contextlib.contextmanager
def local_stack(*, days: int = 7, count: int = 200, end_date: str | None = None, api: bool = True,
                site: bool = False, edge: bool = False, s3_port: int = 0, api_port: int = 0, edge_port: int = 0,
                site_dir: str | None = None, site_days: int | None = None, fresh: bool = True, follow: bool = False,
                log_path: str | None = None, progress: Progress | None = None,
                forced_demo: bool = False) -> Iterator[LocalStack]:
    """moto S3 + sample batches + `chalice local` (+ the site build) (+ the local edge), all on 127.0.0.1.

    days, count, end_date: sample batches to seed (days=0 seeds none; end_date defaults to today, UTC).
    api: start `chalice local --stage local` (False: moto only). site: build the site from the bucket
    into site_dir (default: a temporary folder removed on exit; site_days passes --days to the build).
    edge: serve site_dir through the local edge, deploy/stack.json's distribution, /api/* through an
    API Gateway stand-in (tools/api_gateway_local.py) to chalice local (implies site).
    *_port: fixed ports (0: a free one). fresh: reset moto's in-process state first, so the bucket
    holds exactly the seeded batches. follow: re-render site_dir whenever the pointer moves, through
    the site function's handler (SiteFollower; `make run` turns it on). log_path: the started
    processes (and the build) write there, appending, instead of to this terminal. progress: called
    with the `make run` status lines.

    On exit, however it happens (an exception, Ctrl-C, SIGTERM: turned into KeyboardInterrupt while
    the stack runs), everything started here is stopped and the temporary site folder removed.
    """
    if edge and not api:
        raise ValueError("edge=True needs api=True: the edge forwards /api/* to chalice local")
    site = site or edge
    say = progress or (lambda _: None)
    saved = _take_signals()
    cleanup = contextlib.ExitStack()
    try:
        server, endpoint = start_moto(s3_port)
        cleanup.callback(server.stop)
        bucket, prefix = stage_bucket(STAGE)
        stack = LocalStack(endpoint, bucket, prefix, aws_env(endpoint), log_path=log_path, moto=server)
        if fresh:
            reset_moto(endpoint)
        say(f"S3 (moto)  {endpoint}  seeding s3://{bucket}: {days} days x {count}")
        if days > 0:
            stack.seeded = (end_date or time.strftime("%Y-%m-%d", time.gmtime()), count)
        stack.forced_date = seed(endpoint, bucket, days=days, count=count, end_date=end_date, prefix=prefix,
                                 forced_demo=forced_demo)
        output = cleanup.enter_context(open(log_path, "ab")) if log_path else None
        cloudfront = None
        if follow and edge:
            # The follower invalidates as the site function does, and the edge applies it: the API may
            # then let the edge keep its answers until the next publish (EDGE_CACHE, docs/api.md).
            cloudfront, stack.distribution_id = local_distribution(endpoint)
        if api:
            # The local stage sets ORIGIN_SECRET_PARAMETER, as every stage does: chalice local refuses what
            # lacks the header, and the edge sends it (docs/protection.md).
            stack.origin_secret = seed_origin_secret(endpoint)
            port = _port(api_port, "API")
            proc = start_chalice_local(endpoint, port, STAGE, output,
                                       extra_env={"EDGE_CACHE": "on"} if stack.distribution_id else None)
            cleanup.callback(stop, proc)
            stack.processes.append(proc)
            stack.api_url = f"http://{LOOPBACK}:{port}"
            _wait(f"{stack.api_url}/health", proc, log_path)
            say(f"API        {stack.api_url}   only with CloudFront's header: curl -H "
                f"'X-Origin-Verify: {stack.origin_secret}' {stack.api_url}/predictions/latest")
        if site:
            if site_dir is None:
                site_dir = tempfile.mkdtemp(prefix="local-site-")
                cleanup.callback(shutil.rmtree, site_dir, ignore_errors=True)
            stack.site_dir = site_dir
            stack.build_seconds = _build_site(site_dir, site_days, stack.env, output, log_path)
            if follow:
                stack.follower = SiteFollower(endpoint, bucket, prefix, site_dir, site_days, say=say,
                                              cloudfront=cloudfront, distribution_id=stack.distribution_id or "")
                stack.follower.start()
                cleanup.callback(stack.follower.stop)
        if edge:
            assert stack.api_url is not None and stack.site_dir is not None
            # Browser -> edge (the template's distribution) -> API Gateway stand-in -> chalice local:
            # the chain production has, so /api/* is checked against the same rules.
            port = _port(0, "API Gateway")
            proc = start_gateway(stack.api_url, port, env=stack.env, quiet=output is not None, output=output)
            cleanup.callback(stop, proc)
            stack.processes.append(proc)
            stack.gateway_url = f"http://{LOOPBACK}:{port}"
            _wait(f"{stack.gateway_url}/", proc, log_path)
            port = _port(edge_port, "site")
            proc = start_edge(stack.site_dir, stack.gateway_url.removeprefix("http://"), port, env=stack.env,
                              quiet=output is not None, output=output, distribution_id=stack.distribution_id or "")
            cleanup.callback(stop, proc)
            stack.processes.append(proc)
            stack.edge_url = f"http://{LOOPBACK}:{port}"
            _wait(f"{stack.edge_url}/", proc, log_path)
            say(f"Site       {stack.edge_url}")
        yield stack
    finally:
        # Neither a second Ctrl-C nor a SIGTERM may cut the cleanup short: both wait until it is done.
        _ignore_signals(saved)
        try:
            cleanup.close()
        finally:
            _restore_signals(saved)


def _port(port: int, what: str) -> int:
    if not port:
        return free_port()
    if port_in_use(port):
        raise RuntimeError(f"{LOOPBACK}:{port} is already in use ({what} port)")
    return port


def _build_site(out: str, days: int | None, env: dict[str, str], output: IO[Any] | None,
                log_path: str | None) -> float:
    """build_site.py --stage local --out OUT, the command a developer runs; returns its seconds."""
    argv = [sys.executable, "build_site.py", "--stage", STAGE, "--out", out]
    if days is not None:
        argv += ["--days", str(days)]
    if output is not None:
        output.flush()
    started = time.monotonic()
    try:
        subprocess.run(argv, cwd=PROJECT_DIR, env=env, check=True, timeout=BUILD_TIMEOUT, stdout=output,
                       stderr=subprocess.STDOUT if output is not None else None)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"build_site.py exited with {exc.returncode}{_tail(log_path)}") from None
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"build_site.py took longer than {BUILD_TIMEOUT:.0f} s{_tail(log_path)}") from None
    return time.monotonic() - started


def _wait(url: str, proc: subprocess.Popen, log_path: str | None) -> None:
    try:
        wait_http(url, proc=proc)
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}{_tail(log_path)}") from None


def _tail(log_path: str | None, chars: int = 2000) -> str:
    """The end of the log, for an error message (the log may be in a folder about to be removed)."""
    if not log_path or not os.path.exists(log_path):
        return ""
    with open(log_path, "rb") as fh:
        fh.seek(max(0, os.path.getsize(log_path) - chars))
        text = fh.read().decode("utf-8", errors="replace").strip()
    return f"; the end of {log_path}:\n{text}" if text else ""


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


Signals = dict[signal.Signals, Any]


def _take_signals() -> Signals:
    """SIGTERM (a timeout, CI, a closed terminal) cleans up like Ctrl-C, unless someone else handles it.

    Signal handlers belong to the main thread: elsewhere nothing changes. Returns what to restore.
    """
    if not _in_main_thread():
        return {}
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    if saved[signal.SIGTERM] == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)
    return saved


def _ignore_signals(saved: Signals) -> None:
    for sig, handler in saved.items():
        if handler is not None:  # only what _restore_signals can put back
            signal.signal(sig, signal.SIG_IGN)


def _restore_signals(saved: Signals) -> None:
    for sig, handler in saved.items():
        if handler is not None:  # None: a handler not installed from Python, which cannot be put back
            signal.signal(sig, handler)


# -- make run -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.devstack",
                                description="Run moto S3 + sample data + chalice local (+ the site) locally.")
    p.add_argument("--s3-port", type=int, default=9000, help="moto S3 server port (default 9000)")
    p.add_argument("--api-port", type=int, default=8000, help="chalice local port (default 8000)")
    p.add_argument("--site-port", type=int, default=8080, help="local edge port (default 8080)")
    p.add_argument("--days", type=int, default=7, help="sample days to seed (default 7)")
    p.add_argument("--count", type=int, default=200, help="predictions per day (default 200)")
    p.add_argument("--site-dir", default=os.path.join(PROJECT_DIR, "build", "site-local"),
                   help="where the site is built (default build/site-local)")
    args = p.parse_args(argv)

    def say(line: str) -> None:
        print(line, flush=True)

    with_site = site_available()
    try:
        with local_stack(days=args.days, count=args.count, site=with_site, edge=with_site, s3_port=args.s3_port,
                         api_port=args.api_port, edge_port=args.site_port, site_dir=args.site_dir,
                         follow=with_site, progress=say, forced_demo=True) as stack:
            if stack.seeded is not None:
                file, date, *model = stack.write_next_batch(NEXT_BATCH)
                say(f"Publish    {stack.publish_command(os.path.relpath(file), date, *model)}")
                say(f"           {os.path.relpath(file)}: the next day's sample batch, as a model job writes it; "
                    "a CSV, JSON or JSONL file of yours publishes the same way")
            else:
                say(f"Publish    {stack.publish_command()}")
            if stack.forced_date and stack.edge_url:
                forced = stack.forced_date
                say(f"Forced     {forced} was published over the gate's refusal: {stack.edge_url}/d/{forced}.html, "
                    f"{stack.edge_url}/dates.html, {stack.edge_url}/feed.xml, {stack.api_url}/reports/{forced}; "
                    "the audit log: the Publish line's environment with .venv/bin/predictions-audit --stage local")
            if stack.follower is not None:
                say("           the site is re-rendered within a second or two of each publish (as in AWS)")
            say("Ctrl-C stops everything.")
            while all(proc.poll() is None for proc in stack.processes):
                time.sleep(0.5)
            gone = next(proc for proc in stack.processes if proc.poll() is not None)
            print(f"devstack: {os.path.basename(str(gone.args[0]))} exited with {gone.returncode}",
                  file=sys.stderr, flush=True)
            return 1
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"devstack: error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        print("stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
