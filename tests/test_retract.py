"""predictions-retract: the operator's way to move latest back to an earlier published date."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from chalice_app.publishing import retract as retract_module
from chalice_app.publishing.retract import main

from helpers import BUCKET, PREFIX, PROJECT_DIR

pytestmark = pytest.mark.slow  # moto, sockets or timers in every test: not in make test-fast

POINTER = f"{PREFIX}latest.json"


def pointer(s3) -> dict:
    return json.loads(s3.get_object(Bucket=BUCKET, Key=POINTER)["Body"].read())


def run(s3, *args: str) -> int:
    return main([*args, "--bucket", BUCKET], client=s3)


def test_a_typo_date_is_retracted_and_publishing_resumes(s3, put_batch, tmp_path, capsys):
    from chalice_app.publishing.publish import main as publish_main

    put_batch("2026-11-29")
    put_batch("2062-11-21")  # the typo, now latest: every later publish would keep it there
    assert run(s3, "--to", "2026-11-29", "--reason", "2062-11-21 was a typo for 2026-11-21",
               "--by", "ops@example") == 0
    line = json.loads(capsys.readouterr().out)
    assert line["event"] == "latest_retracted" and line["from"] == "2062-11-21" and line["to"] == "2026-11-29"
    written = pointer(s3)
    assert written["date"] == "2026-11-29"
    assert written["retracted"]["from"] == "2062-11-21"
    assert written["retracted"]["reason"] == "2062-11-21 was a typo for 2026-11-21"
    assert written["retracted"]["by"] == "ops@example" and written["retracted"]["at"].endswith("Z")

    path = tmp_path / "a.jsonl"
    path.write_text('{"id": "a"}\n')
    assert publish_main([str(path), "--date", "2026-11-30", "--bucket", BUCKET, "--model-name", "m",
                         "--model-version", "1", "--quiet", "--force", "--reason", "a one-row batch after "
                         "larger ones: the gate would refuse it"], client=s3) == 0
    assert pointer(s3)["date"] == "2026-11-30"


def test_a_date_without_a_batch_is_refused(s3, put_batch, capsys):
    put_batch("2026-11-29")
    assert run(s3, "--to", "2026-11-28", "--reason", "x") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
    assert pointer(s3) == {"date": "2026-11-29"}


@pytest.mark.parametrize(("args", "message"), [
    (["--to", "2026-11-31", "--reason", "x"], "real date"),
    (["--to", "2026-11-20", "--reason", "   "], "--reason must say why"),
    (["--to", "2026-11-25", "--reason", "x"], "retract moves latest back"),
])
def test_bad_input_is_exit_2_and_changes_nothing(s3, put_batch, capsys, args, message):
    put_batch("2026-11-25", pointer=False)
    put_batch("2026-11-20")
    assert run(s3, *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert pointer(s3) == {"date": "2026-11-20"}


def test_the_same_date_is_a_no_op(s3, put_batch, capsys):
    put_batch("2026-11-20")
    assert run(s3, "--to", "2026-11-20", "--reason", "x") == 0
    assert "already 2026-11-20" in capsys.readouterr().out
    assert pointer(s3) == {"date": "2026-11-20"}


def test_without_a_pointer_it_is_created(s3, put_batch):
    put_batch("2026-11-20", pointer=False)
    put_batch("2062-01-01", pointer=False)  # newest listed: latest by the contract's fallback
    assert run(s3, "--to", "2026-11-20", "--reason", "typo") == 0
    assert pointer(s3)["date"] == "2026-11-20"


def test_the_write_is_conditional_on_the_pointer_read(s3, put_batch, monkeypatch, capsys):
    put_batch("2026-11-20", pointer=False)
    put_batch("2062-01-01")
    real_read = retract_module._read_pointer
    calls = []

    def read_then_publisher_moves_it(client, bucket, key):
        seen = real_read(client, bucket, key)
        if not calls:
            calls.append(1)
            s3.put_object(Bucket=BUCKET, Key=POINTER, Body=json.dumps({"date": "2062-01-02"}))
        return seen

    monkeypatch.setattr(retract_module, "_read_pointer", read_then_publisher_moves_it)
    assert run(s3, "--to", "2026-11-20", "--reason", "typo") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "changed while retracting" in err[0]
    assert pointer(s3) == {"date": "2062-01-02"}


def test_the_console_script_and_module_exist():
    done = subprocess.run([sys.executable, "-m", "chalice_app.publishing.retract", "--help"], cwd=PROJECT_DIR,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--reason" in done.stdout and "Exit codes" in done.stdout
    with open(f"{PROJECT_DIR}/pyproject.toml", encoding="utf-8") as fh:
        assert 'predictions-retract = "chalice_app.publishing.retract:main"' in fh.read()
