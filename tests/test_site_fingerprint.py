"""A page the site function keeps instead of rendering must be the page a full render gives.

Each date's pages show its batch, a "Change" column against the newest older batch, and the
templates' and renderer's work: the done-mark records a fingerprint of the three per date, and any
difference renders the date again. A backfill of the day before a date changes what that date's
pages compare with (every page of it, not only the first); a template change changes every page;
a rebuild where nothing a page shows changed uploads nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from types import SimpleNamespace

import pytest
from test_site_rebuild import SITE_BUCKET, event, invalidations, site_objects, text

from chalice_app.contract import batch_key
from chalice_app.website import build, rebuild, render

from helpers import BUCKET, PREFIX, make_doc
from site_helpers import Page, visible_text

pytestmark = pytest.mark.slow  # moto, sockets or timers in every test: not in make test-fast

ROWS = 250  # three pages a date: the first, page-2, page-3


def doc(date: str, factor: float, n: int = ROWS) -> dict:
    """A batch whose every value depends on the date, so each row's change shows which batch it compares with."""
    rows = [{"id": f"sku-{i:03d}", "label": f"Item {i}", "value": round(i * factor, 2)} for i in range(n)]
    return make_doc(date, rows)


@pytest.fixture
def stage():
    """The stage's predictions bucket, its site bucket and distribution (moto), and the site function."""
    from moto import mock_aws

    with mock_aws():
        import boto3

        from chalice_app.publishing.publish import publish_document
        from deploy import site_config

        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        s3.create_bucket(Bucket=SITE_BUCKET)
        cloudfront = boto3.client("cloudfront", region_name="us-east-1")
        config = site_config.distribution_config(
            stage="test", caller_reference="t", bucket_domain=f"{SITE_BUCKET}.s3.amazonaws.com", oac_id="",
            api_domain="abc.execute-api.us-east-1.amazonaws.com", headers_policy_id="hp")
        dist = cloudfront.create_distribution(DistributionConfig=config)["Distribution"]["Id"]
        world = {"s3": s3, "cloudfront": cloudfront, "dist": dist}

        def env(days: int) -> dict:
            return {"STAGE": "test", "PREDICTIONS_BUCKET": BUCKET, "PREDICTIONS_PREFIX": PREFIX,
                    "SITE_BUCKET": SITE_BUCKET, "SITE_DISTRIBUTION_ID": dist, "SITE_DAYS": str(days)}

        def run(days: int, key: str = f"{PREFIX}latest.json") -> dict:
            return rebuild.handle(event(key), env(days), clients=rebuild.Clients(s3, cloudfront), sleep=lambda s: None)

        def publish(date: str, factor: float, n: int = ROWS) -> None:
            publish_document(s3, BUCKET, PREFIX, doc(date, factor, n), force=True)

        def full_render(days: int) -> dict[str, bytes]:
            from chalice_app.config.settings import load_settings

            return render.render_site(build.s3_store(load_settings(env(days)), s3), days, site_dir=render.SITE_DIR)

        yield SimpleNamespace(s3=s3, run=run, publish=publish, full_render=full_render, world=world,
                              objects=lambda: site_objects(s3), text=lambda key: text(s3, key))


def assert_same_as_a_full_render(stage, days: int) -> None:
    files = stage.full_render(days)
    assert set(stage.objects()) == set(files)
    stale = [k for k, body in files.items()
             if stage.s3.get_object(Bucket=SITE_BUCKET, Key=k)["Body"].read() != body]
    assert stale == []


def pages_of(stage, date: str) -> list[str]:
    return sorted(k for k in stage.objects() if k.startswith(f"d/{date}") and k.endswith(".html"))


def change_of_row(stage, page: str, row_id: str) -> str:
    """The "Change" cell of one row, as a reader sees it."""
    html = Page(stage.text(page))
    column = html.headers.index("Change")
    return next(row[column] for row in html.rows if row and row[0] == row_id)


