"""Render the static site from the prediction batches: every page with its data already in the HTML.

    python build_site.py [--stage S] [--out DIR] [--source s3|DIR] [--days N]

Batches are read through the same store code as the API (S3Source on the stage's bucket, or
DirSource on a folder laid out like it). The output is deterministic: the same batches give a
byte-identical folder, so a publish step can upload only what changed. Asset names carry a
content hash and may be cached for a year; HTML is revalidated on every visit.

Layout of the output (plain file names, so S3 behind CloudFront needs no URL rewriting):
    index.html                 the latest batch (the only page that asks the API for a newer one)
    d/<date>.html              one page per recent date
    d/<date>/page-<n>.html     rows beyond the first page, for readers without JavaScript
    docs/api.html              the API's routes with curl examples (not under /api/: that is the API)
    404.html                   served with status 404 by the edge / CloudFront
    assets/<name>.<hash>.<ext> CSS, JS, favicon
    manifest.json              every file with its hash, size, Content-Type and Cache-Control
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import jinja2

from chalice_app.batch import Batch
from chalice_app.store import BatchNotFound, PredictionStore, StoreUnavailable

PROJECT_DIR = os.path.dirname(os.path.abspath(__file__))
SITE_DIR = os.path.join(PROJECT_DIR, "site")

DEFAULT_DAYS = 7
PAGE_ROWS = 100  # rows in the HTML of each page; the rest are behind "page-<n>" links
EMBED_MAX_ROWS = 5000  # rows the script can sort and filter in the page; bounds the page weight
CHART_TOP = 20
API_BASE = "/api"  # same origin: CloudFront and the local edge route /api/* to the API
API_PAGE = "/docs/api.html"
ASSETS = ("site.css", "site.js", "favicon.svg")

# ---- how the site must be served (the local edge applies these; CloudFront must do the same) ----

CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
CACHE_REVALIDATE = "no-cache"
HASHED_ASSET = re.compile(r"assets/[^/]+\.[0-9a-f]{12}\.[a-z0-9]+")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
# Exactly what the pages use: own scripts, styles, favicon and the same-origin API. No inline
# script or style anywhere (the embedded JSON is data, which script-src does not govern).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def content_type_for(path: str) -> str:
    return CONTENT_TYPES.get(os.path.splitext(path)[1].lower(), "application/octet-stream")


def cache_control_for(path: str) -> str:
    """Hashed assets never change under their name; everything else must be revalidated."""
    return CACHE_IMMUTABLE if HASHED_ASSET.fullmatch(path.lstrip("/")) else CACHE_REVALIDATE


# ---- results and errors ----------------------------------------------------------------------


class BuildError(Exception):
    """The site cannot be built; the message is the one line the user sees."""


@dataclass(frozen=True)
class BuildResult:
    out_dir: str
    latest: str
    dates: list[str]
    files: dict[str, int]  # relative path -> bytes
    seconds: float

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())


Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# ---- what the templates get ------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    label: str
    numeric: bool


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def columns_of(batch: Batch) -> list[Column]:
    """The batch's `fields` when it declares them, else every field in first-seen order, id first."""
    declared = batch.fields if isinstance(batch.fields, list) else []
    cols = [Column(f["name"], str(f.get("label") or f["name"]), f.get("type") == "number")
            for f in declared if isinstance(f, dict) and isinstance(f.get("name"), str)]
    if cols:
        return cols
    names: dict[str, None] = {"id": None}
    for item in batch.items:
        names.update(dict.fromkeys(item))
    return [Column(name, name, _all_numbers(batch.items, name)) for name in names]


def _all_numbers(items: list[dict], name: str) -> bool:
    values = [item.get(name) for item in items if item.get(name) is not None]
    return bool(values) and all(_is_number(v) for v in values)


