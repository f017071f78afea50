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

DEFAULT_DAYS = 7
PAGE_ROWS = 100  # rows in the HTML of each page; the rest are behind "page-<n>" links
EMBED_MAX_ROWS = 5000  # rows the script can sort and filter in the page; bounds the page weight


@dataclass(frozen=True)
class Column:
    name: str
    label: str
    numeric: bool


def is_number(value: object) -> bool:
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
        "links": [{"number": n, "url": url(n), "current": n == number} for n in range(1, count + 1)],
    }


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
