"""Database engine, the declarative base, and the one unit of work per request."""

import asyncio
import collections
import contextlib
import fcntl
import os
import re
import sqlite3
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Protocol

import aiosqlite
from fastapi import Depends, Request
from sqlalchemy import JSON, MetaData, event, exc, util
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.engine import Connection, Engine, ExecutionContext
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.util import await_only
from sqlalchemy.util.concurrency import in_greenlet

from tokenhouse.kit.rql.folding import fold
from tokenhouse.kit.settings import Settings, private_sqlite_file

# How often a process waiting for its turn to write a SQLite file tries again: from the
# first to the second, doubling (see Turns).
TURN_POLL_SECONDS = (0.001, 0.008)
# How long a SQLite writer waits for another one's lock (then: 503).
BUSY_SECONDS = 30.0
CONNECT_TIMEOUT = 5.0

# JSON documents (addresses, settings, ...): JSONB on PostgreSQL, JSON text on SQLite.
JsonDoc = JSON().with_variant(JSONB(), "postgresql")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def create_engine(settings: Settings) -> AsyncEngine:
    url = settings.database_url
    kwargs: dict[str, Any] = {}
    if settings.is_embedded:
        path = settings.sqlite_path()
        if path is not None:
            private_sqlite_file(path)
            # Writes waiting for the writer (see Writer) hold their connections: a pool as
            # small as PostgreSQL's would let a queue of them make reads (a first-seen
            # credential, a list) wait for a connection. A SQLite connection costs a thread
            # and a few hundred KB.
            kwargs.update(pool_size=8, max_overflow=56)
        kwargs["connect_args"] = {"timeout": BUSY_SECONDS}
        kwargs["module"] = _OneTripDriver(aiosqlite, sqlite3)
    else:
        # No pre-ping: it cost a round trip on every request (see bench/README.md). A pooled
        # connection whose backend is gone is dropped on checkout instead (`_drop_closed`,
        # no round trip); one that dies during a statement fails that request (503, see
        # `unavailable`) and SQLAlchemy discards it, so the pool heals by itself. A server
        # that does not answer at all fails a connection attempt after CONNECT_TIMEOUT.
        # The server logs no bound parameter of a failing statement (they can hold a secret
        # hash), whatever its own default for log_parameter_max_length_on_error.
        kwargs.update(pool_size=10, max_overflow=10,
                      connect_args={"timeout": CONNECT_TIMEOUT, "server_settings": {
                          "log_parameter_max_length_on_error": "0"}})
    # A database error's text leaves out the statement's values (a secret hash among them),
    # in a traceback this process logs as anywhere else.
    engine = create_async_engine(url, hide_parameters=True, **kwargs)
    if settings.is_embedded:
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        path = settings.sqlite_path()
        Writer(Turns(path.with_name(path.name + "-writer")) if path else None).serve(engine)
    else:
        event.listen(engine.sync_engine.pool, "checkout", _drop_closed)
    return engine


