"""What the templates get from a batch: columns, cell texts, the summary, pager and date navigation.

Pure functions of a Batch; no Jinja, no I/O.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from chalice_app.store.batch import Batch
from chalice_app.website import numbers
from chalice_app.website.numbers import Precision, finite_number, is_number

DEFAULT_DAYS = 7
PAGE_ROWS = 100  # rows in the HTML of each page; the rest are behind "page-<n>" links
EMBED_MAX_ROWS = 5000  # rows the script can sort and filter in the page; bounds the page weight


BOUNDS = ("value", "lower", "upper")  # a value and its interval: one precision for the three


@dataclass(frozen=True)
class Column:
    name: str
    label: str
    numeric: bool
    decimals: int | None = None  # numeric columns: every cell with this many decimals (None: scientific)
    kind: str = ""  # "change": the build-time change against the previous batch
    digits: int = numbers.SCIENTIFIC_DIGITS  # significant digits when decimals is None

    @property
    def precision(self) -> Precision:
        return Precision(self.decimals, self.digits)


def columns_of(batch: Batch) -> list[Column]:
    """The batch's `fields` when it declares them, else every field in first-seen order, id first."""
    declared = batch.fields if isinstance(batch.fields, list) else []
    cols = [Column(f["name"], str(f.get("label") or f["name"]), f.get("type") == "number",
                   _declared_decimals(f))
            for f in declared if isinstance(f, dict) and isinstance(f.get("name"), str)]
    if not cols:
        names: dict[str, None] = {"id": None}
        for item in batch.items:
            names.update(dict.fromkeys(item))
        cols = [Column(name, name, _all_numbers(batch.items, name)) for name in names]
    bounds = [c.name for c in cols if c.numeric and c.decimals is None and c.name in BOUNDS]
    shared = precision_of_columns(batch.items, bounds) if len(bounds) > 1 else None
    out = []
    for c in cols:
        if c.numeric and c.decimals is None:
            got = shared if shared is not None and c.name in bounds else precision_of_columns(batch.items, [c.name])
            c = Column(c.name, c.label, True, got.decimals, digits=got.digits)
        out.append(c)
    return out


def precision_of_columns(items: list[dict], names: list[str]) -> Precision:
    """One precision for the values of these columns (numbers.precision_of: the data's scale)."""
    return numbers.precision_of(item.get(name) for item in items if isinstance(item, dict) for name in names)


def _declared_decimals(field: dict) -> int | None:
    """A field's own "decimals" (0-10) when a batch says so; the contract's fields do not carry
    one today, so this is for batches that will."""
    value = field.get("decimals")
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10 else None


def cell_of(value: object, column: Column) -> str:
    """A cell as a reader sees it: a number of a numeric column formatted (numbers.format_number),
    anything else as JavaScript's String() prints it (an int beyond a double: "Infinity")."""
    if column.numeric and finite_number(value) is not None:
        return numbers.format_number(value, column.precision)
    return cell_text(value)


def raw_title(value: object, column: Column) -> str | None:
    """The raw value of a formatted number, every digit (the cell's title); None for any other cell."""
    return cell_text(value) if column.numeric and column.kind != "change" and finite_number(value) is not None else None


def _all_numbers(items: list[dict], name: str) -> bool:
    values = [item.get(name) for item in items if item.get(name) is not None]
    return bool(values) and all(is_number(v) for v in values)


def cell_text(value: object) -> str:
    """How one value reads in a cell; the script's String(value) gives the same text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and -(2**53) <= value <= 2**53:
        return str(value)
    if is_number(value):
        # The browser reads every JSON number as a double: a 400-digit integer is Infinity there.
        try:
            return js_number(float(value))  # type: ignore[arg-type]
        except OverflowError:
            return "Infinity" if value > 0 else "-Infinity"  # type: ignore[operator]
    return str(value)


def js_number(x: float) -> str:
    """JavaScript's String(x) (ECMAScript Number::toString): 251.0 -> "251", 1.5e-7 -> "1.5e-7",
    1e21 -> "1e+21", for any float, from the shortest round-trip digits as JavaScript uses."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    _, digit_tuple, exponent = Decimal(repr(abs(x))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    k, n = len(digits), len(digits) + int(exponent)  # x = 0.digits * 10**n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        text = digits[0] + (f".{digits[1:]}" if k > 1 else "") + f"e{'+' if e > 0 else '-'}{abs(e)}"
    return text if x > 0 else "-" + text


