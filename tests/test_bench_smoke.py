"""The benchmark harness on a tiny configuration, so that `make bench` cannot rot unnoticed.

Asserts that every step runs and the report is complete; never asserts a timing (the figures of
a run this small, with children side by side, mean nothing).
"""

from __future__ import annotations

import random

import pytest

from bench import hotspots, parsers, report, runner
from bench.children import Target, run_child
from bench.s3stack import MotoS3
from chalice_app.store.batch import BatchContractError, _index_checked, _index_fast


@pytest.mark.slow
def test_quick_run_measures_both_apps_and_reports_every_target(tmp_path):
    cfg = runner.Config.quick(out=tmp_path)
    results = runner.run(cfg)

    headline = results["sizes"][str(cfg.headline_size)]
    for kind in ("cold", "warm", "load"):
        assert {"ours", "baseline"} <= set(headline[kind])
    # The cold path on both S3 clients: ours without botocore, and botocore's (no env credentials).
    assert set(headline["cold"]) == {"ours", "baseline", "ours-botocore"}
    assert not headline["cold"]["ours"][0]["botocore_imported"]
    assert headline["cold"]["ours-botocore"][0]["botocore_imported"]
    for target in ("ours", "baseline"):
        cold = headline["cold"][target][0]
        assert cold["cold_ms"] > 0 and cold["wall_ms"] >= cold["cold_ms"] and cold["maxrss_kb"] > 0
        assert cold["bytes"] > 0  # the first page really came back (status 200 checked in the child)
        warm = headline["warm"][target][0]
        assert warm["page_us"] > 0 and warm["id_us"] > 0
    assert "fetch_ms" in headline["load"]["ours"][0]
    assert results["zip"]["ours"]["bytes"] > 0 and results["zip"]["baseline"]["files"] > 10

    summary = report.summarize(results, cfg.headline_size, cfg.sizes)
    names = [t["target"] for t in summary["targets"]]
    assert any(n.startswith("cold start") for n in names) and any(n.startswith("deployment zip") for n in names)
    text = report.render(results, summary)
    assert "| cold start: import + first" in text and ("PASS" in text or "MISS" in text)


def test_probes_and_parsers_render(tmp_path):
    """The cold-path pieces that the quick run leaves out, once each."""
    s3 = MotoS3()
    try:
        s3.create_bucket("smoke")
        s3.publish("smoke", runner.DATE, 5)
        env = s3.child_env("smoke")
        probe = run_child("probe", Target("client-ours", runner.packaging.PROJECT_DIR), env)
        health = run_child("cold", Target("ours", runner.packaging.PROJECT_DIR), env, route="health")
    finally:
        s3.stop()
    assert probe["client_ms"] > 0 and health["cold_ms"] > 0
    lines = report._render_probes({"client-ours": probe, "cold-ours-health": health},
                                  parsers.compare(runner.DATE, [5]))
    assert any("lean loader" in line and "ms |" in line for line in lines)
    assert any(line.startswith("| 5 predictions") for line in lines)
    assert "µs  join of 50 rows" in hotspots.page_encoding(60, number=5)


def test_fast_index_agrees_with_the_row_by_row_check():
    """batch.py validates ids in bulk for speed; it must accept and refuse exactly what the loop does."""
    rnd = random.Random(3)
    alphabet = "aZ09._:-\n é/"
    for _ in range(3000):
        rows: list = [{"id": "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 4)))}
                      for _ in range(rnd.randint(0, 4))]
        if rows and rnd.random() < 0.1:
            rows[rnd.randrange(len(rows))] = rnd.choice([3, None, {"x": 1}, {"id": 5}])
        try:
            expected = _index_checked(rows)
        except BatchContractError:
            expected = None
        assert _index_fast(rows) == expected, rows
    assert _index_fast([{"id": "a" * 128}]) == {"a" * 128: 0}
    assert _index_fast([{"id": "a" * 129}]) is None


def test_lean_clients_load_what_the_stock_ones_do_and_fall_back(monkeypatch):
    """s3.py swaps botocore's data loader for speed: same models, and a safe way out if it breaks."""
    import botocore.session

    from chalice_app import aws_clients as s3
    from chalice_app.config.settings import Settings

    # A fresh loader, not the container's cached one: botocore's S3 customisation rewrites the
    # requestUri of a loaded model in place (idempotently) once a client has been made from it.
    lean = s3._lean_loader_class()()
    stock = botocore.session.get_session().get_component("data_loader")
    for service in s3.SERVICES:
        for type_name in ("service-2", "endpoint-rule-set-1"):
            assert lean.load_service_model(service, type_name) == stock.load_service_model(service, type_name)
    assert lean.load_data("endpoints") == stock.load_data("endpoints")
    client = s3.make_s3_client(Settings())
    assert client.meta.service_model.operation_names == \
        botocore.session.get_session().create_client("s3").meta.service_model.operation_names

    def broken(data_path: object) -> object:
        raise RuntimeError("a botocore that moved things around")

    monkeypatch.setattr(s3, "_lean_loader", broken)
    assert s3.make_s3_client(Settings()).meta.service_model.service_name == "s3"


def test_the_unpacked_zip_runs_its_compiled_code_here(tmp_path):
    """The zip carries binaries for Lambda (cp313, aarch64); unpacked for the bench, each package holding
    one this interpreter cannot load is swapped for this machine's build, not left to fail or fall back."""
    import zipfile
    from pathlib import Path

    import zlib_ng

    from bench import packaging

    src = Path(zlib_ng.__file__).parent
    built = tmp_path / "lambda.zip"
    with zipfile.ZipFile(built, "w") as zf:
        zf.writestr("zlib_ng/__init__.py", "")
        zf.writestr("zlib_ng/zlib_ng.cpython-313-aarch64-linux-gnu.so", b"\x7fELF" + b"\x00" * 14 + b"\xb7\x00")
        zf.writestr("app.py", "")
    root = packaging.unpack(built, tmp_path / "task")
    names = {p.name for p in (root / "zlib_ng").iterdir()}
    assert "zlib_ng.cpython-313-aarch64-linux-gnu.so" not in names
    assert {p.name for p in src.glob("*.so")} <= names and (root / "app.py").exists()
