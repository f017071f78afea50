"""A bounded loopback load: N requests at C concurrent against the local stack, then a verdict.

    python -m tools.load                       # own stack: moto + sample data + chalice local + site + edge
    python -m tools.load --direct              # own stack without the edge: straight at chalice local
    python -m tools.load --url http://127.0.0.1:8080/api    # an API someone else runs (make run)

Mixes what browsers and clients ask (latest page, sorted page, filtered page, a dated page, a page
by cursor, one prediction by id, the date list, and If-None-Match revalidations that must get a
304) and checks every answer: the expected status, JSON for a 200, the page's date matching the
batch asked for. Prints total, errors, req/s and latency percentiles; exits 1 on any error.

Past the stage's throttle (`api_throttle` of the local stage, applied by the API Gateway stand-in as API
Gateway applies it) answers are 429: counted as `throttled`, not errors, when they are what API Gateway
sends (the API's error shape, code `throttled`, `Retry-After`); any other 429 is an error.

Bounded by construction: a fixed number of requests, a per-request timeout, a wall-clock limit,
127.0.0.1 only, and everything it started is stopped before it exits. chalice local is a
development server (threads in one Python process), so the figures say the stack stays correct
under concurrency; they are not a measure of Lambda's throughput.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

LOOPBACK = "127.0.0.1"
END_DATE = "2026-11-23"  # fixed, so two runs ask for the same data and compare

# (kind, weight): roughly what the site and API clients ask for; revalidations are what a
# browser or CloudFront sends once it holds a copy.
MIX: list[tuple[str, int]] = [
    ("latest_page", 20), ("sorted_page", 10), ("filtered_page", 10), ("dated_page", 10),
    ("cursor_page", 10), ("by_id", 20), ("dates", 5), ("revalidate", 15),
]


@dataclass(frozen=True)
class Request:
    kind: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    expect: int = 200
    date: str | None = None  # the batch a page must come from, when known


@dataclass
class Result:
    kind: str
    status: int
    seconds: float
    error: str | None = None

    @property
    def throttled(self) -> bool:
        return self.status == 429 and self.error is None


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)
    elapsed: float = 0.0
    requested: int = 0
    api_ms: list[float] = field(default_factory=list)  # the API's own LatencyMs, when its log is at hand

    @property
    def errors(self) -> list[Result]:
        return [r for r in self.results if r.error]

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile of the client-side latencies, in milliseconds."""
        return percentile([r.seconds * 1000 for r in self.results], p)

    def summary(self) -> dict[str, Any]:
        total = len(self.results)
        return {
            "requested": self.requested,
            "total": total,
            "errors": len(self.errors) + (self.requested - total),
            "throttled": sum(r.throttled for r in self.results),
            "seconds": round(self.elapsed, 2),
            "req_per_s": round(total / self.elapsed, 1) if self.elapsed else 0.0,
            "p50_ms": round(self.percentile(50), 1),
            "p90_ms": round(self.percentile(90), 1),
            "p99_ms": round(self.percentile(99), 1),
            "max_ms": round(max((r.seconds for r in self.results), default=0) * 1000, 1),
            "by_kind": dict(sorted(Counter(r.kind for r in self.results).items())),
            "statuses": dict(sorted(Counter(str(r.status) for r in self.results).items())),
            "api_p50_ms": round(percentile(self.api_ms, 50), 2) if self.api_ms else None,
            "api_p99_ms": round(percentile(self.api_ms, 99), 2) if self.api_ms else None,
        }


# -- HTTP -----------------------------------------------------------------------------------------


