"""`make bench`: ours against the Flask baseline, same moto S3 server, interleaved runs, medians.

    python -m bench [--quick] [--sizes 1000,10000,100000] [--cold-reps 7] [--out bench/results]

Prints the tables and writes bench/results/latest.md and latest.json (the raw runs too).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import packaging, parsers, report
from bench.children import Target, interleaved, run_child
from bench.s3stack import MotoS3

RESULTS_DIR = Path(__file__).with_name("results")
DATE = "2026-11-23"
# The modules of the request path's speed: `--before REF` measures them as they were at REF, all
# else equal (REF must have them at these paths).
BIG_LIMITS = {"MAX_STORED_BYTES": str(256 << 20), "MAX_BATCH_BYTES": str(256 << 20)}
PERF_MODULES = ("chalice_app/store/batch.py", "chalice_app/store/cache.py", "chalice_app/store/sources.py",
                "chalice_app/aws_clients.py", "chalice_app/store/s3_http.py")


@dataclass
class Config:
    headline_size: int = 200  # the sample data's default day
    sizes: list[int] = field(default_factory=lambda: [1_000, 10_000, 100_000, 1_000_000])
    cold_reps: int = 7
    warm_rounds: int = 5
    warm_requests: int = 200
    load_reps: int = 3
    probe_reps: int = 7
    source_only_cold: bool = True  # also the zip as Lambda runs it: no bytecode, compiled each time
    probes: bool = True
    jobs: int = 1  # children side by side; >1 only for --quick
    warmup: bool = True  # one unmeasured child per target first, which writes the bytecode
    before: str | None = None  # a git revision: also measure PERF_MODULES as they were there
    out: Path | None = RESULTS_DIR

    @classmethod
    def quick(cls, out: Path | None) -> Config:
        """A tiny run of the main steps, children in parallel: seconds, and the figures mean nothing."""
        return cls(headline_size=20, sizes=[], cold_reps=1, warm_rounds=1, warm_requests=4, load_reps=1,
                   source_only_cold=False, probes=False, jobs=2, warmup=False, out=out)


def middle_id(size: int) -> str:
    return f"sku-{size // 2 + 1:05d}"  # sample ids are sku-00001.. in order


def measure_size(s3: MotoS3, size: int, ours: Target, base: Target, cfg: Config,
                 extra_cold: list[Target], before: Target | None) -> dict:
    bucket = f"bench-{size}"
    s3.create_bucket(bucket)
    publish_s, gate_s = s3.publish_with_gate(bucket, DATE, size)
    # The stage limits that let a 1M batch (117 MB of JSON) in: prod's bytes, and more.
    env = s3.child_env(bucket, BIG_LIMITS if size > 200_000 else None)
    pair = [ours, base] + ([before] if before else [])
    out: dict = {"size": size, "publish_s": publish_s, "gate_s": gate_s}
    # The cold path on each S3 client the container can pick (the botocore one without env credentials).
    botocore_client = Target("ours", ours.package_dir, label="ours-botocore")
    cold_targets = [*pair, botocore_client, *extra_cold]
    reps = cfg.cold_reps if size <= 100_000 else max(1, cfg.cold_reps // 3)
    out["cold"] = interleaved(reps, cold_targets, lambda t: run_child(
        "cold", t, env, **({"s3client": "botocore"} if t is botocore_client else {})), cfg.jobs)
    rounds = cfg.warm_rounds if size <= 100_000 else max(1, cfg.warm_rounds // 2)
    out["warm"] = interleaved(rounds, pair, lambda t: run_child(
        "warm", t, env, n=cfg.warm_requests, pid=middle_id(size), size=size), cfg.jobs)
    out["load"] = interleaved(cfg.load_reps, pair, lambda t: run_child(
        "load", t, env, date=DATE, breakdown=int(t is ours and size <= 100_000)), cfg.jobs)
    return out


def measure_probes(s3: MotoS3, ours: Target, base: Target, cfg: Config) -> dict:
    """The cold path in pieces (import, client creation), and client-at-import vs lazy."""
    env = s3.child_env(f"bench-{cfg.headline_size}")
    probes = [Target(name, ours.package_dir) for name in
              ("import-app", "import-botocore", "import-boto3", "client-botocore", "client-ours", "client-boto3",
               "s3read-botocore", "s3read-stdlib")]
    probes.append(Target("import-flask", base.package_dir))
    out = interleaved(cfg.probe_reps, probes, lambda t: run_child("probe", t, env), cfg.jobs)
    eager = Target("ours", ours.package_dir, label="ours-eager")
    health = Target("ours", ours.package_dir, label="ours-health")
    cold = interleaved(cfg.probe_reps, [ours, eager, health], lambda t: run_child(
        "cold", t, env, eager=int(t is eager), route="health" if t is health else "page"), cfg.jobs)
    # The dev and prod stages set CONFIG_SSM_PATH: settings come from Parameter Store on a cold start.
    ssm_env = {**env, "CONFIG_SSM_PATH": "/predictions/dev/"}
    ssm_lean = Target("ours", ours.package_dir, label="ours-ssm-lean")
    with_ssm = interleaved(cfg.probe_reps, [Target("ours", ours.package_dir, label="ours-ssm"), ssm_lean],
                           lambda t: run_child("cold", t, ssm_env, ssm="lean" if t is ssm_lean else "stock"), cfg.jobs)
    out.update({f"cold-{k}": v for k, v in {**cold, **with_ssm}.items()})
    return out


def prepare(workdir: Path, before_ref: str | None) -> tuple[Target, Target, list[Target], Target | None, dict]:
    ours_zip = packaging.build_ours(workdir)
    base_zip = packaging.build_baseline(workdir)
    ours = Target("ours", packaging.unpack(ours_zip, workdir / "ours"))
    base = Target("baseline", packaging.unpack(base_zip, workdir / "baseline"))
    source_only = [
        Target("ours", packaging.unpack(ours_zip, workdir / "ours-src"), False, "ours-nopyc"),
        Target("baseline", packaging.unpack(base_zip, workdir / "baseline-src"), False, "baseline-nopyc"),
    ]
    zips = {"ours": packaging.zip_summary(ours_zip), "baseline": packaging.zip_summary(base_zip)}
    before = None
    if before_ref:
        old = packaging.files_at(before_ref, PERF_MODULES)
        before_zip = packaging.build_ours(workdir, overrides=old, name="project-before")
        before = Target("ours", packaging.unpack(before_zip, workdir / "ours-before"), label="ours-before")
    return ours, base, source_only, before, zips


def run(cfg: Config) -> dict:
    started = time.perf_counter()
    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    s3 = MotoS3()
    try:
        ours, base, source_only, before, zips = prepare(workdir, cfg.before)
        results: dict = {"zip": zips, "sizes": {}}
        sizes = [cfg.headline_size, *cfg.sizes]
        # The first child of each target writes its bytecode; it is not measured.
        if cfg.warmup:
            s3.create_bucket("bench-warmup")
            s3.publish("bench-warmup", DATE, 10)
            for target in (ours, base, before):
                if target is not None:
                    run_child("cold", target, s3.child_env("bench-warmup"))
        for size in sizes:
            extra = source_only if cfg.source_only_cold and size == cfg.headline_size else []
            print(f"[bench] {size:,} predictions ...", flush=True)
            results["sizes"][str(size)] = measure_size(s3, size, ours, base, cfg, extra, before)
        if cfg.probes:
            print("[bench] cold-path probes ...", flush=True)
            results["probes"] = measure_probes(s3, ours, base, cfg)
            results["parsers"] = parsers.compare(DATE, sizes)
    finally:
        s3.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    results["meta"] = {
        "when": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
        "platform": platform.platform(), "duration_s": round(time.perf_counter() - started, 1),
        # Other work on the machine shifts absolute figures; interleaving keeps the ratios fair.
        "loadavg_1min": {"start": round(load_before[0], 2), "end": round(os.getloadavg()[0], 2)},
        "config": {k: v for k, v in asdict(cfg).items() if k != "out"},
        "perf_modules": list(PERF_MODULES) if cfg.before else [],
    }
    return results


def parse_args(argv: list[str] | None) -> Config:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a tiny run of every step (seconds, figures meaningless)")
    p.add_argument("--sizes", help="comma-separated batch sizes after the headline one (default 1000,10000,100000)")
    p.add_argument("--cold-reps", type=int, help="cold starts per target and size (default 7)")
    p.add_argument("--before", metavar="REF", help="also measure " + ", ".join(PERF_MODULES) +
                   " as they were at git revision REF, everything else as it is now")
    p.add_argument("--out", help="folder for latest.md/latest.json (default bench/results); '-' writes nothing")
    args = p.parse_args(argv)
    out = None if args.out == "-" else Path(args.out) if args.out else RESULTS_DIR
    cfg = Config.quick(out) if args.quick else Config(out=out)
    if args.sizes:
        cfg.sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.cold_reps:
        cfg.cold_reps = args.cold_reps
    cfg.before = args.before
    return cfg


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    results = run(cfg)
    summary = report.summarize(results, cfg.headline_size, cfg.sizes)
    text = report.render(results, summary)
    print(text)
    if cfg.out is not None:
        cfg.out.mkdir(parents=True, exist_ok=True)
        (cfg.out / "latest.md").write_text(text + "\n", encoding="utf-8")
        (cfg.out / "latest.json").write_text(json.dumps({"summary": summary, "raw": results}, indent=1) + "\n",
                                             encoding="utf-8")
        print(f"[bench] wrote {cfg.out / 'latest.md'} and latest.json")
    return 0
