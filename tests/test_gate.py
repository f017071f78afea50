"""The publish gate (chalice_app/publishing/gate.py): a batch that does not look like a day of the same
model is refused with exit code 3 and a report naming each failed check with its numbers, unless
--force says why; the report is stored beside the batch."""

from __future__ import annotations

import json
import random

import pytest

from chalice_app.contract import report_key
from chalice_app.publishing import gate
from chalice_app.publishing import publish as publish_module
from chalice_app.publishing.sample import make_batch

from helpers import BUCKET, PREFIX

pytestmark = pytest.mark.slow  # moto, sockets or timers in every test: not in make test-fast

DAY1, DAY2 = "2026-11-22", "2026-11-23"


def day(date: str, count: int = 400) -> dict:
    return make_batch(date, count)


@pytest.fixture
def publish(s3, tmp_path, capsys):
    """Publish a batch document through the command (as a model job would); returns (exit code, stderr)."""

    def run(doc: dict, *extra: str) -> tuple[int, str]:
        path = tmp_path / f"{doc['date']}.json"
        path.write_text(json.dumps(doc))
        capsys.readouterr()
        code = publish_module.main([str(path), "--date", doc["date"], "--bucket", BUCKET, "--by", "job@ci",
                                    *extra], client=s3)
        return code, capsys.readouterr().err

    return run


def report(s3, date: str) -> dict:
    return json.loads(s3.get_object(Bucket=BUCKET, Key=report_key(PREFIX, date))["Body"].read())


def failed_rules(stderr: str) -> list[str]:
    return [line.split("FAILED ", 1)[1].split(":", 1)[0] for line in stderr.splitlines() if "FAILED " in line]


def test_two_ordinary_days_pass_and_each_gets_a_report(s3, publish):
    assert publish(day(DAY1))[0] == 0
    code, err = publish(day(DAY2))
    assert code == 0 and "gate: passed" in err and f"compared with {DAY1}" in err
    stored = report(s3, DAY2)
    assert stored["verdict"] == "passed" and stored["previous"] == DAY1 and stored["forced"] is None
    assert {c["rule"] for c in stored["checks"]} >= {"row_count", "ids_dropped", "ids_added", "fields_removed",
                                                     "fields_added", "null_rate", "distribution", "range"}
    assert stored["profile"]["count"] == 400
    assert report(s3, DAY1)["previous"] is None


def test_a_batch_with_fewer_rows_is_refused_with_the_numbers(s3, publish):
    assert publish(day(DAY1))[0] == 0
    smaller = day(DAY2)
    smaller["predictions"] = smaller["predictions"][:300]
    code, err = publish(smaller)
    assert code == gate.EXIT_GATE == 3
    assert "row_count" in failed_rules(err) and "300 rows, was 400 (-25.0%; at most 20.0% fewer)" in err
    assert "nothing was uploaded" in err and "--force --reason" in err
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}{DAY2}/").get("Contents", [])]
    assert keys == []


def test_ids_replaced_are_refused(s3, publish):
    assert publish(day(DAY1))[0] == 0
    renamed = day(DAY2)
    for i, row in enumerate(renamed["predictions"]):
        if i % 3 == 0:
            row["id"] = f"new-{i}"
    code, err = publish(renamed)
    assert code == 3 and "ids_dropped" in failed_rules(err)
    assert "33.5% of the ids of the previous batch are gone" in err


def test_a_column_turned_null_is_refused(s3, publish):
    assert publish(day(DAY1))[0] == 0
    nulls = day(DAY2)
    for row in nulls["predictions"][:200]:
        row["lower"] = None
    code, err = publish(nulls)
    assert code == 3 and "null_rate" in failed_rules(err) and "lower: 50.0% null, was 0.0%" in err


@pytest.mark.parametrize(("change", "rule"), [("remove", "fields_removed"), ("add", "fields_added"),
                                              ("retype", "type_changed")])
def test_a_schema_change_is_refused(s3, publish, change, rule):
    assert publish(day(DAY1))[0] == 0
    changed = day(DAY2)
    for row in changed["predictions"]:
        if change == "remove":
            del row["upper"]
        elif change == "add":
            row["promo"] = True
        else:
            row["category"] = 1
    code, err = publish(changed)
    assert code == 3 and failed_rules(err) == [rule]