class Client:
    """One keep-alive connection per worker thread, reopened when the server closes it."""

    def __init__(self, base_url: str, timeout: float, headers: Sequence[tuple[str, str]] = ()) -> None:
        parts = urllib.parse.urlsplit(base_url.rstrip("/"))
        self.headers = dict(headers)  # sent with every request (chalice local directly: X-Origin-Verify)
        if parts.scheme != "http" or parts.hostname not in (LOOPBACK, "localhost"):
            raise ValueError(f"--url must be http://127.0.0.1:PORT[/prefix] (loopback only), got {base_url!r}")
        self.host, self.port, self.prefix = parts.hostname, parts.port or 80, parts.path
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str, headers: Sequence[tuple[str, str]] = ()) -> tuple[int, dict[str, str], bytes]:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request("GET", self.prefix + path,
                                  headers={"Accept-Encoding": "gzip", **self.headers, **dict(headers)})
                response = self.conn.getresponse()
                body = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A keep-alive connection the server closed between requests: not the request's fault.
                self.close()
                if attempt == 2:
                    raise
                continue
            got = {k.lower(): v for k, v in response.getheaders()}
            if response.will_close:
                self.close()
            if got.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            return response.status, got, body
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# -- the request mix ----------------------------------------------------------------------------


@dataclass
class Catalogue:
    """What the mix needs to know about the data: dates, ids, a cursor and ETags to revalidate."""

    latest: str
    dates: list[str]
    ids: list[str]
    cursor: str
    etags: list[tuple[str, str]]  # (path, ETag) of answers a client already holds


def discover(client: Client) -> Catalogue:
    status, _, body = client.get("/predictions")
    if status != 200:
        raise RuntimeError(f"GET /predictions answered {status}: is there any data?")
    listing = json.loads(body)
    if not listing["latest"]:
        raise RuntimeError("the API has no batch: seed it first")
    status, _, body = client.get("/predictions/latest?limit=50")
    page = json.loads(body)
    if status != 200 or not page["items"] or not page["next_cursor"]:
        raise RuntimeError(f"GET /predictions/latest?limit=50 answered {status} without a second page")
    etags = []
    for path in ("/predictions", "/predictions/latest?limit=50", f"/predictions/{listing['dates'][-1]}?limit=20",
                 f"/predictions/{listing['latest']}/{page['items'][0]['id']}"):
        status, headers, _ = client.get(path)
        if status != 200 or "etag" not in headers:
            raise RuntimeError(f"GET {path} answered {status} without an ETag")
        etags.append((path, headers["etag"]))
    return Catalogue(listing["latest"], listing["dates"], [item["id"] for item in page["items"]],
                     page["next_cursor"], etags)


def plan(catalogue: Catalogue, n: int, seed: int) -> list[Request]:
    """n requests drawn from MIX, the same list for the same seed and data."""
    rng = random.Random(seed)  # a load mix, not security
    kinds = rng.choices([k for k, _ in MIX], weights=[w for _, w in MIX], k=n)
    terms = ["milk", "bread", "oat", "organic", "pack", "zzz-no-match"]
    out = []
    for kind in kinds:
        if kind == "latest_page":
            out.append(Request(kind, f"/predictions/latest?limit={rng.choice([10, 50, 100])}", date=catalogue.latest))
        elif kind == "sorted_page":
            field_name, order = rng.choice(["value", "label", "upper"]), rng.choice(["asc", "desc"])
            out.append(Request(kind, f"/predictions/latest?limit=20&sort={field_name}&order={order}",
                               date=catalogue.latest))
        elif kind == "filtered_page":
            out.append(Request(kind, f"/predictions/latest?q={rng.choice(terms)}", date=catalogue.latest))
        elif kind == "dated_page":
            date = rng.choice(catalogue.dates)
            out.append(Request(kind, f"/predictions/{date}?limit=100", date=date))
        elif kind == "cursor_page":
            out.append(Request(kind, f"/predictions/latest?limit=50&cursor={catalogue.cursor}", date=catalogue.latest))
        elif kind == "by_id":
            date = rng.choice([catalogue.latest, *catalogue.dates[:3]])
            out.append(Request(kind, f"/predictions/{date}/{rng.choice(catalogue.ids)}", date=date))
        elif kind == "dates":
            out.append(Request(kind, "/predictions"))
        else:
            path, etag = rng.choice(catalogue.etags)
            out.append(Request(kind, path, (("If-None-Match", etag),), expect=304))
    return out


