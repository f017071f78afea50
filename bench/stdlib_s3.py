"""A botocore-free S3 GET (http.client + SigV4 by hand): a probe for the benchmark, not product code.

It measures how much of a cold start botocore is, to back the recommendation in
docs/performance.md. It signs a body-less GET the way botocore's S3SigV4Auth does (the smoke test
compares the two) and does none of the rest: no retries, redirects, virtual-host addressing,
checksums or error parsing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import os
from urllib.parse import quote, urlsplit

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def sign_get(url: str, region: str, access_key: str, secret_key: str, token: str | None,
             now: dt.datetime) -> dict[str, str]:
    """The headers of a SigV4-signed GET of `url` (path-style, no query, no body)."""
    parts = urlsplit(url)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    headers = {"host": parts.netloc, "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": amz_date}
    if token:
        headers["x-amz-security-token"] = token
    names = sorted(headers)
    canonical = "\n".join(["GET", quote(parts.path or "/", safe="/~"), "",
                           "".join(f"{n}:{headers[n]}\n" for n in names), ";".join(names), EMPTY_SHA256])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                                f"SignedHeaders={';'.join(names)}, Signature={signature}")
    return headers


class StdlibS3:
    """GET objects from AWS_ENDPOINT_URL (or S3) with credentials from the environment."""

    def __init__(self) -> None:
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or "https://s3.amazonaws.com"
        self.base = urlsplit(endpoint)
        self.region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        if self.base.scheme == "https":
            self.conn: http.client.HTTPConnection = http.client.HTTPSConnection(self.base.netloc, timeout=2)
        else:
            self.conn = http.client.HTTPConnection(self.base.netloc, timeout=2)

    def get(self, bucket: str, key: str) -> tuple[bytes, str | None]:
        path = f"/{bucket}/{quote(key, safe='/~')}"
        headers = sign_get(f"{self.base.scheme}://{self.base.netloc}{path}", self.region,
                           os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"],
                           os.environ.get("AWS_SESSION_TOKEN"), dt.datetime.now(dt.UTC))
        self.conn.request("GET", path, headers=headers)
        response = self.conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise OSError(f"GET {path}: HTTP {response.status}")
        return body, response.getheader("Content-Encoding")
