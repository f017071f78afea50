"""Chalice's own CLI, run in-process with the stage's Lambda runtime instead of the deploying Python's.

    python -m deploy.chalice_cli deploy --stage prod
    python -m deploy.chalice_cli package --stage prod build/package-prod
    python -m deploy.chalice_cli verify --stage prod     # what chalice deploy would create, as JSON

Chalice 1.34 has a setting for the architecture (`lambda_architecture`, in `.chalice/config.json`) but
none for the runtime: `Config.lambda_python_version` is the version of the Python that runs `chalice`.
So the runtime would change with whoever deploys. This module replaces that one property, for this
process only, with the stage's `lambda_python_version` from `.chalice/config.json` (stage, then top
level, then DEFAULT_RUNTIME), then hands the arguments to Chalice's click CLI unchanged.

Chalice reads that property everywhere the runtime matters (every function's Runtime in
`chalice deploy` and in `chalice package`, and the wheels it picks for requirements.txt), so one
override covers both paths and every function of the stage. It is checked, not hoped for:
`install_runtime_override` fails loudly when the property is no longer there, and `verify` builds
Chalice's application graph and fails when a function would not get the stage's runtime
(tests/test_runtime.py runs both paths).

The same run adds the API's gateway responses (deploy/api_gateway.py) to the Swagger Chalice generates,
for `chalice deploy` and `chalice package` alike, so API Gateway's own refusals keep the API's error shape.

And it builds the zip's compiled dependencies for the stage's runtime. Chalice asks pip for Lambda wheels with
`--platform manylinux_..._aarch64 --implementation cp --abi cp313` but no `--python-version`, so pip, running
on the deploying Python (3.11), finds no cp313 wheel (aws/chalice #1696, #1707): markupsafe then ships without
its C speedups, and a dependency without a pure-Python fallback is left out with a warning only.
`install_wheel_python_version` adds `--python-version 3.13` (from the stage's runtime) to that one pip command
and fails loudly when Chalice no longer issues it; `install_package_check` tags Chalice's package cache with it
(a zip built without the fix is not reused) and runs deploy/package_check.py on every deployment package Chalice
builds: a missing dependency or a `.so` not built for the runtime stops `chalice package` and `chalice deploy`
before anything is written out or sent.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from chalice_app.config.stage_file import StageError, load_config
from deploy import package_check

DEFAULT_RUNTIME = "python3.13"
DEFAULT_ARCHITECTURE = "arm64"
RUNTIME = re.compile(r"python3\.(1[0-9])")


class RuntimeOverrideError(RuntimeError):
    """Chalice's internals are not what this override relies on: stop instead of deploying the wrong runtime."""


def _lookup(stage: str, key: str, default: str) -> str:
    config = load_config()
    stages = config.get("stages", {})
    if stage not in stages:
        raise StageError(f"unknown stage {stage!r}; stages: {', '.join(sorted(stages))}")
    return str(stages[stage].get(key) or config.get(key) or default)


def stage_runtime(stage: str) -> str:
    runtime = _lookup(stage, "lambda_python_version", DEFAULT_RUNTIME)
    if not RUNTIME.fullmatch(runtime):
        raise StageError(f"lambda_python_version={runtime!r} of stage {stage}: expected python3.NN")
    return runtime


def stage_architecture(stage: str) -> str:
    return _lookup(stage, "lambda_architecture", DEFAULT_ARCHITECTURE)


def install_runtime_override(runtime: str) -> None:
    """Make every chalice Config in this process answer `runtime` for lambda_python_version."""
    from chalice import config as chalice_config

    current = chalice_config.Config.__dict__.get("lambda_python_version")
    if not isinstance(current, property):
        raise RuntimeOverrideError(
            "chalice.config.Config.lambda_python_version is no longer a property: this Chalice version "
            "chooses the runtime differently; check deploy/chalice_cli.py before deploying")
    chalice_config.Config.lambda_python_version = property(lambda _self: runtime)  # type: ignore[method-assign]


