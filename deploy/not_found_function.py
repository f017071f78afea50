"""The site's "page not found", scoped to the site: a Lambda@Edge origin-response function.

The bucket is private and CloudFront may not list it, so a missing page is S3's 403 (XML). Three
mechanisms were weighed against AWS's documentation:

- a custom error response (403 → /404.html) belongs to the whole distribution: it would also rewrite
  the API's JSON errors on /api/* (any status it maps);
- a CloudFront Function on viewer-response may change status and body, but "CloudFront doesn't invoke
  edge functions for viewer response events when the origin returns HTTP status code 400 or higher"
  (Restrictions on all edge functions): it never sees the 403;
- a Lambda@Edge function on origin-response "is invoked for all origin responses, including when the
  origin returns 400 or higher", may replace the body, and is associated with one behaviour: the site's.

So it is the third: this module's SOURCE, inline in the stage template (Python, x86_64: Lambda@Edge
has no arm64), published as a version (Lambda@Edge takes versions only) whose logical id carries the
code's hash, so a change of the page publishes a new version. Lambda@Edge functions live in us-east-1:
a stage stack elsewhere has no function, and a missing page there is S3's 403.

The page is self-contained: the site's CSP (`style-src 'self'`, no inline style) applies, and the
stylesheet's name is content-hashed and changes with every build, so it is plain semantic HTML.
CloudFront caches the answer like the origin's (the site behaviour's TTLs), so the function runs once
per missing path per edge cache lifetime, not per request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

MAX_INLINE_BYTES = 4096  # CloudFormation's limit for Code.ZipFile
PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    '<meta name="robots" content="noindex"><title>Page not found</title></head>'
    '<body><main><h1>Page not found</h1>'
    '<p>There is no page at this address. It may have been a date that is no longer shown.</p>'
    '<ul><li><a href="/">The latest predictions</a></li>'
    '<li><a href="/dates.html">Every date on this site</a></li>'
    '<li><a href="/docs/api.html">The API</a></li></ul></main></body></html>'
)
SOURCE = f'''"""Lambda@Edge, origin-response, the site's behaviour: a missing key becomes the 404 page."""

PAGE = {PAGE!r}
# The bucket answers 403 for a key that does not exist (no s3:ListBucket), 404 with it.
MISSING = ("403", "404")


def handler(event, context):
    response = event["Records"][0]["cf"]["response"]
    if response["status"] not in MISSING:
        return response
    return {{
        "status": "404",
        "statusDescription": "Not Found",
        "headers": {{
            "content-type": [{{"key": "Content-Type", "value": "text/html; charset=utf-8"}}],
            "cache-control": [{{"key": "Cache-Control", "value": "no-cache"}}],
        }},
        "bodyEncoding": "text",
        "body": PAGE,
    }}
'''


def code_hash() -> str:
    """Eight hex digits of the source: part of the version's logical id."""
    return hashlib.sha256(SOURCE.encode()).hexdigest()[:8]


def load_handler(source: str = SOURCE, name: str = "handler") -> Callable[[dict, Any], dict]:
    """The handler `name` of inline source text, loaded as Lambda loads index.py (tests and the local edge)."""
    namespace: dict[str, Any] = {"__name__": "index"}
    exec(compile(source, "index.py", "exec"), namespace)  # noqa: S102 - a template's own inline function
    return namespace[name]


if len(SOURCE.encode()) > MAX_INLINE_BYTES:  # pragma: no cover - a guard for whoever grows the page
    raise ValueError(f"the not-found function is {len(SOURCE.encode())} bytes; inline code allows {MAX_INLINE_BYTES}")
