"""The two deployment zips, built the way each would really be shipped, and unpacked to run.

Ours is `chalice package` output (its deployment.zip). The baseline is what `pip install -t`
vendors for Flask + serverless-wsgi, plus the app module, taken from the installed
distributions' RECORD so no network is needed. boto3/botocore are in neither: Lambda has them.
Bytecode is left out of both, as `chalice package` and `pip install --no-compile` leave it out.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
BASELINE_DISTS = ("flask", "werkzeug", "jinja2", "itsdangerous", "click", "blinker", "markupsafe",
                  "serverless-wsgi")
# What `chalice package` reads from a project; copied so that packaging never touches the shared
# checkout's .chalice/deployments cache while other work is going on in it.
PROJECT_FILES = ("app.py", "requirements.txt", ".chalice/config.json")


def _fake_aws_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    return env


def _copy_project(dest: Path) -> None:
    for name in PROJECT_FILES:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_DIR / name, dest / name)
    for policy in (PROJECT_DIR / ".chalice").glob("policy-*.json"):
        shutil.copy2(policy, dest / ".chalice" / policy.name)
    shutil.copytree(PROJECT_DIR / "chalice_app", dest / "chalice_app",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (dest / "vendor").mkdir()
    os.symlink("../chalice_app", dest / "vendor" / "chalice_app")


def build_ours(workdir: Path, stage: str = "dev", overrides: dict[str, bytes] | None = None,
               name: str = "project") -> Path:
    """`chalice package --stage STAGE` of a copy of the project; returns its deployment.zip.

    `overrides` replaces files of the copy (path relative to the project -> content), which is
    how `--before REF` packages the performance-owned modules as they were at REF.
    """
    project = workdir / name
    _copy_project(project)
    for rel, content in (overrides or {}).items():
        (project / rel).write_bytes(content)
    out = workdir / f"{name}-out"
    chalice = Path(sys.executable).parent / "chalice"
    subprocess.run([str(chalice), "package", "--stage", stage, str(out)], cwd=project, env=_fake_aws_env(),
                   check=True, capture_output=True, timeout=120)
    return out / "deployment.zip"


def files_at(ref: str, paths: tuple[str, ...]) -> dict[str, bytes]:
    """The content of `paths` at git revision `ref` (read-only: `git show`)."""
    return {path: subprocess.run(["git", "show", f"{ref}:{path}"], cwd=PROJECT_DIR, check=True,
                                 capture_output=True, timeout=30).stdout for path in paths}


def _dist_files(name: str) -> list[tuple[Path, str]]:
    dist = importlib.metadata.distribution(name)
    found = []
    for rel in dist.files or ():
        arc = str(rel)
        # Scripts land outside site-packages (../../bin/flask) and bytecode is not shipped.
        if arc.startswith("..") or "__pycache__" in arc or arc.endswith(".pyc"):
            continue
        found.append((Path(str(dist.locate_file(rel))), arc))
    return found


def build_baseline(workdir: Path) -> Path:
    """flask_app.py + the vendored Flask stack, as one deterministic zip."""
    target = workdir / "baseline.zip"
    entries = [(Path(__file__).with_name("flask_app.py"), "flask_app.py")]
    for name in BASELINE_DISTS:
        entries.extend(_dist_files(name))
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, arc in sorted(entries, key=lambda e: e[1]):
            info = zipfile.ZipInfo(arc, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    return target


def unpack(zip_path: Path, dest: Path) -> Path:
    """Unpack as Lambda does into /var/task; a fresh folder holds no bytecode yet. Compiled modules
    built for the stage's runtime (cp313, aarch64) cannot load on this machine: their packages are
    replaced by this machine's installed builds of the same distributions (see localize_binaries)."""
    if dest.exists():
        shutil.rmtree(dest)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(dest)
    localize_binaries(dest)
    return dest


def localize_binaries(root: Path) -> list[str]:
    """Swap every top-level package of `root` holding an extension module this interpreter cannot
    load (another machine's or Python's tag) for this machine's installed copy, so that the zip runs
    here as it runs on Lambda, with its compiled code (zlib-ng, markupsafe's speedups) rather than a
    pure-Python fallback or an ImportError. The baseline's zip is made of local builds already.
    Returns the packages swapped."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    here = _elf_machine(Path(sys.executable).resolve())
    owners = importlib.metadata.packages_distributions()
    swapped = []
    for top in sorted(p for p in root.iterdir() if p.is_dir()):
        foreign = [so for so in top.rglob("*.so")
                   if not so.name.endswith((suffix, ".abi3.so")) or _elf_machine(so) != here]
        if not foreign or top.name not in owners:
            continue
        shutil.rmtree(top)
        for path, arc in _dist_files(owners[top.name][0]):
            if arc.split("/")[0] == top.name:
                (root / arc).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, root / arc)
        swapped.append(top.name)
    return swapped


def _elf_machine(path: Path) -> int:
    """An ELF file's e_machine (its architecture), from its header."""
    with path.open("rb") as fh:
        return int.from_bytes(fh.read(20)[18:20], "little")


def zip_summary(zip_path: Path) -> dict[str, int]:
    with zipfile.ZipFile(zip_path) as zf:
        infos = zf.infolist()
    return {"bytes": zip_path.stat().st_size, "files": len(infos),
            "uncompressed": sum(i.file_size for i in infos)}