def thousands(value: int) -> str:
    return f"{value:,}"


def _model_text(model: object) -> str:
    if not isinstance(model, dict):
        return "unknown"
    return " ".join(str(model[k]) for k in ("name", "version") if model.get(k)) or "unknown"


def _time_text(iso: object) -> str:
    try:
        moment = dt.datetime.fromisoformat(str(iso))
        if moment.tzinfo is not None:
            moment = moment.astimezone(dt.UTC)  # OverflowError for 0001-01-01T00:00+01:00
    except (ValueError, OverflowError):
        return str(iso or "unknown time")
    return moment.strftime("%Y-%m-%d %H:%M") + (" UTC" if moment.tzinfo is not None else "")


def batch_summary(batch: Batch) -> dict[str, Any]:
    return {"date": batch.date, "model": _model_text(batch.model),
            "generated_at": str(batch.generated_at or ""), "generated_display": _time_text(batch.generated_at),
            "total": len(batch)}


MAX_GATE_LINES = 12  # failed checks listed on a page; the report (report.json) has every one


def gate_summary(report: object) -> dict[str, Any] | None:
    """What a reader of a date's page is told of the publish gate's report (publishing/gate.py):
    one sentence, the failed checks of a forced batch, the notes. None without a readable report."""
    if not isinstance(report, dict) or not isinstance(report.get("checks"), list):
        return None
    checks = [c for c in report["checks"] if isinstance(c, dict)]
    failed = [str(c.get("message", c.get("rule", ""))) for c in checks if not c.get("passed")]
    previous = report.get("previous")
    against = f"against the batch of {previous}" if previous else "with no earlier batch to compare with"
    forced = report.get("forced") if isinstance(report.get("forced"), dict) else None
    if report.get("verdict") == "forced" and forced:
        who = f" by {forced['by']}" if forced.get("by") else ""
        text = (f"Published with --force{who}: \u201c{forced.get('reason') or 'no reason given'}\u201d. "
                f"Checked {against}, {len(failed)} of {len(checks)} checks failed:")
    else:
        text = f"Checked {against}: all {len(checks)} checks passed." if checks else f"Checked {against}."
    notes = [str(n) for n in report.get("notes", []) if isinstance(n, str) and "no previous batch" not in n]
    return {"text": text, "forced": bool(forced) and report.get("verdict") == "forced",
            "failed": failed[:MAX_GATE_LINES], "failed_more": max(0, len(failed) - MAX_GATE_LINES), "notes": notes}


