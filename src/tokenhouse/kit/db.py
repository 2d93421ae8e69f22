"""Database engine, the declarative base, and the one unit of work per request."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from sqlalchemy import JSON, MetaData, event, exc
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from tokenhouse.kit.rql.folding import fold
from tokenhouse.kit.settings import Settings, private_sqlite_file

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
        kwargs["connect_args"] = {"timeout": BUSY_SECONDS}
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
    else:
        event.listen(engine.sync_engine.pool, "checkout", _drop_closed)
    return engine


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
            await session.rollback()


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
