"""Where batch bytes come from: the S3 bucket, or a folder laid out like it.

Both answer the same three questions (get one object, maybe conditionally; list the dates), and
translate every failure into one of three exceptions the store knows how to handle.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from typing import Any, Protocol

from chalice_app.aws_clients import error_code
from chalice_app.contract import BATCH_FILE, is_valid_date


class NotFound(Exception):
    """The object does not exist."""


class SourceUnavailable(Exception):
    """The source could not be read now (network, throttling, permissions, missing bucket)."""

    def __init__(self, reason: str, code: str = "unavailable") -> None:
        super().__init__(reason)
        self.code = code


class CorruptObject(Exception):
    """The object exists but its bytes cannot be decoded (truncated gzip, not UTF-8, ...)."""


@dataclass(frozen=True)
class Fetched:
    body: bytes  # always decompressed
    etag: str


class Source(Protocol):
    def get(self, key: str, if_none_match: str | None = None) -> Fetched | None:
        """The object's bytes, or None when it still has the ETag `if_none_match`."""

    def list_dates(self, prefix: str) -> list[str]:
        """Every date that has a folder under the prefix, newest first."""


GZIP_MAGIC = b"\x1f\x8b"


def decode_body(raw: bytes, content_encoding: str | None) -> bytes:
    """Undo gzip whether S3 labelled it or not: a mislabelled batch must still be read."""
    if (content_encoding or "").lower() == "gzip" or raw[:2] == GZIP_MAGIC:
        try:
            return _gunzip(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise CorruptObject(f"gzip body cannot be decompressed: {exc}") from None
    return raw


def _gunzip(raw: bytes) -> bytes:
    # One zlib call (it checks the gzip header and CRC itself) is ~20% faster than
    # gzip.decompress on a large batch, which is on a cold start's path.
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    data = inflater.decompress(raw)
    if not inflater.eof:
        raise EOFError("compressed body ended before the end-of-stream marker")
    if inflater.unused_data:
        # More after the first member (concatenated gzip files): the gzip module's rules apply.
        return gzip.decompress(raw)
    return data


class S3Source:
    """Reads the predictions bucket through one botocore client."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def get(self, key: str, if_none_match: str | None = None) -> Fetched | None:
        from botocore.exceptions import ClientError

        kwargs = {"Bucket": self.bucket, "Key": key}
        if if_none_match:
            kwargs["IfNoneMatch"] = if_none_match
        try:
            response = self.client.get_object(**kwargs)
            raw = response["Body"].read()
        except ClientError as exc:
            code = error_code(exc)
            if code in ("304", "NotModified"):
                return None
            if code in ("NoSuchKey", "404"):
                raise NotFound(key) from None
            raise SourceUnavailable(f"S3 {code or 'error'} reading {key}", code or "error") from None
        except Exception as exc:  # noqa: BLE001 - timeouts, resets, truncated reads, botocore bugs
            # Whatever broke, a stale copy beats a 500: the store decides what to serve.
            raise SourceUnavailable(f"S3 unreachable reading {key}: {type(exc).__name__}",
                                    type(exc).__name__) from None
        return Fetched(decode_body(raw, response.get("ContentEncoding")), response.get("ETag", ""))

    def list_dates(self, prefix: str) -> list[str]:
        from botocore.exceptions import ClientError

        dates: list[str] = []
        kwargs = {"Bucket": self.bucket, "Prefix": prefix, "Delimiter": "/"}
        try:
            while True:
                page = self.client.list_objects_v2(**kwargs)
                for common in page.get("CommonPrefixes", ()):
                    date = common["Prefix"][len(prefix) :].rstrip("/")
                    if is_valid_date(date):
                        dates.append(date)
                if not page.get("IsTruncated"):
                    break
                kwargs["ContinuationToken"] = page["NextContinuationToken"]
        except ClientError as exc:
            code = error_code(exc) or "error"
            raise SourceUnavailable(f"S3 {code} listing {prefix}", code) from None
        except Exception as exc:  # noqa: BLE001 - as in get()
            raise SourceUnavailable(f"S3 unreachable listing {prefix}: {type(exc).__name__}",
                                    type(exc).__name__) from None
        return sorted(dates, reverse=True)


class DirSource:
    """A local folder laid out like the bucket (for build_site.py --source DIR and tests)."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)

    def get(self, key: str, if_none_match: str | None = None) -> Fetched | None:
        path = os.path.join(self.root, *key.split("/"))
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            raise NotFound(key) from None
        except OSError as exc:
            raise SourceUnavailable(f"cannot read {path}: {exc.strerror}") from None
        etag = '"' + hashlib.md5(raw, usedforsecurity=False).hexdigest() + '"'
        if if_none_match == etag:
            return None
        return Fetched(decode_body(raw, None), etag)

    def list_dates(self, prefix: str) -> list[str]:
        folder = os.path.join(self.root, *prefix.strip("/").split("/")) if prefix else self.root
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return []
        return sorted(
            (n for n in names if is_valid_date(n) and os.path.isfile(os.path.join(folder, n, BATCH_FILE))),
            reverse=True,
        )