def script_json(payload: object) -> str:
    """JSON that cannot end the <script> element it sits in, nor open a comment inside it."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def embedded_data(batch: Batch, columns: list[Column], changes: Any = None) -> str:
    """Rows as arrays in column order: about half the bytes of repeating every key per row. With
    changes (changes.Changes), the change column holds the delta (or "new") and each row one more
    element past the columns, the change in percent, for the script to print."""
    def row(n: int, item: dict) -> list:
        cells = [item.get(c.name) for c in columns if c.kind != "change"]
        if changes is not None:
            delta, pct = changes.of(n)
            cells += [delta, pct]
        return cells

    payload: dict[str, Any] = {
        "date": batch.date, "total": len(batch), "max_rows": EMBED_MAX_ROWS,
        "columns": [{"name": c.name, "numeric": c.numeric, "decimals": c.decimals,
                     **({"digits": c.digits} if c.numeric and c.decimals is None else {}),
                     **({"kind": c.kind} if c.kind else {})} for c in columns],
        "rows": [row(n, item) for n, item in enumerate(batch.items[:EMBED_MAX_ROWS])]}
    if changes is not None:
        payload["change_of"] = changes.column.name
    return script_json(payload)


def date_url(date: str, page: int = 1) -> str:
    return f"/d/{date}.html" if page == 1 else f"/d/{date}/page-{page}.html"


def pager(date: str, number: int, total: int, first_url: str) -> dict[str, Any]:
    count = max(1, math.ceil(total / PAGE_ROWS))

    def url(n: int) -> str:
        return first_url if n == 1 else date_url(date, n)

    return {
        "number": number, "count": count, "size": PAGE_ROWS,
        "first": min(total, (number - 1) * PAGE_ROWS + 1), "last": min(total, number * PAGE_ROWS),
        "previous": url(number - 1) if number > 1 else None,
        "next": url(number + 1) if number < count else None,
        "links": _page_links(number, count, url),
    }


PAGER_WINDOW = 2  # pages linked on each side of the current one


def _page_links(number: int, count: int, url: Any) -> list[dict[str, Any]]:
    """First, last and the pages around this one, with a gap marker between: a 100k-row batch has
    1,000 pages, and linking every one from every page made each ~95 KB and slow to render."""
    shown = sorted({1, count, *range(max(1, number - PAGER_WINDOW), min(count, number + PAGER_WINDOW) + 1)})
    links: list[dict[str, Any]] = []
    for n in shown:
        if links and n > links[-1]["number"] + 1:
            links.append({"number": None, "url": None, "current": False, "gap": True})
        links.append({"number": n, "url": url(n), "current": n == number, "gap": False})
    return links


def date_nav(dates: list[str], current: str, latest: str) -> dict[str, Any]:
    pos = dates.index(current)
    entry = [{"date": d, "url": date_url(d), "current": d == current, "latest": d == latest} for d in dates]
    newer = {"date": dates[pos - 1], "url": date_url(dates[pos - 1])} if pos > 0 else None
    older = {"date": dates[pos + 1], "url": date_url(dates[pos + 1])} if pos + 1 < len(dates) else None
    return {"dates": entry, "newer": newer, "older": older}


_URL_INERT = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:%")


def url_piece(text: object) -> str | None:
    """`text` percent-encoded as one URL path segment or query value; None if it cannot be one.

    Everything but A-Z a-z 0-9 - . _ ~ : is encoded, so the result holds no character a POSIX shell
    treats specially, not even inside double quotes ($ ` \\ " ! whitespace): between the quotes of
    the API page's "$SITE/api/..." it is as inert as if single-quoted, and a copied curl example
    stays one command whatever the batch holds. A valid date or id (contract.ID_PATTERN) comes back
    as it is, which matters: chalice local does not decode path parameters. None for what no reader
    could use as it stands: a non-string, an empty string, a control character, or text without a
    UTF-8 form (a lone surrogate).
    """
    import urllib.parse  # local: keeps this appended helper self-contained

    if not isinstance(text, str) or not text or any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text):
        return None
    try:
        piece = urllib.parse.quote(text, safe=":", errors="strict")
    except UnicodeEncodeError:
        return None
    return piece if _URL_INERT.issuperset(piece) else None


def table_rows(items: list[dict], columns: list[Column], changes: Any = None, offset: int = 0) -> list[dict]:
    """The pre-rendered rows: {"cells": [text per column], "titles": [the raw value of a formatted
    number, else None, per column], "new": id not in the previous batch}.
    `offset` is the index of items[0] in the batch (for its changes)."""
    rows = []
    for n, item in enumerate(items, offset):
        own = [c for c in columns if c.kind != "change"]
        cells = [cell_of(item.get(c.name), c) for c in own]
        titles = [raw_title(item.get(c.name), c) for c in own]
        if changes is not None:
            cells.append(changes.text(n))
            titles.append(None)
        rows.append({"cells": cells, "titles": titles, "new": changes is not None and changes.deltas[n] == "new"})
    return rows
