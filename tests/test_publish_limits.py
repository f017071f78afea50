"""The publish command's bounds and refusals: size (gzip bombs), depth, odd JSON, metadata, future
dates, and what happens when something fails after the upload. Everything refused is refused with
exit 2, one line naming the row (line) and the reason, and nothing uploaded."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import subprocess
import sys
import zlib

import pytest

from chalice_app.publishing import publish
from chalice_app.publishing.batch_input import InputTooLarge, read_batch_input
from chalice_app.publishing.publish import main

from helpers import BUCKET, PREFIX, PROJECT_DIR

pytestmark = pytest.mark.slow  # moto, sockets or timers in every test: not in make test-fast


def run(s3, *args: str) -> int:
    return main([*map(str, args), "--bucket", BUCKET, "--model-name", "m", "--model-version", "1",
                 "--quiet"], client=s3)


def keys(s3) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def error_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def write_bomb(path, decompressed: int, chunk: bytes = (b"sku-1," + b"x" * 1017 + b"\n") * 1024) -> None:
    """A .gz of `decompressed` bytes of CSV rows (about 1/1000 of that on disk), written in chunks."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    with open(path, "wb") as fh:
        fh.write(packer.compress(b"id,value\n"))
        for _ in range(decompressed // len(chunk)):
            fh.write(packer.compress(chunk))
        fh.write(packer.flush())


# --- size -------------------------------------------------------------------------------------


def test_a_gzip_bomb_is_refused_in_bounded_memory(tmp_path):
    """512 MB inflated from 0.5 MB: refused with one line, without inflating past the limit."""
    bomb = tmp_path / "bomb.csv.gz"
    write_bomb(bomb, 512 << 20)
    assert bomb.stat().st_size < 2 << 20
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across the vfork+exec that starts the child, so it
    # reported the pytest process's own peak (over 512 MB once the deploy tests had run before this one).
    probe = ("import sys\n"
             "from chalice_app.publishing.publish import main\n"
             "code = main(sys.argv[1:])\n"
             "status = open('/proc/self/status').read()\n"
             "print(int(status.split('VmHWM:')[1].split()[0]) // 1024)\n"
             "sys.exit(code)\n")
    done = subprocess.run([sys.executable, "-c", probe, str(bomb), "--date", "2026-11-23", "--bucket", BUCKET,
                           "--model-name", "m", "--model-version", "1", "--quiet"],
                          cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and "bytes once decompressed" in err[0] and "MAX_BATCH_BYTES" in err[0], err
    peak_mb = int(done.stdout.strip())
    # Rows read before the 64 MiB cap are held (a few times their bytes); what matters is that the
    # bomb's 512 MB are never inflated, let alone held (the unbounded reader peaked at 12 GB).
    assert peak_mb < 512, f"peak RSS {peak_mb} MB for a refused gzip bomb"


def test_gz_input_is_capped_by_max_bytes(s3, tmp_path, capsys):
    path = tmp_path / "preds.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(b'{"id": "r%d", "v": 1}\n' % i for i in range(2000))))
    assert run(s3, path, "--date", "2026-11-23", "--max-bytes", "10000") == 2
    err = error_lines(capsys)
    assert len(err) == 1
    assert "more than 10,000 bytes once decompressed" in err[0] and "--max-bytes" in err[0]
    assert keys(s3) == []
    assert run(s3, path, "--date", "2026-11-23") == 0  # the default limit (64 MiB) takes it


def test_a_plain_file_over_the_limit_is_refused_before_it_is_read(s3, tmp_path, capsys):
    path = tmp_path / "huge.csv"
    with open(path, "wb") as fh:  # sparse: 65 MiB that cost no disk and must not be read
        fh.truncate(65 << 20)
    assert main([str(path), "--date", "2026-11-23", "--stage", "local", "--model-name", "m",
                 "--model-version", "1"], client=s3) == 2
    err = error_lines(capsys)
    assert len(err) == 1 and "68,157,440 bytes" in err[0] and "MAX_BATCH_BYTES of stage local" in err[0]


@pytest.mark.parametrize("gz", [False, True])
def test_the_limit_is_exact_and_counts_decompressed_bytes(tmp_path, gz):
    data = b"id,v\n" + b"".join(b"r%d,%d\n" % (i, i) for i in range(100))
    path = tmp_path / ("p.csv.gz" if gz else "p.csv")
    path.write_bytes(gzip.compress(data) if gz else data)
    assert len(read_batch_input(path, max_bytes=len(data)).predictions) == 100
    with pytest.raises(InputTooLarge):
        read_batch_input(path, max_bytes=len(data) - 1)


def test_the_batch_json_must_fit_the_stage_limit_even_with_a_larger_max_bytes(s3, tmp_path, capsys,
                                                                             monkeypatch):
    from chalice_app.config.settings import Settings

    monkeypatch.setattr(publish, "stage_limits", lambda stage, bucket: Settings(max_batch_bytes=2000))
    path = tmp_path / "preds.csv"
    path.write_text("id,v\n" + "".join(f"r{i},{i}\n" for i in range(300)))
    assert run(s3, path, "--date", "2026-11-23", "--max-bytes", "100000") == 2
    err = error_lines(capsys)
    assert len(err) == 1 and "MAX_BATCH_BYTES" in err[0] and "nothing was uploaded" in err[0]
    assert keys(s3) == []


# --- depth and odd JSON -------------------------------------------------------------------------

DOC_HEAD = '{"date": "2026-11-23", "model": {"name": "m", "version": "1"},\n'


@pytest.mark.parametrize(("name", "text", "line", "reason"), [
    # The tester's case: deep enough that the pointer step used to crash after the upload.
    ("deep.json", DOC_HEAD + ' "generated_at": ' + "[" * 992 + "]" * 992 + ',\n "predictions": [{"id": "a"}]}',
     2, "nested deeper than 32 levels"),
    ("deeper.json", DOC_HEAD + ' "fields": ' + "[" * 5000 + "]" * 5000 + ',\n "predictions": [{"id": "a"}]}',
     2, "nested deeper than 32 levels"),
    ("just-over.json", DOC_HEAD + ' "extra": ' + "[" * 32 + "]" * 32 + ',\n "predictions": [{"id": "a"}]}',
     2, "nested deeper than 32 levels"),
    ("deep-row.json", '[{"id": "a"},\n {"id": "b", "x": ' + "[" * 3000 + "]" * 3000 + "}]",
     2, "nested deeper than 32 levels"),
    ("deep-row.jsonl", '{"id": "a"}\n' + "[" * 3000 + "]" * 3000 + "\n", 2, "nested deeper than 32 levels"),
    ("surrogate.jsonl", '{"id": "a"}\n{"id": "b", "label": "\\ud800"}\n', 2, "lone surrogate"),
    ("surrogate-key.json", '[{"id": "a"},\n {"id": "b", "\\udfff": 1}]', 2, "lone surrogate"),
    ("dup.jsonl", '{"id": "a"}\n{"id": "bad id", "id": "b"}\n', 2, 'key "id" appears more than once'),
    ("dup.json", DOC_HEAD + ' "predictions": [\n{"id": "a", "v": 1, "v": 2}]}', 3, 'key "v" appears more'),
    ("dup-model.json", '{"model": {"name": "m", "name": "n", "version": "1"},\n "predictions": [{"id": "a"}]}',
     1, 'key "name" appears more than once'),
    ("bigint.jsonl", '{"id": "a", "v": ' + "9" * 400 + "}\n", 1, "out of range"),
    ("hugeint.jsonl", '{"id": "a", "v": ' + "9" * 5000 + "}\n", 1, "more digits"),
    ("hugeint.json", '[{"id": "a"},\n{"id": "b", "v": ' + "9" * 5000 + "}]", 2, "more digits"),
    ("maxfloat.jsonl", '{"id": "a", "value": 1.7e308}\n', 1, "out of range"),
    ("lower.jsonl", '{"id": "a", "value": 1, "lower": -1.7e308, "upper": 1.7e308}\n', 1, "out of range"),
    ("inf.jsonl", '{"id": "a", "value": 1e400}\n', 1, "finite"),
    ("nan.jsonl", '{"id": "a", "value": NaN}\n', 1, "finite"),
    ("model-number.json", '{"model": 5,\n "predictions": [{"id": "a"}]}', 1, "model must be an object"),
    ("model-bool.json", '{"model": true,\n "predictions": [{"id": "a"}]}', 1, "got boolean"),
    ("model-list.json", '{"model": ["m", "1"],\n "predictions": [{"id": "a"}]}', 1, "model must be an object"),
    ("model-string.json", '{"model": "m 1",\n "predictions": [{"id": "a"}]}', 1, 'got string "m 1"'),
    ("fields.json", DOC_HEAD + '"fields": "value",\n "predictions": [{"id": "a"}]}', 2, "fields must be a list"),
    ("fields-type.json", DOC_HEAD + '"fields": [{"name": "v", "label": "V", "type": "money"}],\n'
     ' "predictions": [{"id": "a"}]}', 2, "type must be one of"),
    ("fields-name.json", DOC_HEAD + '"fields": [{"label": "V", "type": "number"}],\n'
     ' "predictions": [{"id": "a"}]}', 2, "name must be a non-empty string"),
    ("generated.json", DOC_HEAD + '"generated_at": "yesterday",\n "predictions": [{"id": "a"}]}', 2,
     "generated_at must be an ISO 8601 timestamp"),
    ("generated-num.json", DOC_HEAD + '"generated_at": 1764000000,\n "predictions": [{"id": "a"}]}', 2,
     "generated_at must be an ISO 8601 timestamp"),
])
def test_odd_input_is_refused_before_anything_is_uploaded(s3, tmp_path, capsys, name, text, line, reason):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    code = main([str(path), "--date", "2026-11-23", "--bucket", BUCKET, "--quiet"], client=s3)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert any(f"line {line}" in entry and reason in entry for entry in err.splitlines()), err
    assert keys(s3) == []


def test_a_model_from_the_command_line_is_checked_too(s3, tmp_path, capsys):
    path = tmp_path / "a.jsonl"
    path.write_text('{"id": "a"}\n')
    assert main([str(path), "--date", "2026-11-23", "--bucket", BUCKET, "--model-name", "m",
                 "--model-version", "\udcff"], client=s3) == 2
    err = error_lines(capsys)
    assert "model version holds a lone surrogate" in err[-1]
    assert keys(s3) == []


def test_good_metadata_is_published_as_given(s3, tmp_path):
    doc = {"date": "2026-11-23", "generated_at": "2026-11-23T04:00:00.5+01:00",
           "model": {"name": "m", "version": "1"},
           "fields": [{"name": "value", "label": "Forecast", "type": "number"}, {"name": "id", "type": "string"}],
           "predictions": [{"id": "a", "value": 9007199254740991, "x": 1e15, "tiny": 5e-324}]}
    (tmp_path / "doc.json").write_text(json.dumps(doc))
    assert main([str(tmp_path / "doc.json"), "--date", "2026-11-23", "--bucket", BUCKET, "--quiet"], client=s3) == 0
    stored = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}2026-11-23/predictions.json")["Body"].read())
    assert stored == doc


# --- after the upload -------------------------------------------------------------------------


@pytest.mark.parametrize("failure", [RecursionError("maximum recursion depth exceeded"), KeyError("x"),
                                     ValueError("odd")])
def test_a_failure_after_the_upload_is_one_line_and_a_rerun_finishes(s3, tmp_path, capsys, monkeypatch,
                                                                     failure):
    path = tmp_path / "a.jsonl"
    path.write_text('{"id": "a", "v": 1}\n')
    real = publish._move_pointer

    def broken(*args, **kwargs):
        raise failure

    monkeypatch.setattr(publish, "_move_pointer", broken)
    assert run(s3, path, "--date", "2026-11-23") == 1
    err = error_lines(capsys)
    assert len(err) == 1 and "is uploaded but latest.json was not moved" in err[0]
    assert "running the same command again finishes it" in err[0]
    assert f"{PREFIX}latest.json" not in keys(s3)

    monkeypatch.setattr(publish, "_move_pointer", real)
    assert run(s3, path, "--date", "2026-11-23") == 0  # not "already exists": it finishes the job
    latest = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}latest.json")["Body"].read())
    assert latest["date"] == "2026-11-23"
    # A different batch for that date is still refused without --force.
    path.write_text('{"id": "a", "v": 2}\n')
    assert run(s3, path, "--date", "2026-11-23") == 2
    assert "already exists" in capsys.readouterr().err


