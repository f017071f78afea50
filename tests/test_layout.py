"""The shape of the code: imports run one way, without cycles, and the API's import path stays lean."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import PROJECT_DIR

ROOT = Path(PROJECT_DIR)
# Top-level parts of the project and what each may import. Command lines and deploy code use the
# library; the library uses nothing above it.
LAYERS = {
    "chalice_app": set(),
    "deploy": {"chalice_app"},
    "build_site": {"chalice_app", "deploy"},
    "app": {"chalice_app"},
    "tools": {"chalice_app", "deploy", "app"},
    "bench": {"chalice_app", "app", "tools"},
}
# The benchmark's child stands in for Lambda's /var/task, which puts the unpacked zip on sys.path.
SYS_PATH_ALLOWED = {"bench/child.py"}


def project_files() -> list[Path]:
    files = [ROOT / "app.py", ROOT / "build_site.py"]
    for top in ("chalice_app", "deploy", "tools", "bench", "tests"):
        files += sorted((ROOT / top).rglob("*.py"))
    return files


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Project modules `path` imports anywhere in it (module level or inside a function)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` imports pkg.mod when that is a module of ours.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != me:
                found.add(name)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = [f for f in project_files() if "tests" not in f.relative_to(ROOT).parts]
    known = {module_name(f) for f in files}
    return {module_name(f): imports_of(f, known) for f in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path of module names, or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_anywhere(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_imports_run_one_way(graph):
    wrong = []
    for module, targets in graph.items():
        top = module.split(".")[0]
        for target in targets:
            target_top = target.split(".")[0]
            if target_top != top and target_top not in LAYERS[top]:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "imports against the layering (library <- deploy <- command lines): " + "; ".join(wrong)


def test_nothing_edits_sys_path():
    edit = re.compile(r"sys\.path\s*(\.(insert|append|extend)\(|\[.*\]\s*=|\+=|=)")
    offenders = [f"{path.relative_to(ROOT)}:{n}" for path in project_files()
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if edit.search(line) and str(path.relative_to(ROOT)) not in SYS_PATH_ALLOWED
                 and path.name != "test_layout.py"]
    assert not offenders, f"sys.path edited in {offenders}: the project is installed editable (make venv)"


@pytest.mark.slow
def test_the_api_import_path_loads_no_renderer_deploy_or_aws_sdk():
    # The request path's S3 reads (store, sources, the botocore-free client) import no botocore either.
    probe = ("import json, sys; import app; import chalice_app.api.container, chalice_app.store.cache, "
             "chalice_app.store.sources, chalice_app.store.s3_http; "
             "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('jinja2', 'boto3', 'botocore', 'moto', 'deploy', 'tools', 'build_site') "
             "or m.startswith(('chalice_app.website', 'chalice_app.publishing', 'chalice_app.warming.prewarm')))))")
    env = {**os.environ, "PREDICTIONS_BUCKET": "b"}
    done = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_DIR, env=env, capture_output=True, text=True,
                          timeout=60, check=True)
    assert json.loads(done.stdout) == []
