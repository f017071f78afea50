"""`make deploy`: the three steps in order, stopping at the first failure with a clear message."""

from __future__ import annotations

from deploy.stage import deploy, steps


def test_the_steps_are_api_then_prewarm_then_site():
    names = [command[1:4] for _, command in steps("prod", python="/venv/bin/python", warmer_enabled=True)]
    assert names == [["deploy", "--stage", "prod"], ["-m", "chalice_app.warming.prewarm", "--stage"],
                     ["build_site.py", "--stage", "prod"]]
    assert steps("prod", python="/venv/bin/python", warmer_enabled=True)[2][1][-1] == "--publish"


def test_a_stage_without_a_warmer_skips_the_prewarm():
    assert [what for what, _ in steps("local")] == ["deploy the API and the warmer", "build and publish the site"]
    assert len(steps("prod")) == 3


def test_all_steps_run_when_each_succeeds():
    ran, said = [], []
    assert deploy("dev", run=lambda c: ran.append(c) or 0, say=said.append) == 0
    assert len(ran) == 3
    assert said[-1] == "stage dev deployed: API, warmer and site"


def test_a_failure_stops_the_deploy_and_says_where():
    ran, said = [], []

    def run(command):
        ran.append(command)
        return 1 if "chalice_app.warming.prewarm" in command else 0

    assert deploy("dev", run=run, say=said.append) == 1
    assert len(ran) == 2  # the site was not published
    assert "stopped at step 2/3 (prewarm the API): exit code 1" in said[-1]