def test_a_corrupt_or_absurd_pointer_is_replaced_not_a_crash(s3, tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"id": "a"}\n')
    for body in ("[" * 5000 + "]" * 5000, '{"date": ' + "1" * 5000 + "}", "\xff", "x" * 100_000):
        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}latest.json", Body=body.encode("utf-8", "surrogateescape"))
        assert run(s3, path, "--date", "2026-11-23", "--force", "--reason", "replacing") == 0
        latest = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}latest.json")["Body"].read())
        assert latest["date"] == "2026-11-23"


def test_verify_reads_back_in_bounded_chunks_and_catches_a_changed_object(s3, monkeypatch, capsys):
    from helpers import make_doc

    real_put = s3.put_object

    def tamper(**kwargs):  # the object lands with one byte changed
        if kwargs["Key"].endswith("predictions.json"):
            kwargs["Body"] = kwargs["Body"].replace(b"sku-001", b"sku-00X")
        return real_put(**kwargs)

    monkeypatch.setattr(s3, "put_object", tamper)
    with pytest.raises(publish.PublishError, match="reads back different") as caught:
        publish.publish_document(s3, BUCKET, PREFIX, make_doc("2026-11-23"))
    assert caught.value.exit_code == 1
    assert f"{PREFIX}latest.json" not in keys(s3)