def cell_text(value: object) -> str:
    """How one value reads in a cell; the script's String(value) gives the same text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))  # JavaScript prints 251.0 as "251"
    if _is_number(value):
        return repr(value)  # shortest round-trip digits, as JavaScript's String(number)
    return str(value)


def _thousands(value: int) -> str:
    return f"{value:,}"


def _model_text(model: object) -> str:
    if not isinstance(model, dict):
        return "unknown"
    return " ".join(str(model[k]) for k in ("name", "version") if model.get(k)) or "unknown"


def _time_text(iso: object) -> str:
    try:
        moment = dt.datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso or "unknown time")
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M") + (" UTC" if moment.tzinfo is not None else "")


def batch_summary(batch: Batch) -> dict[str, Any]:
    return {"date": batch.date, "model": _model_text(batch.model),
            "generated_at": str(batch.generated_at or ""), "generated_display": _time_text(batch.generated_at),
            "total": len(batch)}


def script_json(payload: object) -> str:
    """JSON that cannot end the <script> element it sits in, nor open a comment inside it."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def embedded_data(batch: Batch, columns: list[Column]) -> str:
    # Rows as arrays in column order: about half the bytes of repeating every key per row.
    rows = [[item.get(c.name) for c in columns] for item in batch.items[:EMBED_MAX_ROWS]]
    payload = {"date": batch.date, "total": len(batch), "max_rows": EMBED_MAX_ROWS,
               "columns": [{"name": c.name, "numeric": c.numeric} for c in columns], "rows": rows}
    return script_json(payload)


# ---- the chart: top values with their range, as inline SVG -----------------------------------


