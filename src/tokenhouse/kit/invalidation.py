"""What a unit of work changed, told to every process on the database, so that the caches
(kit/cache.py) drop what became wrong.

The changes are derived from the rows a unit of work wrote, by one session hook: no write
path announces anything by hand, so none can forget to.
- ORM objects flushed (`after_flush`): a changed or deleted token or account is a
  TokenChanged or AccountChanged, any module a CatalogChanged. A new token or account
  changes nothing: no cache can hold what did not exist.
- Core statements run through `session.execute` (`do_orm_execute`): links of a token to
  modules inserted for a token written before this unit of work (a TokenChanged), any write
  of modules (CatalogChanged); an UPDATE or DELETE of tokens, accounts or links, whose rows
  the hook cannot tell, drops everything (AllChanged).
  Textual SQL (`text()`) and statements run on `session.connection()` directly are not
  seen. Only the writes of accesses go that way (`lastAccessAt`, `lastAccessIps`, the
  replaced secret's last use): those columns are in no cache (responses splice them in),
  and their values travel as `Seen` notes, which are data, not invalidations.

The changes travel with the transaction, published by `before_commit`:
- PostgreSQL: `pg_notify` inside the transaction, which PostgreSQL delivers on commit only;
  every process LISTENs and applies them (within milliseconds).
- SQLite: rows in `auth_changes`, in the same transaction; processes sharing the file poll
  for new rows (one indexed query per poll, whatever the number of tokens). SQLite
  serialises writers, so row ids grow in commit order, and AUTOINCREMENT keeps them growing
  after the clean-up empties the table: a poll by `id > last seen` misses nothing.
The process that made the change applies it to its own caches right after the commit.
"""

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import asyncpg
from sqlalchemy import (
    ARRAY,
    DateTime,
    Integer,
    Text,
    bindparam,
    delete,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, UOWTransaction, mapped_column

from tokenhouse.kit import metrics
from tokenhouse.kit.db import Base
from tokenhouse.kit.tasks import cancel
from tokenhouse.kit.timeutil import utcnow

log = logging.getLogger("tokenhouse.invalidation")
CHANNEL = "tokenhouse_auth"
PENDING = "pending_changes"
NEW_TOKENS = "new_tokens"
CACHES = "invalidated_caches"
ORIGIN = "changes_origin"
POLL_SECONDS = 0.25
KEEP = timedelta(minutes=10)
CLEAN_SECONDS = 60.0  # how often a poller drops changes older than KEEP
LISTENER_NAME = "tokenhouse-invalidation"  # application_name of the LISTEN connection
CONNECT_TIMEOUT = 5.0
HEARTBEAT_SECONDS = 5.0
HEARTBEAT_TIMEOUT = 2.0
RETRY_SECONDS = 1.0


# -- the changes --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TokenChanged:
    token_id: str


@dataclass(frozen=True, slots=True)
class AccountChanged:
    account_id: str


@dataclass(frozen=True, slots=True)
class CatalogChanged:
    """The module catalog changed: module names are in every credential and view."""


@dataclass(frozen=True, slots=True)
class AllChanged:
    """Rows changed that the hook cannot name (a bulk UPDATE or DELETE): everything goes."""


@dataclass(frozen=True, slots=True)
class Seen:
    """Data, not an invalidation: lastAccessAt values a process wrote, `id=milliseconds,...`
    (see tokens/last_access.py)."""

    note: str


Change = TokenChanged | AccountChanged | CatalogChanged | AllChanged | Seen
CATALOG = CatalogChanged()
ALL = AllChanged()


def encode(change: Change) -> str:
    """The change on the wire (the strings of earlier versions, so that processes of two
    versions understand each other during an upgrade)."""
    match change:
        case TokenChanged(token_id):
            return f"token:{token_id}"
        case AccountChanged(account_id):
            return f"account:{account_id}"
        case Seen(note):
            return f"seen:{note}"
        case CatalogChanged():
            return "catalog:"
        case _:
            return "all:"


def decode(wire: str) -> Change:
    kind, _, key = wire.partition(":")
    if kind == "token":
        return TokenChanged(key)
    if kind == "account":
        return AccountChanged(key)
    if kind == "seen":
        return Seen(key)
    if kind == "catalog":
        return CATALOG
    return ALL  # "all", or anything unknown: the safe answer


class Invalidated(Protocol):
    """A cache that changes drop entries of (kit/cache.py)."""

    def apply(self, change: Change) -> None: ...
    def enable(self) -> None: ...
    def disable(self) -> None: ...
    def clear(self) -> None: ...


def local(caches: Sequence[Invalidated]) -> dict[str, Any]:
    """The `info` of the sessions whose commits drop entries of `caches` at once; give the
    same to the listener of those caches, which then skips these changes when they come back
    through the channel (applied already)."""
    return {CACHES: list(caches), ORIGIN: secrets.token_hex(8)}


def _on_wire(change: Change, origin: str | None) -> str:
    # `origin/` before the change: a process of an earlier version reads an unknown kind
    # there, and drops everything (safe) rather than mistake the key.
    return f"{origin}/{encode(change)}" if origin else encode(change)


def _off_wire(wire: str) -> tuple[str | None, Change]:
    origin, slash, rest = wire.partition("/")
    if slash and ":" not in origin:
        return origin, decode(rest)
    return None, decode(wire)


def publish(session: Session | AsyncSession, change: Change) -> None:
    """Send `change` to every process once `session` (a Session or an AsyncSession)
    commits. Invalidations come from the session hook; this is for `Seen` notes."""
    session.info.setdefault(PENDING, {})[change] = None


def apply(caches: Sequence[Invalidated], change: Change,
          on_seen: Callable[[Seen], None] | None = None) -> None:
    if isinstance(change, Seen):
        if on_seen is not None:
            on_seen(change)
        return
    for cache in caches:
        cache.apply(change)


class AuthChange(Base):
    """A change for processes sharing a SQLite file (PostgreSQL sends them with NOTIFY)."""

    __tablename__ = "auth_changes"
    # Ids never go back, even after the clean-up empties the table: pollers read `id > last
    # seen` (migration 0006).
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    change: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


# -- the session hook ---------------------------------------------------------------------

_TOKENS, _LINKS, _ACCOUNTS, _MODULES = "api_tokens", "api_token_modules", "accounts", "modules"


def _object_change(table: str, obj: Any) -> Change | None:
    if table == _TOKENS:
        return TokenChanged(obj.id)
    if table == _ACCOUNTS:
        return AccountChanged(obj.id)
    if table == _MODULES:
        return CATALOG
    return None


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _context: UOWTransaction) -> None:
    changes: list[Change] = []
    for obj in session.new:
        if getattr(obj, "__tablename__", None) == _MODULES:
            changes.append(CATALOG)
    for obj in (*session.dirty, *session.deleted):
        change = _object_change(getattr(obj, "__tablename__", ""), obj)
        if change is not None:
            changes.append(change)
    for change in changes:
        publish(session, change)


