"""The site follows the publish: the site function's handler against moto (S3 + CloudFront), in process.

A new pointer gives a new d/<date>.html, index.html and the dates page show it; only changed files
are uploaded, only changed HTML invalidated; a duplicate event changes nothing; a failing upload
leaves the live site as it was, and the next event finishes the job.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from chalice_app.website import rebuild
from chalice_app.website.render import render_site
from chalice_app.website.sync import invalidation_paths

from helpers import BUCKET, PREFIX, make_doc

pytestmark = pytest.mark.slow  # moto, sockets or timers in every test: not in make test-fast

SITE_BUCKET = "predictions-site-test"
DATES = ["2026-11-18", "2026-11-19", "2026-11-20"]
NEW = "2026-11-21"
DAYS = 3


def event(key: str = f"{PREFIX}latest.json") -> dict:
    """What EventBridge delivers for S3 "Object Created" (abridged to the fields that matter)."""
    return {"version": "0", "id": "e1", "detail-type": "Object Created", "source": "aws.s3",
            "account": "123456789012", "time": "2026-11-21T04:00:00Z", "region": "us-east-1",
            "resources": [f"arn:aws:s3:::{BUCKET}"],
            "detail": {"version": "0", "bucket": {"name": BUCKET},
                       "object": {"key": key, "size": 20, "etag": "x", "sequencer": "1"},
                       "request-id": "r", "requester": "123456789012", "reason": "PutObject"}}


@pytest.fixture
def world(monkeypatch) -> Iterator[dict]:
    from moto import mock_aws

    with mock_aws():
        import boto3

        from chalice_app.publishing.publish import publish_document
        from deploy import site_config

        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        s3.create_bucket(Bucket=SITE_BUCKET)
        for n, date in enumerate(DATES):
            publish_document(s3, BUCKET, PREFIX, make_doc(date, n=250 + n), force=True)
        cloudfront = boto3.client("cloudfront", region_name="us-east-1")
        config = site_config.distribution_config(
            stage="test", caller_reference="t", bucket_domain=f"{SITE_BUCKET}.s3.amazonaws.com", oac_id="",
            api_domain="abc.execute-api.us-east-1.amazonaws.com", headers_policy_id="hp")
        dist = cloudfront.create_distribution(DistributionConfig=config)["Distribution"]["Id"]
        env = {"STAGE": "test", "PREDICTIONS_BUCKET": BUCKET, "PREDICTIONS_PREFIX": PREFIX,
               "SITE_BUCKET": SITE_BUCKET, "SITE_DISTRIBUTION_ID": dist, "SITE_DAYS": str(DAYS)}
        clients = rebuild.Clients(s3, cloudfront)
        yield {"s3": s3, "cloudfront": cloudfront, "dist": dist, "env": env, "clients": clients,
               "publish": lambda doc: publish_document(s3, BUCKET, PREFIX, doc, force=True)}


def run(world, **kw) -> dict:
    return rebuild.handle(event(), world["env"], clients=world["clients"], sleep=lambda s: None, **kw)


def site_objects(s3) -> dict[str, str]:
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=SITE_BUCKET):
        for obj in page.get("Contents", ()):
            out[obj["Key"]] = obj["ETag"]
    return out


def text(s3, key: str) -> str:
    return s3.get_object(Bucket=SITE_BUCKET, Key=key)["Body"].read().decode()


def invalidations(world) -> list[list[str]]:
    cf, dist = world["cloudfront"], world["dist"]
    items = cf.list_invalidations(DistributionId=dist)["InvalidationList"].get("Items", [])
    return [cf.get_invalidation(DistributionId=dist, Id=i["Id"])["Invalidation"]["InvalidationBatch"]["Paths"]
            .get("Items", []) for i in items]


def test_first_run_uploads_the_same_bytes_as_build_site(world, capsys):
    summary = run(world)
    assert summary["skipped"] is False and summary["latest"] == DATES[-1]
    from chalice_app.config.settings import load_settings
    from chalice_app.website.build import s3_store

    files = render_site(s3_store(load_settings(world["env"]), world["s3"]), DAYS)
    assert set(site_objects(world["s3"])) == set(files)
    for key in ("index.html", f"d/{DATES[0]}.html", "dates.html", "manifest.json"):
        assert world["s3"].get_object(Bucket=SITE_BUCKET, Key=key)["Body"].read() == files[key]
    head = world["s3"].head_object(Bucket=SITE_BUCKET, Key="index.html")
    assert head["ContentType"].startswith("text/html") and head["CacheControl"] == "public, max-age=0, s-maxage=86400"
    record = json.loads([line for line in capsys.readouterr().out.splitlines() if "site_rebuild" in line][-1])
    assert record["event"] == "site_rebuild" and record["SiteFilesChanged"] == len(files)
    assert {m["Name"] for m in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]} == {"SiteBuildMs",
                                                                                      "SiteFilesChanged"}


def test_a_new_batch_uploads_its_pages_and_a_few_shared_ones(world):
    run(world)
    before = site_objects(world["s3"])
    world["publish"](make_doc(NEW, n=820))
    summary = run(world)
    after = site_objects(world["s3"])
    s3 = world["s3"]
    # The new date's pages exist, index.html shows it, the dates page lists it.
    assert f"d/{NEW}.html" in after and f"d/{NEW}/page-9.html" in after
    assert f"data-batch-date=\"{NEW}\"" in text(s3, "index.html")
    assert f'href="/d/{NEW}.html"' in text(s3, "dates.html")
    assert f"/d/{NEW}.html" in text(s3, "index.html")
    # Only what changed was uploaded: the new date's pages plus a constant handful of shared files.
    changed = {k for k in after if before.get(k) != after[k]}
    new_pages = {k for k in after if k.startswith(f"d/{NEW}")}
    shared = changed - new_pages
    assert changed == new_pages | shared
    assert shared <= {"index.html", "dates.html", "feed.xml", "404.html", "docs/api.html", "manifest.json",
                      f"d/{DATES[-1]}.html", f"d/{DATES[1]}.html"} | {k for k in after if k.startswith("downloads")}
    assert summary["uploaded"] == len(changed)
    # The oldest date left the window: its pages are gone (page-<n> pages of older dates never change).
    gone = set(before) - set(after)
    assert gone and all(k.startswith(f"d/{DATES[0]}") for k in gone)
    assert all(before[k] == after[k] for k in after if k.startswith(f"d/{DATES[1]}/"))
    # Every changed file the edge keeps is invalidated (pages, downloads, feed, manifest), never a
    # hashed asset, and a folder of new pages is one wildcard path.
    paths = invalidations(world)[-1]
    assert paths == summary["invalidated"]
    assert [p for p in paths if not p.startswith("/api/")] == invalidation_paths(sorted(changed | gone))
    assert f"/d/{NEW}/*" in paths and "/" in paths and "/index.html" in paths and "/manifest.json" in paths
    assert f"/d/{NEW}.csv" in paths and "/feed.xml" in paths
    assert not [p for p in paths if p.startswith("/assets/")]
    assert len([p for p in paths if not p.startswith("/api/")]) <= 20
    # Pages of dates that stayed were not rendered again, yet the site is byte for byte a full render.
    assert summary["kept"] > 0
    assert_same_as_a_full_render(world)


def assert_same_as_a_full_render(world) -> None:
    from chalice_app.config.settings import load_settings
    from chalice_app.website.build import s3_store

    files = render_site(s3_store(load_settings(world["env"]), world["s3"]), DAYS)
    s3 = world["s3"]
    assert set(site_objects(s3)) == set(files)
    different = [k for k, body in files.items() if s3.get_object(Bucket=SITE_BUCKET, Key=k)["Body"].read() != body]
    assert different == []


def test_a_duplicate_event_changes_nothing(world, capsys):
    run(world)
    world["publish"](make_doc(NEW, n=30))
    run(world)
    before, count = site_objects(world["s3"]), len(invalidations(world))
    capsys.readouterr()
    summary = run(world)
    assert summary["skipped"] is True
    assert site_objects(world["s3"]) == before
    assert len(invalidations(world)) == count
    assert '"event":"site_rebuild_skipped"' in capsys.readouterr().out


def test_a_failing_upload_leaves_the_live_site_and_the_next_event_finishes(world, capsys):
    run(world)
    s3 = world["s3"]
    index_before = text(s3, "index.html")
    before = site_objects(s3)
    world["publish"](make_doc(NEW, n=30))
    real_put = s3.put_object
    attempts = []

    def failing_put(**kw):
        if kw["Key"] == "index.html":
            attempts.append(kw["Key"])
            raise OSError("S3 is down")
        return real_put(**kw)

    s3.put_object = failing_put
    with pytest.raises(RuntimeError, match="after 3 attempts"):
        run(world)
    assert len(attempts) == rebuild.ATTEMPTS
    assert text(s3, "index.html") == index_before  # the live site is as it was
    assert set(before) <= set(site_objects(s3))  # nothing deleted
    assert json.loads(text(s3, "manifest.json"))["latest"] == DATES[-1]
    out = capsys.readouterr().out
    failed = json.loads([line for line in out.splitlines() if '"site_rebuild_failed"' in line][-1])
    assert failed["SiteBuildFailures"] == 1 and "S3 is down" in failed["error"]
    assert out.count('"site_rebuild_attempt_failed"') == rebuild.ATTEMPTS
    s3.put_object = real_put
    summary = run(world)  # Lambda's retry of the event, or the next one
    assert summary["skipped"] is False and summary["latest"] == NEW
    assert f"data-batch-date=\"{NEW}\"" in text(s3, "index.html")


def test_a_broken_render_uploads_nothing(world, monkeypatch):
    run(world)
    before = site_objects(world["s3"])
    world["publish"](make_doc(NEW, n=30))

    from chalice_app.website.render import BuildError

    def broken(*a, **kw):
        raise BuildError("template batch.html line 1: boom")

    monkeypatch.setattr(rebuild, "render_site", broken)
    with pytest.raises(RuntimeError, match="boom"):
        run(world)
    assert site_objects(world["s3"]) == before


def test_site_settings_are_checked():
    assert rebuild.site_settings({}).days == 7
    with pytest.raises(rebuild.RebuildConfigError, match="SITE_DAYS"):
        rebuild.site_settings({"SITE_DAYS": "0"})


def test_many_changed_pages_in_one_folder_are_one_wildcard():
    keys = ["index.html", *[f"d/2026-11-21/page-{n}.html" for n in range(2, 40)], "d/2026-11-21.html"]
    assert invalidation_paths(keys) == ["/", "/d/2026-11-21.html", "/d/2026-11-21/*", "/index.html"]



def test_every_file_the_edge_keeps_is_invalidated_and_no_path_twice():
    # Pages, downloads, the feed and the manifest are kept a day at the edge; hashed assets never change.
    assert invalidation_paths(["assets/site.0123456789ab.css", "manifest.json", "feed.xml", "d/2026-11-21.csv"]) == [
        "/d/2026-11-21.csv", "/feed.xml", "/manifest.json"]
    # A date's pages become one wildcard; the dates' own files are listed, never "/d/*" for them all.
    keys = [f"d/2026-11-{day:02d}.html" for day in range(1, 9)] + [f"d/2026-11-01/page-{n}.html" for n in range(2, 9)]
    dates = [f"/d/2026-11-{day:02d}.html" for day in range(1, 9)]
    assert invalidation_paths(keys) == sorted([*dates, "/d/2026-11-01/*"])


# -- the API's answers: CloudFront keeps them until the next publish (docs/api.md) -----------------

API_ALWAYS = ["/api/predictions", "/api/predictions/latest*", "/api/reports/latest"]


def api_paths(world) -> list[str]:
    return [p for p in invalidations(world)[-1] if p.startswith("/api/")]


def dated(*dates: str) -> list[str]:
    return [p for d in sorted(dates) for p in (f"/api/predictions/{d}*", f"/api/reports/{d}")]


def settled(world) -> None:
    """S3 keeps whole seconds: the next write is in a later second than what the rebuild saw."""
    import time

    time.sleep(1.05)


def test_the_first_rebuild_invalidates_every_api_answer_once(world):
    run(world)
    assert api_paths(world) == ["/api/*"]  # nothing says what CloudFront kept before
    settled(world)
    world["publish"](make_doc(NEW, n=30))
    run(world)
    assert "/api/*" not in invalidations(world)[-1]


def test_a_publish_invalidates_latest_the_list_and_the_new_date(world):
    run(world)
    settled(world)
    world["publish"](make_doc(NEW, n=30))
    summary = run(world)
    assert api_paths(world) == API_ALWAYS + dated(NEW)
    assert summary["invalidated"] == invalidations(world)[-1]


def test_a_retract_invalidates_latest_and_the_withdrawn_date(world):
    from chalice_app.publishing.retract import retract

    world["publish"](make_doc(NEW, n=30))
    run(world)
    settled(world)
    retract(world["s3"], BUCKET, PREFIX, DATES[-1], "a bad feed")
    run(world)
    # NEW answers "retracted": true now; DATES[-1] is latest again.
    assert api_paths(world) == API_ALWAYS + dated(DATES[-1], NEW)


def test_a_forced_republish_of_a_date_invalidates_that_date(world):
    run(world)
    settled(world)
    world["publish"](make_doc(DATES[1], n=99))  # --force over an existing, older date: no pointer move
    run(world)
    assert api_paths(world) == API_ALWAYS + dated(DATES[1])


def test_a_republish_of_a_retracted_date_invalidates_it(world):
    from chalice_app.publishing.retract import retract

    world["publish"](make_doc(NEW, n=30))
    retract(world["s3"], BUCKET, PREFIX, DATES[-1], "a bad feed")
    run(world)
    settled(world)
    # The same batch again: its objects may stay as they were, the retract's mark is deleted.
    world["publish"](make_doc(NEW, n=30))
    run(world)
    assert set(dated(NEW)) <= set(api_paths(world))


def test_a_backfilled_date_invalidates_the_list_and_that_date(world):
    run(world)
    settled(world)
    world["publish"](make_doc("2026-11-10", n=30))  # older than latest: no pointer move
    summary = rebuild.handle(event(f"{PREFIX}2026-11-10/predictions.json"), world["env"], clients=world["clients"],
                             sleep=lambda s: None)
    assert summary["skipped"] is False
    assert api_paths(world) == API_ALWAYS + dated("2026-11-10")


def test_the_api_invalidation_waits_for_the_api_s_pointer_ttl(world):
    """A container trusts its pointer for POINTER_TTL_SECONDS: invalidating sooner would let CloudFront
    fetch (and keep for a day) an answer made from the pointer before the publish."""
    run(world)
    world["publish"](make_doc(NEW, n=30))
    slept: list[float] = []
    rebuild.handle(event(), {**world["env"], "POINTER_TTL_SECONDS": "20"}, clients=world["clients"],
                   sleep=slept.append)
    assert slept and 19 <= slept[0] <= 21


def test_api_paths_are_few_whatever_changed():
    from chalice_app.website.sync import MAX_API_DATES, api_invalidation_paths

    assert api_invalidation_paths(None) == ["/api/*"]
    assert api_invalidation_paths(set()) == API_ALWAYS
    many = {f"2026-11-{d:02d}" for d in range(1, MAX_API_DATES + 2)}
    assert api_invalidation_paths(many) == ["/api/*"]


def test_a_publish_s_three_events_make_one_api_invalidation(world):
    """The batch's and the report's events come before the pointer names the date: they invalidate
    nothing; the pointer's event invalidates the new date with latest."""
    run(world)
    settled(world)
    count = len(invalidations(world))
    s3, doc = world["s3"], make_doc(NEW, n=30)
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}{NEW}/predictions.json", Body=json.dumps(doc))
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}{NEW}/report.json", Body=b"{}")
    for key in ("predictions.json", "report.json"):
        summary = rebuild.handle(event(f"{PREFIX}{NEW}/{key}"), world["env"], clients=world["clients"],
                                 sleep=lambda s: None)
        assert summary["invalidated"] == []
    assert len(invalidations(world)) == count
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}latest.json", Body=json.dumps({"date": NEW}))
    run(world)
    assert len(invalidations(world)) == count + 1
    assert api_paths(world) == API_ALWAYS + dated(NEW)


def test_a_forced_republish_of_latest_is_one_api_invalidation_at_its_pointer(world):
    run(world)
    settled(world)
    count = len(invalidations(world))
    world["publish"](make_doc(DATES[-1], n=77))  # batch, report, then the pointer written again
    for key in (f"{DATES[-1]}/predictions.json", f"{DATES[-1]}/report.json", "latest.json"):
        rebuild.handle(event(f"{PREFIX}{key}"), world["env"], clients=world["clients"], sleep=lambda s: None)
    assert len(invalidations(world)) == count + 1
    assert api_paths(world) == API_ALWAYS + dated(DATES[-1])