def _nice_step(span: float, ticks: int = 4) -> float:
    raw = span / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def _num(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _short(label: str, limit: int = 26) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


# Layout of the chart in SVG user units; the SVG scales to the page width.
CHART_WIDTH, LABEL_WIDTH, PLOT_X, PLOT_WIDTH, ROW_HEIGHT, BAR_HEIGHT, TOP_PAD = 640, 190, 200, 360, 20, 12, 8


@dataclass(frozen=True)
class _Scale:
    lo: float
    hi: float
    step: float

    def x(self, value: float) -> float:
        return PLOT_X + (value - self.lo) / (self.hi - self.lo) * PLOT_WIDTH


def _scale_of(rows: list[dict]) -> _Scale:
    """An axis from zero (or the lowest bound) to the highest bound, on round tick steps."""
    ceiling = max(max((*_range_of(item), item["value"])) for item in rows)
    floor = min(0.0, min(min((*_range_of(item), item["value"])) for item in rows))
    step = _nice_step(ceiling - floor) if ceiling > floor else 1.0
    lo, hi = step * math.floor(floor / step), step * math.ceil(ceiling / step)
    return _Scale(lo, hi if hi > lo else lo + step, step)  # all values equal: still a drawable axis


def _bar(item: dict, n: int, scale: _Scale) -> dict[str, Any]:
    y = TOP_PAD + n * ROW_HEIGHT
    mid = y + BAR_HEIGHT / 2
    name = str(item.get("label") or item["id"])
    bounds = _range_of(item)
    range_path = None
    if bounds:
        a, b = scale.x(min(bounds)), scale.x(max(bounds))
        range_path = f"M{a:.1f} {mid:.1f}H{b:.1f}M{a:.1f} {mid - 4:.1f}v8M{b:.1f} {mid - 4:.1f}v8"
    shown = _num(item["value"]) + (f" ({_num(min(bounds))}–{_num(max(bounds))})" if bounds else "")
    # Bars grow from zero, so a negative value points left of the axis instead of looking small.
    start, end = sorted((scale.x(0.0), scale.x(item["value"])))
    return {"label": _short(name), "tooltip": f"{name} ({item['id']}): {shown}", "y": y,
            "text_y": f"{y + BAR_HEIGHT - 1:.0f}", "x": f"{start:.1f}", "width": f"{end - start:.1f}",
            "range": range_path, "value": _num(item["value"]),
            "value_x": f"{scale.x(max((*bounds, item['value']))) + 6:.1f}"}


def chart_of(batch: Batch, top: int = CHART_TOP) -> dict[str, Any] | None:
    """Geometry of a horizontal bar chart of the `top` largest values, or None without values."""
    rows = [item for item in batch.items if _is_number(item.get("value")) and math.isfinite(item["value"])]
    if not rows:
        return None
    rows = sorted(rows, key=lambda item: (-item["value"], item["id"]))[:top]
    scale = _scale_of(rows)
    bars = [_bar(item, n, scale) for n, item in enumerate(rows)]
    bottom = TOP_PAD + len(rows) * ROW_HEIGHT
    ticks = [{"x": f"{scale.x(scale.lo + k * scale.step):.1f}", "label": _num(scale.lo + k * scale.step)}
             for k in range(round((scale.hi - scale.lo) / scale.step) + 1)]
    ranges = any(bar["range"] for bar in bars)
    return {
        "width": CHART_WIDTH, "height": bottom + 22, "top": TOP_PAD - 4, "bottom": bottom,
        "tick_y": bottom + 16, "label_x": LABEL_WIDTH, "bar_height": BAR_HEIGHT, "bars": bars, "ticks": ticks,
        "title": f"Top {len(rows)} predicted values for {batch.date}",
        "desc": "Largest first" + (", value with its lower to upper range" if ranges else "") + ": "
                + "; ".join(bar["tooltip"] for bar in bars) + ".",
        "caption": f"The {len(rows)} largest of {len(batch):,} predicted values"
                   + ("; lines show each prediction's lower to upper range." if ranges else "."),
    }


def _range_of(item: dict) -> tuple[float, ...]:
    bounds = (item.get("lower"), item.get("upper"))
    if all(_is_number(v) and math.isfinite(v) for v in bounds):
        return tuple(float(v) for v in bounds)
    return ()


# ---- pages -----------------------------------------------------------------------------------


def date_url(date: str, page: int = 1) -> str:
    return f"/d/{date}.html" if page == 1 else f"/d/{date}/page-{page}.html"


def _pager(date: str, number: int, total: int, first_url: str) -> dict[str, Any]:
    count = max(1, math.ceil(total / PAGE_ROWS))

    def url(n: int) -> str:
        return first_url if n == 1 else date_url(date, n)

    return {
        "number": number, "count": count, "size": PAGE_ROWS,
        "first": min(total, (number - 1) * PAGE_ROWS + 1), "last": min(total, number * PAGE_ROWS),
        "previous": url(number - 1) if number > 1 else None,
        "next": url(number + 1) if number < count else None,
        "links": [{"number": n, "url": url(n), "current": n == number} for n in range(1, count + 1)],
    }


def _date_nav(dates: list[str], current: str, latest: str) -> dict[str, Any]:
    pos = dates.index(current)
    entry = [{"date": d, "url": date_url(d), "current": d == current, "latest": d == latest} for d in dates]
    newer = {"date": dates[pos - 1], "url": date_url(dates[pos - 1])} if pos > 0 else None
    older = {"date": dates[pos + 1], "url": date_url(dates[pos + 1])} if pos + 1 < len(dates) else None
    return {"dates": entry, "newer": newer, "older": older}


class Renderer:
    """The Jinja environment of one site folder, with the asset URLs of this build."""

    def __init__(self, site_dir: str, asset_urls: dict[str, str]) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(os.path.join(site_dir, "templates")),
            autoescape=True,  # every page is HTML: a label "<script>" must print as text
            undefined=jinja2.StrictUndefined,  # a typo in a template fails the build, not the page
            trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        )
        self.env.filters["thousands"] = _thousands
        self.env.globals.update(asset=asset_urls.__getitem__, api_page=API_PAGE, api_base=API_BASE)

    def page(self, template: str, **context: Any) -> bytes:
        try:
            return self.env.get_template(template).render(**context).encode("utf-8")
        except jinja2.TemplateError as exc:
            raise BuildError(f"template {_template_location(exc, template)}: {exc}") from None


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
                is_latest_page: bool) -> dict[str, bytes]:
    """The first page of a batch (index.html or d/<date>.html) and, for date pages, the rest."""
    columns = columns_of(batch)
    summary = batch_summary(batch)
    first_url = "/" if is_latest_page else date_url(batch.date)
    common = {"batch": summary, "columns": columns, **_date_nav(nav_dates, batch.date, latest)}
    description = (f"{summary['total']:,} predictions of {summary['model']} for {batch.date}, "
                   f"generated {summary['generated_display']}.")
    pages: dict[str, bytes] = {}
    numbers = [1] if is_latest_page else range(1, _pager(batch.date, 1, len(batch), first_url)["count"] + 1)
    for number in numbers:
        rows = batch.items[(number - 1) * PAGE_ROWS : number * PAGE_ROWS]
        first = number == 1
        suffix = "" if first else f", page {number}"
        html = renderer.page(
            "batch.html", **common,
            title=(f"Latest predictions ({batch.date})" if is_latest_page else f"Predictions for {batch.date}")
            + suffix,
            description=description, section="latest" if is_latest_page else "date",
            script=first, refresh=is_latest_page,
            pager=_pager(batch.date, number, len(batch), first_url),
            rows=[[cell_text(item.get(c.name)) for c in columns] for item in rows],
            chart=chart_of(batch) if first else None,
            data_json=embedded_data(batch, columns) if first else None,
        )
        path = "index.html" if is_latest_page else date_url(batch.date, number).lstrip("/")
        pages[path] = html
    return pages


