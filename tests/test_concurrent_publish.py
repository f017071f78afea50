"""Publishing while readers hammer the API: only complete batches, never a mix, one winner per date.

Real concurrency: moto's ThreadedMotoServer on 127.0.0.1 (a threaded HTTP server), the publish
code and the API's own S3 clients talking to it over sockets from several threads at once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from apigw import proxy_event

from app import app
from chalice_app.api import container
from chalice_app.aws_clients import make_s3_client
from chalice_app.config.settings import Settings
from chalice_app.contract import batch_key, pointer_key
from chalice_app.publishing import publish
from chalice_app.publishing.publish import PublishError, publish_document
from chalice_app.store.cache import PredictionStore
from chalice_app.store.sources import S3Source
from tools import devstack

from helpers import PREFIX, PROJECT_DIR

pytestmark = pytest.mark.slow

DATES = [f"2026-11-{day:02d}" for day in range(10, 19)]  # the first is there before readers start
READERS = 8
WALK_LIMIT = 7


def rows_for(date: str) -> list[dict]:
    """Each batch has its own size and stamps its date on every row, so a mix cannot hide."""
    size = 20 + 3 * DATES.index(date) if date in DATES else 10
    return [{"id": f"sku-{i:04d}", "batch": date, "value": i} for i in range(size)]


def doc_for(date: str, rows: list[dict] | None = None) -> dict:
    return {"date": date, "generated_at": f"{date}T04:00:00Z", "model": {"name": "m", "version": "1"},
            "predictions": rows if rows is not None else rows_for(date)}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    # moto's S3 server only, in this process (atomic_conditional_puts patches it), no sample data.
    with devstack.local_stack(days=0, api=False) as stack:
        yield stack.endpoint


@pytest.fixture(scope="module", autouse=True)
def atomic_conditional_puts() -> Iterator[None]:
    """S3 makes If-None-Match/If-Match PUTs atomic; moto checks, then writes, without a lock.

    The window is microseconds and never showed up in 200 trial races, but the tests below are
    about our code under S3's guarantee, not about moto's, so moto gets the lock S3 has.
    """
    from moto.s3.responses import S3Response

    original = S3Response.put_object
    lock = threading.Lock()

    def put_object(self, *args, **kwargs):
        with lock:
            return original(self, *args, **kwargs)

    S3Response.put_object = put_object
    yield
    S3Response.put_object = original


@pytest.fixture
def bucket(endpoint: str) -> str:
    name = f"race-{uuid.uuid4().hex[:12]}"
    devstack.s3_client(endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def thread_safe_app(monkeypatch) -> None:
    """app() from many threads at once, as chalice local runs it: a thread-local current_request.

    Lambda never calls one container concurrently, so Chalice keeps the request on the app object;
    chalice local swaps in LocalChalice for the same reason, and so does this fixture (restored after).
    """
    from chalice.local import LocalChalice

    class ThreadLocalChalice(LocalChalice, type(app)):
        pass

    monkeypatch.setattr(app, "__class__", ThreadLocalChalice)


@pytest.fixture
def containers(endpoint, bucket, monkeypatch, thread_safe_app) -> None:
    """One store per reader thread: each thread is its own warm Lambda container.

    TTLs of zero make every request revalidate the pointer and the batch against S3, so each one
    races the publisher rather than answering from memory.
    """
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    cfg = Settings(bucket=bucket, prefix=PREFIX, stage="race", pointer_ttl=0, batch_ttl=0)
    container._state["settings"] = cfg
    local = threading.local()

    def store() -> PredictionStore:
        if not hasattr(local, "store"):
            local.store = PredictionStore(S3Source(make_s3_client(cfg), bucket), PREFIX, pointer_ttl=0,
                                          batch_ttl=0)
        return local.store

    monkeypatch.setattr(container, "store", store)


def call(path: str, params: dict | None = None, query: dict | None = None) -> tuple[int, dict]:
    response = app(proxy_event(path, params, query), None)
    return response["statusCode"], json.loads(response["body"])


class Problems:
    """What the reader threads saw that they must not see; asserted empty at the end."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.lock = threading.Lock()
        self.latest_seen: set[str] = set()
        self.requests = 0

    def add(self, message: str) -> None:
        with self.lock:
            if len(self.items) < 20:
                self.items.append(message)


