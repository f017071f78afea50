"""The docs stay honest: small README, no dead links, every setting, metric and target documented.

Pure and fast: reads files and calls pure functions, starts nothing.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from bench import docs as bench_docs
from chalice_app import metrics
from chalice_app.config.settings import ENV_VARS, Settings
from chalice_app.warming import scheduled

from helpers import PROJECT_DIR

ROOT = Path(PROJECT_DIR)
README = ROOT / "README.md"
DOCS = ROOT / "docs"
SETTINGS_DOC = DOCS / "settings.md"
PERFORMANCE_DOC = DOCS / "performance.md"
README_MAX_BYTES = 15_000
SKIP_DIRS = {".git", ".venv", "node_modules", "build", "vendor", ".chalice", ".hypothesis", ".schemathesis"}
LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\n]+)`")
ISSUE_REF = re.compile(r"\bissues?[-\s]*#?\d+", re.IGNORECASE)
MAKE_TARGET = re.compile(r"^([a-z][a-z-]+):.*## ", re.MULTILINE)


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def doc_files() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def all_docs_text() -> str:
    return "\n".join(read(p) for p in [README, *doc_files()])


def local_links(path: Path) -> list[str]:
    """Relative link targets of a markdown file, without their #anchor."""
    targets = []
    for target in LINK.findall(read(path)):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


def table_rows(text: str) -> list[list[str]]:
    """Cells of every markdown table row (header and separator rows included)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and line.rstrip().endswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def section(text: str, heading: str) -> str:
    """The text under `## heading` up to the next `## `."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"no '## {heading}' section"
    return match.group(1)


def project_files(*suffixes: str, names: tuple[str, ...] = ()) -> list[Path]:
    found = []
    for path in ROOT.rglob("*"):
        if SKIP_DIRS.intersection(path.relative_to(ROOT).parts[:-1]) or not path.is_file():
            continue
        if path.suffix in suffixes or path.name in names:
            found.append(path)
    return sorted(found)


# --- the README -------------------------------------------------------------------------------


def test_the_readme_stays_under_15_kb():
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, (
        f"README.md is {size} bytes, over {README_MAX_BYTES}: move detail into docs/*.md and link it")


@pytest.mark.parametrize("doc", [README, *doc_files()], ids=lambda p: p.name)
def test_every_local_link_points_at_a_file_that_exists(doc):
    dead = [t for t in local_links(doc) if not (doc.parent / t).exists()]
    assert not dead, f"{doc.relative_to(ROOT)} links to files that do not exist: {dead}; fix or remove the links"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / t).resolve() for t in local_links(README)}
    orphans = [p.relative_to(ROOT).as_posix() for p in doc_files() if p.resolve() not in linked]
    assert not orphans, f"docs pages nobody can find: {orphans}; link them from README.md's Docs list"


LAYOUT = ROOT / "docs" / "layout.md"


def test_the_layout_names_every_module():
    layout = read(LAYOUT)
    listed = {row[0].strip("`") for row in table_rows(layout)}
    expected = {"app.py", "build_site.py", "site/", "tests/", "bench/"}
    for top in ("chalice_app", "deploy", "tools"):
        expected |= {p.relative_to(ROOT).as_posix() for p in (ROOT / top).rglob("*.py") if p.name != "__init__.py"}
    missing = sorted(expected - listed)
    assert not missing, f"docs/layout.md has no row for {missing}: add one line per module with its job"


def test_the_layout_lists_only_paths_that_exist():
    layout = read(LAYOUT)
    paths = [row[0].strip("`") for row in table_rows(layout)[2:]]
    gone = [p for p in paths if not (ROOT / p).exists()]
    assert not gone, f"docs/layout.md lists paths that do not exist: {gone}"


def test_the_readme_documents_the_daily_publish_command():
    readme = read(README)
    assert "predictions-publish FILE --date YYYY-MM-DD --stage S" in readme, (
        "README.md must show the daily command `predictions-publish FILE --date YYYY-MM-DD --stage S`")
    assert "python -m chalice_app.publishing.publish" in readme


def test_the_readme_contract_section_is_complete():
    contract = section(read(README), "The S3 contract (v1)")
    for fact in ("PREDICTIONS_BUCKET", "PREDICTIONS_PREFIX", "{prefix}{YYYY-MM-DD}/predictions.json",
                 "Content-Encoding: gzip", "{prefix}latest.json", "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$",
                 '"generated_at"', '"model"', '"predictions"', "`fields`"):
        assert fact in contract, f"README.md's S3 contract section lost {fact!r}: the contract is fixed, keep it whole"


# --- make targets, commands and paths ---------------------------------------------------------


def make_targets() -> set[str]:
    targets = set()
    for path in [ROOT / "Makefile", *sorted((ROOT / "mk").glob("*.mk"))]:
        targets |= set(MAKE_TARGET.findall(read(path)))
    return targets