def api_page(renderer: Renderer, latest: Batch) -> bytes:
    from chalice_app.routes import DEFAULT_LIMIT, MAX_LIMIT, MAX_Q_LENGTH

    numeric = [c.name for c in columns_of(latest) if c.numeric]
    example = {"date": latest.date, "id": latest.items[0]["id"] if latest.items else "ID",
               "sort": "value" if "value" in latest.field_names else (numeric or ["id"])[0]}
    return renderer.page(
        "api.html", title="Predictions API", section="api", script=False,
        description="Routes, parameters and curl examples of the read-only JSON predictions API.",
        limits={"min": 1, "max": MAX_LIMIT, "default": DEFAULT_LIMIT, "q": MAX_Q_LENGTH},
        field_names=sorted(latest.field_names), example=example,
    )


# ---- assets, manifest, the build -------------------------------------------------------------


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


def manifest(files: dict[str, bytes], assets: dict[str, str], latest: str, dates: list[str]) -> bytes:
    entries = {
        path: {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest(),
               "content_type": content_type_for(path), "cache_control": cache_control_for(path)}
        for path, body in sorted(files.items())
    }
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
                progress: Progress = _quiet) -> dict[str, bytes]:
    """Every file of the site, path -> bytes, without touching the disk."""
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
    files.update(batch_pages(renderer, latest, dates, latest.date, is_latest_page=True))
    for n, date in enumerate(dates, 1):
        batch = latest if date == latest.date else _read(store, date)
        pages = batch_pages(renderer, batch, dates, latest.date, is_latest_page=False)
        files.update(pages)
        progress(f"[{n}/{len(dates)}] {date}: {len(batch):,} predictions, {len(pages)} pages")
    files[API_PAGE.lstrip("/")] = api_page(renderer, latest)
    files["404.html"] = renderer.page("404.html", title="Page not found", section="", script=False,
                                      description="There is no page at this address.", latest=latest.date,
                                      days=len(dates))
    files["manifest.json"] = manifest(files, {k: v[0] for k, v in assets.items()}, latest.date, dates)
    return files


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