def test_values_ten_times_too_large_are_refused_by_distribution_and_range(s3, publish):
    assert publish(day(DAY1))[0] == 0
    scaled = day(DAY2)
    for row in scaled["predictions"]:
        row["value"] = row["value"] * 10
    code, err = publish(scaled)
    assert code == 3
    assert {"distribution", "range"} <= set(failed_rules(err))
    assert "value: population stability index" in err


def test_a_model_change_is_stated_not_refused(s3, publish):
    assert publish(day(DAY1))[0] == 0
    newer = day(DAY2)
    newer["model"] = {"name": "demand-forecast", "version": "4.0.0"}
    code, err = publish(newer)
    assert code == 0 and "note: model changed: demand-forecast 3.2.0 -> demand-forecast 4.0.0" in err


def test_force_with_a_reason_publishes_and_the_report_says_so(s3, publish):
    assert publish(day(DAY1))[0] == 0
    smaller = day(DAY2)
    smaller["predictions"] = smaller["predictions"][:100]
    code, err = publish(smaller, "--force", "--reason", "store closures: 300 products paused")
    assert code == 0 and "forced by job@ci: store closures" in err
    stored = report(s3, DAY2)
    assert stored["verdict"] == "forced"
    assert stored["forced"] == {"reason": "store closures: 300 products paused", "by": "job@ci"}
    assert [c["rule"] for c in gate.failed(stored["checks"])] == ["row_count", "ids_dropped"]


def test_a_dry_run_prints_the_report_and_writes_nothing(s3, publish):
    assert publish(day(DAY1))[0] == 0
    smaller = day(DAY2)
    smaller["predictions"] = smaller["predictions"][:10]
    code, err = publish(smaller, "--dry-run")
    assert code == 3 and "gate: refused" in err
    code, err = publish(day(DAY2), "--dry-run")
    assert code == 0 and "gate: passed" in err
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}{DAY2}/")["KeyCount"] == 0


def test_the_baseline_is_the_newest_earlier_batch_no_retract_withdrew(s3, publish):
    from chalice_app.publishing import retract

    assert publish(day("2026-11-20"))[0] == 0
    broken = day("2026-11-21")
    broken["predictions"] = broken["predictions"][:50]
    assert publish(broken, "--force", "--reason", "testing")[0] == 0
    assert retract.main(["--to", "2026-11-20", "--reason", "too few rows", "--bucket", BUCKET], client=s3) == 0
    code, err = publish(day("2026-11-22"))
    assert code == 0 and "compared with 2026-11-20" in err


def test_a_previous_batch_without_a_report_is_profiled_instead(s3, publish):
    older = day(DAY1)
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}{DAY1}/predictions.json", Body=json.dumps(older).encode())
    smaller = day(DAY2)
    smaller["predictions"] = smaller["predictions"][:200]
    code, err = publish(smaller)
    assert code == 3 and f"compared with {DAY1}" in err and "row_count" in failed_rules(err)


def test_the_stage_rules_apply_from_the_first_batch(s3, publish, monkeypatch):
    config = gate.GateConfig.from_mapping({"fields": {"value": {"min": 0, "max": 500, "required": True}}})
    monkeypatch.setattr(publish_module, "stage_gate", lambda stage, bucket: config)
    doc = day(DAY1)
    doc["predictions"][6]["value"] = None
    doc["predictions"][9]["value"] = -1.0
    code, err = publish(doc)
    assert code == 3
    assert "value: required, missing in 1 row(s), first row 7" in err
    assert "value: 1 value(s) below 0, first row 10" in err


