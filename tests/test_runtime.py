"""Every function of every stage runs the stage's runtime on its architecture, behind a Regional API,
whichever Python runs the deploy: `chalice deploy` and `chalice package` both through deploy/chalice_cli.py.

The deploy path is Chalice's application graph (what `chalice deploy` turns into API calls, built without
AWS); the package path is `chalice package` output. Both must say the same runtime for the same functions,
and the package must pass cfn-lint and checkov (deploy/checkov-chalice.yaml says why each skip is there).
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from chalice_app.config.stage_file import load_config
from deploy import chalice_cli, package_check
from deploy.stage import remove_bytecode

from helpers import PROJECT_DIR

STAGES = sorted(load_config()["stages"])
CHECKOV = os.path.join(sys.prefix, "checkov", "bin", "checkov")


def _env() -> dict:
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    for name in ("WARMER_ENABLED", "WARMER_RATE_MINUTES", "SITE_REBUILD_ENABLED"):  # only config.json decides
        env.pop(name, None)
    return env


def test_every_stage_defaults_to_python_3_13_on_arm64():
    for stage in STAGES:
        assert chalice_cli.stage_runtime(stage) == "python3.13"
        assert chalice_cli.stage_architecture(stage) == "arm64"
    assert load_config()["api_gateway_endpoint_type"] == "REGIONAL"


def test_the_override_does_not_follow_the_deploying_python(monkeypatch):
    from chalice.config import Config

    monkeypatch.setattr(Config, "lambda_python_version", Config.__dict__["lambda_python_version"])
    monkeypatch.setattr(sys, "version_info", (3, 11, 7, "final", 0))
    assert Config().lambda_python_version == "python3.11"  # Chalice alone: the deploying Python
    chalice_cli.install_runtime_override("python3.13")
    assert Config().lambda_python_version == "python3.13"


def test_the_override_fails_loudly_when_chalice_changes(monkeypatch):
    from chalice.config import Config

    monkeypatch.setattr(Config, "lambda_python_version", "python3.11")  # no longer a property
    with pytest.raises(chalice_cli.RuntimeOverrideError, match="no longer a property"):
        chalice_cli.install_runtime_override("python3.13")


def deploy_graph(stage: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "deploy.chalice_cli", "verify", "--stage", stage], cwd=PROJECT_DIR,
                            env=_env(), capture_output=True, text=True, check=True, timeout=120)
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    remove_bytecode()
    out = tmp_path_factory.mktemp("runtime-package")
    for stage in STAGES:
        command = [sys.executable, "-m", "deploy.chalice_cli", "package", "--stage", stage, str(out / stage)]
        done = subprocess.run(command, cwd=PROJECT_DIR, env=_env(), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        (out / f"{stage}.log").write_text(done.stdout + done.stderr)
    return out


def functions_in(packages, stage: str) -> dict:
    resources = json.loads((packages / stage / "sam.json").read_text())["Resources"]
    return {r["Properties"].get("FunctionName") or name: r["Properties"] for name, r in resources.items()
            if r["Type"] == "AWS::Serverless::Function"}


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
def test_deploy_and_package_give_every_function_the_stage_runtime(packages, stage):
    graph = deploy_graph(stage)
    packaged = functions_in(packages, stage)
    runtime, architecture = chalice_cli.stage_runtime(stage), chalice_cli.stage_architecture(stage)
    assert {tuple(v) for v in graph.values()} == {(runtime, architecture)}
    assert {(p["Runtime"], tuple(p["Architectures"])) for p in packaged.values()} == {(runtime, (architecture,))}
    assert len(packaged) == len(graph)  # the same functions: API, warmer and site function where they are on
    resources = json.loads((packages / stage / "sam.json").read_text())["Resources"]
    assert resources["RestAPI"]["Properties"]["EndpointConfiguration"] == "REGIONAL"


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
def test_the_zip_carries_the_compiled_wheels_built_for_the_stage_runtime(packages, stage):
    # Chalice alone asks pip for cp313 wheels without --python-version and, on Python 3.11, gets none: markupsafe
    # would ship its pure-Python fallback, zlib-ng (no fallback) would be left out with a warning.
    # deploy/chalice_cli.py passes the stage's version (aws/chalice #1696).
    with zipfile.ZipFile(packages / stage / "deployment.zip") as zf:
        compiled = sorted(n for n in zf.namelist() if n.endswith(".so"))
    assert "markupsafe/_speedups.cpython-313-aarch64-linux-gnu.so" in compiled
    assert "zlib_ng/zlib_ng.cpython-313-aarch64-linux-gnu.so" in compiled
    assert all("cpython-313-aarch64" in n or ".abi3." in n for n in compiled), compiled


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
def test_every_binary_of_the_package_passes_the_check(packages, stage):
    runtime, architecture = chalice_cli.stage_runtime(stage), chalice_cli.stage_architecture(stage)
    assert package_check.check_package(packages / stage, runtime=runtime, architecture=architecture) == []
    assert "Could not install dependencies" not in (packages / f"{stage}.log").read_text()


# Chalice's packager with a fake pip: what chalice_cli's patches change, fast and without network.
def _wheel(path, machine: int) -> None:
    elf = (b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HH", 3, machine)).ljust(64, b"\0")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("fakebin/__init__.py", "from fakebin._x import *\n")
        zf.writestr("fakebin/_x.cpython-313-aarch64-linux-gnu.so", elf)
        zf.writestr("fakebin-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: fakebin\nVersion: 1.0\n")
        zf.writestr("fakebin-1.0.dist-info/WHEEL",
                    "Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp313-cp313-manylinux_2_17_aarch64\n")
        zf.writestr("fakebin-1.0.dist-info/RECORD", "")


class FakePip:
    """pip as PyPI answers for a package with cp311/x86_64 and cp313/aarch64 wheels only, and no sdist."""

    def __init__(self, machine: int = 0xB7) -> None:
        self.machine, self.calls = machine, []

    def main(self, args, env_vars=None, shim=None):
        self.calls.append(list(args))
        dest = args[args.index("--dest") + 1] if "--dest" in args else None
        if args[:2] == ["download", "-r"]:  # pip on the deploying Python picks its own wheel
            (Path(dest) / "fakebin-1.0-cp311-cp311-manylinux_2_17_x86_64.whl").write_bytes(b"")
        elif "--platform" in args and "--python-version" in args and \
                args[args.index("--python-version") + 1] == "3.13":
            _wheel(Path(dest) / "fakebin-1.0-cp313-cp313-manylinux_2_17_aarch64.whl", self.machine)
        return 0, b"", b""


@pytest.fixture
def patched(monkeypatch):
    """Undo chalice_cli's class patches after the test."""
    from chalice import utils
    from chalice.deploy import packager

    for cls, name in ((packager.PipRunner, "download_manylinux_wheels"), (utils.UI, "write"),
                      (packager.LambdaDeploymentPackager, "create_deployment_package"),
                      (packager.LambdaDeploymentPackager, "deployment_package_filename")):
        monkeypatch.setattr(cls, name, getattr(cls, name))
    return packager


