"""The prediction store: what S3 holds, cached per container.

Batches are parsed once and kept (a bounded LRU); the pointer, the date listing and every batch
are trusted for a TTL, then revalidated with a conditional GET (a 304 keeps the parsed copy).
When the source fails, the last good copy is served and marked stale; only when nothing cached
can answer does the caller get StoreUnavailable (the API turns it into a 503).
"""

from __future__ import annotations

import gc
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from chalice_app.config.settings import Settings
from chalice_app.contract import (
    GATE_METADATA,
    GATE_VERDICTS,
    MD5_METADATA,
    SHA256_METADATA,
    VALIDATED_MARK,
    VALIDATED_METADATA,
    batch_key,
    is_valid_date,
    pointer_key,
    report_key,
    retracted_key,
)
from chalice_app.logs import log_event
from chalice_app.store import contract_json
from chalice_app.store.batch import Batch, BatchContractError
from chalice_app.store.sources import CorruptObject, Fetched, NotFound, Source, SourceUnavailable

T = TypeVar("T")

# After a failed revalidation, wait this long before asking the source again, so that an S3
# outage costs one slow request every few seconds rather than every request.
FAULT_BACKOFF_SECONDS = 5.0
MAX_NEGATIVE_ENTRIES = 256
# The byte bound is checked whenever a batch is read, and once every this many answers from memory:
# those grow a batch only by the item texts they encode (a page's at most), and summing every
# batch's size on each request would cost more than the answer itself.
EVICT_CHECK_EVERY = 256
DEFAULT_MAX_JSON_DEPTH = Settings().max_json_depth
DEFAULT_MAX_BATCH_ITEMS = Settings().max_batch_items
DEFAULT_MAX_CACHED_BYTES = Settings().max_cached_bytes


class BatchNotFound(Exception):
    """No batch for that date (or none at all for 'latest')."""


