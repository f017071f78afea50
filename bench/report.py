"""Summaries of the raw runs, the performance targets, and the tables printed and written."""

from __future__ import annotations

from bench.stats import median_of, ratio

# The limits of the performance targets (docs/performance.md); each target reads "value <= limit".
# The zip carries jinja2, markupsafe (compiled for the runtime) and the templates for the site-rendering
# function (one zip for every function): 600 KB is the budget.
COLD_RATIO, WARM_PAGE_RATIO, FLAT_RATIO, LOAD_MS, RSS_MB, ZIP_KB = 0.35, 0.5, 1.10, 2000.0, 450.0, 600.0
COLD_RSS_MB = 30.0
# The largest batch against the baseline: first load, peak RSS, by-id for random ids; and how much the
# random by-id and the page may grow from the smallest batch to the largest.
LARGE_LOAD_RATIO, LARGE_RSS_RATIO, LARGE_ID_RATIO, GROWTH_RATIO = 0.5, 0.4, 0.5, 1.5
# The publish gate (chalice_app/publishing/gate.py) on the largest batch: at most this share added.
GATE_SHARE = 0.2


def _pair(runs: dict, key: str, a: str = "ours", b: str = "baseline") -> dict:
    ours, base = median_of(runs[a], key), median_of(runs[b], key)
    return {"ours": ours, "baseline": base, "ratio": ratio(ours, base)}


def _now_vs_before(runs: dict, key: str) -> dict:
    now, before = median_of(runs["ours"], key), median_of(runs["ours-before"], key)
    return {"before": before, "now": now, "ratio": ratio(now, before)}


def summarize(results: dict, headline: int, sizes: list[int]) -> dict:
    by_size = {}
    for size, r in results["sizes"].items():
        row = {
            "cold_ms": _pair(r["cold"], "cold_ms"),
            "cold_cpu_ms": _pair(r["cold"], "cpu_ms"),
            "cold_wall_ms": _pair(r["cold"], "wall_ms"),
            "cold_import_ms": _pair(r["cold"], "import_ms"),
            "warm_page_us": _pair(r["warm"], "page_us"),
            "warm_id_us": _pair(r["warm"], "id_us"),
            "random_id_us": _pair(r["warm"], "random_id_us"),
            "peak_rss_mb": {k: v / 1024 for k, v in _pair(r["cold"], "maxrss_kb").items() if k != "ratio"},
            "first_load_ms": _pair(r["load"], "load_ms"),
            "publish_s": r["publish_s"],
            "gate_s": r.get("gate_s", 0.0),
        }
        row["peak_rss_mb"]["ratio"] = ratio(row["peak_rss_mb"]["ours"], row["peak_rss_mb"]["baseline"])
        if "ours-botocore" in r["cold"]:
            row["cold_botocore_ms"] = _pair(r["cold"], "cold_ms", "ours-botocore")
            row["cold_botocore_cpu_ms"] = _pair(r["cold"], "cpu_ms", "ours-botocore")
            row["cold_botocore_rss_mb"] = {k: v / 1024 for k, v in
                                           _pair(r["cold"], "maxrss_kb", "ours-botocore").items() if k != "ratio"}
        row["load_rss_mb"] = {k: v / 1024 for k, v in _pair(r["load"], "maxrss_kb").items() if k != "ratio"}
        if "ours-nopyc" in r["cold"]:
            row["cold_nopyc_ms"] = _pair(r["cold"], "cold_ms", "ours-nopyc", "baseline-nopyc")
        if "ours-before" in r["cold"]:
            row["before"] = {
                key: _now_vs_before(r[kind], field) for key, kind, field in (
                    ("cold_ms", "cold", "cold_ms"), ("cold_cpu_ms", "cold", "cpu_ms"),
                    ("first_load_ms", "load", "load_ms"), ("warm_page_us", "warm", "page_us"),
                    ("warm_id_us", "warm", "id_us"), ("peak_rss_kb", "cold", "maxrss_kb"))}
        breakdown = [x for x in r["load"]["ours"] if "fetch_ms" in x]
        if breakdown:
            row["load_breakdown_ms"] = {k: median_of(breakdown, k) for k in ("fetch_ms", "parse_ms", "index_ms")}
        by_size[size] = row
    zips = {k: v["bytes"] / 1024 for k, v in results["zip"].items()}
    summary = {"sizes": by_size, "zip_kb": {**zips, "ratio": ratio(zips["ours"], zips["baseline"])}}
    if "probes" in results:
        summary["probes"] = _probes(results["probes"])
    summary["targets"] = targets(summary, str(headline), [str(s) for s in sizes])
    return summary