def check_throttled(request: Request, headers: dict[str, str], body: bytes) -> str | None:
    """Why a 429 is not API Gateway's throttled answer, or None."""
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = None
    if code != "throttled" or not headers.get("retry-after", "").isdigit():
        return (f"{request.kind} {request.path}: a 429 without the throttled error shape and Retry-After: "
                f"{body[:120]!r}")
    return None


def check(request: Request, status: int, body: bytes, headers: dict[str, str] | None = None) -> str | None:
    """Why this answer is wrong, or None."""
    if status == 429:
        return check_throttled(request, headers or {}, body)
    if status != request.expect:
        return f"{request.kind} {request.path}: expected {request.expect}, got {status} {body[:120]!r}"
    if status == 304:
        return None if body == b"" else f"{request.kind}: a 304 with a body"
    try:
        doc = json.loads(body)
    except ValueError:
        return f"{request.kind} {request.path}: not JSON: {body[:120]!r}"
    if request.date is not None and doc.get("date") != request.date:
        return f"{request.kind} {request.path}: answered the batch of {doc.get('date')}"
    return None


def run(base_url: str, requests: int, concurrency: int, *, timeout: float = 10.0, max_seconds: float = 120.0,
        seed: int = 7, progress: Callable[[str], None] = lambda _: None,
        headers: Sequence[tuple[str, str]] = ()) -> Report:
    """Send the planned requests from `concurrency` threads; stop early at max_seconds. `headers` go with
    every request."""
    catalogue = discover(Client(base_url, timeout, headers))
    todo = plan(catalogue, requests, seed)
    report = Report(requested=len(todo))
    lock, next_index = threading.Lock(), iter(range(len(todo)))
    deadline = time.monotonic() + max_seconds

    def worker() -> None:
        client = Client(base_url, timeout, headers)
        mine: list[Result] = []
        try:
            while time.monotonic() < deadline:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    break
                request = todo[i]
                started = time.perf_counter()
                try:
                    status, got, body = client.get(request.path, request.headers)
                    error = check(request, status, body, got)
                except (OSError, http.client.HTTPException, ValueError) as exc:
                    status, error = 0, f"{request.kind} {request.path}: {type(exc).__name__}: {exc}"
                    client.close()
                mine.append(Result(request.kind, status, time.perf_counter() - started, error))
        finally:
            client.close()
            with lock:
                report.results.extend(mine)

    progress(f"load: {len(todo)} requests, {concurrency} concurrent, against {base_url}")
    started = time.perf_counter()
    threads = [threading.Thread(target=worker, name=f"load-{n}", daemon=True) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()) + timeout + 1)
    report.elapsed = time.perf_counter() - started
    return report


# -- the stack ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    base_url: str  # where the load goes: the edge's /api or chalice local itself
    log_path: str  # chalice local's stdout (its request_metrics lines) and the other processes' output
    headers: tuple[tuple[str, str], ...] = ()  # chalice local directly: CloudFront's X-Origin-Verify


