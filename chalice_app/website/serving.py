"""How the site is served: content types, cache rules and security headers.

One policy with three users: the renderer writes it into manifest.json, the local edge applies it
to every answer, and the deploy sends it to S3 (object metadata) and CloudFront (the response
headers policy built below). Change a header here and all three follow.
"""

from __future__ import annotations

import os
import re

CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
# Everything else (pages, downloads, the feed, the manifest): browsers revalidate on every use; the
# edge keeps it a day, and every publish invalidates exactly what it changed (sync.invalidation_paths).
# With "no-cache" the edge revalidated every second (CachingOptimized's minimum TTL), so an
# invalidation bought about one second while nearly every read went to S3 (docs/website.md, caching).
EDGE_TTL_SECONDS = 86400
CACHE_REVALIDATE = f"public, max-age=0, s-maxage={EDGE_TTL_SECONDS}"
HASHED_ASSET = re.compile(r"assets/[^/]+\.[0-9a-f]{12}\.[a-z0-9]+")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".xml": "application/atom+xml; charset=utf-8",  # feed.xml, the only XML the site has
}
# Exactly what the pages use: own scripts, styles, favicon and the same-origin API. No inline
# script or style anywhere (the embedded JSON is data, which script-src does not govern).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HSTS_SECONDS = 63072000  # two years
FRAME_OPTION = "DENY"
REFERRER_POLICY = "strict-origin-when-cross-origin"
OPENER_POLICY = "same-origin"
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": FRAME_OPTION,
    "Referrer-Policy": REFERRER_POLICY,
    "Strict-Transport-Security": f"max-age={HSTS_SECONDS}; includeSubDomains",
    "Cross-Origin-Opener-Policy": OPENER_POLICY,
}


def content_type_for(path: str) -> str:
    return CONTENT_TYPES.get(os.path.splitext(path)[1].lower(), "application/octet-stream")


def cache_control_for(path: str) -> str:
    """Hashed assets never change under their name; everything else must be revalidated."""
    return CACHE_IMMUTABLE if HASHED_ASSET.fullmatch(path.lstrip("/")) else CACHE_REVALIDATE


def response_headers_policy_config(name: str, *, override: bool = True) -> dict:
    """CloudFront's response headers policy sending exactly SECURITY_HEADERS.

    override=True (the site) replaces whatever the origin sent; override=False (the API) adds a header
    only where the origin sent none, so the API keeps its own stricter CSP and referrer policy.
    """
    return {
        "Name": name,
        "Comment": "predictions site security headers" if override else "predictions API: fills in missing headers",
        "SecurityHeadersConfig": {
            "StrictTransportSecurity": {"Override": override, "AccessControlMaxAgeSec": HSTS_SECONDS,
                                        "IncludeSubdomains": True, "Preload": False},
            "ContentSecurityPolicy": {"Override": override, "ContentSecurityPolicy": CONTENT_SECURITY_POLICY},
            "ContentTypeOptions": {"Override": override},
            "FrameOptions": {"Override": override, "FrameOption": FRAME_OPTION},
            "ReferrerPolicy": {"Override": override, "ReferrerPolicy": REFERRER_POLICY},
        },
        # Not among CloudFront's security headers, so sent as a custom one (the local edge sends it too).
        "CustomHeadersConfig": {"Quantity": 1, "Items": [
            {"Header": "Cross-Origin-Opener-Policy", "Value": OPENER_POLICY, "Override": override}]},
    }