def check_page(page: dict, problems: Problems, where: str) -> None:
    date = page["date"]
    expected = rows_for(date)
    if page["total"] != len(expected):
        problems.add(f"{where}: {date} has {page['total']} rows, the batch has {len(expected)}")
    mixed = {item["batch"] for item in page["items"]} - {date}
    if mixed:
        problems.add(f"{where}: page of {date} holds rows of {sorted(mixed)}")


def read_latest(problems: Problems) -> None:
    status, page = call("/predictions/{date}", {"date": "latest"}, {"limit": "500"})
    if status != 200:
        problems.add(f"latest: {status} {page}")
        return
    check_page(page, problems, "latest")
    with problems.lock:
        problems.latest_seen.add(page["date"])


def walk_latest(problems: Problems) -> None:
    """Follow next_cursor from the first page of latest: one batch from start to end, every row once."""
    status, page = call("/predictions/{date}", {"date": "latest"}, {"limit": str(WALK_LIMIT)})
    if status != 200:
        problems.add(f"walk start: {status} {page}")
        return
    first, ids = page["date"], []
    while True:
        check_page(page, problems, "walk")
        if page["date"] != first:
            problems.add(f"walk started on {first} went on in {page['date']}")
        ids += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        status, page = call("/predictions/{date}", {"date": "latest"},
                            {"limit": str(WALK_LIMIT), "cursor": page["next_cursor"]})
        if status != 200:
            problems.add(f"walk of {first}: {status} {page}")
            return
    if ids != [row["id"] for row in rows_for(first)]:
        problems.add(f"walk of {first} saw {len(ids)} ids, expected {len(rows_for(first))} once each")


def read_dates_and_one(problems: Problems) -> None:
    status, listing = call("/predictions")
    if status != 200 or listing["latest"] not in listing["dates"]:
        problems.add(f"dates: {status} {listing}")
        return
    status, answer = call("/predictions/{date}/{pid}", {"date": "latest", "pid": "sku-0003"})
    if status != 200 or answer["prediction"]["batch"] != answer["date"]:
        problems.add(f"by id: {status} {answer}")


def hammer(stop: threading.Event, problems: Problems, reads: list[Callable[[Problems], None]]) -> None:
    n = 0
    while not stop.is_set():
        try:
            reads[n % len(reads)](problems)
        except Exception as exc:  # noqa: BLE001 - any crash of a reader is a finding, not a test error
            problems.add(f"reader crashed: {type(exc).__name__}: {exc}")
        n += 1
    with problems.lock:
        problems.requests += n


def pointer_never_dangles(endpoint: str, bucket: str, stop: threading.Event, problems: Problems) -> None:
    """Straight at S3: whatever latest.json names must already be there, complete."""
    client = devstack.s3_client(endpoint)
    while not stop.is_set():
        try:
            named = json.loads(client.get_object(Bucket=bucket, Key=pointer_key(PREFIX))["Body"].read())["date"]
            body = client.get_object(Bucket=bucket, Key=batch_key(PREFIX, named))["Body"].read()
        except Exception as exc:  # noqa: BLE001 - NoSuchKey here is exactly the failure looked for
            problems.add(f"pointer check: {type(exc).__name__}: {exc}")
            continue
        if len(json.loads(body)["predictions"]) != len(rows_for(named)):
            problems.add(f"pointer names {named}, which is not complete")


