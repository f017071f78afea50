"""The one JSON encoding of every answer: compact, UTF-8, and safe to embed anywhere."""

from __future__ import annotations

import json

# JSON allows these escaped; escaping them means no response can ever be read as markup.
_HTML_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def encode(payload: object) -> str:
    return html_safe(json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False))


def html_safe(text: str) -> str:
    """JSON text as encode() gives it, from the text json.dumps made with encode()'s options (the
    publish command stores batches that way: their rows are answered as stored, store/batch.py)."""
    return text.translate(_HTML_SAFE)
