"""Profiles behind the figures: where a warm request or a cold start spends its time.

    python -m bench.hotspots warm-page|warm-id [--size N]   # pyinstrument over many warm requests
    python -m bench.hotspots cold                           # pyinstrument over import + first page
    python -m bench.hotspots page-encoding                  # the page's JSON body, piece by piece

Runs our app from the source tree against a moto server of its own (never a real account).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import timeit
from pathlib import Path

from bench.runner import DATE, middle_id
from bench.s3stack import MotoS3

PROJECT_DIR = Path(__file__).resolve().parent.parent


def _app_events() -> tuple:
    from bench import child

    return child


def warm(route: str, size: int, requests: int = 3000) -> str:
    from pyinstrument import Profiler

    child = _app_events()
    handler = child.load_handler("ours")
    make = child.page_event if route == "page" else (lambda: child.id_event(middle_id(size)))
    events = [make() for _ in range(requests + 1)]
    profiler = Profiler(interval=0.0001)
    # The app logs one metrics line per request; keep them out of the profile's output.
    with contextlib.redirect_stdout(io.StringIO()):
        child.call(handler, events[0], 0)
        profiler.start()
        for n, event in enumerate(events[1:], 1):
            child.call(handler, event, n)
        profiler.stop()
    return profiler.output_text(unicode=True, color=False, show_all=False)


def cold() -> str:
    """pyinstrument in a fresh interpreter around import + the first page."""
    code = ("from pyinstrument import Profiler; "
            "p = Profiler(interval=0.0005); p.start(); from bench import child; h = child.load_handler('ours'); "
            "child.call(h, child.page_event(), 0); p.stop(); print(p.output_text(unicode=True, color=False))")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
                          capture_output=True, text=True, check=True)
    return done.stdout


def page_encoding(size: int, number: int = 2000) -> str:
    """What the page route's body costs: json.dumps of 50 rows vs joining 50 rows encoded once."""
    from chalice_app.api.responses import etag_of
    from chalice_app.jsontext import encode
    from chalice_app.publishing.sample import make_batch

    doc = make_batch(DATE, size)
    items = doc["predictions"][:50]
    payload = {"date": DATE, "model": doc["model"], "generated_at": doc["generated_at"], "count": size,
               "total": size, "items": items, "next_cursor": "x" * 40}
    encoded = [encode(item) for item in items]  # what a batch could keep per row after the first use
    body = encode(payload)
    pieces = {
        "encode(payload) as routes does (json.dumps + HTML-safe translate)": lambda: encode(payload),
        "  of which json.dumps of the 50 rows": lambda: json.dumps(items, ensure_ascii=False, separators=(",", ":")),
        "etag_of(body) (blake2b)": lambda: etag_of(body),
        "join of 50 rows encoded once + the metadata": lambda: (
            encode({k: v for k, v in payload.items() if k != "items"})[:-1] + ',"items":[' + ",".join(encoded) + "]}"),
    }
    lines = []
    for label, fn in pieces.items():
        per = min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6
        lines.append(f"{per:7.1f} µs  {label}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.hotspots", description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("warm-page", "warm-id", "cold", "page-encoding"))
    p.add_argument("--size", type=int, default=200, help="predictions in the batch (default 200)")
    args = p.parse_args(argv)
    if args.what == "page-encoding":
        print(page_encoding(args.size))
        return 0
    s3 = MotoS3()
    try:
        bucket = f"bench-{args.size}"
        s3.create_bucket(bucket)
        s3.publish(bucket, DATE, args.size)
        os.environ.update(s3.child_env(bucket))
        print(cold() if args.what == "cold" else warm(args.what.removeprefix("warm-"), args.size))
    finally:
        s3.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
