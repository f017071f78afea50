"""The site function marks its work done last: manifest.json with the pointer's mark is written only
after every upload, every delete and the CloudFront invalidation succeeded.

Each step is made to fail, once (the handler's own retry finishes the job) and on every attempt
(SiteBuildFailures, a raise for Lambda to retry the event, the old mark left; the next event then
does everything the failed one did not, the invalidation of pages it already uploaded included).
"""

from __future__ import annotations

import json

import pytest
import test_site_rebuild
from test_site_rebuild import DATES, NEW, SITE_BUCKET, invalidations, run, site_objects, text

from chalice_app.website import rebuild

from helpers import BUCKET, PREFIX, make_doc

pytestmark = pytest.mark.slow  # moto, sockets or timers in every test: not in make test-fast

world = test_site_rebuild.world  # the same stage in moto: three dates on the site, a fourth to publish


class Journal:
    """Every write the site function makes, in order; `fail` names steps that raise (`times` each)."""

    def __init__(self, world) -> None:
        self.steps: list[tuple[str, str]] = []
        self.fail: dict[str, int] = {}
        s3, cloudfront = world["s3"], world["cloudfront"]
        real_put, real_delete, real_invalidate = s3.put_object, s3.delete_objects, cloudfront.create_invalidation

        def put_object(**kw):
            step = "mark" if kw["Key"] == "manifest.json" else "upload"
            self._maybe_fail(step if kw["Key"] != "index.html" else "upload-index")
            self.steps.append((step, kw["Key"]))
            return real_put(**kw)

        def delete_objects(**kw):
            self._maybe_fail("delete")
            self.steps.append(("delete", ",".join(o["Key"] for o in kw["Delete"]["Objects"])))
            return real_delete(**kw)

        def create_invalidation(**kw):
            self._maybe_fail("invalidate")
            self.steps.append(("invalidate", ",".join(kw["InvalidationBatch"]["Paths"]["Items"])))
            return real_invalidate(**kw)

        s3.put_object, s3.delete_objects = put_object, delete_objects
        cloudfront.create_invalidation = create_invalidation

    def _maybe_fail(self, step: str) -> None:
        if self.fail.get(step, 0) > 0:
            self.fail[step] -= 1
            self.steps.append(("failed", step))
            raise OSError(f"{step} is down")

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.steps]


@pytest.fixture
def published(world):
    """A finished site of DATES, then a new date published: the next rebuild must upload its pages,
    delete the date that leaves the window and invalidate the changed pages."""
    run(world)
    world["publish"](make_doc(NEW, n=730))
    world["journal"] = Journal(world)
    return world


def mark_on_site(world) -> str | None:
    return world["s3"].head_object(Bucket=SITE_BUCKET, Key="manifest.json")["Metadata"].get(rebuild.POINTER_MARK)


def pointer_now(world) -> str | None:
    return rebuild.pointer_mark(world["s3"], BUCKET, PREFIX)


def assert_the_new_site_is_live(world) -> None:
    s3 = world["s3"]
    keys = site_objects(s3)
    assert f'data-batch-date="{NEW}"' in text(s3, "index.html")
    assert f"d/{NEW}/page-8.html" in keys
    assert not [k for k in keys if k.startswith(f"d/{DATES[0]}")]  # the date that left the window is gone
    assert mark_on_site(world) == pointer_now(world)
    assert json.loads(text(s3, "manifest.json"))["latest"] == NEW


def test_the_mark_is_the_last_write_after_deletes_and_the_invalidation(published):
    journal = published["journal"]
    summary = run(published)
    kinds = journal.kinds()
    assert kinds[-1] == "mark" and kinds.count("mark") == 1
    assert kinds.index("delete") < kinds.index("invalidate") < kinds.index("mark")
    assert all(kind in ("upload", "delete", "invalidate") for kind in kinds[:-1])
    assert summary["skipped"] is False and summary["invalidation_id"]
    assert_the_new_site_is_live(published)


@pytest.mark.parametrize("step", ["upload-index", "delete", "invalidate"])
def test_a_step_that_fails_once_is_done_again_by_the_retry(published, step, capsys):
    journal = published["journal"]
    journal.fail[step] = 1
    summary = run(published)
    kinds = journal.kinds()
    failed = kinds.index("failed")
    assert "mark" not in kinds[:failed]  # the failed attempt wrote no mark
    assert kinds.count("mark") == 1 and kinds[-1] == "mark"
    # The step that failed was made again after the failure; everything happened before the mark.
    done_again = {"upload-index": ("upload", "index.html"), "delete": ("delete", None),
                  "invalidate": ("invalidate", None)}
    kind, key = done_again[step]
    assert [k for k, name in journal.steps[failed + 1 :] if k == kind and key in (None, name)]
    last = len(kinds) - 1
    assert max(i for i, k in enumerate(kinds) if k in ("delete", "invalidate")) < last
    assert summary["skipped"] is False and summary["attempt"] == 2
    # The retry invalidated the new date's pages and index.html, even those the failed attempt uploaded.
    paths = invalidations(published)[-1]
    assert f"/d/{NEW}/*" in paths and "/" in paths and "/index.html" in paths
    assert_the_new_site_is_live(published)
    out = capsys.readouterr().out
    assert out.count('"site_rebuild_attempt_failed"') == 1 and '"SiteBuildFailures"' not in out