class _OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A statement in one trip to the connection's thread: open a cursor, execute, fetch
    every row, close, all there. The adapter as shipped makes a trip for each (four for a
    statement that returns rows, three for one that does not), and a unit of work that
    writes holds the writer through all of them (a create made ten trips while holding it:
    the token's insert, its links, its record and the commit; now four). Rows are fetched
    at once, as the adapter always did for a cursor that is not server-side (those, for
    streamed exports, keep the adapter's own cursor).

    aiosqlite's queue of calls for its thread (`_execute`) and its sqlite3 connection
    (`_conn`) are its internals, which SQLAlchemy's adapter uses too."""

    __slots__ = ("_description", "_rowcount", "_lastrowid", "_arraysize")

    def __init__(self, adapt_connection: Any):
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]  # none in this thread: see _run
        self._rows = collections.deque()
        self._soft_closed_memoized = util.EMPTY_DICT
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        return  # nothing is open: the rows are here already

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        await self._call(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> None:
        await self._call(operation, seq_of_parameters, many=True)

    async def _call(self, operation: Any, parameters: Any, *, many: bool) -> None:
        async with self._adapt_connection._execute_mutex:
            connection = self._connection
            (self._rows, self._description, self._rowcount,
             self._lastrowid) = await connection._execute(
                _run, connection._conn, operation, parameters, many)


def _run(connection: sqlite3.Connection, operation: str, parameters: Any,
         many: bool) -> tuple[collections.deque[Any], Any, int, int | None]:
    """One statement, in the connection's own thread (see _OneTripCursor)."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = collections.deque(cursor.fetchall() if description else ())
        return rows, description, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class _OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = _OneTripCursor


class _OneTripDriver(AsyncAdapt_aiosqlite_dbapi):
    """aiosqlite as SQLAlchemy adapts it, with statements in one trip (_OneTripCursor)."""

    def connect(self, *args: Any, **kwargs: Any) -> _OneTripConnection:
        adapted = super().connect(*args, **kwargs)
        return _OneTripConnection(self, adapted._connection)


def _drop_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Refuse a pooled connection that asyncpg already knows to be closed (a terminated
    backend, a restarted server, a cut link: the socket closed while the connection sat in
    the pool). The pool then connects anew. A check of a flag, not a round trip."""
    if dbapi_connection._connection.is_closed():
        raise exc.DisconnectionError("the pooled connection was closed")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers go on while one writer commits; busy_timeout makes a second writer
    # (another process, or the last-access flusher) wait instead of failing at once.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_SECONDS * 1000)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    # Unicode case folding for ilike (SQLite's own lower() knows only ASCII).
    dbapi_connection.create_function("th_fold", 1, fold, deterministic=True)


# What takes SQLite's write lock: the statements on which the driver (sqlite3, in its legacy
# transaction mode) opens a transaction itself. Anything before them in a unit of work ran
# outside any transaction, one statement at a time.
_WRITES = re.compile(r"\s*(?:INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


def _temporary(compiled: Any) -> bool:
    """Whether a statement writes a TEMP table (an import's staging, transfer/repository.py):
    SQLite keeps those in a database of the connection's own, whose writes take no lock of
    the file, so they need no turn (an import staging a large file held every other write
    of the server for as long, revocations included)."""
    table = getattr(getattr(compiled, "statement", None), "table", None)
    return getattr(table, "schema", None) == "temp"


class Writer:
    """This process's one SQLite writer, taken by the database layer itself, so that no
    caller can forget it (or take it in the wrong place).

    SQLite lets one connection write at a time. Without this, every pooled connection that
    writes contends for the file's lock inside SQLite, whose busy handler waits by sleeping
    (1, 2, 5, 10 ... 100 ms), so a queue of writers took seconds (issue 10). Here the writes of
    one process take turns in an asyncio lock instead: the next writer starts the moment the
    previous one commits, and SQLite's busy wait is left to writers of other processes.

    The lock is taken before a unit of work's first write statement (the driver begins the
    transaction in that same call), or before a read that declares the intent to write
    (SELECT ... FOR UPDATE, which SQLite otherwise ignores), where the transaction is begun
    with BEGIN IMMEDIATE: its reads and writes then see one snapshot that no other writer
    can change underneath (a deferred transaction upgraded to a write after another commit
    fails at once with SQLITE_BUSY_SNAPSHOT, and a read outside it could let a concurrent
    change make a `revision` check fail spuriously). It is given back when that transaction
    ends: the connection's commit or rollback, or the connection being returned, closed or
    invalidated (an error, a cancelled task, garbage collection), so no path keeps it.

    Reads never wait for it (WAL: they read the last committed state), and it is never held
    while a request's body arrives: routes read the body before their first write.

    Processes sharing the file take turns too (`Turns`), after their own."""

    def __init__(self, turns: "Turns | None" = None) -> None:
        self._lock = asyncio.Lock()
        self._turns = turns
        self._holder: Any = None  # the DBAPI connection whose transaction holds the lock
        self._task: asyncio.Task[Any] | None = None

    def serve(self, engine: AsyncEngine) -> None:
        """Put the writer in the way of `engine`'s writes (SQLite only)."""
        sync = engine.sync_engine
        event.listen(sync, "before_cursor_execute", self._before_execute)
        event.listen(sync.pool, "reset", self._returned)
        event.listen(sync.pool, "close_detached", self.release)
        for name in ("invalidate", "close"):
            event.listen(sync.pool, name, self._dropped)
        # After the DBAPI commit or rollback, not before: SQLAlchemy's own commit and
        # rollback events run before it, and a next writer let in then would meet the lock
        # still held inside SQLite, and sleep in its busy handler.
        dialect = sync.dialect
        commit, rollback = dialect.do_commit, dialect.do_rollback

        def do_commit(connection: Any) -> None:
            commit(connection)
            # A failed commit keeps the lock: the rollback that follows gives it back.
            self.release(connection.dbapi_connection)

        def do_rollback(connection: Any) -> None:
            try:
                rollback(connection)
            finally:
                self.release(connection.dbapi_connection)

        dialect.do_commit = do_commit  # type: ignore[method-assign,assignment]
        dialect.do_rollback = do_rollback  # type: ignore[method-assign,assignment]
        _WRITERS[sync] = self

    @property
    def held(self) -> bool:
        return self._holder is not None

    def _before_execute(self, conn: Connection, cursor: Any, statement: str, _parameters: Any,
                        context: ExecutionContext | None, _executemany: bool) -> None:
        dbapi_connection = conn.connection.dbapi_connection
        if dbapi_connection is self._holder:
            return
        compiled = getattr(context, "compiled", None)
        if getattr(getattr(compiled, "statement", None), "_for_update_arg", None) is not None:
            # The reads that follow must see what the write will change: the transaction
            # begins here, and holds SQLite's lock from its first read.
            self._take(dbapi_connection, begin=cursor)
        elif _WRITES.match(statement) and not _temporary(compiled):
            # The driver begins the transaction itself, in the same call as the statement
            # (no extra round trip to its thread): a transaction whose first statement
            # writes takes the lock on a fresh snapshot, and waits for another process's
            # writer rather than failing.
            self._take(dbapi_connection)

    def _take(self, dbapi_connection: Any, begin: Any = None) -> None:
        task = asyncio.current_task()
        if self._holder is not None and task is self._task:
            # It would wait for itself forever: a unit of work writing on a second connection
            # while its first one holds the writer.
            raise RuntimeError("this task already holds the SQLite writer on another "
                               "connection")
        await_only(self._acquire())
        self._holder, self._task = dbapi_connection, task
        if begin is not None:
            try:
                begin.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.release(dbapi_connection)
                raise

    async def _acquire(self) -> None:
        try:
            async with asyncio.timeout(BUSY_SECONDS):
                await self._lock.acquire()
                try:
                    if self._turns is not None:
                        await self._turns.take()
                except BaseException:
                    self._lock.release()
                    raise
        except TimeoutError:
            # As long as SQLite itself would have waited; then the request is a 503.
            raise exc.TimeoutError(
                f"the SQLite writer was not free within {BUSY_SECONDS:.0f} s") from None

    def _returned(self, dbapi_connection: Any, *_: Any) -> None:
        self.release(dbapi_connection)

    def _dropped(self, dbapi_connection: Any, *_: Any) -> None:
        """The connection is about to be closed in the middle of its transaction (an error,
        or a task cancelled during a statement). Closed as it is, it would keep SQLite's lock:
        SQLite keeps a connection closed while a statement of it is still alive (one in the
        traceback, say) as a zombie, transaction and all. So it is rolled back first, in its
        own thread after what is in flight there, and the next writer let in after that."""
        if dbapi_connection is not self._holder:
            return
        try:
            if in_greenlet():  # else garbage collection: nothing can be awaited
                with contextlib.suppress(Exception):
                    dbapi_connection.rollback()
        finally:
            self.release(dbapi_connection)

    def release(self, dbapi_connection: Any) -> None:
        """Give the writer back if `dbapi_connection` holds it (any other call: nothing)."""
        if dbapi_connection is not None and dbapi_connection is self._holder:
            self._holder = self._task = None
            if self._turns is not None:
                self._turns.give_back()
            self._lock.release()


class Turns:
    """Turns between the processes that write one SQLite file (`--workers N`, a command-line
    import while serving): an exclusive flock of a file beside it, held from a unit of
    work's first write until its transaction ends, after the process's own writer.

    Without it the processes meet in SQLite's lock, whose busy handler polls in sleeps
    that grow to 100 ms: one process's writers, handing SQLite's lock to each other at
    once, starve another's for seconds. Here a waiting process tries the flock again every
    few milliseconds (TURN_POLL_SECONDS, without blocking: no thread and no descriptor is
    left behind by a waiter that gives up). SQLite's own locking still decides what is
    correct (a writer that does not take turns, such as an older version, waits in
    busy_timeout as before).

    Its own file, never the database's: closing any descriptor of the database file would
    drop the POSIX locks SQLite holds on it in this process. Opened without following a
    symbolic link, mode 0600, in the database's directory (0700 when tokenhouse made it)."""

    def __init__(self, path: Path):
        self._path = path
        self._fd: int | None = None

    async def take(self) -> None:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            pause = TURN_POLL_SECONDS[0]
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, TURN_POLL_SECONDS[1])
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def give_back(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # which lets go of the flock


_WRITERS: weakref.WeakKeyDictionary[Engine, Writer] = weakref.WeakKeyDictionary()


def writer_of(engine: AsyncEngine) -> Writer | None:
    """The engine's writer (SQLite), None for PostgreSQL, which needs none."""
    return _WRITERS.get(engine.sync_engine)


def session_factory(engine: AsyncEngine,
                    info: dict[str, Any] | None = None) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: objects are shaped into responses after the commit.
    return async_sessionmaker(engine, expire_on_commit=False, info=info)


class HasSessions(Protocol):
    """What the unit of work needs of the app's runtime (tokenhouse/runtime.py)."""

    sessions: async_sessionmaker[AsyncSession]


async def unit_of_work(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's one transaction: committed here when the route returns, rolled back on
    any error. Services and repositories never commit."""
    held: HasSessions = request.app.state.runtime
    session = held.sessions()
    try:
        yield session
        # A request served from memory never began a transaction: nothing to commit.
        if session.in_transaction():
            await session.commit()
    finally:
        # Commit and rollback hand the connection back to the pool, so an unused session is
        # simply dropped: `close()` would only cost the hot path a trip through SQLAlchemy's
        # greenlet bridge.
        if session.in_transaction():
            # Shielded: a request cancelled again while this runs still ends its transaction,
            # and gives SQLite's writer back at once (see Writer).
            await asyncio.shield(session.rollback())


@asynccontextmanager
async def read_only(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A short session of reads outside any unit of work (see `reading`), for what is
    usually served from memory and needs the database only on a miss."""
    async with sessions() as session:
        await reading(session)
        yield session


async def reading(session: AsyncSession) -> None:
    """Mark a fresh unit of work as read-only. On PostgreSQL it then runs in autocommit:
    under READ COMMITTED every statement takes its own snapshot anyway, so a transaction
    would add nothing but the BEGIN and COMMIT round trips. (SQLite keeps its transaction,
    which gives the statements one snapshot.)"""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


# scope="function": the commit runs when the route returns, before the response is sent, so
# a failed commit is an error response and never a success the database did not keep.
Session = Annotated[AsyncSession, Depends(unit_of_work, scope="function")]
