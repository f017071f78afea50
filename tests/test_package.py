"""The Lambda package: built by `chalice package`, importable from the zip alone, and lean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from deploy.stage import remove_bytecode

from helpers import PROJECT_DIR

pytestmark = pytest.mark.slow

# What the Lambda Python runtime provides besides the standard library.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    remove_bytecode()
    out = tmp_path_factory.mktemp("package")
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    chalice = os.path.join(os.path.dirname(sys.executable), "chalice")
    subprocess.run([chalice, "package", "--stage", "dev", str(out / "out")], cwd=PROJECT_DIR, env=env,
                   check=True, capture_output=True)
    return out / "out"


@pytest.fixture(scope="module")
def unzipped(package, tmp_path_factory):
    target = tmp_path_factory.mktemp("unzipped")
    with zipfile.ZipFile(package / "deployment.zip") as zf:
        zf.extractall(target)
    return target


@pytest.fixture(scope="module")
def lambda_runtime(tmp_path_factory):
    """A folder holding only what the Lambda runtime has: boto3/botocore and their dependencies."""
    runtime = tmp_path_factory.mktemp("runtime")
    site = os.path.dirname(os.path.dirname(__import__("botocore").__file__))
    for name in RUNTIME_PACKAGES:
        if os.path.exists(os.path.join(site, name)):
            os.symlink(os.path.join(site, name), runtime / name)
    return runtime


def zip_names(package) -> list[str]:
    with zipfile.ZipFile(package / "deployment.zip") as zf:
        return zf.namelist()


def test_zip_carries_the_app_and_nothing_heavy(package):
    names = zip_names(package)
    assert "app.py" in names
    assert "chalice_app/api/routes.py" in names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    tops = {name.split("/")[0] for name in names}
    assert not tops & {"boto3", "botocore", "moto", "flask", "werkzeug", "s3transfer"}
    # The site function's renderer: jinja2 + markupsafe (requirements.txt) and the templates (vendor/site).
    assert {"jinja2", "markupsafe", "site"} <= tops
    assert "site/templates/batch.html" in names and "site/static/site.css" in names


def test_zip_is_small(package):
    # About 110 KB of app; jinja2 + markupsafe (compiled speedups included) + the templates about 200 KB
    # (docs/website.md). The budget is 600 KB: a cold start unzips it.
    assert (package / "deployment.zip").stat().st_size < 600 * 1024


HANDLER_PROBE = r"""
import json, sys
import app
event = {"resource": "/predictions/{date}", "path": "/predictions/nope", "httpMethod": "GET",
         "headers": {}, "multiValueHeaders": {}, "queryStringParameters": None,
         "multiValueQueryStringParameters": None, "pathParameters": {"date": "nope"},
         "stageVariables": None, "body": None, "isBase64Encoded": False,
         "requestContext": {"resourcePath": "/predictions/{date}", "httpMethod": "GET", "stage": "api",
                            "path": "/api/predictions/nope", "requestId": "r1"}}
health = dict(event, resource="/health", path="/health", pathParameters=None,
              requestContext=dict(event["requestContext"], resourcePath="/health"))
out = {"modules": sorted(m for m in sys.modules if m.split(".")[0] in
                         ("boto3", "jinja2", "moto", "flask", "chalice_app", "chalice")),
       "app_file": app.__file__, "routes_file": sys.modules["chalice_app.api.routes"].__file__,
       "bad": app.app(event, None), "health": app.app(health, None)}