def test_every_make_target_is_in_the_readme_table():
    table = section(read(README), "Make targets")
    documented = {m.group(1) for row in table_rows(table) if (m := re.match(r"`make ([a-z][a-z-]+)", row[0]))}
    missing = sorted(make_targets() - documented)
    assert not missing, f"make targets missing from README.md's Make targets table: {missing}"
    stale = sorted(documented - make_targets())
    assert not stale, f"README.md's Make targets table names targets that do not exist: {stale}"


def test_every_python_m_command_in_the_docs_names_a_project_module():
    ours = ("chalice_app", "deploy", "tools", "bench")
    wrong = []
    for module in set(re.findall(r"python3? -m ([a-z_][\w.]*)", all_docs_text())):
        if module.split(".")[0] not in ours:
            continue
        base = ROOT / module.replace(".", "/")
        if not (base.with_suffix(".py").exists() or (base / "__main__.py").exists()):
            wrong.append(module)
    assert not wrong, f"the docs run modules that do not exist: {sorted(wrong)}"


def test_every_predictions_command_in_the_docs_is_a_console_script():
    scripts = set(tomllib.loads(read(ROOT / "pyproject.toml"))["project"]["scripts"])
    named = set(re.findall(r"\b(predictions-[a-z]+)\b", all_docs_text())) - {"predictions-local", "predictions-dev",
                                                                              "predictions-prod", "predictions-site"}
    unknown = sorted(named - scripts)
    assert not unknown, f"the docs name commands pyproject.toml does not install: {unknown}"


def test_every_repository_path_in_the_docs_exists():
    prefixes = ("chalice_app/", "deploy/", "tools/", "bench/", "tests/", "site/", "mk/", "vendor/", "docs/",
                ".chalice/")
    made_at_run_time = (".chalice/deployed/",)
    missing = set()
    for doc in [README, *doc_files()]:
        for token in CODE.findall(read(doc)):
            path = token.split()[0].rstrip(",:;")
            if (not path.startswith(prefixes) or path.startswith(made_at_run_time)
                    or any(c in path for c in "<>{}*|")):
                continue
            if not (ROOT / path).exists():
                missing.add(f"{doc.name}: {path}")
    assert not missing, f"the docs name files that do not exist (moved or renamed?): {sorted(missing)}"


# --- settings ---------------------------------------------------------------------------------


def shown_default(value: object) -> str:
    """How settings.md writes a default: (none) for empty, whole floats without .0."""
    if value in ("", None):
        return "(none)"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def settings_rows() -> dict[str, list[str]]:
    """env var -> the default cells of every settings.md table row naming it first."""
    rows: dict[str, list[str]] = {}
    for cells in table_rows(read(SETTINGS_DOC)):
        if len(cells) >= 2 and re.fullmatch(r"`[A-Z][A-Z0-9_]+`", cells[0]):
            rows.setdefault(cells[0].strip("`"), []).append(cells[1].strip("`"))
    return rows


def api_settings() -> dict[str, str]:
    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    return {env: shown_default(defaults[field]) for env, field in ENV_VARS.items()} | {"CONFIG_SSM_PATH": "(none)"}


def warmer_settings() -> dict[str, str]:
    """Variables the warmer reads, with the default settings.md must show."""
    source = read(ROOT / "chalice_app" / "warming" / "scheduled.py")
    names = set(re.findall(r'env(?:\.get\(|, )"([A-Z][A-Z0-9_]+)"', source))
    literal = dict(re.findall(r'env\.get\("([A-Z][A-Z0-9_]+)",\s*"([^"]+)"\)', source))
    assert scheduled.schedule_minutes({}) is None  # unset WARMER_ENABLED means off
    expected = {}
    for name in names:
        expected[name] = literal.get(name) or ("false" if name == "WARMER_ENABLED" else "(required")
    return expected


def test_every_api_setting_is_in_the_settings_table_with_its_default():
    rows = settings_rows()
    wrong = {name: (default, rows.get(name)) for name, default in api_settings().items()
             if default not in rows.get(name, [])}
    assert not wrong, (f"docs/settings.md's tables disagree with chalice_app/config/settings.py "
                       f"(variable: (default in code, defaults in the doc)): {wrong}")


def test_every_warmer_setting_is_in_the_settings_table_with_its_default():
    rows = settings_rows()
    wrong = {name: (default, rows.get(name)) for name, default in warmer_settings().items()
             if not any(cell == default or (default == "(required" and cell.startswith(default))
                        for cell in rows.get(name, []))}
    assert not wrong, (f"docs/settings.md's warmer table disagrees with chalice_app/warming/scheduled.py "
                       f"(variable: (default in code, defaults in the doc)): {wrong}")


def test_every_environment_variable_the_code_reads_is_in_the_settings_doc():
    pattern = re.compile(r'(?:environ|env)(?:\.get\(\s*|\[)"([A-Z][A-Z0-9_]+)"')
    read_by_code = set()
    for top in ("chalice_app", "deploy", "tools"):
        for path in (ROOT / top).rglob("*.py"):
            read_by_code |= set(pattern.findall(read(path)))
    read_by_code |= set(pattern.findall(read(ROOT / "build_site.py")))
    documented = settings_rows()
    missing = sorted(read_by_code - set(documented))
    assert not missing, f"environment variables read by the code but not in docs/settings.md's tables: {missing}"


