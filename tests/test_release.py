"""One build promoted from stage to stage: `make release`, then `make deploy STAGE=S RELEASE=DIR`.

A release is built once (slow: one chalice package per stage) and every test reads or deploys it; the deploy
runs against moto as tests/test_deploy_state.py's operators do.
"""

from __future__ import annotations

import json
import shutil
import zipfile

import pytest

from deploy import app_stack, release, release_files, stack
from deploy.stage import deploy, steps

from helpers import PROJECT_DIR


def test_make_deploy_with_a_release_passes_it_to_the_app_step_only():
    plan = dict(steps("prod", python="py", warmer_enabled=True, site_rebuild_enabled=True, release="build/rel"))
    assert plan["deploy the API and its functions (the app stack)"] == [
        "py", "-m", "deploy.app_stack", "--stage", "prod", "--release", "build/rel"]
    assert sum("build/rel" in command for command in plan.values()) == 1


def test_the_release_command_explains_itself(capsys):
    with pytest.raises(SystemExit) as done:
        release.main(["--help"])
    assert done.value.code == 0 and "--stages" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        release.main([])
    assert done.value.code == 2 and "give --out DIR" in capsys.readouterr().err


def test_an_unknown_stage_is_refused_before_anything_is_packaged(tmp_path, capsys):
    assert release.main(["--out", str(tmp_path / "rel"), "--stages", "dev", "staging"]) == 1
    assert "unknown stages ['staging']" in capsys.readouterr().err


@pytest.fixture
def aws(monkeypatch):
    from moto import mock_aws

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("release") / "rel"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        manifest = release.build(str(out), ["dev", "prod"], say=lambda _: None)
    return out, manifest


@pytest.mark.slow
def test_a_release_is_one_zip_and_a_template_per_stage(built):
    out, manifest = built
    assert sorted(p.name for p in out.iterdir()) == ["deployment.zip", "release.json", "sam-dev.json",
                                                     "sam-prod.json"]
    assert manifest["stages"] == ["dev", "prod"] and len(manifest["commit"] or "x" * 40) == 40
    assert manifest["content_sha256"] == app_stack.content_hash(str(out / "deployment.zip"))
    assert json.loads((out / "release.json").read_text()) == manifest
    for stage in ("dev", "prod"):
        template = json.loads((out / f"sam-{stage}.json").read_text())
        assert template["Resources"]["APIHandler"]["Properties"]["FunctionName"] == f"predictions-{stage}"
        assert app_stack.check_names(template, stage, "predictions") is None  # names and the alias, checked


@pytest.mark.slow
def test_a_release_loads_for_each_of_its_stages_only(built):
    out, manifest = built
    assert release_files.load(str(out), "prod").manifest == manifest
    with pytest.raises(release_files.ReleaseError, match="has no stage local"):
        release_files.load(str(out), "local")


@pytest.mark.slow
def test_a_damaged_zip_is_refused(built, tmp_path):
    out, _ = built
    copy = tmp_path / "rel"
    shutil.copytree(out, copy)
    with zipfile.ZipFile(copy / "deployment.zip", "a") as archive:
        archive.writestr("chalice_app/extra.py", "print('not what was tested')\n")
    with pytest.raises(release_files.ReleaseError, match="not the code the release recorded"):
        release_files.load(str(copy), "dev")


@pytest.mark.slow
def test_a_release_built_from_other_stage_settings_is_refused(built, tmp_path):
    out, _ = built
    project = tmp_path / "project"
    shutil.copytree(f"{PROJECT_DIR}/.chalice", project / ".chalice", ignore=shutil.ignore_patterns("deployments"))
    assert release_files.load(str(out), "dev", project_dir=str(project))
    config = project / ".chalice" / "config.json"
    config.write_text(config.read_text().replace('"SITE_DAYS": "7"', '"SITE_DAYS": "8"', 1))
    with pytest.raises(release_files.ReleaseError, match="built from other stage settings"):
        release_files.load(str(out), "dev", project_dir=str(project))


@pytest.mark.slow
def test_deploying_a_release_uploads_its_zip_and_never_packages(built, aws, tmp_path, monkeypatch, capsys):
    import boto3
    from test_deploy_state import APP, Operator, fresh_clone, outputs_from_resources

    out, manifest = built
    monkeypatch.setattr(stack.time, "sleep", lambda _: None)
    outputs_from_resources(monkeypatch)
    ci = Operator(fresh_clone(tmp_path / "ci"), "ci@github", [], monkeypatch)
    # The stage stack step would rewrite the site function's settings of a stage never deployed: the release is
    # built from settings that already name the stack's bucket, as a team's committed .chalice/ does.
    monkeypatch.setattr(stack, "write_site_function_settings", lambda *a, **k: [])

    def no_packaging(*args, **kwargs):
        raise AssertionError("a release deploy must not package")

    monkeypatch.setattr(app_stack, "package", no_packaging)
    monkeypatch.setattr(release_files, "settings_hash", lambda project_dir=PROJECT_DIR: manifest["settings_sha256"])
    for name, value in (("CONFIG_PATH", ci.folder / ".chalice" / "config.json"),
                        ("CHALICE_DIR", ci.folder / ".chalice"), ("PROJECT_DIR", ci.folder)):
        monkeypatch.setattr(stack, name, str(value))
    said: list[str] = []
    assert deploy("dev", run=ci.run, say=said.append, release=str(out)) == 0, "\n".join(said)
    printed = capsys.readouterr().out
    assert f"code {manifest['content_sha256'][:12]} of commit" in printed and "uploaded" in printed
    bucket = next(b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"] if "artifact" in b["Name"])
    key = app_stack.artifact_key("dev", manifest["content_sha256"])
    stored = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert stored == (out / "deployment.zip").read_bytes()  # byte for byte what was built (and tested)
    assert boto3.client("cloudformation").describe_stacks(StackName=APP)["Stacks"][0]["StackStatus"] == \
        "CREATE_COMPLETE"
