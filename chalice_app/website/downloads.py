"""Downloads of a whole batch: d/<date>.json (the batch document) and d/<date>.csv (what the publish
command reads back to the same predictions), plus the API's openapi.json. Pure functions, no I/O
except reading openapi.json from the project folder."""

from __future__ import annotations

import io
import json
import os
import re

from chalice_app.store.batch import Batch
from chalice_app.website.numbers import is_number

# The cells publishing.batch_input.parse_csv_cell would turn into numbers (the JSON number grammar):
# text that looks like this is written quoted.
_NUMBER_LIKE = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
# What makes a spreadsheet run a cell as a formula when it is the cell's first character (OWASP, CSV
# Injection). publishing.batch_input.FORMULA_TRIGGERS must be the same set: it undoes the mark below.
FORMULA_TRIGGERS = "=+-@\t\r"
# Text that gets one more leading quote: a trigger, or quotes then a trigger (see neutralise_formula).
_MARK_NEEDED = re.compile("'*[" + re.escape(FORMULA_TRIGGERS) + "]")
_MARK_START = frozenset("'" + FORMULA_TRIGGERS)


def json_url(date: str) -> str:
    return f"/d/{date}.json"


def csv_url(date: str) -> str:
    return f"/d/{date}.csv"


def batch_document(batch: Batch) -> dict:
    doc: dict = {"date": batch.date}
    for key, value in (("generated_at", batch.generated_at), ("model", batch.model), ("fields", batch.fields)):
        if value is not None:
            doc[key] = value
    doc["predictions"] = batch.items
    return doc


def batch_json(batch: Batch) -> bytes:
    """The whole batch as the contract's JSON document (what `publish FILE.json` takes back)."""
    return (json.dumps(batch_document(batch), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            + "\n").encode("utf-8")


def csv_columns(batch: Batch) -> list[str]:
    """id first, then the declared fields, then any other field in first-seen order."""
    names: dict[str, None] = {"id": None}
    if isinstance(batch.fields, list):
        names.update(dict.fromkeys(f["name"] for f in batch.fields
                                   if isinstance(f, dict) and isinstance(f.get("name"), str)))
    for item in batch.items:
        names.update(dict.fromkeys(item))
    return list(names)


def neutralise_formula(text: str) -> str:
    """The text a spreadsheet shows as text: one `'` in front when it would run as a formula.

    The rule: text that starts with zero or more `'` and then one of FORMULA_TRIGGERS gets one more
    `'` in front; any other text is left alone. `=1+2` is written `'=1+2` (OWASP's mark: spreadsheets
    show the rest as text), and `'=x` is written `''=x` so that text which already looks marked
    stays apart from text that was marked. The publish command (publishing.batch_input.restore_formula)
    removes one `'` from text that starts with one or more `'` and then a trigger, and leaves all other
    text alone, so reading what this wrote gives back every string exactly.
    """
    return "'" + text if _needs_mark(text) else text


def _needs_mark(text: str) -> bool:
    # The set test first: almost no cell starts with a quote or a trigger, and it is cheaper than a match.
    return text[:1] in _MARK_START and _MARK_NEEDED.match(text) is not None


def csv_cell(value: object) -> tuple[str, bool]:
    """(text, quoted) of one value. Numbers as their shortest exact form (repr), so the reader gets
    the same number; null as an empty cell; text that would read as a number quoted.

    Text a spreadsheet would run as a formula (neutralise_formula) is marked with a leading `'` and
    quoted, as OWASP recommends. Numbers are never marked: -3.5 the number stays `-3.5`, while the
    text "-3.5" is written `"'-3.5"`.
    """
    if value is None:
        return "", False
    if isinstance(value, bool):
        return ("true" if value else "false"), False
    if is_number(value):
        return repr(value), False
    text = str(value)
    if _needs_mark(text):
        # Quoted as well: OWASP's advice is both, and a marked "'-3.5" is then text to any reader.
        return "'" + text, True
    return text, (not text or bool(_NUMBER_LIKE.fullmatch(text)) or any(c in text for c in ',"\r\n')
                  or text != text.strip())


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _csv_text(cell: tuple[str, bool]) -> str:
    text, quoted = cell
    return _quote(text) if quoted else text


def batch_csv(batch: Batch) -> bytes:
    """The whole batch as CSV with a header row, UTF-8, CRLF line ends (RFC 4180).

    Every text cell, field names included, goes through csv_cell, so none starts a formula.
    """
    columns = csv_columns(batch)
    out = io.StringIO()
    out.write(",".join(_csv_text(csv_cell(name)) for name in columns) + "\r\n")
    for item in batch.items:
        out.write(",".join(_csv_text(csv_cell(item.get(name))) for name in columns) + "\r\n")
    return out.getvalue().encode("utf-8")


def csv_round_trip_gaps(batch: Batch) -> list[str]:
    """Why the CSV of this batch would not read back (publishing.batch_input) to the same rows.

    Quoted cells read back as text, so `007`, `"42"` and `""` survive; what CSV cannot say is a
    boolean (it reads back as the text "true"/"false") or a missing field (it reads back as null).
    Text marked against formula injection (`=1+2` written `'=1+2`, see neutralise_formula) is no
    gap: the reader removes the mark, so every string, field names included, reads back as it was.
    The JSON download is exact for every batch.
    """
    gaps = []
    columns = csv_columns(batch)
    for n, item in enumerate(batch.items, 1):
        for name in columns:
            if name == "id":
                continue
            value = item.get(name, _MISSING) if isinstance(item, dict) else None
            if value is _MISSING:
                gaps.append(f"row {n}: no {name!r} (reads back as null)")
            elif isinstance(value, bool):
                gaps.append(f"row {n}: {name!r} is a boolean (reads back as text)")
    return gaps


_MISSING = object()


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


def downloads_of(batch: Batch) -> dict[str, bytes]:
    """path in the build -> bytes of the downloads of one batch."""
    return {json_url(batch.date).lstrip("/"): batch_json(batch), csv_url(batch.date).lstrip("/"): batch_csv(batch)}


def download_links(files: dict[str, bytes], date: str) -> list[dict]:
    """The links a batch page shows, with sizes, for the downloads in `files`."""
    links = []
    for kind, url in (("CSV", csv_url(date)), ("JSON", json_url(date))):
        body = files.get(url.lstrip("/"))
        if body is not None:
            links.append({"kind": kind, "url": url, "size": human_size(len(body)), "bytes": len(body)})
    return links


OPENAPI_NAME = "openapi.json"


def openapi_document(site_dir: str) -> bytes | None:
    """openapi.json of the project (beside site/), or None when this copy of the code has none."""
    path = os.path.join(os.path.dirname(os.path.abspath(site_dir)), OPENAPI_NAME)
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None
