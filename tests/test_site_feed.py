"""The site tells readers what the publish gate said (each date's page, the dates page) and offers an
Atom feed of batches (feed.xml) that a feed reader accepts (chalice_app/website/render.py)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import feedparser
import pytest

from chalice_app.publishing.publish import publish_document
from chalice_app.publishing.sample import make_batch
from chalice_app.store.cache import PredictionStore
from chalice_app.store.sources import S3Source
from chalice_app.website.render import render_site

from helpers import BUCKET, PREFIX
from site_helpers import visible_text

pytestmark = pytest.mark.slow  # moto, sockets or timers in every test: not in make test-fast

ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def site(s3):
    """Three dates: an ordinary one, a forced one (a third of its rows gone), and one a model job wrote
    itself (no report)."""
    publish_document(s3, BUCKET, PREFIX, make_batch("2026-11-21", 300), by="job@ci")
    smaller = make_batch("2026-11-22", 300)
    smaller["predictions"] = smaller["predictions"][:200]
    publish_document(s3, BUCKET, PREFIX, smaller, force=True, reason="a <region> closed & reopened", by="ops@team")
    own = make_batch("2026-11-23", 300)
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}2026-11-23/predictions.json", Body=json.dumps(own).encode())
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}latest.json", Body=b'{"date": "2026-11-23"}')
    return render_site(PredictionStore(S3Source(s3, BUCKET), PREFIX), 7)


def text_of(html: bytes) -> str:
    """What a reader sees: tags out, entities decoded, spaces collapsed."""
    return visible_text(html.decode())


def test_the_feed_is_atom_a_reader_accepts(site):
    parsed = feedparser.parse(site["feed.xml"])
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    entries = parsed.entries
    assert [e.link for e in entries] == ["/d/2026-11-23.html", "/d/2026-11-22.html", "/d/2026-11-21.html"]
    assert entries[1].title == "2026-11-22: 200 predictions, demand-forecast 3.2.0 (published with --force)"
    assert entries[2].title == "2026-11-21: 300 predictions, demand-forecast 3.2.0"
    assert entries[2].summary == "Checked with no earlier batch to compare with."
    assert "a <region> closed & reopened" in entries[1].summary and "ops@team" in entries[1].summary
    assert entries[0].summary == "Published before the publish gate."
    assert len({e.id for e in entries}) == 3 and all(e.id.startswith("urn:uuid:") for e in entries)


def test_the_feed_has_what_the_atom_rfc_requires(site):
    root = ET.fromstring(site["feed.xml"])
    assert root.tag == f"{ATOM}feed"
    for name in ("id", "title", "updated", "author"):
        assert root.find(f"{ATOM}{name}") is not None, name
    stamp = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
    for entry in root.findall(f"{ATOM}entry"):
        assert stamp.fullmatch(entry.findtext(f"{ATOM}updated") or ""), ET.tostring(entry)
        assert entry.findtext(f"{ATOM}id") and entry.findtext(f"{ATOM}title")


def test_every_page_points_feed_readers_at_it(site):
    link = b'<link rel="alternate" type="application/atom+xml" title="New batches" href="/feed.xml">'
    assert link in site["index.html"] and link in site["d/2026-11-21.html"]
    manifest = json.loads(site["manifest.json"])
    assert manifest["files"]["feed.xml"]["content_type"] == "application/atom+xml; charset=utf-8"


def test_a_forced_date_says_who_why_and_what_failed(site):
    page = text_of(site["d/2026-11-22.html"])
    assert "Published with --force by ops@team: “a <region> closed & reopened”." in page
    assert "Checked against the batch of 2026-11-21, 2 of" in page and "checks failed:" in page
    assert "200 rows, was 300 (-33.3%; at most 20.0% fewer)" in page
    assert b'class="gate forced"' in site["d/2026-11-22.html"]


def test_a_date_that_passed_says_so_quietly(site):
    page = text_of(site["d/2026-11-21.html"])
    assert "Checked with no earlier batch to compare with." in page
    assert b'class="gate forced"' not in site["d/2026-11-21.html"]


def test_a_batch_without_a_report_says_nothing_of_the_gate(site):
    assert b'class="gate' not in site["d/2026-11-23.html"]


def test_the_dates_page_marks_a_forced_date(site):
    page = text_of(site["dates.html"])
    assert "2026-11-22 · published with --force" in page and "2026-11-21 · published" not in page
    assert 'href="/feed.xml"' in site["dates.html"].decode()


def test_the_dates_page_shows_who_moved_latest_and_why(s3):
    from chalice_app.publishing import retract

    publish_document(s3, BUCKET, PREFIX, make_batch("2026-11-21", 300), by="job@ci")
    publish_document(s3, BUCKET, PREFIX, make_batch("2026-11-22", 300), by="job@ci")
    assert retract.main(["--to", "2026-11-21", "--reason", "values <doubled>", "--bucket", BUCKET,
                         "--by", "ops@team"], client=s3) == 0
    site = render_site(PredictionStore(S3Source(s3, BUCKET), PREFIX), 7)
    page = text_of(site["dates.html"])
    assert "Recent changes of the latest batch" in page
    moves = page.split("predictions-audit")[1]
    assert moves.index("retract, 2026-11-22 → 2026-11-21, by ops@team: “values <doubled>”") < \
        moves.index("publish, 2026-11-21 → 2026-11-22, by job@ci") < moves.index("publish, none → 2026-11-21")


def test_a_folder_site_reads_its_history_too(tmp_path):
    from chalice_app.store.sources import DirSource
    from chalice_app.website.history import recent_moves

    folder = tmp_path / PREFIX / "audit"
    folder.mkdir(parents=True)
    (folder / "20261121T040000000000Z-publish-2026-11-21.json").write_text(
        json.dumps({"action": "publish", "at": "2026-11-21T04:00:00Z", "to": "2026-11-21"}))
    (folder / "20261122T040000000000Z-retract-2026-11-20.json").write_text("not json")
    assert [m["to"] for m in recent_moves(DirSource(str(tmp_path)), PREFIX)] == ["2026-11-21"]
