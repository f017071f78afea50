"""The site's "page not found", scoped to the site: a CloudFront Function on the default behaviour.

The bucket is private and CloudFront may not list it, so a missing page is S3's 403 (XML). A custom
error response would turn it into a page, but custom error responses belong to the whole distribution:
they would also rewrite the API's own JSON errors (its 404 `batch_not_found`, API Gateway's 403s).
A viewer-response function on the default behaviour alone changes the status and the body of what the
bucket answered and never sees an `/api/*` response (CloudFront Functions may replace both since 2023,
runtime cloudfront-js-2.0).

The page is self-contained: the site's CSP (`style-src 'self'`, no inline style) applies, and the
stylesheet's name is content-hashed and changes with every build, so it is plain semantic HTML.
"""

from __future__ import annotations

import json

# The codes the bucket answers for a key that does not exist (403 without s3:ListBucket, 404 with it).
MISSING = (403, 404)
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
MAX_CODE_BYTES = 10 * 1024  # CloudFront Functions' size limit


def function_code() -> str:
    """The function's JavaScript (cloudfront-js-2.0)."""
    code = (
        f"var PAGE = {json.dumps(PAGE)};\n"
        "function handler(event) {\n"
        "  var response = event.response;\n"
        f"  if ({' || '.join(f'response.statusCode === {code}' for code in MISSING)}) {{\n"
        "    response.statusCode = 404;\n"
        "    response.statusDescription = 'Not Found';\n"
        "    response.headers['content-type'] = {value: 'text/html; charset=utf-8'};\n"
        "    response.headers['cache-control'] = {value: 'no-cache'};\n"
        "    delete response.headers['etag'];\n"
        "    delete response.headers['last-modified'];\n"
        "    response.body = {encoding: 'text', data: PAGE};\n"
        "  }\n"
        "  return response;\n"
        "}\n"
    )
    if len(code.encode()) > MAX_CODE_BYTES:
        raise ValueError(f"the not-found function is {len(code.encode())} bytes; CloudFront allows {MAX_CODE_BYTES}")
    return code