def _build(packager, project, pip):
    from chalice.utils import UI, OSUtils

    (project / "app.py").write_text("from chalice import Chalice\napp = Chalice(app_name='t')\n")
    (project / "requirements.txt").write_text("fakebin==1.0\n")
    builder = packager.DependencyBuilder(OSUtils(), packager.PipRunner(pip), architecture="arm64")
    return packager.LambdaDeploymentPackager(OSUtils(), builder, UI(out=io.StringIO()), architecture="arm64") \
        .create_deployment_package(str(project), "python3.13")


def test_the_wheel_download_asks_for_the_runtime_s_python_and_the_zip_is_checked(patched, tmp_path):
    chalice_cli.install_wheel_python_version("python3.13")
    chalice_cli.install_package_check("python3.13", "arm64")
    pip = FakePip()
    path = _build(patched, tmp_path, pip)
    assert path.endswith("-python3.13-arm64-pyv3.13.zip")  # a zip cached before the fix is not reused
    download = next(c for c in pip.calls if "--platform" in c)
    assert download[download.index("--python-version") + 1] == "3.13"
    assert download[download.index("--abi") + 1] == "cp313"
    with zipfile.ZipFile(path) as zf:
        assert "fakebin/_x.cpython-313-aarch64-linux-gnu.so" in zf.namelist()