def _probes(probes: dict) -> dict:
    out = {}
    for name, runs in probes.items():
        keys = [k for k in ("import_ms", "client_ms", "read_ms", "cold_ms", "first_ms") if k in runs[0]]
        out[name] = {k: median_of(runs, k) for k in keys}
    return out


def targets(summary: dict, headline: str, sizes: list[str]) -> list[dict]:
    s = summary["sizes"]
    head = s[headline]
    found = [
        _target(f"cold start <= {COLD_RATIO}x baseline", head["cold_ms"]["ratio"], COLD_RATIO, "x"),
    ]
    if "cold_nopyc_ms" in head:
        found.append(_target(f"cold start <= {COLD_RATIO}x baseline, zip without .pyc (as Lambda runs it)",
                             head["cold_nopyc_ms"]["ratio"], COLD_RATIO, "x"))
    found.append(_target(f"cold-path peak RSS <= {COLD_RSS_MB:.0f} MB", head["peak_rss_mb"]["ours"], COLD_RSS_MB, "MB"))
    found.append(_target(f"warm page <= {WARM_PAGE_RATIO}x baseline", head["warm_page_us"]["ratio"],
                         WARM_PAGE_RATIO, "x"))
    found.append(_target(f"warm by-id <= {WARM_PAGE_RATIO}x baseline", head["warm_id_us"]["ratio"],
                         WARM_PAGE_RATIO, "x"))
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        for key, label in (("warm_id_us", "by-id"), ("warm_page_us", "page")):
            flat = ratio(s[large][key]["ours"], s[small][key]["ours"])
            found.append(_target(f"{label} time flat from {int(small):,} to {int(large):,} (ratio <= {FLAT_RATIO})",
                                 flat, FLAT_RATIO, "x"))
    largest = s[sizes[-1]] if sizes else head
    n = f"{int(sizes[-1] if sizes else headline):,}"
    found.append(_target(f"{n} batch first load <= {LOAD_MS:.0f} ms", largest["first_load_ms"]["ours"], LOAD_MS, "ms"))
    found.append(_target(f"{n} batch peak RSS <= {RSS_MB:.0f} MB", largest["peak_rss_mb"]["ours"], RSS_MB, "MB"))
    found.append(_target(f"{n} batch first load <= {LARGE_LOAD_RATIO}x baseline", largest["first_load_ms"]["ratio"],
                         LARGE_LOAD_RATIO, "x"))
    found.append(_target(f"{n} batch peak RSS <= {LARGE_RSS_RATIO}x baseline", largest["peak_rss_mb"]["ratio"],
                         LARGE_RSS_RATIO, "x"))
    found.append(_target(f"{n} batch by-id for random ids <= {LARGE_ID_RATIO}x baseline",
                         largest["random_id_us"]["ratio"], LARGE_ID_RATIO, "x"))
    if len(sizes) >= 2:
        smallest = s[sizes[0]]
        for key, label in (("random_id_us", "by-id for random ids"), ("warm_page_us", "page")):
            grown = ratio(largest[key]["ours"], smallest[key]["ours"])
            found.append(_target(f"{n} batch {label} within {GROWTH_RATIO}x of {int(sizes[0]):,}", grown,
                                 GROWTH_RATIO, "x"))
    found.append(_target(f"{n} batch: the publish gate adds <= {GATE_SHARE:.0%} to publishing", _gate_share(largest),
                         GATE_SHARE, "x"))
    found.append(_target(f"deployment zip <= {ZIP_KB:.0f} KB", summary["zip_kb"]["ours"], ZIP_KB, "KB"))
    return found


def _gate_share(row: dict) -> float:
    """The gate's seconds over the rest of a publish's (the publish measured includes one gate run)."""
    rest = row["publish_s"] - row.get("gate_s", 0.0)
    return row.get("gate_s", 0.0) / rest if rest > 0 else 0.0