# --- future dates ---------------------------------------------------------------------------------


def test_a_date_too_far_in_the_future_is_refused(s3, tmp_path, capsys):
    path = tmp_path / "a.jsonl"
    path.write_text('{"id": "a"}\n')
    assert run(s3, path, "--date", "2062-11-21") == 2
    err = error_lines(capsys)
    assert len(err) == 1 and "more than 2 day(s) after today" in err[0] and "--allow-future-date" in err[0]
    assert keys(s3) == []


def test_the_future_window_is_today_utc_plus_future_date_days(s3, tmp_path, monkeypatch):
    monkeypatch.setattr(publish, "today_utc", lambda: dt.date(2026, 11, 21))
    path = tmp_path / "a.jsonl"
    path.write_text('{"id": "a"}\n')
    assert run(s3, path, "--date", "2026-11-24") == 2
    assert run(s3, path, "--date", "2026-11-23") == 0
    assert run(s3, path, "--date", "2026-11-24", "--allow-future-date") == 0


def test_a_line_longer_than_any_row_is_refused_without_holding_it(tmp_path, capsys):
    """One endless line (no newline at all) is refused at 1 MiB, not read up to the size limit."""
    bomb = tmp_path / "line.csv.gz"
    write_bomb(bomb, 64 << 20, chunk=b"0" * (1 << 20))
    code = publish.main([str(bomb), "--date", "2026-11-23", "--bucket", BUCKET, "--model-name", "m",
                         "--model-version", "1"])
    assert code == 2
    assert error_lines(capsys) == [f"error: {bomb}: line 2 is longer than 1,048,576 bytes"]


def test_a_rerun_later_with_a_new_generated_at_still_finishes_the_job(s3, tmp_path, capsys, monkeypatch):
    """The model job reruns an hour later: same rows, a new default generated_at; not 'already exists'."""
    path = tmp_path / "a.jsonl"
    path.write_text('{"id": "a", "v": 1}\n')
    monkeypatch.setattr(publish, "_utc_now", lambda: "2026-11-23T04:00:00Z")
    real = publish._move_pointer
    monkeypatch.setattr(publish, "_move_pointer", lambda *a, **k: (_ for _ in ()).throw(OSError("network")))
    assert run(s3, path, "--date", "2026-11-23") == 1
    monkeypatch.setattr(publish, "_move_pointer", real)
    monkeypatch.setattr(publish, "_utc_now", lambda: "2026-11-23T05:00:00Z")
    assert run(s3, path, "--date", "2026-11-23") == 0
    latest = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}latest.json")["Body"].read())
    assert latest == {**latest, "date": "2026-11-23", "generated_at": "2026-11-23T04:00:00Z"}
