"""The publish command: the model job's side of the S3 contract, end to end against moto."""

from __future__ import annotations

import gzip
import json

import pytest

from chalice_app.publishing import publish
from chalice_app.publishing.publish import main

from helpers import BUCKET, PREFIX, body

pytestmark = pytest.mark.slow  # moto, sockets or timers in every test: not in make test-fast

CSV = "id,label,value,lower,upper\nsku-1,Oat milk 1l,412.5,380,441.2\nsku-2,Butter,,,\nsku-3,Eggs,12,10,14\n"


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "preds.csv"
    path.write_text(CSV)
    return path


def run(s3, *args: str) -> int:
    return main([*map(str, args), "--bucket", BUCKET, "--model-name", "demand-forecast",
                 "--model-version", "3.2.0", "--quiet"], client=s3)


def keys(s3) -> list[str]:
    """Batches and the pointer (the audit log and retraction marks are tested in tests/test_audit.py,
    the gate's reports in tests/test_gate.py)."""
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
                  if not o["Key"].startswith((f"{PREFIX}audit/", f"{PREFIX}retracted/"))
                  and not o["Key"].endswith("/report.json"))


def read_json(s3, key: str) -> dict:
    obj = s3.get_object(Bucket=BUCKET, Key=key)
    raw = obj["Body"].read()
    return json.loads(gzip.decompress(raw) if obj.get("ContentEncoding") == "gzip" else raw)


def test_csv_round_trip_through_the_api(s3, api, csv_file):
    assert run(s3, csv_file, "--date", "2026-11-23") == 0
    page = body(api.get("/predictions/latest"))
    assert page["date"] == "2026-11-23"
    assert page["model"] == {"name": "demand-forecast", "version": "3.2.0"}
    assert page["items"] == [
        {"id": "sku-1", "label": "Oat milk 1l", "value": 412.5, "lower": 380, "upper": 441.2},
        {"id": "sku-2", "label": "Butter", "value": None, "lower": None, "upper": None},
        {"id": "sku-3", "label": "Eggs", "value": 12, "lower": 10, "upper": 14},
    ]


def test_publish_writes_the_batch_then_the_pointer(s3, csv_file, capsys):
    assert run(s3, csv_file, "--date", "2026-11-23") == 0
    assert keys(s3) == [f"{PREFIX}2026-11-23/predictions.json", f"{PREFIX}latest.json"]
    assert read_json(s3, f"{PREFIX}latest.json")["date"] == "2026-11-23"
    assert "published 2026-11-23: 3 predictions" in capsys.readouterr().out


def test_jsonl_and_bare_json_list_are_accepted(s3, tmp_path):
    (tmp_path / "a.jsonl").write_text('{"id": "a", "v": 1}\n{"id": "b", "v": 2}\n')
    (tmp_path / "b.json").write_text('[{"id": "a", "v": 1}, {"id": "b", "v": 2}]')
    assert run(s3, tmp_path / "a.jsonl", "--date", "2026-11-22") == 0
    assert run(s3, tmp_path / "b.json", "--date", "2026-11-23") == 0
    assert len(read_json(s3, f"{PREFIX}2026-11-22/predictions.json")["predictions"]) == 2


def test_batch_document_brings_its_own_model(s3, tmp_path):
    doc = {"date": "2026-11-23", "model": {"name": "m", "version": "9"}, "predictions": [{"id": "a"}]}
    (tmp_path / "doc.json").write_text(json.dumps(doc))
    assert main([str(tmp_path / "doc.json"), "--date", "2026-11-23", "--bucket", BUCKET, "--quiet"],
                client=s3) == 0
    assert read_json(s3, f"{PREFIX}2026-11-23/predictions.json")["model"] == {"name": "m", "version": "9"}


