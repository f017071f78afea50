"""The local edge's answers and its cache: what is stored, for how long, per CloudFront's rules.

An `Answer` is one HTTP answer as the edge handles it (from an origin, the cache, or CloudFront itself);
`ttl_for` says how long CloudFront keeps it (AWS: "Manage how long content stays in the cache", "How
CloudFront processes HTTP 4xx and 5xx status codes"); `Cache` is the bounded store the edge keys by the
cache policy. tools/edge.py uses them; tools/edge_functions.py changes answers.
"""

from __future__ import annotations

import email.utils
import http
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from tools.cloudfront import Behavior

Headers = list[tuple[str, str]]
# no-store/no-cache/private keep only these from the cache.
ERROR_CACHED = frozenset({400, 403, 404, 405, 410, 414, 500, 501, 502, 503, 504})
ERROR_HONOURS_NO_STORE = frozenset({404, 410, 414, 501})
DEFAULT_ERROR_TTL = 10.0
CACHEABLE = frozenset({200, 203, 206, 300, 301, 302, 307, 308})
CACHE_ENTRIES = 5000


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _has(headers: Headers, name: str) -> str | None:
    name = name.lower()
    return next((v for k, v in headers if k.lower() == name), None)


def _without(headers: Headers, *names: str) -> Headers:
    drop = {n.lower() for n in names}
    return [(k, v) for k, v in headers if k.lower() not in drop]


def cache_directives(value: str | None) -> dict[str, str]:
    found = {}
    for part in (value or "").split(","):
        name, _, arg = part.strip().partition("=")
        if name:
            found[name.strip().lower()] = arg.strip().strip('"')
    return found


def _seconds(text: str | None) -> float | None:
    return float(text) if text is not None and text.isdigit() else None


def ttl_for(status: int, headers: Headers, behavior: Behavior, error_min_ttl: float | None) -> float | None:
    """How long CloudFront keeps this answer (None: not stored), per AWS's "Manage how long content
    stays in the cache" and "How CloudFront processes HTTP 4xx and 5xx status codes"."""
    policy = behavior.cache
    cc = cache_directives(_has(headers, "Cache-Control"))
    given = _seconds(cc.get("s-maxage")) if "s-maxage" in cc else _seconds(cc.get("max-age"))
    if given is None and _has(headers, "Expires"):
        try:
            given = max(0.0, email.utils.parsedate_to_datetime(_has(headers, "Expires") or "").timestamp()
                        - time.time())
        except (TypeError, ValueError):
            given = 0.0  # an invalid date means "already expired" (RFC 9111)
    if status in ERROR_CACHED:
        minimum = DEFAULT_ERROR_TTL if error_min_ttl is None else error_min_ttl
        if status in ERROR_HONOURS_NO_STORE and {"no-store", "no-cache", "private"} & set(cc):
            return None
        if given is not None:
            return max(min(given, policy.max_ttl), minimum)
        return minimum
    if status not in CACHEABLE:
        return None
    if {"no-store", "private"} & set(cc):
        return float(policy.min_ttl) if policy.min_ttl > 0 else None
    if "no-cache" in cc:
        return float(policy.min_ttl)  # 0: kept, but revalidated with the origin on every request
    if given is not None:
        return float(min(max(given, policy.min_ttl), policy.max_ttl))
    return float(policy.default_ttl)


@dataclass
class Answer:
    status: int
    reason: str
    headers: Headers
    body: bytes
    x_cache: str = "Miss from cloudfront"
    origin_status: int | None = None  # what the origin said (None: CloudFront answered itself)
    age: int | None = None


@dataclass
class Entry:
    answer: Answer
    stored: float
    ttl: float

    def fresh(self, now: float) -> bool:
        return now - self.stored < self.ttl


class Cache:
    """The edge cache: a bounded, thread-safe map of cache keys to stored answers."""

    def __init__(self, size: int = CACHE_ENTRIES) -> None:
        self._items: OrderedDict[tuple, Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def get(self, key: tuple) -> Entry | None:
        with self._lock:
            entry = self._items.get(key)
            if entry is not None:
                self._items.move_to_end(key)
            return entry

    def put(self, key: tuple, entry: Entry) -> None:
        with self._lock:
            self._items[key] = entry
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def drop(self, key: tuple) -> None:
        with self._lock:
            self._items.pop(key, None)

    def clear(self, only: Callable[[tuple], bool] | None = None) -> None:
        """Forget every answer, or those whose key `only` picks."""
        with self._lock:
            if only is None:
                self._items.clear()
            else:
                for key in [k for k in self._items if only(k)]:
                    del self._items[key]

    def invalidate(self, paths: list[str]) -> int:
        """CloudFront's invalidation of `paths`; returns how many answers were forgotten. A path matches
        the request's path and query string ("/a?b=1"): exactly, or, ending in `*`, every one it starts
        ("/a*": "/a", "/a?b=1", "/a/b"). Every header, cookie and encoding variant goes with it (AWS,
        "What you need to know when invalidating paths")."""

        def uri(key: tuple) -> str:
            return key[1] + ("?" + "&".join(key[2]) if key[2] else "")

        def matches(key: tuple) -> bool:
            target = uri(key)
            return any(target.startswith(p[:-1]) if p.endswith("*") else target == p for p in paths)

        with self._lock:
            gone = [k for k in self._items if matches(k)]
            for key in gone:
                del self._items[key]
        return len(gone)


class InvalidationFeed:
    """The local edge learns of invalidations as CloudFront's edges do, from the distribution's
    invalidation list: every `interval` seconds it lists the invalidations of `distribution_id` at
    moto (AWS_ENDPOINT_URL; the site function and build_site.py --publish create them there) and
    applies the paths of each one it has not seen to `cache`. The ones there at start are history."""

    def __init__(self, cache: Cache, distribution_id: str, endpoint: str, interval: float = 0.2) -> None:
        import boto3

        self.cache, self.distribution_id, self.interval = cache, distribution_id, interval
        self.client = boto3.client("cloudfront", endpoint_url=endpoint or None, region_name="us-east-1")
        self.applied: list[tuple[str, list[str], int]] = []  # (id, paths, answers forgotten)
        self._seen = set(self._ids())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edge-invalidations", daemon=True)
        self._thread.start()

    def _ids(self) -> list[str]:
        listing = self.client.list_invalidations(DistributionId=self.distribution_id)["InvalidationList"]
        return [item["Id"] for item in listing.get("Items", [])]

    def poll(self) -> None:
        for ident in self._ids():
            if ident in self._seen:
                continue
            batch = self.client.get_invalidation(DistributionId=self.distribution_id, Id=ident)
            paths = batch["Invalidation"]["InvalidationBatch"]["Paths"].get("Items", [])
            self.applied.append((ident, paths, self.cache.invalidate(paths)))
            self._seen.add(ident)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - moto gone or busy: the next poll tries again
                continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
