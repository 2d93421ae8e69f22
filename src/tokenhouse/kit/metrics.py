"""The service's Prometheus metrics (`GET /metrics`, metrics/router.py), and what counts them.

Every series is named `tokenhouse_*` and labelled only by bounded values: a route's
template (never the raw path, which holds token and account ids), a method, a status, an
outcome, a cache's name. No token id, secret or client address is ever a label.

Several worker processes (`tokenhouse serve --workers N`) are summed by prometheus_client's
multiprocess mode: `serve` gives the workers a private directory in
PROMETHEUS_MULTIPROC_DIR, each process writes its values to memory-mapped files there,
and whichever worker answers a scrape reads them all. prometheus_client picks the mode
when it is first imported, from the environment; one process (tests, `--workers 1`) keeps
its values in memory and reads its own.

The hot path touches no prometheus_client object: a request adds to plain ints and floats
of this process (its route's count and latency bucket), an authentication to an int, and
the caches (kit/cache.py) count their hits and misses in ints of their own. `sync()` adds
what was counted since it last ran to the prometheus_client metrics: when a scrape reads
them (the scraping process) and, with several workers, once a second in each worker
(SYNC_SECONDS), so that any worker's scrape shows every worker's counts within a second. (A
collector reading the ints at scrape time would show the scraping worker's alone; a
prometheus_client update per request cost 2-4 µs, a third of them on the file lock and
writes of multiprocess mode.) A worker killed outright loses at most its last second.
"""

import asyncio
import glob
import logging
import os
import re
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("tokenhouse.metrics")

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
SYNC_SECONDS = 1.0
# The label of a request no route matched (a 404, or a refusal before routing).
UNMATCHED = "unmatched"
# Methods are labelled as sent only when they are one of these: any other string a client
# sends is "other" (each new label value is a new series, kept for the process's life).
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
OUTCOMES = ("valid", "invalid", "disabled", "expired", "refused_network", "rate_limited")
# Seconds: the service answers from memory in well under a millisecond, and from the
# database in a few.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 10, 100, 500, 1000, 2000, 5000, 10_000, 50_000, 100_000)


def multiprocess_directory() -> str | None:
    """Where the workers' values are written (None: one process, values in memory). Read as
    prometheus_client read it at import."""
    return os.environ.get(MULTIPROCESS_ENV) or None


# No `_created` series: multiprocess mode has none, so one process and several show the
# same series. (The `type: ignore`s below: these prometheus_client functions are untyped.)
disable_created_metrics()  # type: ignore[no-untyped-call]

# The metrics of this process. Registered in a registry of their own, not the library's
# global one: what /metrics shows is exactly this list (no process or platform series,
# which multiprocess mode could not sum anyway).
REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter("tokenhouse_http_requests", "HTTP requests answered, by route template, "
                   "method and status.", ("route", "method", "status"), registry=REGISTRY)
LATENCY = Histogram("tokenhouse_http_request_duration_seconds", "Time from a request's "
                    "arrival in the app to the end of its response, by route template.",
                    ("route",), buckets=LATENCY_BUCKETS, registry=REGISTRY)
AUTHENTICATIONS = Counter("tokenhouse_authentications", "Outcomes of authenticating an API "
                          "token secret (requests and introspections).", ("outcome",),
                          registry=REGISTRY)
CACHE_HITS = Counter("tokenhouse_cache_hits", "Answers from an in-memory cache.", ("cache",),
                     registry=REGISTRY)
CACHE_MISSES = Counter("tokenhouse_cache_misses", "Look-ups an in-memory cache could not "
                       "answer (while it was enabled).", ("cache",), registry=REGISTRY)
# livesum: the entries of the workers running now (a stopped worker's memory is gone).
CACHE_ENTRIES = Gauge("tokenhouse_cache_entries", "Entries held by an in-memory cache.",
                      ("cache",), multiprocess_mode="livesum", registry=REGISTRY)
LAST_ACCESS_BATCH = Histogram("tokenhouse_last_access_flush_tokens", "Tokens whose "
                              "lastAccessAt one flush wrote.", buckets=BATCH_BUCKETS,
                              registry=REGISTRY)
LAST_ACCESS_FAILURES = Counter("tokenhouse_last_access_flush_failures", "Flushes of "
                               "lastAccessAt that failed (retried in the next round).",
                               registry=REGISTRY)
WEBHOOK_ATTEMPTS = Counter("tokenhouse_webhook_deliveries", "Attempts to deliver an audit "
                           "record to a webhook, by outcome: delivered, retrying (failed, "
                           "tried again later), failed (given up).", ("outcome",),
                           registry=REGISTRY)