def test_readers_see_only_complete_batches_while_new_ones_are_published(endpoint, bucket, containers):
    writer = devstack.s3_client(endpoint)
    publish_document(writer, bucket, PREFIX, doc_for(DATES[0]))
    problems, stop = Problems(), threading.Event()
    reads = [read_latest, walk_latest, read_dates_and_one]
    threads = [threading.Thread(target=hammer, args=(stop, problems, reads[i:] + reads[:i]), daemon=True)
               for i in range(READERS)]
    threads.append(threading.Thread(target=pointer_never_dangles, args=(endpoint, bucket, stop, problems),
                                    daemon=True))
    for thread in threads:
        thread.start()
    try:
        for date in DATES[1:]:
            time.sleep(0.15)  # let the readers catch every batch at least once
            publish_document(writer, bucket, PREFIX, doc_for(date))
        # Until a reader has seen the last batch (a loaded machine can take more than a moment).
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with problems.lock:
                if DATES[-1] in problems.latest_seen:
                    break
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    assert problems.items == []
    assert problems.requests >= 3 * READERS, problems.requests  # reads of 1-6 requests each
    # Not vacuous: the readers really watched the pointer move during the run.
    assert len(problems.latest_seen) >= 3, sorted(problems.latest_seen)
    assert max(problems.latest_seen) == DATES[-1]


def test_an_existing_date_is_refused_without_force_exit_2(endpoint, bucket, tmp_path):
    client = devstack.s3_client(endpoint)
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(doc_for(DATES[0])))
    args = [str(path), "--date", DATES[0], "--bucket", bucket, "--quiet"]
    assert publish.main(args, client=client) == 0
    # The real command in its own process: the exit code is what a scheduler sees.
    again = subprocess.run([sys.executable, "-m", "chalice_app.publishing.publish", *args], cwd=PROJECT_DIR,
                           env=devstack.aws_env(endpoint), capture_output=True, text=True, timeout=60)
    assert again.returncode == 2, again.stderr
    assert "already exists; pass --force" in again.stderr
    path.write_text(json.dumps(doc_for(DATES[0], rows_for(DATES[0])[:3])))
    assert publish.main([*args, "--force", "--reason", "rerun"], client=client) == 0
    stored = json.loads(client.get_object(Bucket=bucket, Key=batch_key(PREFIX, DATES[0]))["Body"].read())
    assert len(stored["predictions"]) == 3


def race(n: int, work: Callable[[int], object]) -> list[object]:
    """Run work(0..n-1) in n threads released together; each result or raised exception, in order."""
    barrier, results = threading.Barrier(n), [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - the loser's exception is the result looked at
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.mark.parametrize("date", DATES[:5])
def test_two_publishers_racing_for_one_date_exactly_one_wins(endpoint, bucket, date):
    clients = [devstack.s3_client(endpoint) for _ in range(2)]
    docs = [doc_for(date, rows_for(date)[: 5 + i]) for i in range(2)]
    results = race(2, lambda i: publish_document(clients[i], bucket, PREFIX, docs[i]))
    winners = [i for i, r in enumerate(results) if isinstance(r, publish.PublishResult)]
    losers = [r for r in results if isinstance(r, PublishError)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert losers[0].exit_code == 2 and "already exists" in str(losers[0])
    stored = json.loads(clients[0].get_object(Bucket=bucket, Key=batch_key(PREFIX, date))["Body"].read())
    assert stored == docs[winners[0]]
    pointer = json.loads(clients[0].get_object(Bucket=bucket, Key=pointer_key(PREFIX))["Body"].read())
    assert pointer["date"] == date


def test_two_cli_runs_racing_for_one_date_exit_0_and_2(endpoint, bucket, tmp_path):
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"run{i}.json")
        paths[i].write_text(json.dumps(doc_for(DATES[0], rows_for(DATES[0])[: 4 + i])))
    clients = [devstack.s3_client(endpoint) for _ in range(2)]
    codes = race(2, lambda i: publish.main([str(paths[i]), "--date", DATES[0], "--bucket", bucket, "--quiet"],
                                           client=clients[i]))
    assert sorted(codes) == [0, 2]


def test_publishers_of_different_dates_racing_leave_latest_at_the_newest(endpoint, bucket):
    dates = DATES[:4]
    clients = [devstack.s3_client(endpoint) for _ in dates]
    results = race(len(dates), lambda i: publish_document(clients[i], bucket, PREFIX, doc_for(dates[i])))
    assert all(isinstance(r, publish.PublishResult) for r in results), results
    pointer = json.loads(clients[0].get_object(Bucket=bucket, Key=pointer_key(PREFIX))["Body"].read())
    assert pointer["date"] == max(dates)
    assert sum(r.pointer_moved for r in results) >= 1
