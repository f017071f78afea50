"""Refuse a Lambda package that would fail at import on the stage's runtime.

    python -m deploy.package_check build/package-prod            # or a deployment.zip
    python -m deploy.package_check build/package-prod --chalice-output chalice.log

Chalice builds the zip's dependencies for the Lambda runtime, but when it cannot find a wheel for it, it only
warns ("Could not install dependencies: ... Your deployment will continue") and exits 0. A package is refused when

- Chalice's output carries that warning (a dependency is missing from the zip);
- a shared object in the zip is not a 64-bit aarch64 ELF (e_machine 0xB7, EM_AARCH64) for arm64
  (x86_64, EM_X86_64 = 0x3E, for x86_64);
- a Python extension module (`*.so` outside a wheel's bundled `*.libs/` folder) is not tagged for the runtime:
  `cpython-313-aarch64-linux-gnu` or the stable ABI `abi3`;
- a wheel in it (`*.dist-info/WHEEL`) is tagged for another interpreter, ABI or platform.

deploy/chalice_cli.py runs this on every deployment package Chalice builds (`chalice package` and
`chalice deploy` alike), before anything is written to build/ or sent to AWS.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import sys
import zipfile
from collections.abc import Iterable

DEFAULT_RUNTIME = "python3.13"
DEFAULT_ARCHITECTURE = "arm64"

MISSING_DEPENDENCIES = re.compile(r"Could not install dependencies:\s*\n(.*?)(?:\nYou will have to|\Z)", re.S)
# ELF e_machine values (System V ABI); the ones a Lambda package could plausibly carry.
MACHINES = {0x03: "x86 (i386)", 0x28: "arm (32-bit)", 0x3E: "x86_64", 0xB7: "aarch64"}
ARCHITECTURE_MACHINE = {"arm64": (0xB7, "aarch64"), "x86_64": (0x3E, "x86_64")}
SHARED_OBJECT = re.compile(r"\.so(\.\d+)*$")


class PackageCheckError(RuntimeError):
    """The package would not run on the stage's runtime; the message lists every problem."""


def _python_version(runtime: str) -> str:
    match = re.fullmatch(r"python3\.(\d+)", runtime)
    if not match:
        raise ValueError(f"runtime {runtime!r}: expected python3.NN")
    return f"3{match.group(1)}"


def extension_tag(runtime: str = DEFAULT_RUNTIME, architecture: str = DEFAULT_ARCHITECTURE) -> str:
    """The EXT_SUFFIX tag CPython gives its extension modules: cpython-313-aarch64-linux-gnu."""
    return f"cpython-{_python_version(runtime)}-{ARCHITECTURE_MACHINE[architecture][1]}-linux-gnu"


def missing_dependencies(chalice_output: str) -> list[str]:
    """The packages Chalice said it could not install (its MISSING_DEPENDENCIES_TEMPLATE warning)."""
    found: list[str] = []
    for match in MISSING_DEPENDENCIES.finditer(chalice_output):
        found.extend(line.strip() for line in match.group(1).splitlines() if line.strip())
        if not match.group(1).strip():
            found.append("(unnamed)")
    return found


def elf_problem(head: bytes, architecture: str = DEFAULT_ARCHITECTURE) -> str | None:
    """Why an ELF header (the file's first 20 bytes or more) does not fit `architecture`; None when it does."""
    if head[:4] != b"\x7fELF":
        return "not an ELF file"
    if len(head) < 20:
        return "truncated ELF header"
    if head[4] != 2:  # EI_CLASS: 1 = 32-bit, 2 = 64-bit
        return f"not a 64-bit ELF (EI_CLASS={head[4]})"
    byteorder = {1: "little", 2: "big"}.get(head[5])
    if byteorder is None:
        return f"bad ELF byte order (EI_DATA={head[5]})"
    machine = int.from_bytes(head[18:20], byteorder)
    expected, name = ARCHITECTURE_MACHINE[architecture]
    if machine != expected:
        return f"built for {MACHINES.get(machine, hex(machine))} (e_machine={machine:#x}), not {name}"
    return None


def extension_problem(path: str, runtime: str = DEFAULT_RUNTIME,
                      architecture: str = DEFAULT_ARCHITECTURE) -> str | None:
    """Why a Python extension module's file name does not fit the runtime; None when it does."""
    base = path.rsplit("/", 1)[-1]
    tag = extension_tag(runtime, architecture)
    if base.endswith((f".{tag}.so", ".abi3.so")):
        return None
    found = re.search(r"\.(cpython-\d+[a-z]*-[^.]+|abi3)\.so$", base)
    return f"extension tagged {found.group(1) if found else 'nothing'}, expected {tag} or abi3"


def _wheel_tag_ok(tag: str, runtime: str, architecture: str) -> bool:
    parts = tag.strip().split("-")
    if len(parts) != 3:
        return False
    pythons, abis, platforms = (part.split(".") for part in parts)
    version = _python_version(runtime)
    machine = ARCHITECTURE_MACHINE[architecture][1]
    python_ok = any(p in ("py3", f"py{version}", f"cp{version}") or (p.startswith("cp3") and "abi3" in abis)
                    for p in pythons)
    abi_ok = any(a in ("none", "abi3", f"cp{version}") for a in abis)
    platform_ok = any(p == "any" or (p.endswith(f"_{machine}") and p.startswith(("manylinux", "linux_")))
                      for p in platforms)
    return python_ok and abi_ok and platform_ok