class StoreUnavailable(Exception):
    """The source failed and nothing cached can answer.

    `contract` is True when the object was read but breaks the contract (corrupt, too large, ...)
    rather than the source being unreachable: for the pointer, that means "no usable pointer".
    """

    def __init__(self, reason: str, code: str, contract: bool | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.contract = code == "contract" if contract is None else contract


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
    contract: bool


def _is_value(value: object) -> bool:
    return value is not _MISSING and not isinstance(value, _Failed)


@dataclass
class _Entry:
    value: Any
    etag: str | None
    fresh_until: float
    stale: bool = False
    checked: int = 0  # when the source last confirmed the value, in the store's read order


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
        max_bytes: int = DEFAULT_MAX_CACHED_BYTES,
        max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
        max_batch_items: int = DEFAULT_MAX_BATCH_ITEMS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.prefix = prefix
        self.pointer_ttl = pointer_ttl
        self.batch_ttl = batch_ttl
        self.max_batches = max(1, max_batches)
        # Parsed batches are also bounded by what they hold (Batch.nbytes); the batch being served
        # is always kept, even alone over the bound. 0: no byte bound.
        self.max_bytes = max_bytes
        self.max_json_depth = max_json_depth
        self.max_batch_items = max_batch_items
        self.clock = clock
        self._lock = threading.RLock()
        self._hits_since_evict = 0
        self._reads = 0  # counts the source's answers, to tell which of two cached reads is newer
        self._meta: dict[str, _Entry] = {}
        self._batches: OrderedDict[str, _Entry] = OrderedDict()
        self._reports: dict[str, _Entry] = {}

    # -- public -----------------------------------------------------------------------------

    def dates(self) -> Answer[list[str]]:
        """Every published date (its batch key exists), newest first. See overview() for the
        listing and the latest date as one consistent answer."""
        return self._cached(self._meta, "dates", self.pointer_ttl,
                            lambda etag: self.source.list_dates(self.prefix), lambda v: v)

    def latest_date(self) -> Answer[str | None]:
        """The pointer's date; without a pointer, the newest dated batch; None when empty."""
        try:
            pointer = self._cached(self._meta, "pointer", self.pointer_ttl,
                                   lambda etag: self.source.get(pointer_key(self.prefix), etag),
                                   _parse_pointer_of(self.max_json_depth))
        except (NotFound, StoreUnavailable) as exc:
            if isinstance(exc, StoreUnavailable) and not exc.contract:
                raise
            # No pointer, or one that breaks the contract (corrupt, too deep, too large): as documented
            # for a missing pointer, the newest dated batch is latest.
            listing = self.dates()
            return Answer(listing.value[0] if listing.value else None, listing.stale, listing.hit)
        return pointer

    def overview(self) -> Answer[tuple[str | None, list[str]]]:
        """(latest date, every date newest first), consistent with each other whatever the TTLs.

        The pointer and the listing are cached apart, so a listing read before the pointer moved
        may not hold the pointer's date yet: it is then read again (at most once per pointer read,
        never during a fault's backoff). A pointer naming a date with no batch is treated as
        resolve('latest') treats it: the newest batch that exists is latest. So `latest` is always
        one of `dates`, and it is what /predictions/latest serves.
        """
        with self._lock:
            latest = self.latest_date()
            listing = self.dates()
            value = latest.value
            if value is not None and value not in listing.value:
                if self._checked("dates") < self._checked("pointer"):
                    self._expire("dates")
                    listing = self.dates()
                if value not in listing.value:
                    cached = self._batches.get(value)
                    if cached is not None and _is_value(cached.value):
                        # Read and parsed already (a listing served stale during a fault, say).
                        listing = Answer(sorted([*listing.value, value], reverse=True), listing.stale,
                                         listing.hit)
                    else:
                        value = listing.value[0] if listing.value else None
            return Answer((value, listing.value), latest.stale or listing.stale, latest.hit and listing.hit)

    def batch(self, date: str) -> Answer[Batch]:
        """The batch of one date. Raises BatchNotFound or StoreUnavailable."""
        with self._lock:
            # Only valid dates ever get an entry, so a cached one skips the check (and the key).
            if date not in self._batches and not is_valid_date(date):
                raise BatchNotFound(date)
            try:
                answer = self._cached(self._batches, date, self.batch_ttl,
                                      lambda etag: self.source.get(batch_key(self.prefix, date), etag),
                                      _parse_batch_of(date, self.max_json_depth, self.max_batch_items))
            except NotFound:
                # A listed date whose batch is gone: the listing is out of date, read it again.
                listing, missing = self._meta.get("dates"), self._batches.get(date)
                if (listing is not None and _is_value(listing.value) and date in listing.value
                        and missing is not None and listing.checked < missing.checked):
                    self._expire("dates")
                raise BatchNotFound(date) from None
            self._batches.move_to_end(date)
            self._hits_since_evict += 1
            if (len(self._batches) > self.max_batches or not answer.hit
                    or (self.max_bytes and self._hits_since_evict >= EVICT_CHECK_EVERY)):
                self._hits_since_evict = 0
                self._evict()
            return answer

    def report(self, date: str) -> Answer[dict]:
        """The publish gate's report on the batch of a date (`{date}/report.json`), cached as a batch is.
        Raises BatchNotFound (no such report: no batch, or one the publish command did not store) or
        StoreUnavailable."""
        if not is_valid_date(date):
            raise BatchNotFound(date)
        with self._lock:
            try:
                answer = self._cached(self._reports, date, self.batch_ttl,
                                      lambda etag: self.source.get(report_key(self.prefix, date), etag),
                                      _parse_report_of(self.max_json_depth))
            except NotFound:
                raise BatchNotFound(date) from None
            if len(self._reports) > self.max_batches * 4:
                # Small, but a client walking every date must not grow them without end.
                for key in list(self._reports)[: len(self._reports) - self.max_batches * 4]:
                    del self._reports[key]
            return answer

    def retracted(self, date: str) -> bool:
        """Whether a retract withdrew this date (its mark `{prefix}retracted/<date>.json` exists), as
        fresh as the pointer. False when it cannot be told (S3 failing): the answer still serves."""
        if not is_valid_date(date):
            return False
        try:
            self._cached(self._meta, f"retracted:{date}", self.pointer_ttl,
                         lambda etag: self.source.get(retracted_key(self.prefix, date), etag), lambda _: True)
        except (NotFound, StoreUnavailable):
            return False
        return True

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

    def _checked(self, key: str) -> int:
        """When the source last confirmed this _meta entry (0: never, or no value to confirm)."""
        entry = self._meta.get(key)
        return entry.checked if entry is not None and _is_value(entry.value) else 0

    def _expire(self, key: str) -> None:
        """Make the next read of this _meta entry ask the source, unless a fault's backoff is on."""
        entry = self._meta.get(key)
        if entry is not None and _is_value(entry.value) and not entry.stale:
            entry.fresh_until = -math.inf

    def _next_read(self) -> int:
        self._reads += 1
        return self._reads

    def _cached(self, table: dict, key: str, ttl: float,
                load: Callable[[str | None], Any], parse: Callable[[Any], Any]) -> Answer:
        with self._lock:
            now = self.clock()
            entry = table.get(key)
            if entry is not None and now < entry.fresh_until:
                if entry.value is _MISSING:
                    raise NotFound(key)
                if isinstance(entry.value, _Failed):
                    raise StoreUnavailable(entry.value.reason, entry.value.code, entry.value.contract)
                return Answer(entry.value, entry.stale, True)
            have = entry is not None and _is_value(entry.value)
            try:
                loaded = load(entry.etag if have else None)
                if loaded is None:  # 304: the parsed copy is still current
                    entry.fresh_until, entry.stale, entry.checked = now + ttl, False, self._next_read()
                    return Answer(entry.value, False, True)
                value = parse(loaded)
            except NotFound:
                table[key] = _Entry(_MISSING, None, now + ttl, checked=self._next_read())
                self._trim_negative(table)
                raise
            except (SourceUnavailable, CorruptObject, BatchContractError) as exc:
                # A contract fault (the object was read, but is corrupt, too large, too deep, ...)
                # is handled like an outage: logged once, the last good copy served if there is one.
                contract = not isinstance(exc, SourceUnavailable)
                code = getattr(exc, "code", "contract")
                log_event("source_fault", key=key, code=code, reason=str(exc), served_stale=have)
                if have:
                    entry.fresh_until, entry.stale = now + FAULT_BACKOFF_SECONDS, True
                    return Answer(entry.value, True, True)
                # Nothing to serve: the failure itself is remembered for the backoff, so a cold
                # container does not spend attempts x timeout on every request of an outage.
                table[key] = _Entry(_Failed(str(exc), code, contract), None, now + FAULT_BACKOFF_SECONDS)
                self._trim_negative(table)
                raise StoreUnavailable(str(exc), code, contract) from None
            etag = loaded.etag if isinstance(loaded, Fetched) else None
            table[key] = _Entry(value, etag, now + ttl, checked=self._next_read())
            return Answer(value, False, False)

    def _evict(self) -> None:
        """The least recently used batches out, past MAX_CACHED_BATCHES or MAX_CACHED_BYTES (the
        most recent one, being served, always stays)."""
        real = [(k, e.value) for k, e in self._batches.items() if _is_value(e.value)]
        drop = max(0, len(real) - self.max_batches)
        if self.max_bytes:
            held = sum(batch.nbytes for _, batch in real[drop:])
            while drop < len(real) - 1 and held > self.max_bytes:
                held -= real[drop][1].nbytes
                drop += 1
        for key, _ in real[:drop]:
            del self._batches[key]

    @staticmethod
    def _trim_negative(table: dict) -> None:
        # Missing dates and remembered failures alike: a client walking many dates must not grow it.
        missing = [k for k, e in table.items() if not _is_value(e.value)]
        for key in missing[: max(0, len(missing) - MAX_NEGATIVE_ENTRIES)]:
            del table[key]


def _load_json(fetched: Fetched, max_depth: int = DEFAULT_MAX_JSON_DEPTH) -> Any:
    """Strict JSON (see contract_json): NaN, 1e400, nesting past max_depth, a repeated key and a
    lone surrogate are CorruptObject here, or every page holding one would be a 500 (or worse)."""
    return contract_json.loads(fetched.body, max_depth)


def _parse_report_of(max_depth: int = DEFAULT_MAX_JSON_DEPTH) -> Callable[[Fetched], dict]:
    def parse(fetched: Fetched) -> dict:
        report = _load_json(fetched, max_depth)
        if not isinstance(report, dict):
            raise CorruptObject("report.json is not a JSON object")
        # The profile is for the next publish's gate, not for readers (and is most of the bytes).
        return {key: value for key, value in report.items() if key != "profile"}

    return parse


def _parse_batch_of(date: str, max_depth: int = DEFAULT_MAX_JSON_DEPTH,
                    max_items: int = DEFAULT_MAX_BATCH_ITEMS) -> Callable[[Fetched], Batch]:
    def parse(fetched: Fetched) -> Batch:
        batch = _parse_batch(fetched, max_depth, max_items)
        if batch.date != date:
            # Served under its key's date, its cursors would walk another date: a mix.
            raise BatchContractError(f"batch at the key of {date} says its date is {batch.date}")
        return batch

    return parse


def _parse_batch(fetched: Fetched, max_depth: int = DEFAULT_MAX_JSON_DEPTH,
                 max_items: int = DEFAULT_MAX_BATCH_ITEMS) -> Batch:
    # Parsing allocates a few objects per row, and none of them can be cyclic garbage. With the
    # collector on, the container's first full collection (of everything imported, ~10 ms) tends
    # to land right here, in the middle of a cold start; paused, it comes requests later, once.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        # Held as the rows' JSON text plus an id index (store/batch.py), parsed a chunk at a time:
        # a batch's peak memory is about its text plus ~150 bytes a row, not a dict per row.
        meta = fetched.metadata if fetched.metadata.get(VALIDATED_METADATA) == VALIDATED_MARK else {}
        md5 = meta.get(MD5_METADATA)
        batch = Batch.from_json(fetched.body, fetched.etag, max_depth=max_depth, max_items=max_items,
                                proven_sha256=meta.get(SHA256_METADATA),
                                proven_by_etag=bool(md5) and fetched.etag.strip('"') == md5)
        verdict = fetched.metadata.get(GATE_METADATA)
        batch.gate = verdict if verdict in GATE_VERDICTS else None
        return batch
    finally:
        if was_enabled:
            gc.enable()


def _parse_pointer_of(max_depth: int) -> Callable[[Fetched], str]:
    return lambda fetched: _parse_pointer(fetched, max_depth)


def _parse_pointer(fetched: Fetched, max_depth: int = DEFAULT_MAX_JSON_DEPTH) -> str:
    doc = _load_json(fetched, max_depth)
    date = doc.get("date") if isinstance(doc, dict) else None
    if not is_valid_date(date):
        raise BatchContractError(f"pointer has no valid 'date': {date!r:.40}")
    return date