@pytest.mark.parametrize(("raw", "message"), [
    ({"max_row_dorp": 0.2}, "unknown setting(s) max_row_dorp"),
    ({"max_psi": "high"}, "max_psi must be a number"),
    ({"max_psi": True}, "max_psi must be a number"),
    ({"fields": {"value": {"minimum": 0}}}, "fields.value must be an object with max, min, required"),
    ({"fields": {"value": {"min": "0"}}}, "fields.value.min must be a number"),
    ([], "must be an object"),
])
def test_a_wrong_gate_setting_is_named(raw, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        gate.GateConfig.from_mapping(raw)


def test_a_stage_setting_loosens_a_threshold(s3, publish, monkeypatch):
    loose = gate.GateConfig.from_mapping({"max_row_drop": 0.5, "max_ids_dropped": 0.5})
    monkeypatch.setattr(publish_module, "stage_gate", lambda stage, bucket: loose)
    assert publish(day(DAY1))[0] == 0
    smaller = day(DAY2)
    smaller["predictions"] = smaller["predictions"][:300]
    assert publish(smaller)[0] == 0


def test_the_id_slice_compares_the_same_ids_on_both_sides():
    # Past ~16k rows only the ids whose CRC-32 falls in a slice are kept; a batch with half its ids
    # replaced must still measure about half, whatever the batch sizes.
    rng = random.Random(5)
    old_rows = [{"id": f"sku-{i:06d}", "v": rng.random()} for i in range(40_000)]
    new_rows = [{"id": f"sku-{i:06d}" if i % 2 else f"alt-{i:06d}", "v": rng.random()} for i in range(60_000)]
    old, _ = gate.profile(old_rows)
    new, samples = gate.profile(new_rows)
    assert old["ids"]["mask_bits"] == 2 and new["ids"]["mask_bits"] == 2
    checks, _ = gate.compare(new, old, gate.GateConfig(), new_rows, samples)
    dropped = next(c for c in checks if c["rule"] == "ids_dropped")["value"]
    assert 0.45 < dropped < 0.55  # 20,000 of the 40,000 old ids are gone (every even one)


def test_the_gate_settings_live_in_the_stage_of_the_chalice_config(tmp_path):
    from chalice_app.config.stage_file import StageError, stage_section

    path = tmp_path / "config.json"
    path.write_text(json.dumps({"stages": {"prod": {"publish_gate": {"max_row_drop": 0.05}}, "dev": {}}}))
    assert gate.GateConfig.from_mapping(stage_section("prod", "publish_gate", str(path))).max_row_drop == 0.05
    assert gate.GateConfig.from_mapping(stage_section("dev", "publish_gate", str(path))) == gate.GateConfig()
    with pytest.raises(StageError, match="unknown stage"):
        stage_section("qa", "publish_gate", str(path))


def test_the_api_answers_with_the_gate_verdict(s3, api, put_batch):
    from chalice_app.publishing.publish import publish_document

    publish_document(s3, BUCKET, PREFIX, day(DAY1))
    smaller = day(DAY2)
    smaller["predictions"] = smaller["predictions"][:100]
    publish_document(s3, BUCKET, PREFIX, smaller, force=True, reason="half the stores closed")
    put_batch("2026-11-24")  # a model job writing the key itself: no gate ran
    verdicts = {date: json.loads(api.get(f"/predictions/{date}?limit=1").body)["gate"]
                for date in (DAY1, DAY2, "2026-11-24")}
    assert verdicts == {DAY1: "passed", DAY2: "forced", "2026-11-24": None}


def test_the_api_serves_the_report_without_the_profile(s3, api, put_batch):
    from chalice_app.publishing.publish import publish_document

    publish_document(s3, BUCKET, PREFIX, day(DAY1))
    smaller = day(DAY2)
    smaller["predictions"] = smaller["predictions"][:100]
    publish_document(s3, BUCKET, PREFIX, smaller, force=True, reason="half the stores closed", by="ops@team")
    answer = api.get(f"/reports/{DAY2}")
    assert answer.status_code == 200 and answer.headers["Cache-Control"].startswith("public, max-age=")
    body = json.loads(answer.body)
    assert body["verdict"] == "forced" and body["forced"] == {"reason": "half the stores closed", "by": "ops@team"}
    assert body["previous"] == DAY1 and "profile" not in body
    assert "row_count" in [c["rule"] for c in body["checks"] if not c["passed"]]
    assert json.loads(api.get("/reports/latest").body)["date"] == DAY2
    put_batch("2026-11-24", pointer=False)  # a batch with no report
    missing = api.get("/reports/2026-11-24")
    assert missing.status_code == 404 and json.loads(missing.body)["error"]["code"] == "report_not_found"
    assert api.get("/reports/2026-02-30").status_code == 400
    assert api.get(f"/reports/{DAY1}?x=1").status_code == 400


def test_a_slow_slide_passes_day_by_day_but_not_against_the_last_week(s3, publish):
    counts = [400, 368, 338, 311, 286]  # 8 % fewer each day: under the 20 % a day allows
    for n, count in enumerate(counts[:-1]):
        assert publish(day(f"2026-11-{20 + n}", count))[0] == 0
    code, err = publish(day("2026-11-24", counts[-1]))
    assert code == 3 and failed_rules(err) == ["row_count_history"]
    assert "286 rows, the median of the last 4 batches is 368 (-22.3%; at most 20.0% fewer)" in err