def write_tree(files: dict[str, bytes], out_dir: str) -> None:
    """Replace out_dir with exactly these files: nothing from an earlier build survives in it."""
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise BuildError(f"{out_dir} is a file, not a folder")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not os.path.exists(os.path.join(out_dir, "manifest.json")):
        raise BuildError(f"{out_dir} is not empty and holds no manifest.json: refusing to replace it")
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".site-", dir=parent)
    try:
        for path, body in files.items():
            target = os.path.join(staging, *path.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as fh:
                fh.write(body)
        os.chmod(staging, 0o755)  # noqa: S103 - a public website's folder, served read-only
        old = None
        if os.path.exists(out_dir):
            old = staging + ".old"
            os.rename(out_dir, old)
        os.rename(staging, out_dir)
        if old:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def build(store: PredictionStore, out_dir: str, days: int = DEFAULT_DAYS, *, site_dir: str = SITE_DIR,
          progress: Progress = _quiet) -> BuildResult:
    """Render the site from `store` into `out_dir` (replaced as a whole)."""
    started = time.monotonic()
    files = render_site(store, days, site_dir=site_dir, progress=progress)
    write_tree(files, out_dir)
    doc = json.loads(files["manifest.json"])
    result = BuildResult(os.path.abspath(out_dir), doc["latest"], doc["dates"],
                         {p: len(b) for p, b in sorted(files.items())}, time.monotonic() - started)
    progress(f"wrote {len(files)} files ({_size(result.total_bytes)}) to {out_dir} in {result.seconds:.1f} s")
    return result


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


# ---- command line ----------------------------------------------------------------------------


def make_store(stage: str, source: str) -> PredictionStore:
    """The store the stage's API reads (s3), or the same layout in a local folder."""
    from chalice_app.settings import SettingsError, load_settings
    from chalice_app.sources import DirSource, S3Source
    from chalice_app.stage_config import StageError, stage_environment

    try:
        settings = load_settings(stage_environment(stage))
    except (StageError, SettingsError) as exc:
        raise BuildError(str(exc)) from None
    if source != "s3":
        if not os.path.isdir(source):
            raise BuildError(f"--source {source}: not a folder (use 's3' or a folder laid out like the bucket)")
        return PredictionStore(DirSource(source), settings.prefix, max_batches=2)
    if not settings.bucket:
        raise BuildError(f"stage {stage!r} has no PREDICTIONS_BUCKET in .chalice/config.json")
    from chalice_app.s3 import make_s3_client

    return PredictionStore(S3Source(make_s3_client(settings), settings.bucket), settings.prefix, max_batches=2)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python build_site.py",
                                description="Render the static site from the stage's prediction batches.")
    p.add_argument("--stage", default="local", help="stage in .chalice/config.json (default local)")
    p.add_argument("--out", help="output folder, replaced as a whole (default build/site-<stage>)")
    p.add_argument("--source", default="s3",
                   help="'s3' (the stage's bucket, default) or a folder laid out like the bucket")
    p.add_argument("--days", type=int, default=DEFAULT_DAYS,
                   help=f"pages for this many recent dates (default {DEFAULT_DAYS})")
    deploy = p.add_mutually_exclusive_group()
    deploy.add_argument("--publish", action="store_true",
                        help="after building, put the site in the stage's private S3 bucket behind CloudFront "
                             "(created on first use; needs `chalice deploy --stage S` first for /api/*); "
                             "uploads only changed files and invalidates only changed pages")
    deploy.add_argument("--delete-site", action="store_true",
                        help="tear down the stage's site (distribution, bucket, access control); builds nothing")
    p.add_argument("--dry-run", action="store_true",
                   help="with --publish or --delete-site: print the plan, change nothing in AWS")
    return p


def main(argv: Iterable[str] | None = None) -> int:
    args = parser().parse_args(None if argv is None else list(argv))
    out = args.out or os.path.join("build", f"site-{args.stage}")

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.dry_run and not (args.publish or args.delete_site):
        parser().error("--dry-run applies to --publish or --delete-site")
    if args.delete_site or args.publish:
        return _deploy(args, out, progress)
    try:
        build(make_store(args.stage, args.source), out, args.days, progress=progress)
    except BuildError as exc:
        print(f"build_site: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _deploy(args: argparse.Namespace, out: str, progress: Progress) -> int:
    """--publish (build, then upload) or --delete-site; every failure is one line and exit 1."""
    from deploy import site_deploy

    try:
        clients = site_deploy.Clients.create()
        if args.delete_site:
            site_deploy.delete_site(args.stage, clients=clients, dry_run=args.dry_run, progress=progress,
                                    deployed_dir=site_deploy.DEPLOYED_DIR)
            return 0
        site_deploy.api_domain(args.stage, site_deploy.DEPLOYED_DIR)  # fail before building, not after
        build(make_store(args.stage, args.source), out, args.days, progress=progress)
        report = site_deploy.publish_site(args.stage, out, clients=clients, dry_run=args.dry_run,
                                          progress=progress, deployed_dir=site_deploy.DEPLOYED_DIR)
    except (BuildError, site_deploy.DeployError) as exc:
        print(f"build_site: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # AWS errors of every kind: one line, not a traceback
        if not type(exc).__module__.startswith(("botocore", "boto3")):
            raise
        print(f"build_site: error: AWS: {exc}", file=sys.stderr)
        return 1
    if report.url:
        made = f"; created {', '.join(report.created)}" if report.created else ""
        print(f"site of stage {args.stage} published: {report.url}{made}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
