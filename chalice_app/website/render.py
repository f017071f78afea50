"""The site renderer: every page of the site from the store's batches, as path -> bytes.

No disk writes, no AWS calls of its own and no command line: `build_site.py` and the deploy call
it. The output is deterministic: the same batches give byte-identical files, so a publish step
can upload only what changed. Asset names carry a content hash and may be cached for a year;
HTML is revalidated on every visit.

Layout of the output (plain file names, so S3 behind CloudFront needs no URL rewriting):
    index.html                 the latest batch (the only page that asks the API for a newer one)
    d/<date>.html              one page per recent date
    d/<date>/page-<n>.html     rows beyond the first page, for readers without JavaScript
    docs/api.html              the API's routes with curl examples (not under /api/: that is the API)
    feed.xml                   Atom: one entry per date (count, model, the publish gate's verdict)
    404.html                   served with status 404 by the edge / CloudFront
    assets/<name>.<hash>.<ext> CSS, JS, favicon
    manifest.json              every file with its hash, size, Content-Type and Cache-Control
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import traceback
import uuid
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import jinja2
import markupsafe

from chalice_app.api.limits import DEFAULT_LIMIT, MAX_LIMIT, MAX_Q_LENGTH
from chalice_app.contract import report_key
from chalice_app.store.batch import Batch
from chalice_app.store.cache import BatchNotFound, PredictionStore, StoreUnavailable
from chalice_app.website import changes as changes_mod
from chalice_app.website import downloads, history
from chalice_app.website.chart import chart_of
from chalice_app.website.serving import SECURITY_HEADERS, cache_control_for, content_type_for
from chalice_app.website.view import (
    DEFAULT_DAYS,
    PAGE_ROWS,
    batch_summary,
    columns_of,
    date_nav,
    date_url,
    embedded_data,
    gate_summary,
    pager,
    table_rows,
    thousands,
)

# The templates and static files of the site (the repository's site/ folder).
SITE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "site")
API_BASE = "/api"  # same origin: CloudFront and the local edge route /api/* to the API
API_PAGE = "/docs/api.html"
# The one page that lists every rendered date: date pages link to it instead of carrying the list,
# so a new date changes none of an older date's pages (only index.html carries the list too).
DATES_PAGE = "/dates.html"
FEED_PAGE = "/feed.xml"  # Atom: one entry per date on the site
ASSETS = ("site.css", "site.js", "favicon.svg")


class BuildError(Exception):
    """The site cannot be built; the message is the one line the user sees."""


Progress = Callable[[str], None]


def quiet(_: str) -> None:
    pass


class Renderer:
    """The Jinja environment of one site folder, with the asset URLs of this build."""

    def __init__(self, site_dir: str, asset_urls: dict[str, str]) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(os.path.join(site_dir, "templates")),
            autoescape=True,  # every page is HTML: a label "<script>" must print as text
            undefined=jinja2.StrictUndefined,  # a typo in a template fails the build, not the page
            trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        )
        self.env.filters["thousands"] = thousands
        self.env.filters["nobr_dates"] = nobr_dates
        self.env.globals.update(asset=asset_urls.__getitem__, api_page=API_PAGE, api_base=API_BASE,
                                dates_page=DATES_PAGE, feed_page=FEED_PAGE,
                                openapi_url=None)  # render_site sets it when published

    def page(self, template: str, **context: Any) -> bytes:
        try:
            return self.env.get_template(template).render(**context).encode("utf-8")
        except jinja2.TemplateError as exc:
            raise BuildError(f"template {_template_location(exc, template)}: {exc}") from None


_DATE = re.compile(r"(?<!\d)\d{4}-\d{2}-\d{2}(?!\d)")


def nobr_dates(text: object) -> markupsafe.Markup:
    """`text`, escaped, with each YYYY-MM-DD date in <span class="nobr">: a sentence may wrap anywhere
    but inside a date ("2026-12-" / "02"). For generated sentences (the gate's, the change summary)."""
    plain, parts, last = str(text), [], 0
    for date in _DATE.finditer(plain):
        parts += [markupsafe.escape(plain[last:date.start()]),
                  markupsafe.Markup('<span class="nobr">{}</span>').format(date.group())]
        last = date.end()
    return markupsafe.Markup("").join([*parts, markupsafe.escape(plain[last:])])


def _template_location(exc: jinja2.TemplateError, name: str) -> str:
    """'site/templates/x.html line 12' from the exception or, at render time, its traceback."""
    if isinstance(exc, jinja2.TemplateSyntaxError) and exc.lineno:
        return f"{_shown_path(exc.filename or exc.name or name)} line {exc.lineno}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(".html")]
    if frames:
        return f"{_shown_path(frames[-1].filename)} line {frames[-1].lineno}"
    return name


def _shown_path(path: str) -> str:
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def batch_pages(renderer: Renderer, batch: Batch, nav_dates: list[str], latest: str,
                is_latest_page: bool, previous: Batch | None = None,
                links: list[dict] | None = None, keep: Mapping[str, Any] = MappingProxyType({}),
                gate: dict | None = None) -> dict[str, bytes]:
    """The first page of a batch (index.html or d/<date>.html) and, for date pages, the rest
    (but the paths in `keep`, which the caller already has: see render_site)."""
    columns, changes = changes_mod.with_changes(batch, previous, columns_of(batch))
    summary = batch_summary(batch)
    first_url = "/" if is_latest_page else date_url(batch.date)
    common = {"batch": summary, "columns": columns, **date_nav(nav_dates, batch.date, latest),
              "changes": changes_mod.changes_context(changes), "downloads": links or [], "gate": gate}
    if not is_latest_page:
        common["dates"] = []  # on DATES_PAGE: a new date must not change this date's pages
    description = (f"{summary['total']:,} predictions of {summary['model']} for {batch.date}, "
                   f"generated {summary['generated_display']}.")
    pages: dict[str, bytes] = {}
    numbers = [1] if is_latest_page else range(1, pager(batch.date, 1, len(batch), first_url)["count"] + 1)
    for number in numbers:
        path = "index.html" if is_latest_page else date_url(batch.date, number).lstrip("/")
        if path in keep:
            continue
        rows = batch.items[(number - 1) * PAGE_ROWS : number * PAGE_ROWS]
        first = number == 1
        suffix = "" if first else f", page {number}"
        nav = common if first else {**common, "newer": None, "older": None}  # page-<n>: no neighbours
        html = renderer.page(
            "batch.html", **nav,
            title=(f"Latest predictions ({batch.date})" if is_latest_page else f"Predictions for {batch.date}")
            + suffix,
            description=description, section="latest" if is_latest_page else "date",
            script=first, refresh=is_latest_page,
            pager=pager(batch.date, number, len(batch), first_url),
            rows=table_rows(rows, columns, changes, (number - 1) * PAGE_ROWS),
            chart=chart_of(batch, columns=columns) if first else None,
            data_json=embedded_data(batch, columns, changes) if first else None,
        )
        pages[path] = html
    return pages


def api_page(renderer: Renderer, latest: Batch) -> bytes:
    """The API page. Its curl examples quote the whole URL ("$SITE/api/..."), and every piece taken
    from the batch (date, id, sort field) is percent-encoded by url_piece, which leaves nothing a
    shell could act on inside those quotes: a copied example is one command whatever the data holds.
    A field that cannot be a sort parameter as it stands (url_piece gives None) is not offered,
    neither in the examples nor in the list of sort fields."""
    from chalice_app.website.view import url_piece  # local import: only api_page uses it

    numeric = [c.name for c in columns_of(latest) if c.numeric]
    sortable = (["value"] if "value" in latest.field_names else []) + numeric
    first_id = latest.items[0].get("id") if latest.items and isinstance(latest.items[0], dict) else None
    example = {"date": url_piece(latest.date) or "YYYY-MM-DD", "id": url_piece(first_id) or "ID",
               "sort": next((piece for piece in map(url_piece, sortable) if piece), "id")}
    return renderer.page(
        "api.html", title="Predictions API", section="api", script=False,
        description="Routes, parameters and curl examples of the read-only JSON predictions API.",
        limits={"min": 1, "max": MAX_LIMIT, "default": DEFAULT_LIMIT, "q": MAX_Q_LENGTH},
        field_names=sorted(name for name in latest.field_names if url_piece(name)), example=example,
    )


def hashed_assets(site_dir: str) -> dict[str, tuple[str, bytes]]:
    """logical name -> (path in the build, bytes); the name changes whenever the bytes do."""
    out = {}
    for name in ASSETS:
        with open(os.path.join(site_dir, "static", name), "rb") as fh:
            body = fh.read()
        stem, ext = os.path.splitext(name)
        digest = hashlib.sha256(body).hexdigest()[:12]
        out[name] = (f"assets/{stem}.{digest}{ext}", body)
    return out


def manifest(files: dict[str, bytes], assets: dict[str, str], latest: str, dates: list[str],
             kept: Mapping[str, Any] = MappingProxyType({})) -> bytes:
    entries = {
        path: {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest(),
               "content_type": content_type_for(path), "cache_control": cache_control_for(path)}
        for path, body in files.items()
    }
    entries = {path: entries.get(path) or kept[path] for path in sorted({*entries, *kept})}
    doc = {"version": 1, "latest": latest, "dates": dates, "assets": assets, "files": entries,
           "headers": SECURITY_HEADERS}
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode("utf-8")


def select_dates(store: PredictionStore, latest: str, days: int) -> list[str]:
    """The `days` newest dates up to the latest one, newest first.

    A dated batch newer than the pointer may still be in the middle of being published (the
    pointer moves only after it is verified), so the site never shows it before the API does.
    """
    listed = [d for d in store.dates().value if d <= latest]
    if latest not in listed:
        listed = sorted([*listed, latest], reverse=True)
    return listed[:days]


def render_site(store: PredictionStore, days: int = DEFAULT_DAYS, *, site_dir: str = SITE_DIR,
                progress: Progress = quiet, keep: Mapping[str, Any] = MappingProxyType({})) -> dict[str, bytes]:
    """Every file of the site, path -> bytes, without touching the disk.

    `keep` (path -> its entry in the live manifest) names files the caller already has and vouches
    are what this render would give (the site function's rebuild: pages of immutable batches whose
    neighbours did not change). They are not rendered and not returned, but are in manifest.json as
    they are, so the manifest is the same bytes as a full render's. A date whose first page is in
    `keep` is skipped whole, its batch not even read."""
    if days < 1:
        raise BuildError("--days must be at least 1")
    try:
        latest = store.resolve("latest").value
        dates = select_dates(store, latest.date, days)
    except BatchNotFound:
        raise BuildError(f"no batch has been published under {_where(store)}") from None
    except StoreUnavailable as exc:
        raise BuildError(f"cannot read {_where(store)}: {exc}") from None
    progress(f"latest batch {latest.date}: {len(latest):,} predictions; pages for {len(dates)} dates")
    try:
        assets = hashed_assets(site_dir)
    except OSError as exc:
        raise BuildError(f"cannot read the site's static files: {exc}") from None
    renderer = Renderer(site_dir, {name: "/" + path for name, (path, _) in assets.items()})
    files = {path: body for path, body in assets.values()}
    # Each page compares its batch with the one before it (read once, even beyond the --days window)
    # and links the whole batch as d/<date>.csv and .json.
    known, listed = {latest.date: latest}, _listed(store)

    def batch_of(date: str) -> Batch:
        if date not in known:
            known[date] = _read(store, date)
        return known[date]

    reports: dict[str, dict | None] = {}

    def report_of(date: str) -> dict | None:
        if date not in reports:
            reports[date] = _report(store, date)
        return reports[date]

    def extras(batch: Batch) -> dict[str, Any]:
        before = changes_mod.previous_date(listed, batch.date)
        got = downloads.downloads_of(batch)
        files.update(got)
        return {"previous": batch_of(before) if before else None,
                "links": downloads.download_links(got, batch.date), "gate": gate_summary(report_of(batch.date))}

    files.update(batch_pages(renderer, latest, dates, latest.date, is_latest_page=True, **extras(latest)))
    for n, date in enumerate(dates, 1):
        if date_url(date).lstrip("/") in keep:
            progress(f"[{n}/{len(dates)}] {date}: unchanged, kept")
            continue
        batch = batch_of(date)
        pages = batch_pages(renderer, batch, dates, latest.date, is_latest_page=False, **extras(batch), keep=keep)
        files.update(pages)
        progress(f"[{n}/{len(dates)}] {date}: {len(batch):,} predictions, {len(pages)} pages")
    openapi = downloads.openapi_document(site_dir)
    if openapi is not None:
        files[downloads.OPENAPI_NAME] = openapi
    renderer.env.globals["openapi_url"] = "/" + downloads.OPENAPI_NAME if openapi is not None else None
    files[API_PAGE.lstrip("/")] = api_page(renderer, latest)
    forced = {date for date in dates if (gate_summary(report_of(date)) or {}).get("forced")}
    files[DATES_PAGE.lstrip("/")] = renderer.page(
        "dates.html", title="Every date on this site", section="dates", script=False,
        description=f"Predictions of the last {len(dates)} dates, newest first.", forced=forced,
        moves=history.recent_moves(store.source, store.prefix),
        **date_nav(dates, latest.date, latest.date))
    files[FEED_PAGE.lstrip("/")] = renderer.page("feed.xml", **feed(store, dates, report_of, batch_of))
    files["404.html"] = renderer.page("404.html", title="Page not found", section="", script=False,
                                      description="There is no page at this address.", latest=latest.date,
                                      days=len(dates))
    files["manifest.json"] = manifest(files, {k: v[0] for k, v in assets.items()}, latest.date, dates,
                                      {path: entry for path, entry in keep.items() if path not in files})
    return files


def _report(store: PredictionStore, date: str) -> dict | None:
    """The publish gate's report on a batch ({date}/report.json), None when there is none (a batch
    published before the gate, or by another writer) or it cannot be read: a page without it is
    better than no site."""
    try:
        fetched = store.source.get(report_key(store.prefix, date))
        report = json.loads(fetched.body) if fetched is not None else None
    except Exception:  # noqa: BLE001 - missing, unreadable or not JSON: the page says nothing of the gate
        return None
    return report if isinstance(report, dict) else None


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def feed(store: PredictionStore, dates: list[str], report_of: Callable[[str], dict | None],
         batch_of: Callable[[str], Batch]) -> dict[str, Any]:
    """The Atom feed's context: one entry per date on the site, newest first, from each batch's report
    (count, model, the gate's verdict); a batch without a report is read for its count and model.
    Ids are urn:uuid, fixed per bucket, prefix and date, so a reader never sees an entry twice."""
    where = _where(store)
    entries = []
    for date in dates:
        report = report_of(date)
        profile = report.get("profile") if isinstance(report, dict) else None
        if isinstance(profile, dict) and isinstance(report.get("generated_at"), str):
            count, model, generated = profile.get("count"), profile.get("model"), report["generated_at"]
        else:
            batch = batch_of(date)
            count, model, generated = len(batch), batch.model, batch.generated_at
        gate = gate_summary(report)
        updated = generated if isinstance(generated, str) and _RFC3339.fullmatch(generated) else f"{date}T00:00:00Z"
        model_text = f"{model.get('name')} {model.get('version')}" if isinstance(model, dict) else str(model)
        entries.append({
            "id": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{where}{date}')}", "updated": updated,
            "title": f"{date}: {count:,} predictions, {model_text}" + (" (published with --force)"
                                                                       if gate and gate["forced"] else ""),
            "url": date_url(date), "summary": gate["text"] if gate else "Published before the publish gate.",
        })
    newest = max((e["updated"] for e in entries), default="1970-01-01T00:00:00Z")
    return {"feed_id": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, where)}", "updated": newest, "entries": entries}


def _listed(store: PredictionStore) -> list[str]:
    try:
        return list(store.dates().value)
    except StoreUnavailable as exc:
        raise BuildError(f"cannot list the batches under {_where(store)}: {exc}") from None


def _read(store: PredictionStore, date: str) -> Batch:
    try:
        return store.batch(date).value
    except (BatchNotFound, StoreUnavailable) as exc:
        raise BuildError(f"cannot read the batch of {date} from {_where(store)}: {exc}") from None


def _where(store: PredictionStore) -> str:
    source = store.source
    root = getattr(source, "bucket", None)
    if root is not None:
        return f"s3://{root}/{store.prefix}"
    return os.path.join(getattr(source, "root", "?"), store.prefix)