def test_every_bad_row_is_reported_and_nothing_uploaded(s3, tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("id,value\nok-1,1\nbad id,2\nok-1,3\n,4\n")
    assert run(s3, path, "--date", "2026-11-23") == 2
    err = capsys.readouterr().err.splitlines()
    assert any("line 3" in line and "does not match" in line for line in err)
    assert any("line 4" in line and "duplicate id" in line and "line 2" in line for line in err)
    assert any("line 5" in line for line in err)
    assert err[-1] == f"error: 3 problem(s) in {path}; nothing was uploaded"
    assert keys(s3) == []


def test_an_existing_date_is_refused_without_force(s3, csv_file, capsys):
    assert run(s3, csv_file, "--date", "2026-11-23") == 0
    assert run(s3, csv_file, "--date", "2026-11-23") == 2
    assert "already exists; pass --force" in capsys.readouterr().err


def test_force_replaces_an_existing_date(s3, csv_file, tmp_path):
    assert run(s3, csv_file, "--date", "2026-11-23") == 0
    other = tmp_path / "other.csv"
    other.write_text("id,value\nonly,1\n")
    assert run(s3, other, "--date", "2026-11-23", "--force", "--reason", "the model was rerun") == 0
    assert len(read_json(s3, f"{PREFIX}2026-11-23/predictions.json")["predictions"]) == 1


def test_an_older_date_does_not_move_the_pointer(s3, csv_file):
    assert run(s3, csv_file, "--date", "2026-11-23") == 0
    assert run(s3, csv_file, "--date", "2026-11-20") == 0
    assert read_json(s3, f"{PREFIX}latest.json")["date"] == "2026-11-23"


def test_without_a_pointer_an_older_date_still_does_not_become_latest(s3, csv_file):
    assert run(s3, csv_file, "--date", "2026-11-23") == 0
    s3.delete_object(Bucket=BUCKET, Key=f"{PREFIX}latest.json")
    assert run(s3, csv_file, "--date", "2026-11-20") == 0
    assert keys(s3) == [f"{PREFIX}2026-11-20/predictions.json", f"{PREFIX}2026-11-23/predictions.json"]


def test_dry_run_writes_nothing(s3, csv_file, capsys):
    assert run(s3, csv_file, "--date", "2026-11-23", "--dry-run") == 0
    assert keys(s3) == []
    assert "would publish 2026-11-23" in capsys.readouterr().out


def test_large_batches_are_stored_gzip(s3, tmp_path):
    rows = "\n".join(json.dumps({"id": f"sku-{i:06d}", "label": "x" * 40, "value": i}) for i in range(5000))
    (tmp_path / "big.jsonl").write_text(rows)
    assert run(s3, tmp_path / "big.jsonl", "--date", "2026-11-23") == 0
    head = s3.head_object(Bucket=BUCKET, Key=f"{PREFIX}2026-11-23/predictions.json")
    assert head["ContentEncoding"] == "gzip"
    assert len(read_json(s3, f"{PREFIX}2026-11-23/predictions.json")["predictions"]) == 5000


def test_small_batches_are_stored_plain(s3, csv_file):
    run(s3, csv_file, "--date", "2026-11-23")
    head = s3.head_object(Bucket=BUCKET, Key=f"{PREFIX}2026-11-23/predictions.json")
    assert "ContentEncoding" not in head
    assert head["ContentType"].startswith("application/json")


def test_progress_is_shown_on_large_files(s3, tmp_path, capsys):
    rows = "\n".join(json.dumps({"id": f"r{i}"}) for i in range(25_000))
    (tmp_path / "big.jsonl").write_text(rows)
    main([str(tmp_path / "big.jsonl"), "--date", "2026-11-23", "--bucket", BUCKET,
          "--model-name", "m", "--model-version", "1"], client=s3)
    err = capsys.readouterr().err
    assert "read 20,000 rows" in err
    assert "uploading" in err and "verified" in err


@pytest.mark.parametrize("args, message", [
    (["--date", "2026-02-30"], "--date must be a real date"),
    (["--date", "23/11/2026"], "--date must be a real date"),
])
def test_bad_date_is_one_line_and_exit_2(s3, csv_file, capsys, args, message):
    assert run(s3, csv_file, *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_missing_model_is_exit_2(s3, csv_file, capsys):
    assert main([str(csv_file), "--date", "2026-11-23", "--bucket", BUCKET], client=s3) == 2
    assert "--model-name" in capsys.readouterr().err


def test_unreadable_file_is_exit_2(s3, tmp_path, capsys):
    assert run(s3, tmp_path / "missing.csv", "--date", "2026-11-23") == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_aws_failure_is_exit_1_with_one_line(s3, csv_file, capsys):
    code = main([str(csv_file), "--date", "2026-11-23", "--bucket", "no-such-bucket-here",
                 "--model-name", "m", "--model-version", "1", "--quiet"], client=s3)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "NoSuchBucket" in err[0]


def test_stage_gives_bucket_and_prefix(s3, csv_file):
    assert main([str(csv_file), "--date", "2026-11-23", "--stage", "local", "--model-name", "m",
                 "--model-version", "1", "--quiet"], client=s3) == 0
    assert f"{PREFIX}latest.json" in keys(s3)


def test_unknown_stage_is_exit_2(s3, csv_file, capsys):
    assert main([str(csv_file), "--date", "2026-11-23", "--stage", "nope", "--model-name", "m",
                 "--model-version", "1"], client=s3) == 2
    assert "unknown stage 'nope'" in capsys.readouterr().err


def test_pointer_never_moves_backwards_when_a_newer_publish_wins_the_race(s3, monkeypatch):
    """An older job reads the pointer, a newer job flips it, the older job must not win."""
    from helpers import make_doc

    publish.publish_document(s3, BUCKET, PREFIX, make_doc("2026-11-21"))
    real_read = publish._read_pointer
    raced = []

    def read_then_race(client, bucket, key):
        seen = real_read(client, bucket, key)
        if not raced:
            raced.append(True)
            publish.publish_document(s3, BUCKET, PREFIX, make_doc("2026-11-23"))
        return seen

    monkeypatch.setattr(publish, "_read_pointer", read_then_race)
    result = publish.publish_document(s3, BUCKET, PREFIX, make_doc("2026-11-22"))
    assert result.pointer_moved is False
    assert read_json(s3, f"{PREFIX}latest.json")["date"] == "2026-11-23"


def test_help_explains_the_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "Exit codes" in out and "--force" in out and "--dry-run" in out