def install_gateway_responses() -> None:
    """Make Chalice's Swagger (deploy and package alike) carry deploy.api_gateway's gateway responses."""
    from chalice.deploy import swagger

    from deploy.api_gateway import EXTENSION, add_gateway_responses

    original = swagger.SwaggerGenerator.generate_swagger
    if getattr(original, "_adds", None) == EXTENSION:
        return  # installed already in this process
    if not callable(original):
        raise RuntimeOverrideError("chalice.deploy.swagger.SwaggerGenerator.generate_swagger is gone: "
                                   "check deploy/chalice_cli.py before deploying")

    def generate_swagger(self: Any, app: Any, rest_api: Any = None) -> dict:
        return add_gateway_responses(original(self, app, rest_api))

    generate_swagger._adds = EXTENSION  # type: ignore[attr-defined]
    swagger.SwaggerGenerator.generate_swagger = generate_swagger  # type: ignore[method-assign]


def install_wheel_python_version(runtime: str) -> None:
    """Make Chalice's pip download of Lambda wheels ask for `runtime`'s Python (`--python-version 3.NN`)."""
    import inspect

    from chalice.deploy import packager

    version = "3." + runtime.split(".", 1)[1]
    abi = "cp" + version.replace(".", "")
    runner = getattr(packager, "PipRunner", None)
    original = getattr(runner, "download_manylinux_wheels", None)
    if getattr(original, "_python_version", None) == version:
        return  # installed already in this process
    try:
        parameters = list(inspect.signature(original).parameters) if callable(original) else []
    except (TypeError, ValueError):
        parameters = []
    if parameters[:4] != ["self", "abi", "packages", "directory"] or not callable(getattr(runner, "_execute", None)):
        raise RuntimeOverrideError(
            "chalice.deploy.packager.PipRunner.download_manylinux_wheels(abi, packages, directory) or "
            "PipRunner._execute is gone: this Chalice version downloads Lambda wheels differently; "
            "check deploy/chalice_cli.py before deploying")

    def download_manylinux_wheels(self: Any, abi_: str, packages: list, directory: str, *args: Any,
                                  **kwargs: Any) -> Any:
        if abi_ != abi:
            raise RuntimeOverrideError(f"Chalice asks for {abi_} wheels, the stage's runtime is {runtime}")
        downloads: list[list[str]] = []
        execute = self._execute

        def execute_for_runtime(command: str, arguments: list, *rest: Any, **options: Any) -> Any:
            if command == "download" and "--python-version" not in arguments:
                arguments = ["--python-version", version, *arguments]
                downloads.append(arguments)
            return execute(command, arguments, *rest, **options)

        self._execute = execute_for_runtime
        try:
            result = original(self, abi_, packages, directory, *args, **kwargs)
        finally:
            del self._execute
        if packages and not downloads:
            raise RuntimeOverrideError("Chalice's download of Lambda wheels no longer runs `pip download` "
                                       "through PipRunner._execute: check deploy/chalice_cli.py before deploying")
        return result

    download_manylinux_wheels._python_version = version  # type: ignore[attr-defined]
    runner.download_manylinux_wheels = download_manylinux_wheels  # type: ignore[union-attr]


def install_package_check(runtime: str, architecture: str) -> None:
    """Check every deployment package Chalice builds (deploy/package_check.py) and tag its cache with the fix."""
    from chalice import utils
    from chalice.deploy import packager

    target = packager.LambdaDeploymentPackager
    create = target.__dict__.get("create_deployment_package")
    filename = getattr(target, "deployment_package_filename", None)
    write = getattr(utils.UI, "write", None)
    if getattr(create, "_checks", None) == (runtime, architecture):
        return  # installed already in this process
    if not (callable(create) and callable(filename) and callable(write)):
        raise RuntimeOverrideError(
            "chalice.deploy.packager.LambdaDeploymentPackager.create_deployment_package / "
            "deployment_package_filename or chalice.utils.UI.write is gone: check deploy/chalice_cli.py")
    said: list[str] = []
    tag = "-pyv" + runtime.removeprefix("python")

    def ui_write(self: Any, msg: str) -> None:
        said.append(str(msg))
        write(self, msg)

    def deployment_package_filename(self: Any, project_dir: str, python_version: str) -> str:
        # A zip cached before --python-version was passed would be reused as it is: name ours apart.
        name = filename(self, project_dir, python_version)
        if not name.endswith(".zip"):
            raise RuntimeOverrideError(f"Chalice's package cache file {name!r} is not a .zip: "
                                       "check deploy/chalice_cli.py")
        return name if name.endswith(tag + ".zip") else name[:-4] + tag + ".zip"

    def create_deployment_package(self: Any, project_dir: str, python_version: str) -> str:
        start = len(said)
        path = create(self, project_dir, python_version)
        try:
            package_check.require_fit(path, "".join(said[start:]), runtime=runtime, architecture=architecture)
        except package_check.PackageCheckError:
            os.remove(path)  # never reused from Chalice's cache
            raise
        return path

    create_deployment_package._checks = (runtime, architecture)  # type: ignore[attr-defined]
    utils.UI.write = ui_write  # type: ignore[method-assign]
    target.deployment_package_filename = deployment_package_filename  # type: ignore[method-assign]
    target.create_deployment_package = create_deployment_package  # type: ignore[method-assign]