WEBHOOK_OUTCOMES = ("delivered", "retrying", "failed")
for _outcome in WEBHOOK_OUTCOMES:
    WEBHOOK_ATTEMPTS.labels(_outcome)  # every outcome shown, as 0, from the start
# livemin: 0 as soon as any running worker is not receiving changes (its caches are then
# off and it reads the database for everything); 1 when every worker receives them.
INVALIDATION_LISTENING = Gauge("tokenhouse_invalidation_listening", "1 while the process "
                               "receives other processes' changes (its caches answer), "
                               "0 while it does not.", multiprocess_mode="livemin",
                               registry=REGISTRY)


# -- authentication --------------------------------------------------------------------------

# Counted here, published by `sync()`.
_auth_counts = dict.fromkeys(OUTCOMES, 0)
_auth_published = dict.fromkeys(OUTCOMES, 0)
for _outcome in OUTCOMES:
    AUTHENTICATIONS.labels(_outcome)  # every outcome shown, as 0, from the start


def count_auth(outcome: str) -> None:
    """Count one authentication `outcome` (one of OUTCOMES): a dict update, nothing more."""
    _auth_counts[outcome] += 1


# -- background work (not on a request's path: updated directly) -----------------------------

def observe_last_access_batch(tokens: int) -> None:
    LAST_ACCESS_BATCH.observe(tokens)


def count_last_access_failure() -> None:
    LAST_ACCESS_FAILURES.inc()


def count_webhook_attempt(outcome: str) -> None:
    """One delivery attempt's `outcome` (one of WEBHOOK_OUTCOMES)."""
    WEBHOOK_ATTEMPTS.labels(outcome).inc()


# The listeners of this process that hear changes now (one per app; tests run several).
_listening: set[int] = set()


def set_invalidation_listening(listening: bool, listener: object) -> None:
    """`listener` hears changes now, or no longer. The gauge is 1 while any listener of the
    process does: another app stopping in the same process (tests) does not clear it."""
    if listening:
        _listening.add(id(listener))
    else:
        _listening.discard(id(listener))
    INVALIDATION_LISTENING.set(1 if _listening else 0)


# -- caches ----------------------------------------------------------------------------------

class Counted(Protocol):
    """A cache that counts its hits and misses (kit/cache.TaggedCache)."""

    hits: int
    misses: int

    def __len__(self) -> int: ...


@dataclass(slots=True)
class _Watched:
    name: str
    cache: Counted
    hits: int = 0  # what was already added to the counters
    misses: int = 0


_watched: list[_Watched] = []


def watch_caches(caches: dict[str, Counted]) -> None:
    """Count these caches' hits, misses and entries (by name) from now on."""
    for name, cache in caches.items():
        _watched.append(_Watched(name, cache, cache.hits, cache.misses))
        CACHE_HITS.labels(name)  # shown (as 0) from the start
        CACHE_MISSES.labels(name)


def unwatch_caches(caches: Iterable[Counted]) -> None:
    """Stop counting these caches, after a last `sync()`."""
    sync()
    gone = {id(cache) for cache in caches}
    _watched[:] = [watched for watched in _watched if id(watched.cache) not in gone]


# -- publishing ------------------------------------------------------------------------------

def sync() -> None:
    """Add to the prometheus_client metrics what this process counted since the last sync."""
    for outcome, count in _auth_counts.items():
        if count != _auth_published[outcome]:
            AUTHENTICATIONS.labels(outcome).inc(count - _auth_published[outcome])
            _auth_published[outcome] = count
    for tally in list(_requests.values()):
        tally.publish()
    for timing in list(_timings.values()):
        timing.publish()
    for watched in _watched:
        cache = watched.cache
        hits, misses = cache.hits, cache.misses
        if hits != watched.hits:
            CACHE_HITS.labels(watched.name).inc(hits - watched.hits)
            watched.hits = hits
        if misses != watched.misses:
            CACHE_MISSES.labels(watched.name).inc(misses - watched.misses)
            watched.misses = misses
        CACHE_ENTRIES.labels(watched.name).set(len(cache))


async def sync_forever() -> None:
    """`sync()` every SYNC_SECONDS (several workers: the others read what this one wrote)."""
    while True:
        await asyncio.sleep(SYNC_SECONDS)
        try:
            sync()
        except Exception:  # never stop counting for one failed round
            log.exception("could not update the metrics")