def test_without_the_python_version_chalice_only_warns_and_the_check_stops_it(patched, tmp_path):
    chalice_cli.install_package_check("python3.13", "arm64")  # Chalice's own download: no cp313 wheel found
    with pytest.raises(package_check.PackageCheckError, match=r"could not install fakebin==1\.0"):
        _build(patched, tmp_path, FakePip())
    assert list((tmp_path / ".chalice" / "deployments").iterdir()) == []  # never reused from the cache


def test_a_binary_for_the_wrong_machine_stops_the_package(patched, tmp_path):
    chalice_cli.install_wheel_python_version("python3.13")
    chalice_cli.install_package_check("python3.13", "arm64")
    with pytest.raises(package_check.PackageCheckError, match="x86_64"):
        _build(patched, tmp_path, FakePip(machine=0x3E))


def test_the_download_patch_fails_loudly_when_chalice_changes(patched, monkeypatch, tmp_path):
    monkeypatch.setattr(patched.PipRunner, "download_manylinux_wheels", lambda self, packages: None)
    with pytest.raises(chalice_cli.RuntimeOverrideError, match="download_manylinux_wheels"):
        chalice_cli.install_wheel_python_version("python3.13")
    # Same signature, but no longer through PipRunner._execute: found at the first download.
    monkeypatch.setattr(patched.PipRunner, "download_manylinux_wheels",
                        lambda self, abi, packages, directory, platforms=None: None)
    chalice_cli.install_wheel_python_version("python3.13")
    with pytest.raises(chalice_cli.RuntimeOverrideError, match="no longer runs `pip download`"):
        _build(patched, tmp_path, FakePip())


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
def test_the_package_passes_cfn_lint_and_checkov(packages, stage):
    template = str(packages / stage / "sam.json")
    lint = subprocess.run([os.path.join(os.path.dirname(sys.executable), "cfn-lint"), template],
                          capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout
    assert os.path.exists(CHECKOV), "checkov is missing: run `make checkov`"
    scan = subprocess.run([CHECKOV, "-f", template, "--config-file", "deploy/checkov-chalice.yaml", "--output", "json"],
                          cwd=PROJECT_DIR, capture_output=True, text=True, check=False, timeout=300)
    report = json.loads(scan.stdout)
    report = report[0] if isinstance(report, list) else report
    assert [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]] == []


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
def test_the_packaged_api_answers_its_own_refusals_in_the_error_shape(packages, stage):
    # API Gateway's gateway responses travel inside the API's definition, so every deployment carries them.
    from deploy.api_gateway import EXTENSION, gateway_responses

    resources = json.loads((packages / stage / "sam.json").read_text())["Resources"]
    body = resources["RestAPI"]["Properties"]["DefinitionBody"]
    assert body[EXTENSION] == gateway_responses()
    missing = body[EXTENSION]["MISSING_AUTHENTICATION_TOKEN"]
    assert missing["statusCode"] == "404"
    assert json.loads(missing["responseTemplates"]["application/json"])["error"]["code"] == "route_not_found"


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
def test_the_deployer_policy_knows_every_resource_type_of_the_app_stack(packages, stage):
    # What CloudFormation's SAM transform makes of the package (aws-sam-translator is that transform).
    from samtranslator.translator.transform import transform
    from test_deployer_policy import APP_TYPES

    class NoManagedPolicies:
        def load(self):
            return {}

    template = json.loads((packages / stage / "sam.json").read_text())
    for resource in template["Resources"].values():
        if "CodeUri" in resource["Properties"]:  # deploy/app_stack.py points it at the artifact bucket
            resource["Properties"]["CodeUri"] = "s3://artifacts/app/code.zip"
    expanded = transform(template, {}, NoManagedPolicies())
    assert {r["Type"] for r in expanded["Resources"].values()} <= APP_TYPES
