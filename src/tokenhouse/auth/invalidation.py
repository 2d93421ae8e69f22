"""Announcing changes that make cached credentials wrong, to every process on the database.

Services call `announce(session, ...)` when they disable, delete or change a token, disable
an account, or change the module catalog. The announcement travels with the transaction:
- PostgreSQL: `pg_notify` inside the transaction, which PostgreSQL delivers on commit only;
  every process LISTENs and drops the affected cache entries (within milliseconds).
- SQLite: a row in `auth_changes`, in the same transaction; processes sharing the file poll
  for new rows (one indexed query per poll, whatever the number of tokens). SQLite serialises
  writers, so row ids grow in commit order and a poll by `id > last seen` misses nothing.
The process that made the change also drops its entries right after the commit, at once.

The same channel carries `seen` notes: each process's batched `lastAccessAt` writes (see
auth/last_access.py), so that every process shows accesses made through the others without
reading them back from the database.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import ARRAY, Text, bindparam, delete, event, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from tokenhouse.auth.models import AuthChange
from tokenhouse.kit.cache import TaggedCache
from tokenhouse.kit.tasks import cancel
from tokenhouse.kit.timeutil import utcnow

log = logging.getLogger("tokenhouse.invalidation")
CHANNEL = "tokenhouse_auth"
PENDING = "auth_changes"
CACHES = "invalidated_caches"
POLL_SECONDS = 0.25
KEEP = timedelta(minutes=10)
CLEAN_SECONDS = 60.0  # how often a poller drops announcements older than KEEP
LISTENER_NAME = "tokenhouse-invalidation"  # application_name of the LISTEN connection
CONNECT_TIMEOUT = 5.0
HEARTBEAT_SECONDS = 5.0
HEARTBEAT_TIMEOUT = 2.0
RETRY_SECONDS = 1.0


def announce(session: Any, kind: str, key: str = "") -> None:
    """Record that cached credentials of a token, an account or everything ("all") must go
    once this session commits. `session` is an AsyncSession or a Session."""
    info = session.info
    info.setdefault(PENDING, []).append(f"{kind}:{key}")


def apply(caches: Sequence[TaggedCache], change: str,
          on_seen: Callable[[str], None] | None = None) -> None:
    kind, _, key = change.partition(":")
    if kind == "seen":
        if on_seen is not None:
            on_seen(key)
        return
    for cache in caches:
        if kind == "token":
            cache.invalidate_token(key)
        elif kind == "account":
            cache.invalidate_account(key)
        else:
            cache.clear()


_NOTIFY = text("SELECT pg_notify(:channel, change) FROM unnest(:changes) AS change"
               ).bindparams(bindparam("changes", type_=ARRAY(Text())))


@event.listens_for(Session, "before_commit")
def _publish(session: Session) -> None:
    changes = session.info.get(PENDING)
    if not changes:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # One statement, whatever the number of changes (a flush may carry many `seen` notes).
        connection.execute(_NOTIFY, {"channel": CHANNEL, "changes": list(dict.fromkeys(changes))})
    else:
        now = utcnow()
        connection.execute(insert(AuthChange),
                           [{"change": change, "at": now} for change in dict.fromkeys(changes)])


@event.listens_for(Session, "after_commit")
def _apply_here(session: Session) -> None:
    changes = session.info.pop(PENDING, None)
    caches = session.info.get(CACHES)
    if changes and caches:
        for change in changes:
            apply(caches, change)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(PENDING, None)


class InvalidationListener:
    """Receives other processes' announcements and applies them to this process's caches.

    The caches answer only while announcements are received: they are disabled (and emptied)
    the moment the channel is lost, and start again empty once it is back, since what
    changed in between is unknown."""

    def __init__(self, engine: AsyncEngine, caches: Sequence[TaggedCache],
                 on_seen: Callable[[str], None] | None = None):
        self._engine = engine
        self._caches = list(caches)
        self._on_seen = on_seen
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self, wait: float = 5.0) -> None:
        """Start listening; wait a little for it so that the cache serves from the start.
        (Without a database the server still starts, uncached: /readyz then says why.)"""
        postgres = self._engine.dialect.name == "postgresql"
        self._task = asyncio.create_task(self._listen() if postgres else self._poll(),
                                         name="credential-invalidation")
        try:
            await asyncio.wait_for(self._ready.wait(), timeout=wait)
        except TimeoutError:
            log.warning("not receiving invalidations yet: nothing is cached")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    def _each(self, method: str) -> None:
        for cache in self._caches:
            getattr(cache, method)()

    async def _listen(self) -> None:
        url = make_url(self._engine.url).set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        while True:
            lost = asyncio.Event()
            connection = None
            try:
                connection = await asyncpg.connect(
                    dsn, timeout=CONNECT_TIMEOUT,
                    server_settings={"application_name": LISTENER_NAME})

                def on_lost(_connection: object, lost: asyncio.Event = lost) -> None:
                    # At once, in the callback: not one more request may be served from a
                    # cache that can no longer hear a disable.
                    self._each("disable")
                    lost.set()

                connection.add_termination_listener(on_lost)
                await connection.add_listener(
                    CHANNEL, lambda _c, _pid, _channel, payload: apply(self._caches, payload,
                                                                       self._on_seen))
                self._each("enable")
                self._ready.set()
                # A connection cut without a word (a network partition) would never call
                # on_lost: a query now and then proves that it still carries notifications.
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), timeout=HEARTBEAT_SECONDS)
                        break
                    await connection.fetchval("SELECT 1", timeout=HEARTBEAT_TIMEOUT)
                self._each("disable")
                log.warning("lost the invalidation connection; reconnecting")
            except Exception as exc:  # never die: a dead listener would leave caches stale
                self._each("disable")
                log.warning("cannot listen for invalidations (%s); retrying", type(exc).__name__)
                await asyncio.sleep(RETRY_SECONDS)
            finally:
                if connection is not None and not connection.is_closed():
                    connection.terminate()

    async def _poll(self) -> None:
        last: int | None = None
        cleaned = time.monotonic()
        while True:
            try:
                async with self._engine.connect() as connection:
                    newest = await connection.scalar(_NEWEST) or 0
                    if last is None:
                        last = newest
                        self._each("enable")
                        self._ready.set()
                    elif newest < last:
                        # Ids went back (the table was emptied, and it lacks AUTOINCREMENT:
                        # a database not migrated to 0006, or a hand-made one): rows may have
                        # come that `id > last` would never read. Start again, empty.
                        log.warning("announcement ids went back; caches dropped")
                        self._each("clear")
                        last = newest
                    elif newest > last:
                        rows = (await connection.execute(_SINCE, {"last": last})).all()
                        for row_id, change in rows:
                            apply(self._caches, change, self._on_seen)
                            last = row_id
                if time.monotonic() - cleaned > CLEAN_SECONDS:
                    cleaned = time.monotonic()
                    await self.clean_up()
            except Exception as exc:  # a busy or missing database: never cache blindly
                log.warning("cannot poll for invalidations (%s); retrying", type(exc).__name__)
                self._each("disable")
                last = None
            await asyncio.sleep(POLL_SECONDS)

    async def clean_up(self, now: datetime | None = None) -> None:
        """Drop announcements older than KEEP (SQLite): every poller has long read them."""
        async with self._engine.begin() as connection:
            await connection.execute(delete(AuthChange).where(
                AuthChange.at < (now or utcnow()) - KEEP))


_NEWEST = select(func.max(AuthChange.id))
_SINCE = (select(AuthChange.id, AuthChange.change).where(AuthChange.id > bindparam("last"))
          .order_by(AuthChange.id))