def test_a_backfilled_day_renders_every_page_of_the_next_date_again(stage):
    for date, factor in (("2026-11-15", 1.0), ("2026-11-16", 2.0), ("2026-11-18", 4.0), ("2026-11-19", 5.0),
                         ("2026-11-20", 6.0)):
        stage.publish(date, factor)
    stage.run(days=4)  # 20, 19, 18, 16
    assert "since 2026-11-16" in visible_text(stage.text("d/2026-11-18/page-2.html"))
    before = stage.objects()

    stage.publish("2026-11-17", 3.0)  # the missed day: older than latest, the pointer stays
    summary = stage.run(days=4, key=batch_key(PREFIX, "2026-11-17"))  # 20, 19, 18, 17

    pages = pages_of(stage, "2026-11-18")
    assert pages == ["d/2026-11-18.html", "d/2026-11-18/page-2.html", "d/2026-11-18/page-3.html"]
    after = stage.objects()
    assert all(after[page] != before[page] for page in pages)  # every page, not only the first
    for page in pages:
        words = visible_text(stage.text(page))
        assert "since 2026-11-17" in words and "since 2026-11-16" not in words
    # Row 150 is on page 2: 150 x 4.0 against 150 x 3.0 (it was against 150 x 2.0).
    assert change_of_row(stage, "d/2026-11-18/page-2.html", "sku-150").startswith("+150")
    # The dates that compare with the same batch as before were not rendered again.
    assert all(after[k] == before[k] for k in after if k.startswith(("d/2026-11-19/", "d/2026-11-20/")))
    assert summary["kept"] > 0
    assert "/d/2026-11-18/page-2.html" in invalidations(stage.world)[-1]
    assert_same_as_a_full_render(stage, 4)


def test_a_backfill_older_than_the_window_renders_the_oldest_date_again(stage):
    for date, factor in (("2026-11-16", 2.0), ("2026-11-18", 4.0), ("2026-11-19", 5.0), ("2026-11-20", 6.0)):
        stage.publish(date, factor)
    stage.run(days=3)  # 20, 19, 18: 18 compares with 16, outside the window
    before = stage.objects()
    stage.publish("2026-11-17", 3.0)
    stage.run(days=3, key=batch_key(PREFIX, "2026-11-17"))
    after = stage.objects()
    # Its neighbours on the site did not change, what it compares with did: every page is new.
    assert all(after[page] != before[page] for page in pages_of(stage, "2026-11-18"))
    assert change_of_row(stage, "d/2026-11-18/page-3.html", "sku-249").startswith("+249")
    assert "/d/2026-11-17.html" not in stage.text("dates.html")  # 17 is not on the site
    assert_same_as_a_full_render(stage, 3)


def test_a_republished_batch_renders_its_pages_and_the_next_dates_pages_again(stage):
    for date, factor in (("2026-11-18", 4.0), ("2026-11-19", 5.0), ("2026-11-20", 6.0)):
        stage.publish(date, factor)
    stage.run(days=3)
    before = stage.objects()
    stage.publish("2026-11-19", 7.0)  # --force over a published date: a new ETag, no pointer move
    stage.run(days=3, key=batch_key(PREFIX, "2026-11-19"))
    after = stage.objects()
    for date in ("2026-11-19", "2026-11-20"):
        assert all(after[page] != before[page] for page in pages_of(stage, date))
    assert change_of_row(stage, "d/2026-11-20/page-2.html", "sku-100").startswith("-100")  # 600 against 700
    assert all(after[page] == before[page] for page in pages_of(stage, "2026-11-18"))
    assert_same_as_a_full_render(stage, 3)


