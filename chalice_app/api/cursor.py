"""The opaque pagination cursor: where the next page starts, in which view of which batch.

A cursor pins the batch date, so a client walking `latest` keeps walking the batch it started
on even if a newer one is published meanwhile: every item exactly once, never a mix.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from chalice_app.contract import is_valid_date

MAX_CURSOR_LENGTH = 1024


class CursorError(ValueError):
    """The cursor was not made by this API (or was altered)."""


@dataclass(frozen=True)
class Cursor:
    date: str
    offset: int
    sort: str | None
    descending: bool
    q: str | None

    def encode(self) -> str:
        raw = json.dumps([1, self.date, self.offset, self.sort, self.descending, self.q],
                         separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        if len(text) > MAX_CURSOR_LENGTH:
            raise CursorError("cursor is too long")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            version, date, offset, sort, descending, q = json.loads(raw)
        except (binascii.Error, ValueError, TypeError):
            raise CursorError("cursor is not one this API made") from None
        valid = (
            version == 1
            and is_valid_date(date)
            and type(offset) is int and offset >= 0
            and (sort is None or isinstance(sort, str))
            and isinstance(descending, bool)
            and (q is None or isinstance(q, str))
        )
        if not valid:
            raise CursorError("cursor is not one this API made")
        return cls(date, offset, sort, descending, q)
