"""The one JSON encoding of every answer: compact, UTF-8, and safe to embed anywhere."""

from __future__ import annotations

import json

# JSON allows these escaped; escaping them means no response can ever be read as markup.
_HTML_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def encode(payload: object) -> str:
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.translate(_HTML_SAFE)
