"""The prediction store: what S3 holds, cached per container.

Batches are parsed once and kept (a bounded LRU); the pointer, the date listing and every batch
are trusted for a TTL, then revalidated with a conditional GET (a 304 keeps the parsed copy).
When the source fails, the last good copy is served and marked stale; only when nothing cached
can answer does the caller get StoreUnavailable (the API turns it into a 503).
"""

from __future__ import annotations

import gc
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from chalice_app.contract import batch_key, is_valid_date, pointer_key
from chalice_app.logs import log_event
from chalice_app.store.batch import Batch, BatchContractError
from chalice_app.store.sources import CorruptObject, Fetched, NotFound, Source, SourceUnavailable

T = TypeVar("T")

# After a failed revalidation, wait this long before asking the source again, so that an S3
# outage costs one slow request every few seconds rather than every request.
FAULT_BACKOFF_SECONDS = 5.0
MAX_NEGATIVE_ENTRIES = 256


class BatchNotFound(Exception):
    """No batch for that date (or none at all for 'latest')."""


class StoreUnavailable(Exception):
    """The source failed and nothing cached can answer."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True)
class Answer(Generic[T]):
    value: T
    stale: bool = False  # served from cache because the source failed
    hit: bool = False  # answered without reading the object again


_MISSING = object()


@dataclass(frozen=True)
class _Failed:
    """A read that failed with nothing cached to serve instead, remembered for the backoff."""

    reason: str
    code: str


def _is_value(value: object) -> bool:
    return value is not _MISSING and not isinstance(value, _Failed)


@dataclass
class _Entry:
    value: Any
    etag: str | None
    fresh_until: float
    stale: bool = False


class PredictionStore:
    """Reads batches and the pointer from a Source, with the per-container cache."""

    def __init__(
        self,
        source: Source,
        prefix: str,
        *,
        pointer_ttl: float = 30.0,
        batch_ttl: float = 300.0,
        max_batches: int = 8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.prefix = prefix
        self.pointer_ttl = pointer_ttl
        self.batch_ttl = batch_ttl
        self.max_batches = max(1, max_batches)
        self.clock = clock
        self._lock = threading.RLock()
        self._meta: dict[str, _Entry] = {}
        self._batches: OrderedDict[str, _Entry] = OrderedDict()

    # -- public -----------------------------------------------------------------------------

    def dates(self) -> Answer[list[str]]:
        """Every published date, newest first."""
        return self._cached(self._meta, "dates", self.pointer_ttl,
                            lambda etag: self.source.list_dates(self.prefix), lambda v: v)

    def latest_date(self) -> Answer[str | None]:
        """The pointer's date; without a pointer, the newest dated batch; None when empty."""
        try:
            pointer = self._cached(self._meta, "pointer", self.pointer_ttl,
                                   lambda etag: self.source.get(pointer_key(self.prefix), etag),
                                   _parse_pointer)
        except (NotFound, StoreUnavailable) as exc:
            if isinstance(exc, StoreUnavailable) and exc.code != "contract":
                raise
            listing = self.dates()
            return Answer(listing.value[0] if listing.value else None, listing.stale, listing.hit)
        return pointer

    def batch(self, date: str) -> Answer[Batch]:
        """The batch of one date. Raises BatchNotFound or StoreUnavailable."""
        with self._lock:
            # Only valid dates ever get an entry, so a cached one skips the check (and the key).
            if date not in self._batches and not is_valid_date(date):
                raise BatchNotFound(date)
            try:
                answer = self._cached(self._batches, date, self.batch_ttl,
                                      lambda etag: self.source.get(batch_key(self.prefix, date), etag),
                                      _parse_batch_of(date))
            except NotFound:
                raise BatchNotFound(date) from None
            self._batches.move_to_end(date)
            if len(self._batches) > self.max_batches:
                self._evict()
            return answer

    def resolve(self, date: str) -> Answer[Batch]:
        """A date or 'latest' to its batch, with stale/hit combined over every read involved."""
        if date != "latest":
            return self.batch(date)
        latest = self.latest_date()
        if latest.value is None:
            raise BatchNotFound("latest")
        try:
            found = self.batch(latest.value)
        except BatchNotFound:
            # The pointer names a batch that is gone: the newest one that exists is latest.
            for other in self.dates().value:
                if other != latest.value:
                    found = self.batch(other)
                    break
            else:
                raise
        return Answer(found.value, found.stale or latest.stale, found.hit and latest.hit)

    # -- cache ------------------------------------------------------------------------------

    def _cached(self, table: dict, key: str, ttl: float,
                load: Callable[[str | None], Any], parse: Callable[[Any], Any]) -> Answer:
        with self._lock:
            now = self.clock()
            entry = table.get(key)
            if entry is not None and now < entry.fresh_until:
                if entry.value is _MISSING:
                    raise NotFound(key)
                if isinstance(entry.value, _Failed):
                    raise StoreUnavailable(entry.value.reason, entry.value.code)
                return Answer(entry.value, entry.stale, True)
            have = entry is not None and _is_value(entry.value)
            try:
                loaded = load(entry.etag if have else None)
                if loaded is None:  # 304: the parsed copy is still current
                    entry.fresh_until, entry.stale = now + ttl, False
                    return Answer(entry.value, False, True)
                value = parse(loaded)
            except NotFound:
                table[key] = _Entry(_MISSING, None, now + ttl)
                self._trim_negative(table)
                raise
            except (SourceUnavailable, CorruptObject, BatchContractError) as exc:
                code = exc.code if isinstance(exc, SourceUnavailable) else "contract"
                log_event("source_fault", key=key, code=code, reason=str(exc), served_stale=have)
                if have:
                    entry.fresh_until, entry.stale = now + FAULT_BACKOFF_SECONDS, True
                    return Answer(entry.value, True, True)
                # Nothing to serve: the failure itself is remembered for the backoff, so a cold
                # container does not spend attempts x timeout on every request of an outage.
                table[key] = _Entry(_Failed(str(exc), code), None, now + FAULT_BACKOFF_SECONDS)
                self._trim_negative(table)
                raise StoreUnavailable(str(exc), code) from None
            etag = loaded.etag if isinstance(loaded, Fetched) else None
            table[key] = _Entry(value, etag, now + ttl)
            return Answer(value, False, False)

    def _evict(self) -> None:
        real = [k for k, e in self._batches.items() if _is_value(e.value)]
        for key in real[: max(0, len(real) - self.max_batches)]:
            del self._batches[key]

    @staticmethod
    def _trim_negative(table: dict) -> None:
        # Missing dates and remembered failures alike: a client walking many dates must not grow it.
        missing = [k for k, e in table.items() if not _is_value(e.value)]
        for key in missing[: max(0, len(missing) - MAX_NEGATIVE_ENTRIES)]:
            del table[key]


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"{text[:20]} overflows a float")
    return value


