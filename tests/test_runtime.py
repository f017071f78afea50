"""Every function of every stage runs the stage's runtime on its architecture, behind a Regional API,
whichever Python runs the deploy: `chalice deploy` and `chalice package` both through deploy/chalice_cli.py.

The deploy path is Chalice's application graph (what `chalice deploy` turns into API calls, built without
AWS); the package path is `chalice package` output. Both must say the same runtime for the same functions,
and the package must pass cfn-lint and checkov (deploy/checkov-chalice.yaml says why each skip is there).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest

from chalice_app.config.stage_file import load_config
from deploy import chalice_cli
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
        subprocess.run([sys.executable, "-m", "deploy.chalice_cli", "package", "--stage", stage, str(out / stage)],
                       cwd=PROJECT_DIR, env=_env(), check=True, capture_output=True, timeout=600)
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
def test_the_zip_carries_no_extension_built_for_the_deploying_python(packages):
    # Chalice picks requirements.txt's wheels for the overridden runtime; markupsafe then ships its pure-Python
    # fallback or a cp313/aarch64 build, never the deploying interpreter's cp311/x86_64 one.
    with zipfile.ZipFile(packages / "prod" / "deployment.zip") as zf:
        compiled = [n for n in zf.namelist() if n.endswith(".so")]
    assert all("cpython-313-aarch64" in n for n in compiled), compiled


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