def _target(name: str, value: float, limit: float, unit: str) -> dict:
    return {"target": name, "value": value, "limit": limit, "unit": unit, "pass": value <= limit}


def _fmt(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:,.1f} {unit}"


def _row(label: str, pair: dict, unit: str) -> str:
    return f"| {label} | {_fmt(pair['ours'], unit)} | {_fmt(pair['baseline'], unit)} | {pair['ratio']:.2f}x |"


def render(results: dict, summary: dict) -> str:
    meta = results["meta"]
    sizes = list(summary["sizes"])
    head_size = sizes[0]
    head = summary["sizes"][head_size]
    lines = [
        "# Benchmark: Chalice handler vs Flask inside Lambda (serverless-wsgi)",
        "",
        f"{meta['when']} · Python {meta['python']} · {meta['cpus']} CPUs · {meta['platform']} · "
        f"run took {meta['duration_s']} s · medians of interleaved runs "
        f"({meta['config']['cold_reps']} cold starts per target and size, {meta['config']['warm_rounds']} warm "
        f"rounds of {meta['config']['warm_requests']} requests per route) · load average "
        f"{meta['loadavg_1min']['start']} at start, {meta['loadavg_1min']['end']} at end",
        "",
        f"## Headline: one day of sample data ({int(head_size):,} predictions)",
        "",
        "| metric | ours | baseline | ours/baseline |",
        "|---|---:|---:|---:|",
        _row("cold start: import + first `GET /predictions/latest?limit=50`", head["cold_ms"], "ms"),
        _row("cold start: CPU time of the same (less sensitive to other load)", head["cold_cpu_ms"], "ms"),
        _row("cold start: whole process (interpreter start to exit)", head["cold_wall_ms"], "ms"),
    ]
    if "cold_nopyc_ms" in head:
        lines.append(_row("cold start, zip without .pyc (as Lambda runs it)", head["cold_nopyc_ms"], "ms"))
    lines += [
        _row("warm request: page of 50", head["warm_page_us"], "µs"),
        _row("warm request: one id", head["warm_id_us"], "µs"),
        _row("deployment zip (boto3 excluded in both)", summary["zip_kb"], "KB"),
        _row("peak RSS of the cold-start process", head["peak_rss_mb"], "MB"),
    ]
    if "cold_botocore_ms" in head:
        rss = head["cold_botocore_rss_mb"]
        lines += [
            _row("cold start with the botocore S3 client (credentials not in the environment)",
                 head["cold_botocore_ms"], "ms"),
            _row("cold start CPU time with the botocore S3 client", head["cold_botocore_cpu_ms"], "ms"),
            f"| peak RSS of the cold start with the botocore S3 client | {_fmt(rss['ours'], 'MB')} | "
            f"{_fmt(rss['baseline'], 'MB')} | {ratio(rss['ours'], rss['baseline']):.2f}x |",
        ]
    lines += [
        _row("first load of the batch (S3 read + parse + index)", head["first_load_ms"], "ms"),
    ]
    if len(sizes) > 1:
        lines += _render_sizes(summary, sizes[1:])
    lines += ["", "## Targets", "", "| target | value | result |", "|---|---:|---|"]
    lines += [f"| {t['target']} | {_fmt(t['value'], t['unit'])} | {'PASS' if t['pass'] else 'MISS'} |"
              for t in summary["targets"]]
    if "before" in head:
        lines += _render_before(summary, sizes, meta)
    if "probes" in summary:
        lines += ["", *_render_probes(summary["probes"], results.get("parsers", {}))]
    return "\n".join(lines)