@pytest.mark.parametrize("step", ["upload-index", "delete", "invalidate"])
def test_a_step_failing_every_attempt_is_counted_raised_and_finished_by_the_next_event(published, step, capsys):
    journal = published["journal"]
    old_mark = mark_on_site(published)
    journal.fail[step] = rebuild.ATTEMPTS
    with pytest.raises(RuntimeError, match=f"after {rebuild.ATTEMPTS} attempts: OSError: {step} is down"):
        run(published)
    assert "mark" not in journal.kinds()
    assert mark_on_site(published) == old_mark != pointer_now(published)
    assert json.loads(text(published["s3"], "manifest.json"))["latest"] == DATES[-1]
    failed = json.loads([line for line in capsys.readouterr().out.splitlines() if '"site_rebuild_failed"' in line][-1])
    assert failed["SiteBuildFailures"] == 1 and failed["attempts"] == rebuild.ATTEMPTS
    count = len(invalidations(published))

    summary = run(published)  # Lambda's retry of the event (or the next event)
    assert summary["skipped"] is False
    assert journal.kinds()[-1] == "mark"
    assert_the_new_site_is_live(published)
    assert len(invalidations(published)) == count + 1
    paths = invalidations(published)[-1]
    assert f"/d/{NEW}/*" in paths and "/" in paths and f"/d/{DATES[0]}.html" in paths  # new, changed, gone
    # Then the work is done: the same event again changes nothing.
    assert run(published)["skipped"] is True


def test_a_retry_after_the_uploads_uploads_nothing_again(published):
    journal = published["journal"]
    journal.fail["invalidate"] = rebuild.ATTEMPTS
    with pytest.raises(RuntimeError):
        run(published)
    uploaded = {key for kind, key in journal.steps if kind == "upload"}
    assert f"d/{NEW}.html" in uploaded
    journal.steps.clear()
    summary = run(published)
    assert [kind for kind in journal.kinds()] == ["invalidate", "mark"]
    assert summary["uploaded_keys"] == ["manifest.json"] and summary["deleted"] == 0  # the mark only
    assert "/index.html" in summary["invalidated"]


class SlowBucket:
    """A client whose PUTs take a while and run on several threads: records when each began and ended."""

    def __init__(self, fail: str = "") -> None:
        import threading

        self.events: list[tuple[str, str]] = []
        self.fail = fail
        self.lock = threading.Lock()
        self.in_flight = self.most_in_flight = 0

    def put_object(self, **kw) -> None:
        import time

        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.events.append(("start", kw["Key"]))
        time.sleep(0.01)
        with self.lock:
            self.in_flight -= 1
            self.events.append(("end", kw["Key"]))
        if kw["Key"] == self.fail:
            raise OSError("S3 is down")

    def delete_objects(self, **kw) -> None:
        self.events.append(("delete", ",".join(o["Key"] for o in kw["Delete"]["Objects"])))


def test_uploads_run_in_parallel_one_group_after_the_other_and_a_failure_stops_the_next():
    from chalice_app.website.sync import apply_sync, plan_sync

    local = {**{f"assets/a{n}.css": "x" for n in range(6)}, **{f"d/new/page-{n}.html": "x" for n in range(6)},
             **{f"d/live/page-{n}.html": "new" for n in range(6)}, "manifest.json": "x"}
    remote = {**{f"d/live/page-{n}.html": "old" for n in range(6)}, "d/gone.html": "old"}
    plan = plan_sync(local, remote)
    group = {key: plan.phase(key) for key in plan.uploads}
    assert sorted(set(group.values())) == [0, 1, 2, 3]

    bucket = SlowBucket()
    apply_sync(bucket, "b", lambda key: b"x", plan, lambda key: {}, lambda m: None, threads=4)
    assert 1 < bucket.most_in_flight <= 4
    ends = {key: i for i, (kind, key) in enumerate(bucket.events) if kind == "end"}
    starts = {key: i for i, (kind, key) in enumerate(bucket.events) if kind == "start"}
    for key in plan.uploads:  # nothing of a group starts before every file of the groups before it ended
        assert all(ends[other] < starts[key] for other in plan.uploads if group[other] < group[key])
    assert bucket.events[-1] == ("delete", "d/gone.html")

    failing = SlowBucket(fail="d/new/page-3.html")
    with pytest.raises(OSError, match="S3 is down"):
        apply_sync(failing, "b", lambda key: b"x", plan, lambda key: {}, lambda m: None, threads=4)
    touched = {key for kind, key in failing.events if kind == "start"}
    assert not [key for key in touched if group[key] >= 2]  # no live page replaced, no manifest
    assert not [kind for kind, _ in failing.events if kind == "delete"]