@event.listens_for(Session, "do_orm_execute")
def _executed(state: ORMExecuteState) -> None:
    if not state.statement.is_dml:
        return
    table = getattr(getattr(state.statement, "table", None), "name", None)
    if table not in (_TOKENS, _LINKS, _ACCOUNTS, _MODULES):
        return
    for change in _statement_changes(state, table):
        publish(state.session, change)


def _statement_changes(state: ORMExecuteState, table: str) -> Iterable[Change]:
    if table == _MODULES:
        return (CATALOG,)
    if not state.is_insert:
        return (ALL,)
    parameters = state.parameters
    rows: list[Any] = (parameters if isinstance(parameters, list)
                       else [parameters] if parameters else [])
    if table == _TOKENS:  # remembered: their links to modules change nothing either
        state.session.info.setdefault(NEW_TOKENS, set()).update(
            row.get("id") for row in rows)
        return ()
    if table == _LINKS:
        new = state.session.info.get(NEW_TOKENS, ())
        if not rows or any(row.get("token_id") is None for row in rows):
            return (ALL,)  # links whose token the statement does not name
        return {TokenChanged(row["token_id"]) for row in rows if row["token_id"] not in new}
    return ()  # a new account


_NOTIFY = text("SELECT pg_notify(:channel, change) FROM unnest(:changes) AS change"
               ).bindparams(bindparam("changes", type_=ARRAY(Text())))


@event.listens_for(Session, "before_commit")
def _publish(session: Session) -> None:
    # Commit flushes only after this event: flush now, so the hook sees the whole unit.
    session.flush()
    changes = session.info.get(PENDING)
    if not changes:
        return
    origin = session.info.get(ORIGIN)
    wire = [_on_wire(change, origin) for change in changes]
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # One statement, whatever the number of changes (a flush may carry many `seen` notes).
        connection.execute(_NOTIFY, {"channel": CHANNEL, "changes": wire})
    else:
        now = utcnow()
        connection.execute(insert(AuthChange), [{"change": change, "at": now}
                                                for change in wire])


@event.listens_for(Session, "after_commit")
def _apply_here(session: Session) -> None:
    session.info.pop(NEW_TOKENS, None)
    changes = session.info.pop(PENDING, None)
    caches = session.info.get(CACHES)
    if changes and caches:
        for change in changes:
            apply(caches, change)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(PENDING, None)
    session.info.pop(NEW_TOKENS, None)


# -- receiving other processes' changes -----------------------------------------------------

class InvalidationListener:
    """Receives other processes' changes and applies them to this process's caches.

    The caches answer only while changes are received: they are disabled (and emptied)
    the moment the channel is lost, and start again empty once it is back, since what
    changed in between is unknown."""

    def __init__(self, engine: AsyncEngine, info: dict[str, Any],
                 on_seen: Callable[[Seen], None] | None = None):
        """`info`: that of the sessions working on the same caches (see `local`)."""
        self._engine = engine
        self._caches: list[Invalidated] = info[CACHES]
        self._origin: str = info[ORIGIN]
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
        metrics.set_invalidation_listening(False, self)

    def _notified(self, _connection: object, _pid: int, _channel: str, payload: object) -> None:
        self._heard(str(payload))

    def _heard(self, wire: str) -> None:
        origin, change = _off_wire(wire)
        if origin != self._origin:  # this process's own changes were applied at commit
            apply(self._caches, change, self._on_seen)

    def _each(self, method: str) -> None:
        for cache in self._caches:
            getattr(cache, method)()
        if method != "clear":  # enable: changes arrive again; disable: they may not
            metrics.set_invalidation_listening(method == "enable", self)

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
                await connection.add_listener(CHANNEL, self._notified)
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
                        log.warning("change ids went back; caches dropped")
                        self._each("clear")
                        last = newest
                    elif newest > last:
                        rows = (await connection.execute(_SINCE, {"last": last})).all()
                        for row_id, change in rows:
                            self._heard(change)
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
        """Drop changes older than KEEP (SQLite): every poller has long read them."""
        async with self._engine.begin() as connection:
            await connection.execute(delete(AuthChange).where(
                AuthChange.at < (now or utcnow()) - KEEP))


_NEWEST = select(func.max(AuthChange.id))
_SINCE = (select(AuthChange.id, AuthChange.change).where(AuthChange.id > bindparam("last"))
          .order_by(AuthChange.id))
