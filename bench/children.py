"""Starting measurement children and collecting what they report."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

CHILD = Path(__file__).with_name("child.py")
RESULT_MARK = "BENCH_RESULT "
TIMEOUT_SECONDS = 120


class ChildFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Target:
    """One app as it ships: the unpacked zip a child puts first on sys.path."""

    name: str  # "ours" or "baseline": what child.py imports (or a probe's name)
    package_dir: Path
    write_bytecode: bool = True  # False: the zip as Lambda runs it, compiled on every cold start
    label: str = ""  # how results are keyed; defaults to the name

    @property
    def key(self) -> str:
        return self.label or self.name


def run_child(mode: str, target: Target, env: dict[str, str], **opts: object) -> dict:
    """Run child.py once; its result plus `wall_ms`, the whole process as the parent saw it."""
    child_env = {**env, "PYTHONPATH": str(target.package_dir)}
    if not target.write_bytecode:
        child_env["PYTHONDONTWRITEBYTECODE"] = "1"
    # -P: the child's own folder (bench/) stays off sys.path, so only the zip's code is importable.
    args = [sys.executable, "-P", str(CHILD), mode, target.name, *(f"{k}={v}" for k, v in opts.items())]
    started = time.perf_counter()
    done = subprocess.run(args, env=child_env, cwd=target.package_dir, capture_output=True, text=True,
                          timeout=TIMEOUT_SECONDS)
    wall_ms = (time.perf_counter() - started) * 1e3
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode != 0 or not lines:
        raise ChildFailed(f"{mode} {target.name} {opts} exited {done.returncode}:\n"
                          f"{done.stderr[-3000:]}\n{done.stdout[-1000:]}")
    result = json.loads(lines[-1][len(RESULT_MARK):])
    result["wall_ms"] = wall_ms
    return result


def interleaved(reps: int, targets: list[Target], measure: Callable[[Target], dict],
                jobs: int = 1) -> dict[str, list[dict]]:
    """`measure(target)` `reps` times per target, alternating targets and flipping their order every
    round, so that drift in machine load affects each target alike. `jobs` > 1 runs children side
    by side: only for --quick, whose figures mean nothing."""
    plan = []
    for rep in range(reps):
        plan.extend(targets if rep % 2 == 0 else list(reversed(targets)))
    if jobs > 1:
        with ThreadPoolExecutor(jobs) as pool:
            measured = list(pool.map(measure, plan))
    else:
        measured = [measure(target) for target in plan]
    out: dict[str, list[dict]] = {t.key: [] for t in targets}
    for target, result in zip(plan, measured, strict=True):
        out[target.key].append(result)
    return out