@contextmanager
def local_stack(*, via_edge: bool, days: int, count: int, progress: Callable[[str], None]) -> Iterator[Stack]:
    """tools.devstack.local_stack (moto S3 + sample data + chalice local [+ site + edge]), its output
    to a log file: chalice local writes a metrics line per request, and 5,000 of them would drown
    the figures (they are read back for the API's own latencies)."""
    from tools import devstack

    workdir = tempfile.mkdtemp(prefix="load-")
    log_path = os.path.join(workdir, "stack.log")
    try:
        with devstack.local_stack(days=days, count=count, end_date=END_DATE, site=via_edge, edge=via_edge,
                                  site_dir=os.path.join(workdir, "site"), log_path=log_path,
                                  progress=lambda line: progress(f"load: {line}")) as stack:
            assert stack.api_url is not None
            base = f"{stack.edge_url}/api" if stack.edge_url else stack.api_url
            progress(f"load: stack up ({'edge -> ' if via_edge else ''}chalice local {stack.api_url}); "
                     f"log {log_path}")
            # Straight at chalice local, the load sends what CloudFront would (docs/protection.md).
            yield Stack(base, log_path, () if stack.edge_url else tuple(stack.origin_headers.items()))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def api_latencies_ms(log_path: str) -> list[float]:
    """The API's own time per request (LatencyMs of its request_metrics lines), network excluded."""
    found = []
    with open(log_path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith("{") and '"request_metrics"' in line:
                try:
                    found.append(float(json.loads(line)["LatencyMs"]))
                except (ValueError, KeyError):
                    continue
    return found


def edge_available() -> bool:
    from tools import devstack

    return devstack.site_available()


# -- command line -----------------------------------------------------------------------------------


def format_report(summary: dict[str, Any], errors: list[Result]) -> str:
    lines = [
        f"total     {summary['total']} of {summary['requested']} requested",
        f"errors    {summary['errors']}",
        *([f"throttled {summary['throttled']} (429 past the stage's burst, each the API's error shape with "
           "Retry-After: not errors)"] if summary.get("throttled") else []),
        f"elapsed   {summary['seconds']} s",
        f"req/s     {summary['req_per_s']}",
        f"latency   p50 {summary['p50_ms']} ms   p90 {summary['p90_ms']} ms   p99 {summary['p99_ms']} ms   "
        f"max {summary['max_ms']} ms",
        f"statuses  {summary['statuses']}",
        *([f"API time  p50 {summary['api_p50_ms']} ms   p99 {summary['api_p99_ms']} ms   (request_metrics "
           "LatencyMs: inside the Lambda handler, no network)"] if summary["api_p50_ms"] is not None else []),
        f"mix       {summary['by_kind']}",
    ]
    lines += [f"error     {r.error}" for r in errors[:10]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.load", description=__doc__.split("\n\n")[0],
                                epilog="Exit status: 0 when every request got the expected answer, 1 otherwise.")
    p.add_argument("--url", help="an API already running, e.g. http://127.0.0.1:8080/api (else start a stack)")
    p.add_argument("--direct", action="store_true", help="own stack without the edge: load chalice local itself")
    p.add_argument("--requests", type=int, default=5000, help="how many requests in all (default 5000)")
    p.add_argument("--concurrency", type=int, default=32, help="concurrent connections (default 32)")
    p.add_argument("--timeout", type=float, default=10.0, help="per request, in seconds (default 10)")
    p.add_argument("--max-seconds", type=float, default=120.0, help="stop sending after this long (default 120)")
    p.add_argument("--days", type=int, default=7, help="sample days in the own stack (default 7)")
    p.add_argument("--count", type=int, default=200, help="predictions per day in the own stack (default 200)")
    p.add_argument("--seed", type=int, default=7, help="seed of the request mix (default 7)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object as well")
    args = p.parse_args(argv)
    if not 1 <= args.requests <= 100_000 or not 1 <= args.concurrency <= 256:
        p.error("--requests must be 1..100000 and --concurrency 1..256: this is a bounded loopback load")

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        if args.url:
            report = run(args.url, args.requests, args.concurrency, timeout=args.timeout,
                         max_seconds=args.max_seconds, seed=args.seed, progress=say)
        else:
            via_edge = not args.direct and edge_available()
            if not args.direct and not via_edge:
                say("load: tools/edge.py or build_site.py missing: loading chalice local directly")
            with local_stack(via_edge=via_edge, days=args.days, count=args.count, progress=say) as stack:
                report = run(stack.base_url, args.requests, args.concurrency, timeout=args.timeout,
                             max_seconds=args.max_seconds, seed=args.seed, progress=say, headers=stack.headers)
                time.sleep(0.2)  # chalice local flushes its last metrics lines
                report.api_ms = api_latencies_ms(stack.log_path)
    except (RuntimeError, ValueError, OSError, subprocess.SubprocessError) as exc:
        say(f"load: error: {exc}")
        return 1
    summary = report.summary()
    print(format_report(summary, report.errors))
    if args.json:
        print(json.dumps(summary))
    return 0 if summary["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