def _load_json(fetched: Fetched) -> Any:
    """Strict JSON: NaN, Infinity and 1e400 are refused here, or every page holding one would be a 500."""
    try:
        return json.loads(fetched.body, parse_constant=_reject_constant, parse_float=_finite_float)
    except ValueError as exc:  # includes UnicodeDecodeError
        raise CorruptObject(f"not valid UTF-8 JSON: {exc}") from None


def _parse_batch_of(date: str) -> Callable[[Fetched], Batch]:
    def parse(fetched: Fetched) -> Batch:
        batch = _parse_batch(fetched)
        if batch.date != date:
            # Served under its key's date, its cursors would walk another date: a mix.
            raise BatchContractError(f"batch at the key of {date} says its date is {batch.date}")
        return batch

    return parse


def _parse_batch(fetched: Fetched) -> Batch:
    # Parsing allocates a few objects per row, and none of them can be cyclic garbage. With the
    # collector on, the container's first full collection (of everything imported, ~10 ms) tends
    # to land right here, in the middle of a cold start; paused, it comes requests later, once.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return Batch(_load_json(fetched), fetched.etag)
    finally:
        if was_enabled:
            gc.enable()


def _parse_pointer(fetched: Fetched) -> str:
    doc = _load_json(fetched)
    date = doc.get("date") if isinstance(doc, dict) else None
    if not is_valid_date(date):
        raise BatchContractError(f"pointer has no valid 'date': {date!r:.40}")
    return date
