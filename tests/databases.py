"""The databases the tests run on: the backends to test, and fresh PostgreSQL databases.

Set TOKENHOUSE_TEST_BACKENDS=sqlite to run on SQLite alone (PostgreSQL is on CI machines), and
TOKENHOUSE_TEST_PG to the DSN of another PostgreSQL administration database.

Each fresh database is named `<prefix>_<random hex>` and dropped WITH (FORCE) (connections
still open to it do not keep it alive). The async forms serve async fixtures (an event loop is
already running there); the sync forms run their own loop.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import asyncpg

PG_ADMIN_DSN = os.environ.get("TOKENHOUSE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = os.environ.get("TOKENHOUSE_TEST_BACKENDS", "sqlite,postgresql").split(",")

_SERVER_DSN = PG_ADMIN_DSN.rsplit("/", 1)[0]


def pg_url(name: str) -> str:
    """The SQLAlchemy URL (asyncpg driver) of the database `name` on the test server."""
    return f"{_SERVER_DSN.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"


@asynccontextmanager
async def _connect(database: str | None = None) -> AsyncIterator[asyncpg.Connection]:
    """A connection to `database` on the test server (None: the administration database)."""
    dsn = PG_ADMIN_DSN if database is None else f"{_SERVER_DSN}/{database}"
    connection = await asyncpg.connect(dsn)
    try:
        yield connection
    finally:
        await connection.close()


# -- async forms ------------------------------------------------------------------------


async def create_pg_database(prefix: str = "tokenhouse_test") -> str:
    """Create a fresh, empty database; returns its name."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    async with _connect() as connection:
        await connection.execute(f'CREATE DATABASE "{name}"')
    return name


async def drop_pg_database(name: str) -> None:
    async with _connect() as connection:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def pg_fetch(sql: str, database: str = "postgres") -> list[Any]:
    """The rows (asyncpg records) of `sql` run in `database`."""
    async with _connect(database) as connection:
        return await connection.fetch(sql)


# -- sync forms -------------------------------------------------------------------------


def create_pg_database_sync(prefix: str = "tokenhouse_test") -> str:
    return asyncio.run(create_pg_database(prefix))


def drop_pg_database_sync(name: str) -> None:
    asyncio.run(drop_pg_database(name))


def pg_fetch_sync(sql: str, database: str = "postgres") -> list[Any]:
    return asyncio.run(pg_fetch(sql, database))


@contextmanager
def fresh_pg_database(prefix: str) -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL database for the `with` block: (name, SQLAlchemy URL)."""
    name = create_pg_database_sync(prefix)
    try:
        yield name, pg_url(name)
    finally:
        drop_pg_database_sync(name)