def _render_sizes(summary: dict, sizes: list[str]) -> list[str]:
    lines = [
        "",
        "## Large batches (ours / baseline, ratio)",
        "",
        "| metric | " + " | ".join(f"{int(s):,}" for s in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    big = [summary["sizes"][s] for s in sizes]
    for key, label, unit in (("cold_ms", "cold start", "ms"), ("warm_page_us", "warm page", "µs"),
                             ("warm_id_us", "warm id", "µs"), ("random_id_us", "by-id, random ids", "µs"),
                             ("peak_rss_mb", "peak RSS", "MB"),
                             ("first_load_ms", "first load", "ms")):
        cells = [f"{_fmt(r[key]['ours'], unit)} / {_fmt(r[key]['baseline'], unit)} ({r[key]['ratio']:.2f}x)"
                 for r in big]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| publish (publish_document to moto) | " + " | ".join(f"{r['publish_s']:.2f} s" for r in big) + " |")
    lines.append("| the publish gate's part of it (profile + compare with the day before) | "
                 + " | ".join(f"{r['gate_s']:.2f} s ({_gate_share(r):.0%})" for r in big) + " |")
    loads = [r.get("load_breakdown_ms") for r in big]
    if all(loads):
        lines.append("| ours first load: fetch + gunzip / json / index | " + " | ".join(
            f"{b['fetch_ms']:.0f} / {b['parse_ms']:.0f} / {b['index_ms']:.0f} ms" for b in loads) + " |")
    return lines


def _render_before(summary: dict, sizes: list[str], meta: dict) -> list[str]:
    lines = [
        "",
        f"## Effect of the tuned modules ({meta['config']['before']} → now, everything else as now)",
        "",
        "Modules: " + ", ".join(f"`{m}`" for m in meta.get("perf_modules", [])) + ".",
        "",
        "| metric | " + " | ".join(f"{int(s):,}" for s in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    for key, label, unit, scale in (("cold_ms", "cold start", "ms", 1), ("cold_cpu_ms", "cold start CPU", "ms", 1),
                                    ("first_load_ms", "first load", "ms", 1), ("warm_page_us", "warm page", "µs", 1),
                                    ("warm_id_us", "warm id", "µs", 1), ("peak_rss_kb", "peak RSS", "MB", 1 / 1024)):
        cells = []
        for size in sizes:
            pair = summary["sizes"][size]["before"][key]
            cells.append(f"{_fmt(pair['before'] * scale, unit)} → {_fmt(pair['now'] * scale, unit)} "
                         f"({pair['ratio']:.2f}x)")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _render_probes(p: dict, parsers: dict) -> list[str]:
    def ms(name: str, key: str) -> str:
        return f"{p[name][key]:.1f} ms" if name in p and key in p[name] else "n/a"

    lines = [
        "## The cold path in pieces (fresh interpreter each, medians)",
        "",
        "| piece | time |",
        "|---|---:|",
        f"| `import app` (Chalice + chalice_app, botocore not yet imported) | {ms('import-app', 'import_ms')} |",
        f"| `import flask, serverless_wsgi` | {ms('import-flask', 'import_ms')} |",
        f"| `import botocore.session` | {ms('import-botocore', 'import_ms')} |",
        f"| `import boto3` | {ms('import-boto3', 'import_ms')} |",
        f"| S3 client, botocore's stock session | {ms('client-botocore', 'client_ms')} |",
        f"| S3 client, ours (`make_s3_client`, lean loader) | {ms('client-ours', 'client_ms')} |",
        f"| S3 client, `boto3.client('s3')` | {ms('client-boto3', 'client_ms')} |",
        f"| S3 read from nothing: import, client, GET pointer + batch, parse; botocore (ours) | "
        f"{ms('s3read-botocore', 'read_ms')} |",
        f"| the same with http.client + hand-made SigV4 (bench/stdlib_s3.py, a probe) | "
        f"{ms('s3read-stdlib', 'read_ms')} |",
        f"| ours, cold `GET /health` (import + request; no botocore) | {ms('cold-ours-health', 'cold_ms')} |",
        f"| ours, cold page, client created lazily on first request (as shipped) | {ms('cold-ours', 'cold_ms')} |",
        f"| ours, cold page, client created at import | {ms('cold-ours-eager', 'cold_ms')} |",
        f"| ours, cold page with CONFIG_SSM_PATH set, as the dev/prod stages deploy it | "
        f"{ms('cold-ours-ssm', 'cold_ms')} |",
        f"| the same, SSM client sharing the lean loader (`s3.make_client`, recommended) | "
        f"{ms('cold-ours-ssm-lean', 'cold_ms')} |",
    ]
    if parsers:
        names = [k for k in next(iter(parsers.values())) if k != "bytes"]
        lines += ["", "| JSON parse of a batch | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for size, row in parsers.items():
            lines.append(f"| {int(size):,} predictions ({row['bytes'] / 1e6:.2f} MB) | "
                         + " | ".join(f"{row[n]:.1f} ms" for n in names) + " |")
    return lines
