"""`make lighthouse`: build a site of 500 predictions, serve it like production, score it.

    python -m tools.lighthouse [--count 500] [--preset mobile|desktop|both] [--min-score 95] [--max-kb 50]
                               [--results FILE]

Runs the whole local stack (tools.devstack.local_stack: moto S3 seeded with sample batches,
chalice local, build_site.py --stage local, the local edge on 127.0.0.1), then Lighthouse 12
(npm, `npm ci` first) with Debian's Chromium on each page. Prints the four category scores and
the bytes transferred, and exits 1 when a score is below --min-score or the latest page weighs
more than --max-kb. --results writes the same table as markdown (`make lighthouse` writes
bench/results/lighthouse.md, which `make docs` copies into docs/website.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

from tools import devstack

PROJECT_DIR = devstack.PROJECT_DIR
LIGHTHOUSE = os.path.join(PROJECT_DIR, "node_modules", ".bin", "lighthouse")
CHROME = os.environ.get("CHROME_PATH", "/usr/bin/chromium")
CHROME_FLAGS = ("--headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
                "--disable-background-networking --disable-component-update --disable-sync")
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
METRICS = {"FCP": "first-contentful-paint", "LCP": "largest-contentful-paint", "TBT": "total-blocking-time",
           "CLS": "cumulative-layout-shift", "SI": "speed-index"}
END_DATE = "2026-11-20"  # fixed, so runs are comparable


@dataclass(frozen=True)
class Score:
    path: str
    preset: str
    scores: dict[str, int]
    transfer_bytes: int
    requests: int
    failing: list[str]
    metrics: str


ATTEMPTS = 3


def run_lighthouse(url: str, preset: str, workdir: str, save_dir: str | None = None) -> dict[str, Any]:
    name = url.split("/", 3)[3].replace("/", "_").removesuffix(".html") or "index"
    report = os.path.join(save_dir or workdir, f"lighthouse-{name}.json")
    cmd = [LIGHTHOUSE, url, "--output=json", f"--output-path={report}", "--quiet",
           f"--chrome-flags={CHROME_FLAGS}", "--only-categories=" + ",".join(CATEGORIES)]
    if preset == "desktop":
        cmd.append("--preset=desktop")
    env = {**os.environ, "CHROME_PATH": CHROME, "TMPDIR": workdir}
    for attempt in range(1, ATTEMPTS + 1):
        # Lighthouse's trace recording fails now and then (NO_NAVSTART) on a busy machine: the
        # page is not at fault, so the same run is tried again before it counts as a failure.
        done = subprocess.run(cmd, env=env, timeout=180, stdout=subprocess.DEVNULL, check=False)
        if done.returncode == 0:
            break
        if attempt == ATTEMPTS:
            raise SystemExit(f"lighthouse: {url} failed {ATTEMPTS} times (exit {done.returncode}); "
                             "see its stderr above")
    with open(report, encoding="utf-8") as fh:
        return json.load(fh)


def summarize(path: str, preset: str, report: dict[str, Any]) -> Score:
    scores = {c: round(100 * (report["categories"][c]["score"] or 0)) for c in CATEGORIES}
    audits = report["audits"]
    # Only audits that count towards a score: insights and diagnostics are advice, not failures.
    weighted = {ref["id"] for c in CATEGORIES for ref in report["categories"][c]["auditRefs"] if ref["weight"]}
    failing = sorted(i for i in weighted if audits[i].get("score") is not None and audits[i]["score"] < 0.9)
    requests = len(audits.get("network-requests", {}).get("details", {}).get("items", []))
    metrics = ", ".join(f"{name} {audits[key]['displayValue']}" for name, key in METRICS.items()
                        if audits.get(key, {}).get("displayValue"))
    return Score(path, preset, scores, int(audits["total-byte-weight"]["numericValue"]), requests, failing, metrics)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.lighthouse", description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=500, help="predictions per batch (default 500)")
    p.add_argument("--days", type=int, default=3, help="days of batches (default 3)")
    p.add_argument("--preset", choices=("mobile", "desktop", "both"), default="mobile",
                   help="Lighthouse's device and throttling preset (default mobile: the stricter one; "
                        "both: mobile, then desktop)")
    p.add_argument("--pages", default=f"/,/d/{END_DATE}.html,/docs/api.html", help="comma-separated paths")
    p.add_argument("--min-score", type=int, default=95, help="fail below this score (default 95)")
    p.add_argument("--max-kb", type=float, default=50.0, help="fail when / transfers more (default 50 KB)")
    p.add_argument("--save", metavar="DIR", help="keep the JSON reports in DIR")
    p.add_argument("--results", metavar="FILE", help="write the table as markdown to FILE (make lighthouse: "
                                                     "bench/results/lighthouse.md)")
    args = p.parse_args(argv)
    if not os.path.exists(LIGHTHOUSE):
        print("lighthouse: error: node_modules/.bin/lighthouse is missing: run `npm ci`", file=sys.stderr)
        return 1
    if not os.path.exists(CHROME):
        print(f"lighthouse: error: {CHROME} is missing: apt-get install -y chromium", file=sys.stderr)
        return 1
    workdir = tempfile.mkdtemp(prefix="lighthouse-")
    try:
        # The whole local stack, its processes' output to a log (quoted in the error if it fails).
        with devstack.local_stack(days=args.days, count=args.count, end_date=END_DATE, site=True, edge=True,
                                  site_dir=os.path.join(workdir, "site"), site_days=args.days,
                                  log_path=os.path.join(workdir, "stack.log")) as stack:
            print(f"built {args.days} days x {args.count} predictions in {stack.build_seconds:.1f} s; "
                  f"serving {stack.edge_url}", flush=True)
            if args.save:
                os.makedirs(args.save, exist_ok=True)
            presets = ("mobile", "desktop") if args.preset == "both" else (args.preset,)
            results = [summarize(path, preset, run_lighthouse(f"{stack.edge_url}{path}", preset, workdir, args.save))
                       for preset in presets for path in args.pages.split(",")]
    except RuntimeError as exc:  # the stack did not start (its log's end is in the message)
        print(f"lighthouse: error: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.results:
        with open(args.results, "w", encoding="utf-8") as fh:
            fh.write(markdown(results, args.days, args.count))
        print(f"wrote {args.results}")
    return report(results, args.min_score, args.max_kb * 1024)


def markdown(results: list[Score], days: int, count: int) -> str:
    """The scores as a markdown table, for bench/results/lighthouse.md and docs/website.md."""
    lines = [f"Lighthouse 12 on the local stack ({days} days × {count} predictions), loopback, simulated throttling:",
             "", "| page | preset | performance | accessibility | best practices | SEO | transferred | requests |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        s = r.scores
        lines.append(f"| `{r.path}` | {r.preset} | {s['performance']} | {s['accessibility']} | "
                     f"{s['best-practices']} | {s['seo']} | {r.transfer_bytes / 1024:.1f} KB | {r.requests} |")
    return "\n".join(lines) + "\n"


def report(results: list[Score], min_score: int, max_bytes: float) -> int:
    print("\nLighthouse 12")
    print(f"{'page':32} {'preset':>7} {'perf':>5} {'a11y':>5} {'b-p':>5} {'seo':>5} {'transfer':>10} {'requests':>8}")
    ok = True
    for r in results:
        s = r.scores
        print(f"{r.path:32} {r.preset:>7} {s['performance']:>5} {s['accessibility']:>5} {s['best-practices']:>5} "
              f"{s['seo']:>5} {r.transfer_bytes / 1024:>8.1f} KB {r.requests:>8}")
        print(f"{'':32} {r.metrics}")
        if r.failing:
            print(f"{'':32} audits below 90: {', '.join(r.failing)}")
        if min(s.values()) < min_score:
            ok = False
        if r.path == "/" and r.transfer_bytes > max_bytes:
            print(f"{'':32} the latest page transfers more than {max_bytes / 1024:.0f} KB")
            ok = False
    print("PASS" if ok else f"FAIL: every score must be at least {min_score}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