def test_a_template_change_renders_every_page_again(stage, tmp_path, monkeypatch):
    site = tmp_path / "site"
    shutil.copytree(render.SITE_DIR, site)
    shutil.copy(os.path.join(os.path.dirname(render.SITE_DIR), "openapi.json"), tmp_path / "openapi.json")
    monkeypatch.setattr(render, "SITE_DIR", str(site))
    for date, factor in (("2026-11-18", 4.0), ("2026-11-19", 5.0), ("2026-11-20", 6.0)):
        stage.publish(date, factor)
    stage.run(days=3)
    before = stage.objects()

    template = site / "templates" / "batch.html"
    template.write_text(template.read_text().replace("<h1>Predictions for ", "<h1>Forecasts for "))
    summary = stage.run(days=3)  # the same pointer, the same batches: only the template changed

    assert summary["skipped"] is False and summary["kept"] == 0
    after = stage.objects()
    date_pages = [k for k in after if k.startswith("d/") and k.endswith(".html")]
    assert len(date_pages) == 9
    for page in date_pages:
        assert after[page] != before[page] and "<h1>Forecasts for " in stage.text(page)
    assert_same_as_a_full_render(stage, 3)
    assert stage.run(days=3)["skipped"] is True  # and then it is done


def test_nothing_a_page_shows_changed_nothing_is_uploaded(stage):
    for date, factor in (("2026-11-18", 4.0), ("2026-11-19", 5.0), ("2026-11-20", 6.0)):
        stage.publish(date, factor)
    stage.run(days=3)
    before, count = stage.objects(), len(invalidations(stage.world))
    # A batch newer than the pointer (mid-publish): the inputs changed, nothing on the site did. Written
    # a second after the pointer (S3 keeps whole seconds), as a publish's batch after the last pointer.
    time.sleep(1.05)
    stage.s3.put_object(Bucket=BUCKET, Key=batch_key(PREFIX, "2026-11-21"), Body=json.dumps(doc("2026-11-21", 8.0)))
    summary = stage.run(days=3, key=batch_key(PREFIX, "2026-11-21"))
    assert summary["skipped"] is False
    # The API's answers too wait for the pointer's event (rebuild: one invalidation per publish).
    assert summary["uploaded"] == 0 and summary["deleted"] == 0 and summary["invalidated"] == []
    assert summary["kept"] == len([k for k in before if k.startswith("d/")])  # no date page rendered
    assert stage.objects() == before
    assert len(invalidations(stage.world)) == count
    assert stage.run(days=3, key=batch_key(PREFIX, "2026-11-21"))["skipped"] is True


def test_a_site_published_without_fingerprints_is_rendered_whole_once(stage):
    """A manifest without the done-mark's fingerprints (build_site.py --publish writes none) proves
    nothing about the pages: they are all rendered again, and only what differs is uploaded."""
    for date, factor in (("2026-11-18", 4.0), ("2026-11-19", 5.0), ("2026-11-20", 6.0)):
        stage.publish(date, factor)
    stage.run(days=3)
    before = stage.objects()
    stage.s3.copy_object(Bucket=SITE_BUCKET, Key="manifest.json", CopySource={"Bucket": SITE_BUCKET,
                         "Key": "manifest.json"}, Metadata={}, MetadataDirective="REPLACE",
                         ContentType="application/json")
    summary = stage.run(days=3)
    assert summary["skipped"] is False and summary["kept"] == 0
    assert {k for k, etag in stage.objects().items() if before.get(k) != etag} <= {"manifest.json"}
    assert stage.run(days=3)["skipped"] is True


