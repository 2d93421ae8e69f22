"""kit/direct.py: the credential's statement sent by the driver itself (PostgreSQL). A
statement that fails or is cancelled half-way never leaves its connection in the pool, and
an outage is a 503 as for every other statement."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import Enum, Numeric, cast, event, exc, func, literal, select, text
from sqlalchemy.util import greenlet_spawn

from tests.conftest import TEST_KEY
from tests.databases import pg_url
from tests.factories import Factory
from tests.helpers import TOKENS
from tests.test_faults import SERVER_DSN, client_of, pg_app, terminate, unavailable
from tokenhouse.kit.db import create_engine
from tokenhouse.kit.direct import DirectSelect
from tokenhouse.kit.outage import unavailable as unavailable_error
from tokenhouse.kit.settings import Settings

__all__ = ["pg_app"]  # the fixture, imported to be used here


async def waiting_on_lock(database: str) -> None:
    admin = await asyncpg.connect(f"{SERVER_DSN}/{database}")
    try:
        while not await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE "
                                       "datname = $1 AND wait_event_type = 'Lock'", database):
            await asyncio.sleep(0.01)
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def held_at_lock(database: str, request: Coroutine[Any, Any, Any]
                       ) -> AsyncIterator[asyncio.Task[Any]]:
    """`request` run while api_tokens is locked, given once it waits on the lock; the lock
    is released at the end."""
    locker = await asyncpg.connect(f"{SERVER_DSN}/{database}")
    transaction = locker.transaction()
    await transaction.start()
    try:
        await locker.execute("LOCK TABLE api_tokens IN ACCESS EXCLUSIVE MODE")
        task = asyncio.create_task(request)
        await waiting_on_lock(database)
        yield task
    finally:
        await transaction.rollback()
        await locker.close()


async def cancelled(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def killed(database: str, task: asyncio.Task[Any]) -> None:
    """The backend of the statement waiting on the lock terminated: the request is a 503."""
    while not await terminate(database, where="wait_event_type = 'Lock'"):
        await asyncio.sleep(0.01)
    unavailable(await task)


async def test_a_backend_killed_during_a_cold_read_is_a_503_and_the_pool_heals(
        pg_app: tuple[FastAPI, str]) -> None:
    app, database = pg_app
    runtime = app.state.runtime
    async with client_of(app) as client:
        token = await Factory(app, client).tenant()
        url = f"{TOKENS}/{token.id}"
        runtime.credentials.clear()
        async with held_at_lock(database, client.get(url, headers=token.headers)) as request:
            await killed(database, request)
        for _ in range(5):  # no broken connection was handed back to the pool
            runtime.credentials.clear()
            assert (await client.get(url, headers=token.headers)).status_code == 200


async def test_a_cold_read_cancelled_half_way_leaves_no_connection_behind(
        pg_app: tuple[FastAPI, str]) -> None:
    """A client gone while its credential is being read: the connection with the statement
    in flight is dropped, not handed to the next request (which would read the answer of
    the cancelled statement, or fail)."""
    app, database = pg_app
    runtime = app.state.runtime
    async with client_of(app) as client:
        factory = Factory(app, client)
        first, second = await factory.tenant(), await factory.tenant()
        runtime.credentials.clear()
        async with held_at_lock(database, client.get(f"{TOKENS}/{first.id}",
                                                     headers=first.headers)) as request:
            await cancelled(request)
        for _ in range(10):
            runtime.credentials.clear()
            response = await client.get(f"{TOKENS}/{second.id}", headers=second.headers)
            assert response.status_code == 200 and response.json()["id"] == second.id


async def test_a_connection_the_driver_refuses_is_an_outage_and_dropped(
        pg_app: tuple[FastAPI, str]) -> None:
    """A pooled connection the driver will not use (here: one still busy with a statement,
    as a connection whose backend was killed in the pool is left with the server's last
    message half-read): the read fails as an outage (a 503, never a 500), the connection is
    dropped, and the next read gets a good one."""
    _, database = pg_app
    engine = create_engine(Settings(database_url=pg_url(database),
                                    secret_key=SecretStr(TEST_KEY)))
    query = DirectSelect(select(literal(1)))
    try:
        pooled = await engine.raw_connection()
        driver = pooled.driver_connection
        busy = asyncio.create_task(driver.fetch("SELECT pg_sleep(0.3)"))
        await asyncio.sleep(0.05)
        await greenlet_spawn(pooled.close)  # back in the pool, busy
        with pytest.raises(exc.DBAPIError) as failed:
            await query.rows(engine, {})
        assert failed.value.connection_invalidated and unavailable_error(failed.value)
        with contextlib.suppress(Exception):
            await busy
        assert driver.is_closed()
        assert [tuple(row) for row in await query.rows(engine, {})] == [(1,)]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("type_", [Numeric(10, 2), Enum("a", "b", name="ab")])
async def test_a_column_that_needs_converting_is_refused(pg_app: tuple[FastAPI, str],
                                                         type_: Any) -> None:
    """The driver's values are the answer only where SQLAlchemy would not convert them (an
    Enum is a String to SQLAlchemy, but converted)."""
    app, _ = pg_app
    query = DirectSelect(select(cast(literal("a"), type_)))
    with pytest.raises(TypeError, match="result processing"):
        await query.rows(app.state.runtime.engine, {})


NOW = DirectSelect(select(func.now().label("now")))


async def test_on_a_unit_of_works_connection_a_read_is_inside_its_transaction(
        pg_app: tuple[FastAPI, str]) -> None:
    """SQLAlchemy's adapter begins a transaction at its first statement: a read sent by the
    driver first would run outside it (review 2). now() is the transaction's start, the same
    in every statement of one transaction."""
    app, _ = pg_app
    async with app.state.runtime.sessions() as session:  # a unit of work that may write
        connection = await session.connection()
        direct = (await NOW.rows(connection, {}))[0][0]
        await asyncio.sleep(0.05)
        later = (await session.execute(text("SELECT now()"))).scalar_one()
        await session.rollback()
    assert direct == later


async def test_in_autocommit_the_driver_sends_it(pg_app: tuple[FastAPI, str]) -> None:
    """kit/db.reading's read-only units of work: each statement its own, sent by asyncpg
    (SQLAlchemy sees no statement); in a transaction, SQLAlchemy runs it."""
    app, _ = pg_app
    engine = app.state.runtime.engine
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if statement.startswith("SELECT now()"):  # not the app's background jobs
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        async with app.state.runtime.sessions() as session:
            connection = await session.connection(
                execution_options={"isolation_level": "AUTOCOMMIT"})
            assert (await NOW.rows(connection, {}))[0][0] is not None
        assert seen == []
        async with app.state.runtime.sessions() as session:
            assert (await NOW.rows(await session.connection(), {}))[0][0] is not None
        assert len(seen) == 1
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