def wheel_problem(wheel_file: str, runtime: str = DEFAULT_RUNTIME,
                  architecture: str = DEFAULT_ARCHITECTURE) -> str | None:
    """Why a `*.dist-info/WHEEL` file's tags do not fit the runtime; None when one of them does."""
    tags = [line.split(":", 1)[1].strip() for line in wheel_file.splitlines() if line.startswith("Tag:")]
    if not tags or any(_wheel_tag_ok(tag, runtime, architecture) for tag in tags):
        return None
    return f"wheel tagged {', '.join(tags)}"


def check_zip(zip_bytes_or_path: bytes | str | os.PathLike, chalice_output: str = "", *,
              runtime: str = DEFAULT_RUNTIME, architecture: str = DEFAULT_ARCHITECTURE) -> list[str]:
    """Every problem of a deployment zip (and of the Chalice output that built it); [] when it is fit."""
    problems = [f"Chalice could not install {name}: the function would fail at import"
                for name in missing_dependencies(chalice_output)]
    source = io.BytesIO(zip_bytes_or_path) if isinstance(zip_bytes_or_path, bytes) else zip_bytes_or_path
    with zipfile.ZipFile(source) as zf:
        for info in zf.infolist():
            name = info.filename
            if info.is_dir():
                continue
            if SHARED_OBJECT.search(name):
                with zf.open(info) as fh:
                    problem = elf_problem(fh.read(64), architecture)
                in_bundled_libs = any(part.endswith(".libs") for part in name.split("/")[:-1])
                if problem is None and name.endswith(".so") and not in_bundled_libs:
                    problem = extension_problem(name, runtime, architecture)
                if problem:
                    problems.append(f"{name}: {problem}")
            elif re.fullmatch(r"[^/]+\.dist-info/WHEEL", name):
                problem = wheel_problem(zf.read(info).decode("utf-8", "replace"), runtime, architecture)
                if problem:
                    problems.append(f"{name}: {problem}")
    return problems


def check_package(path: str | os.PathLike, chalice_output: str = "", *, runtime: str = DEFAULT_RUNTIME,
                  architecture: str = DEFAULT_ARCHITECTURE) -> list[str]:
    """check_zip of `path`: a `chalice package` output folder (its deployment.zip) or a zip file."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "deployment.zip")
    if not os.path.isfile(path):
        return [f"{path}: no deployment package there"]
    return check_zip(path, chalice_output, runtime=runtime, architecture=architecture)


def require_fit(path: str | os.PathLike, chalice_output: str = "", *, runtime: str = DEFAULT_RUNTIME,
                architecture: str = DEFAULT_ARCHITECTURE) -> None:
    """Raise PackageCheckError listing every problem of the package at `path`."""
    problems = check_package(path, chalice_output, runtime=runtime, architecture=architecture)
    if problems:
        raise PackageCheckError(_report(os.fspath(path), runtime, architecture, problems))


def _report(path: str, runtime: str, architecture: str, problems: Iterable[str]) -> str:
    lines = "\n".join(f"  - {p}" for p in problems)
    return (f"{path} is not fit for {runtime} on {architecture}:\n{lines}\n"
            "(see docs/deploy.md, 'The runtime'; a wrong or missing binary fails at import in Lambda)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.package_check", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Exit status: 0 fit, 1 not fit (each problem on stderr), 2 usage.")
    parser.add_argument("package", help="a `chalice package` output folder (build/package-S) or a deployment zip")
    parser.add_argument("--stage", help="take the runtime and architecture from this stage of .chalice/config.json")
    parser.add_argument("--runtime", help=f"Lambda runtime (default: the stage's, else {DEFAULT_RUNTIME})")
    parser.add_argument("--architecture", choices=sorted(ARCHITECTURE_MACHINE),
                        help=f"Lambda architecture (default: the stage's, else {DEFAULT_ARCHITECTURE})")
    parser.add_argument("--chalice-output", metavar="FILE",
                        help="what `chalice package` printed: refused when it says it could not install a dependency")
    args = parser.parse_args(argv)
    runtime, architecture = DEFAULT_RUNTIME, DEFAULT_ARCHITECTURE
    if args.stage:
        from chalice_app.config.stage_file import StageError, load_config

        try:
            config = load_config()
        except StageError as exc:
            parser.error(str(exc))
        stages = config.get("stages", {})
        if args.stage not in stages:
            parser.error(f"unknown stage {args.stage!r}; stages: {', '.join(sorted(stages))}")
        # As deploy/chalice_cli.py reads them: the stage's value, then the top level's, then the default.
        runtime = stages[args.stage].get("lambda_python_version") or config.get("lambda_python_version") or runtime
        architecture = (stages[args.stage].get("lambda_architecture") or config.get("lambda_architecture")
                        or architecture)
    runtime, architecture = args.runtime or runtime, args.architecture or architecture
    try:
        _python_version(runtime)
    except ValueError as exc:
        parser.error(str(exc))
    output = ""
    if args.chalice_output:
        with open(args.chalice_output, encoding="utf-8", errors="replace") as fh:
            output = fh.read()
    problems = check_package(args.package, output, runtime=runtime, architecture=architecture)
    if problems:
        print(f"package_check: error: {_report(args.package, runtime, architecture, problems)}", file=sys.stderr)
        return 1
    print(f"package_check: {args.package}: fit for {runtime} on {architecture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
