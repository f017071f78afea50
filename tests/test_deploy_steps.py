"""`make deploy`: the steps in order, stopping at the first failure with a clear message."""

from __future__ import annotations

from deploy.stage import deploy, steps


def test_the_steps_are_api_then_prewarm_then_site_then_bucket_events():
    plan = steps("prod", python="/venv/bin/python", warmer_enabled=True, site_rebuild_enabled=True)
    names = [command[1:4] for _, command in plan]
    assert names == [["deploy", "--stage", "prod"], ["-m", "chalice_app.warming.prewarm", "--stage"],
                     ["build_site.py", "--stage", "prod"], ["-m", "deploy.bucket_events", "--stage"]]
    assert plan[2][1][-1] == "--publish"
    assert plan[3][1][-1] == "prod"


def test_a_stage_without_a_warmer_or_site_function_skips_their_steps():
    assert [what for what, _ in steps("local")] == ["deploy the API and the warmer", "build and publish the site"]
    assert len(steps("prod")) == 4  # prod has both, from .chalice/config.json


def test_all_steps_run_when_each_succeeds():
    ran, said = [], []
    assert deploy("dev", run=lambda c: ran.append(c) or 0, say=said.append) == 0
    assert len(ran) == 4
    assert said[-1] == "stage dev deployed: API, warmer, site and its rebuild on publish"


def test_a_failure_stops_the_deploy_and_says_where():
    ran, said = [], []

    def run(command):
        ran.append(command)
        return 1 if "chalice_app.warming.prewarm" in command else 0

    assert deploy("dev", run=run, say=said.append) == 1
    assert len(ran) == 2  # the site was not published
    assert "stopped at step 2/4 (prewarm the API): exit code 1" in said[-1]