def test_the_fingerprint_of_a_date_covers_its_folder_the_batch_before_it_and_the_site():
    def batch(etag: str, **more: str) -> dict[str, str]:
        return {"predictions.json": etag, **more}

    files = {"2026-11-20": batch("c"), "2026-11-19": batch("b", **{"report.json": "r"}), "2026-11-17": batch("a")}
    base = build.date_fingerprint("2026-11-19", files, "site")
    assert base == build.date_fingerprint("2026-11-19", dict(files), "site")
    changed = [
        {**files, "2026-11-19": batch("b2", **{"report.json": "r"})},  # the batch republished
        {**files, "2026-11-19": batch("b", **{"report.json": "r2"})},  # the gate's report rewritten
        {**files, "2026-11-17": batch("a2")},  # the batch it compares with
        {**files, "2026-11-18": batch("x")},  # a backfill: it compares with another batch
    ]
    for other in changed:
        assert build.date_fingerprint("2026-11-19", other, "site") != base
    assert build.date_fingerprint("2026-11-19", files, "site2") != base  # templates or code
    assert build.date_fingerprint("2026-11-19", {**files, "2026-11-20": batch("c2")}, "site") == base
    assert build.date_fingerprint("2026-11-19", {**files, "2026-11-17": batch("a", **{"report.json": "q"})},
                                  "site") == base  # the older date's report is not on this date's pages
    assert build.date_fingerprint("2026-11-16", files, "site") is None  # no batch known: always rendered


def test_the_site_fingerprint_follows_templates_and_static_files(tmp_path):
    site = tmp_path / "site"
    shutil.copytree(render.SITE_DIR, site)
    first = build.site_fingerprint(str(site))
    assert first == build.site_fingerprint(render.SITE_DIR)  # a copy is the same site
    (site / "static" / "site.css").write_text("body{}")
    second = build.site_fingerprint(str(site))
    (site / "templates" / "_new.html").write_text("x")
    assert len({first, second, build.site_fingerprint(str(site))}) == 3


def test_a_folder_site_keeps_what_build_site_rendered_and_renders_a_backfill_again(tmp_path):
    """make run: build_site.py renders the folder the edge serves, then the site function renders into
    it. The done-mark beside the folder lets the first publish keep the pages build_site.py wrote."""
    from chalice_app.publishing.sample import write_folder

    from site_helpers import folder_store

    src, out = str(tmp_path / "bucket"), str(tmp_path / "site")
    docs = {date: doc(date, factor) for date, factor in (("2026-11-16", 2.0), ("2026-11-18", 4.0),
                                                        ("2026-11-19", 5.0), ("2026-11-20", 6.0))}
    write_folder(src, PREFIX, list(docs.values()))
    build.build(folder_store(src), out, 4)
    assert os.path.exists(build.state_path(out)) and not os.path.exists(os.path.join(out, ".site-state.json"))

    def rebuilt(pointer: str) -> rebuild.RebuildResult:
        return rebuild.rebuild(folder_store(src), rebuild.DirSite(out), pointer=pointer, days=4)

    def assert_same_as_build_site() -> None:
        fresh = str(tmp_path / f"fresh-{len(os.listdir(tmp_path))}")
        build.build(folder_store(src), fresh, 4)
        assert read_tree(out) == read_tree(fresh)

    write_folder(src, PREFIX, [docs["2026-11-20"], doc("2026-11-21", 7.0)])
    result = rebuilt("p2")  # a new site object, as after a restart: the mark comes from the file
    assert result.kept > 0 and "d/2026-11-19/page-2.html" not in result.uploaded
    assert_same_as_build_site()

    write_folder(src, PREFIX, [doc("2026-11-17", 3.0), docs["2026-11-20"], doc("2026-11-21", 7.0)])
    result = rebuilt("p2")  # a backfill moves no pointer; the inputs changed
    assert result.skipped is False  # 21, 20, 19, 18 on the site: 17 is not, yet 18 compares with it
    assert {"d/2026-11-18/page-2.html", "d/2026-11-18/page-3.html"} <= set(result.uploaded)
    assert "since 2026-11-17" in visible_text((tmp_path / "site" / "d" / "2026-11-18" / "page-3.html").read_text())
    assert_same_as_build_site()
    assert rebuilt("p2").skipped is True


def read_tree(root: str) -> dict[str, bytes]:
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as fh:
                found[os.path.relpath(path, root)] = fh.read()
    return found