def verify(stage: str, project_dir: str = ".") -> dict[str, tuple[str, str]]:
    """Build Chalice's application graph for `stage` (what deploy and package turn into resources) and
    return {function name: (runtime, architecture)}; raise when one differs from the stage's setting."""
    from chalice.cli.factory import CLIFactory
    from chalice.deploy import models
    from chalice.deploy.appgraph import ApplicationGraphBuilder

    runtime, architecture = stage_runtime(stage), stage_architecture(stage)
    install_runtime_override(runtime)
    # os.environ itself, as Chalice's CLI does: app.py registers the warmer and the site function from the
    # stage's variables at import (run this once per process: `python -m deploy.chalice_cli verify --stage S`).
    config = CLIFactory(project_dir, environ=os.environ).create_config_obj(chalice_stage_name=stage)
    graph = ApplicationGraphBuilder().build(config, stage)
    found = {}
    for resource in _walk(graph, models):
        if isinstance(resource, models.LambdaFunction):
            found[resource.function_name] = (resource.runtime, getattr(resource, "architecture", None))
    wrong = {name: got for name, got in found.items() if got != (runtime, architecture)}
    if not found or wrong:
        raise RuntimeOverrideError(f"stage {stage}: expected {runtime} on {architecture} for every function, "
                                   f"Chalice would deploy {wrong or 'no function'}")
    return found


def _walk(node: Any, models: Any) -> list[Any]:
    seen: list[Any] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if any(item is s for s in seen):
            continue
        seen.append(item)
        if isinstance(item, models.Model):
            stack.extend(item.dependencies())
    return seen


def stage_of(argv: Sequence[str]) -> str:
    for index, arg in enumerate(argv):
        if arg == "--stage" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--stage="):
            return arg.split("=", 1)[1]
    return "dev"  # Chalice's own default stage


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    stage = stage_of(argv)
    try:
        runtime = stage_runtime(stage)
    except StageError as exc:
        print(f"chalice_cli: error: {exc}", file=sys.stderr)
        return 2
    if argv[:1] == ["verify"]:
        try:
            found = verify(stage)
        except RuntimeOverrideError as exc:
            print(f"chalice_cli: error: {exc}", file=sys.stderr)
            return 1
        print(json.dumps({name: list(value) for name, value in sorted(found.items())}))
        return 0
    install_runtime_override(runtime)
    install_gateway_responses()
    try:
        install_wheel_python_version(runtime)
        install_package_check(runtime, stage_architecture(stage))
    except RuntimeOverrideError as exc:
        print(f"chalice_cli: error: {exc}", file=sys.stderr)
        return 1
    from chalice import cli as chalice_cli

    print(f"chalice {' '.join(argv)}: runtime {runtime}, architecture {stage_architecture(stage)}", file=sys.stderr)
    try:
        result = chalice_cli.cli.main(args=argv, prog_name="chalice", obj={}, standalone_mode=False)
    except SystemExit as exc:  # click exits on usage errors
        return int(exc.code or 0)
    except package_check.PackageCheckError as exc:
        print(f"chalice_cli: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - one line, like the chalice command
        print(f"chalice: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