def exposition() -> bytes:
    """Every series in Prometheus's text format (0.0.4): this process's, or with several
    workers all of theirs, summed."""
    sync()
    directory = multiprocess_directory()
    if directory is None:
        return generate_latest(REGISTRY)
    forget_dead_workers(directory)
    registry = CollectorRegistry()
    prometheus_multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
        registry, path=directory)
    return generate_latest(registry)


_LIVE_FILE = re.compile(r"gauge_live\w+_(\d+)\.db")


def forget_dead_workers(directory: str) -> None:
    """Drop the live gauges of processes that are gone (a worker killed, which could not
    say so itself): a dead worker's 0 would otherwise hold `livemin` at 0 for good. Its
    counters stay, as counters must."""
    for path in glob.glob(os.path.join(directory, "gauge_live*_*.db")):
        match = _LIVE_FILE.fullmatch(os.path.basename(path))
        if match is not None and not _alive(int(match.group(1))):
            prometheus_multiprocess.mark_process_dead(  # type: ignore[no-untyped-call]
                int(match.group(1)), directory)


def process_stopping() -> None:
    """This worker stops: its live gauges (entries, listening) go with it."""
    directory = multiprocess_directory()
    if directory is not None:
        prometheus_multiprocess.mark_process_dead(  # type: ignore[no-untyped-call]
            os.getpid(), directory)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


# -- requests --------------------------------------------------------------------------------

class _Timing:
    """The latencies of one route template: counts per bucket of LATENCY_BUCKETS (and one
    past the last), and their sum; what of them `sync()` already published."""

    __slots__ = ("buckets", "total", "_published", "_published_total", "_child")

    def __init__(self, template: str):
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0
        self._published = [0] * len(self.buckets)
        self._published_total = 0.0
        self._child = LATENCY.labels(template)

    def publish(self) -> None:
        # The histogram child's own values, bucket by bucket: prometheus_client offers no
        # way to add many observations at once. Its buckets are not cumulative (each
        # observation goes to the first bound it is under), as these are.
        for index, count in enumerate(self.buckets):
            if count != self._published[index]:
                self._child._buckets[index].inc(count - self._published[index])
                self._published[index] = count
        if self.total != self._published_total:
            self._child._sum.inc(self.total - self._published_total)
            self._published_total = self.total


class _Tally:
    """The requests of one (route template, method, status), and their route's timing."""

    __slots__ = ("count", "timing", "_published", "_child")

    def __init__(self, template: str, method: str, status: int):
        self.count = 0
        timing = _timings.get(template)
        if timing is None:
            timing = _timings[template] = _Timing(template)
        self.timing = timing
        self._published = 0
        self._child = REQUESTS.labels(template, method, str(status))

    def publish(self) -> None:
        if self.count != self._published:
            self._child.inc(self.count - self._published)
            self._published = self.count


# Bounded: templates are the app's routes (and UNMATCHED), methods METHODS and "other",
# statuses what the app answers.
_requests: dict[tuple[str, str, int], _Tally] = {}
_timings: dict[str, _Timing] = {}


class RequestMetrics:
    """Pure ASGI: counts every HTTP request by route template, method and status, and times
    it by route template. The template is read from the route the router chose
    (`scope["route"]`, once the app has answered), so no path is ever a label."""

    def __init__(self, app: ASGIApp):
        self.app = app
        # The templates of endpoints routed without `scope["route"]` (FastAPI sets it for
        # its own routes only: not for a mount, or the OpenAPI document's route).
        self._endpoints: dict[Any, str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        status = 500  # what the server answers when the app raises before responding

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = perf_counter() - start
            route = scope.get("route")
            template = route.path_format if route is not None else self._template(scope)
            method = scope["method"]
            if method not in METHODS:
                method = "other"
            key = (template, method, status)
            tally = _requests.get(key)
            if tally is None:
                tally = _requests[key] = _Tally(template, method, status)
            tally.count += 1
            timing = tally.timing
            timing.total += elapsed
            timing.buckets[bisect_left(LATENCY_BUCKETS, elapsed)] += 1

    def _template(self, scope: Scope) -> str:
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return UNMATCHED
        template = self._endpoints.get(endpoint)
        if template is None:
            template = self._endpoints[endpoint] = next(
                (route.path_format for route in getattr(scope.get("app"), "routes", ())
                 if endpoint in (getattr(route, "endpoint", None), getattr(route, "app", None))
                 and getattr(route, "path_format", None)), UNMATCHED)
        return template
