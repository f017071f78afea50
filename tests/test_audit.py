"""History that holds: every move of latest.json is in the audit log (predictions-audit), and no
publish undoes a retract without --force and a reason (chalice_app/publishing/audit.py)."""

from __future__ import annotations

import json

import pytest

from chalice_app.publishing import audit
from chalice_app.publishing import publish as publish_module
from chalice_app.publishing import retract as retract_module

from helpers import BUCKET, PREFIX

pytestmark = pytest.mark.slow  # moto, sockets or timers in every test: not in make test-fast

POINTER = f"{PREFIX}latest.json"


@pytest.fixture
def batch_file(tmp_path):
    path = tmp_path / "batch.jsonl"
    path.write_text('{"id": "a", "value": 1}\n{"id": "b", "value": 2}\n')
    return path


@pytest.fixture
def publish(s3, batch_file):
    def run(date: str, *extra: str) -> int:
        return publish_module.main([str(batch_file), "--date", date, "--bucket", BUCKET, "--model-name", "m",
                                    "--model-version", "1", "--quiet", "--by", "job@ci", *extra], client=s3)

    return run


@pytest.fixture
def retract(s3):
    def run(to: str, reason: str = "bad batch") -> int:
        return retract_module.main(["--to", to, "--reason", reason, "--bucket", BUCKET, "--by", "ops@team"],
                                   client=s3)

    return run


def latest(s3) -> str:
    return json.loads(s3.get_object(Bucket=BUCKET, Key=POINTER)["Body"].read())["date"]


def log(s3) -> list[dict]:
    return audit.read_log(s3, BUCKET, PREFIX, limit=100)


def test_rerunning_a_retracted_publish_is_refused_and_latest_stays(s3, publish, retract, capsys):
    assert publish("2026-11-22") == 0
    assert publish("2026-11-23") == 0
    assert retract("2026-11-22", "2026-11-23 doubled every value") == 0
    capsys.readouterr()
    # The same command as the job ran before: it used to finish "the interrupted publish", silently.
    assert publish("2026-11-23") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "2026-11-23 was retracted" in err[0] and "doubled every value" in err[0]
    assert "by ops@team" in err[0] and "--force --reason" in err[0]
    assert latest(s3) == "2026-11-22"


def test_a_dry_run_of_a_retracted_date_is_refused_too(s3, publish, retract):
    assert publish("2026-11-22") == 0 and publish("2026-11-23") == 0 and retract("2026-11-22") == 0
    assert publish("2026-11-23", "--dry-run") == 2


def test_every_date_the_retract_withdrew_is_marked(s3, publish, retract):
    for date in ("2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23"):
        assert publish(date) == 0
    assert retract("2026-11-21") == 0
    assert audit.retraction_of(s3, BUCKET, PREFIX, "2026-11-20") is None
    assert audit.retraction_of(s3, BUCKET, PREFIX, "2026-11-21") is None
    for date in ("2026-11-22", "2026-11-23"):
        mark = audit.retraction_of(s3, BUCKET, PREFIX, date)
        assert mark["from"] == "2026-11-23" and mark["to"] == "2026-11-21" and mark["by"] == "ops@team"
        assert publish(date) == 2
    assert latest(s3) == "2026-11-21"


def test_a_new_date_after_a_retract_moves_latest_as_usual(s3, publish, retract):
    assert publish("2026-11-22") == 0 and publish("2026-11-23") == 0 and retract("2026-11-22") == 0
    assert publish("2026-11-24") == 0
    assert latest(s3) == "2026-11-24"


def test_force_with_a_reason_republishes_a_retracted_date_and_clears_its_mark(s3, publish, retract):
    assert publish("2026-11-22") == 0 and publish("2026-11-23") == 0 and retract("2026-11-22") == 0
    assert publish("2026-11-23", "--force", "--reason", "rerun with the fixed model") == 0
    assert latest(s3) == "2026-11-23"
    assert audit.retraction_of(s3, BUCKET, PREFIX, "2026-11-23") is None
    newest = log(s3)[0]
    assert newest["action"] == "publish-forced" and newest["reason"] == "rerun with the fixed model"
    assert newest["from"] == "2026-11-22" and newest["to"] == "2026-11-23" and newest["by"] == "job@ci"


def test_force_without_a_reason_is_refused_before_anything_is_written(s3, publish, capsys):
    assert publish("2026-11-23") == 0
    before = s3.list_objects_v2(Bucket=BUCKET)["KeyCount"]
    capsys.readouterr()
    assert publish("2026-11-23", "--force") == 2
    assert "--force needs --reason" in capsys.readouterr().err
    assert s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == before


def test_every_move_of_the_pointer_is_logged_in_order(s3, publish, retract):
    assert publish("2026-11-22") == 0
    assert publish("2026-11-23") == 0
    assert publish("2026-11-21") == 0  # a backfill: latest does not move, nothing is logged
    assert retract("2026-11-22", "wrong units") == 0
    entries = log(s3)
    assert [(e["action"], e["from"], e["to"]) for e in entries] == [
        ("retract", "2026-11-23", "2026-11-22"), ("publish", "2026-11-22", "2026-11-23"),
        ("publish", None, "2026-11-22")]
    assert entries[0]["reason"] == "wrong units" and entries[0]["by"] == "ops@team"
    assert all(e["at"].endswith("Z") for e in entries)
    assert entries[1]["count"] == 2 and entries[1]["model"] == {"name": "m", "version": "1"}


def test_the_audit_command_shows_the_log_newest_first(s3, publish, retract, capsys):
    assert publish("2026-11-22") == 0 and publish("2026-11-23") == 0 and retract("2026-11-22", "typo") == 0
    capsys.readouterr()
    assert audit.main(["--bucket", BUCKET], client=s3) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert "retract" in lines[0] and "2026-11-23 -> 2026-11-22" in lines[0] and "by ops@team: typo" in lines[0]
    assert "publish" in lines[2] and "(none) -> 2026-11-22" in lines[2]
    assert audit.main(["--bucket", BUCKET, "--json", "--limit", "1"], client=s3) == 0
    only = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert len(only) == 1 and only[0]["action"] == "retract"


@pytest.mark.parametrize("limit", ["0", "1001", "many"])
def test_the_audit_command_refuses_a_bad_limit(s3, limit, capsys):
    with pytest.raises(SystemExit) as exited:
        audit.main(["--bucket", BUCKET, "--limit", limit], client=s3)
    assert exited.value.code == 2 and "--limit" in capsys.readouterr().err


def test_an_empty_log_says_so(s3, capsys):
    assert audit.main(["--bucket", BUCKET], client=s3) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "no moves" in captured.err


def test_the_api_says_which_dates_a_retract_withdrew(s3, publish, retract, api):
    assert publish("2026-11-22") == 0 and publish("2026-11-23") == 0
    assert retract("2026-11-22", "bad batch") == 0

    def retracted(date: str) -> bool:
        answer = api.get(f"/predictions/{date}?limit=1")
        assert answer.status_code == 200
        return json.loads(answer.body)["retracted"]

    assert retracted("2026-11-23") is True
    assert retracted("2026-11-22") is False and retracted("latest") is False