print(json.dumps(out))
"""


def test_handler_imports_from_the_zip_alone_in_a_fresh_interpreter(unzipped, lambda_runtime):
    env = {"PATH": os.environ["PATH"], "AWS_DEFAULT_REGION": "us-east-1", "PREDICTIONS_BUCKET": "b",
           "STAGE": "dev", "PYTHONPATH": f"{unzipped}{os.pathsep}{lambda_runtime}"}
    # As Lambda runs it: the zip (/var/task) and the runtime's libraries on PYTHONPATH; -s -S -P: no
    # site-packages, no user site, no cwd or script folder.
    done = subprocess.run([sys.executable, "-s", "-S", "-P", "-c", HANDLER_PROBE],
                          env=env, cwd="/", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["app_file"].startswith(str(unzipped))
    assert out["routes_file"].startswith(str(unzipped))
    assert out["bad"]["statusCode"] == 400
    assert json.loads(out["bad"]["body"])["error"]["code"] == "invalid_date"
    assert json.loads(out["health"]["body"])["status"] == "ok"
    # The API's import path stays lean: no boto3 layer, no templates, no test tools.
    assert not [m for m in out["modules"] if m.split(".")[0] in ("boto3", "jinja2", "moto", "flask")]


def test_template_declares_the_api_function_with_the_stage_policy(package):
    template = json.loads((package / "sam.json").read_text())
    resources = template["Resources"]
    handler = resources["APIHandler"]["Properties"]
    assert handler["Handler"] == "app.app"
    assert handler["Environment"]["Variables"]["PREDICTIONS_BUCKET"] == "example-predictions-dev"
    # A burst (or an attack) cannot scale the API past the stage's cap, nor starve other functions.
    config = json.loads((Path(PROJECT_DIR) / ".chalice" / "config.json").read_text())
    cap = config["stages"]["dev"]["lambda_functions"]["api_handler"]["reserved_concurrency"]
    assert handler["ReservedConcurrentExecutions"] == cap
    role = resources[handler["Role"]["Fn::GetAtt"][0]]  # the API function's own role
    statements = role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    actions = {a for s in statements for a in s["Action"]}
    # ssm:GetParameter: the origin secret only (tests/test_config.py checks its resource).
    assert actions == {"s3:GetObject", "s3:ListBucket", "ssm:GetParametersByPath", "ssm:GetParameter",
                       "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}


SITE_PROBE = r"""
import json, os, sys, tempfile
api_before = sorted(m for m in sys.modules if m.split(".")[0] == "jinja2")
import chalice_app.site_trigger as trigger
registered = type(trigger.rebuild_site).__name__
assert not [m for m in sys.modules if m.split(".")[0] == "jinja2"], "registering the rule imported jinja2"
from chalice_app.publishing.sample import make_batch, write_folder
from chalice_app.store.cache import PredictionStore
from chalice_app.store.sources import DirSource
from chalice_app.website import rebuild, render
folder = tempfile.mkdtemp()
write_folder(folder, "predictions/", [make_batch("2026-11-20", 150), make_batch("2026-11-21", 120)])
files = render.render_site(PredictionStore(DirSource(folder), "predictions/"), 7)
print(json.dumps({"registered": registered, "site_dir": render.SITE_DIR, "jinja2": sys.modules["jinja2"].__file__,
                  "files": sorted(files), "handle": callable(rebuild.handle),
                  "index": files["index.html"].decode()[:4000]}))
"""


def test_the_site_handler_imports_and_renders_from_the_zip_alone(unzipped, lambda_runtime):
    env = {"PATH": os.environ["PATH"], "AWS_DEFAULT_REGION": "us-east-1", "PREDICTIONS_BUCKET": "b",
           "PREDICTIONS_PREFIX": "predictions/", "STAGE": "dev", "SITE_REBUILD_ENABLED": "true",
           "PYTHONPATH": f"{unzipped}{os.pathsep}{lambda_runtime}"}
    done = subprocess.run([sys.executable, "-s", "-S", "-P", "-c", SITE_PROBE],
                          env=env, cwd="/", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["registered"] == "EventSourceHandler"  # Lambda calls it with (event, context)
    assert out["site_dir"] == os.path.join(str(unzipped), "site")  # the templates, found in the package
    assert out["jinja2"].startswith(str(unzipped)) and out["handle"]
    assert {"index.html", "dates.html", "d/2026-11-21.html", "d/2026-11-20/page-2.html"} <= set(out["files"])
    assert 'data-batch-date="2026-11-21"' in out["index"]