# --- metrics and log lines --------------------------------------------------------------------


def emitted_metric_names() -> set[str]:
    request = metrics.request_fields(stage="s", route="/r", status=200, latency_ms=1.0, cold=True,
                                     init_duration_ms=1.0, cache_hit=True)
    warmer = metrics.warmer_fields(stage="s", summary={"invoked": 1, "cold": 1, "failures": 0, "containers": 1,
                                                       "duration_ms": 1.0})
    names = set()
    for record in (request, warmer):
        for directive in record["_aws"]["CloudWatchMetrics"]:
            names.add(directive["Namespace"])
            names |= {m["Name"] for m in directive["Metrics"]}
            names |= {d for dims in directive["Dimensions"] for d in dims}
    return names


def emitted_events() -> set[str]:
    events = set()
    for path in (ROOT / "chalice_app").rglob("*.py"):
        events |= set(re.findall(r'(?:log_event|metrics\.emit)\(\s*"([a-z_]+)"', read(path)))
    return events


def test_every_metric_the_code_emits_is_documented():
    docs = all_docs_text()
    missing = sorted(name for name in emitted_metric_names() if f"`{name}`" not in docs)
    assert not missing, f"metrics, dimensions or namespaces emitted but in no doc: {missing} (docs/metrics.md)"


def test_every_log_event_the_code_writes_is_documented():
    docs = all_docs_text()
    missing = sorted(event for event in emitted_events() if f"`{event}`" not in docs)
    assert not missing, f"log line events the code writes but no doc names: {missing} (docs/metrics.md)"


# --- performance ------------------------------------------------------------------------------


def test_the_performance_block_is_the_benchmark_results_file():
    block = bench_docs.block_of(read(PERFORMANCE_DOC))
    assert block == bench_docs.results_text(), (
        "docs/performance.md's bench block differs from bench/results/latest.md: run `make docs`")


def test_the_performance_prose_does_not_retype_benchmark_figures():
    results = bench_docs.results_text()
    figure = re.compile(r"\d[\d,]*(?:\.\d+)?\s?(?:ms|µs|KB|MB|s|x)(?![\w])")
    figures = {f for f in figure.findall(results) if not re.fullmatch(r"[0-9]\s?s", f)}
    doc = read(PERFORMANCE_DOC)
    prose = doc.split(bench_docs.BEGIN)[0] + doc.split(bench_docs.END)[1]
    retyped = sorted(f for f in figures if re.search(rf"(?<![\w.,]){re.escape(f)}(?![\w])", prose))
    assert not retyped, (f"docs/performance.md's prose repeats figures of bench/results/latest.md: {retyped}; "
                         "refer to the tables instead")


def test_the_website_lighthouse_block_is_the_lighthouse_results_file():
    block = bench_docs.LIGHTHOUSE
    assert bench_docs.block_of(read(block.doc), block.begin, block.end) == bench_docs.results_text(block.results), (
        "docs/website.md's Lighthouse block differs from bench/results/lighthouse.md: run `make docs`")


def test_the_docs_generator_replaces_only_the_block():
    doc = f"intro\n{bench_docs.BEGIN}\nold\n{bench_docs.END}\noutro\n"
    assert bench_docs.with_block(doc, "new") == f"intro\n{bench_docs.BEGIN}\nnew\n{bench_docs.END}\noutro\n"
    with pytest.raises(bench_docs.MarkerError):
        bench_docs.block_of("no markers")


# --- no references to a tracker that is not there ---------------------------------------------


def test_no_issue_numbers_in_code_docs_or_makefiles():
    hits = []
    for path in project_files(".py", ".md", ".mk", names=("Makefile",)):
        for number, line in enumerate(read(path).splitlines(), 1):
            if ISSUE_REF.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}")
    assert not hits, f"issue numbers refer to a tracker this repository does not have; reword: {hits}"


def test_the_readme_shows_the_publish_line_make_run_prints(monkeypatch):
    from tools import devstack

    monkeypatch.chdir(ROOT)  # the line names the console script relative to the project folder
    endpoint = "http://127.0.0.1:9000"
    stack = devstack.LocalStack(endpoint, "predictions-local", "predictions/", devstack.aws_env(endpoint))
    args = ["build/next-batch.csv", "2026-12-04", "--model-name", "demand-forecast", "--model-version", "3.2.0"]
    line = f"Publish    {stack.publish_command(*args)}"
    # The date is tomorrow's when make run starts: any date stands for it.
    shown = re.sub(r"--date \d{4}-\d{2}-\d{2}", "--date 2026-12-04", read(README))
    assert line in shown, f"README.md's quick start must show what `make run` prints now: {line!r}"
