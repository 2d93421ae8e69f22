"""SQLite's one writer per process (kit/db.Writer): units of work that write take turns, none
holds the writer while a request body arrives, and no way out of a unit of work (commit,
rollback, an error, a cancelled task) keeps it. PostgreSQL has no writer.

Interleaving is observed on the app's real engine: every statement that writes (or reads for
update) and every end of a transaction is recorded with its connection, and no connection
may write while another's unit of work is open."""

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Column, Integer, MetaData, Table, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from tests.factories import Factory, Issued
from tests.helpers import TOKENS, problem
from tokenhouse.kit.db import Turns, Writer, writer_of

CONCURRENT = 60


def _writer(app: FastAPI, backend: str) -> Writer:
    if backend != "sqlite":
        pytest.skip("PostgreSQL has no writer of its own (see test_postgresql_has_no_writer)")
    writer = writer_of(app.state.runtime.engine)
    assert writer is not None
    return writer


class Units:
    """The units of work of an engine as they happen: who wrote while whose was open."""

    def __init__(self) -> None:
        self.open: Any = None
        self.overlaps: list[str] = []
        self.writes = 0
        self.ends = 0

    def wrote(self, conn: Connection, _cursor: Any, statement: str, _parameters: Any,
              context: Any, _executemany: bool) -> None:
        compiled = getattr(context, "compiled", None)
        for_update = getattr(getattr(compiled, "statement", None), "_for_update_arg", None)
        head = statement.lstrip().split(None, 1)[0].upper()
        if for_update is None and head not in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
            return
        key = conn.connection.dbapi_connection
        if self.open is not None and self.open is not key:
            self.overlaps.append(statement[:60])
        self.open = key
        self.writes += 1

    def ended(self, conn: Connection) -> None:
        if self.open is conn.connection.dbapi_connection:
            self.open = None
            self.ends += 1


@contextmanager
def recording(app: FastAPI) -> Iterator[Units]:
    """Record the units of work of the app's engine (its listeners run after the writer's,
    which was put in place when the engine was made)."""
    engine = app.state.runtime.engine.sync_engine
    units = Units()
    listeners = (("before_cursor_execute", units.wrote), ("commit", units.ended),
                 ("rollback", units.ended))
    for name, listener in listeners:
        event.listen(engine, name, listener)
    try:
        yield units
    finally:
        for name, listener in listeners:
            event.remove(engine, name, listener)


async def test_concurrent_writes_never_interleave(app: FastAPI, backend: str,
                                                  client: httpx.AsyncClient,
                                                  factory: Factory) -> None:
    """Creates, PUTs without `revision`, disables and enables of the same tokens at once:
    on SQLite one unit of work at a time; on both, no 409 for a PUT (its read for update is
    serialised with the write), no 503, no `database is locked`."""
    admin = await factory.admin()
    tenant = await factory.tenant()
    targets = [await factory.token(tenant.account_id) for _ in range(3)]
    body = {"name": "Made at once", "account": {"id": tenant.account_id},
            "modules": [{"id": (await factory.modules())["Access Management"]}]}

    async def one(i: int) -> httpx.Response:
        target = f"{TOKENS}/{targets[i % len(targets)].id}"
        match i % 4:
            case 0:
                return await client.post(TOKENS, json=body, headers=admin.headers)
            case 1:
                return await client.put(target, json={"description": f"change {i}"},
                                        headers=admin.headers)
            case 2:
                return await client.post(f"{target}/disable", headers=admin.headers)
            case _:
                return await client.post(f"{target}/enable", headers=admin.headers)

    with recording(app) as units:
        responses = await asyncio.gather(*(one(i) for i in range(CONCURRENT)))
    for i, response in enumerate(responses):
        assert "database is locked" not in response.text
        if i % 4 in (0, 1):  # creates and PUTs always succeed
            assert response.status_code == (201 if i % 4 == 0 else 200), response.text
        else:  # a disable of a Disabled token (or an enable of an Active one) is a 409
            assert response.status_code in (200, 409), response.text
    if backend == "sqlite":  # PostgreSQL writes different rows at once, as it should
        assert units.overlaps == []
        assert units.writes >= CONCURRENT and units.ends >= CONCURRENT // 4
    # Every PUT landed: each bumped the revision once.
    revisions = [(await client.get(f"{TOKENS}/{target.id}", headers=admin.headers)
                  ).json()["revision"] for target in targets]
    puts_and_toggles = sum(1 for i, r in enumerate(responses)
                           if i % 4 != 0 and r.status_code == 200)
    assert sum(revisions) - len(targets) == puts_and_toggles


async def test_a_failed_unit_of_work_gives_the_writer_back(app: FastAPI, backend: str,
                                                           client: httpx.AsyncClient,
                                                           factory: Factory) -> None:
    writer = _writer(app, backend)
    admin = await factory.admin()
    tenant = await factory.tenant()
    deleted = await factory.token(tenant.account_id, status="Deleted")
    # Read for update (the writer taken), then refused: 409, 400.
    problem(await client.put(f"{TOKENS}/{deleted.id}", json={"name": "x"},
                             headers=admin.headers), 409)
    await _writes(client, admin, tenant.id)
    problem(await client.put(f"{TOKENS}/{tenant.id}", json={"name": None},
                             headers=admin.headers), 400)
    await _writes(client, admin, tenant.id)
    # A statement the database refuses, in a session of the app's own.
    async with app.state.runtime.sessions() as session:
        await session.execute(text("UPDATE api_tokens SET description = 'x' WHERE id = :id"),
                              {"id": tenant.id})
        assert writer.held
        with pytest.raises(IntegrityError):
            await session.execute(text("UPDATE api_tokens SET account_id = 'ACC-NONE' "
                                       "WHERE id = :id"), {"id": tenant.id})
        await session.rollback()
    await _writes(client, admin, tenant.id)


async def test_a_cancelled_unit_of_work_gives_the_writer_back(
        app: FastAPI, backend: str, client: httpx.AsyncClient, factory: Factory) -> None:
    """Cancelled while holding the writer, and while waiting for it."""
    writer = _writer(app, backend)
    admin = await factory.admin()
    tenant = await factory.tenant()
    wrote, about, never = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with app.state.runtime.sessions() as session:
            await session.execute(text("UPDATE api_tokens SET description = 'held' "
                                       "WHERE id = :id"), {"id": tenant.id})
            wrote.set()
            await never.wait()

    async def waiter() -> None:
        async with app.state.runtime.sessions() as session:
            about.set()
            await session.execute(text("UPDATE api_tokens SET description = 'waited' "
                                       "WHERE id = :id"), {"id": tenant.id})
            await session.commit()

    holding = asyncio.create_task(holder())
    await wrote.wait()
    assert writer.held
    waiting = asyncio.create_task(waiter())
    await about.wait()
    for _ in range(20):  # on its way to the writer, or queued for it
        await asyncio.sleep(0)
    for task in (waiting, holding):  # the waiter first: it never had the writer
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await _writes(client, admin, tenant.id)


async def test_a_request_cancelled_while_holding_the_writer_gives_it_back(
        app: FastAPI, backend: str, client: httpx.AsyncClient, factory: Factory) -> None:
    """A PUT cancelled (its client gone) in the middle of its read for update, which took
    the writer."""
    _writer(app, backend)
    admin = await factory.admin()
    tenant = await factory.tenant()
    engine = app.state.runtime.engine.sync_engine
    reading = asyncio.Event()

    def on_execute(_conn: Connection, _cursor: Any, _statement: str, _parameters: Any,
                   context: Any, _executemany: bool) -> None:
        # After the writer's own listener: the writer is taken when this runs.
        if getattr(context.compiled.statement, "_for_update_arg", None) is not None:
            reading.set()

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        put = asyncio.create_task(client.put(f"{TOKENS}/{tenant.id}", json={"name": "gone"},
                                              headers=admin.headers))
        await reading.wait()
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    put.cancel()
    with pytest.raises(asyncio.CancelledError):
        await put
    await _writes(client, admin, tenant.id)


async def _slow(first: bytes, rest: bytes, asked: asyncio.Event,
                go: asyncio.Event) -> AsyncIterator[bytes]:
    """A body sent in two parts: the second once `go` is set (`asked`: the server waits for
    it)."""
    yield first
    asked.set()
    await go.wait()
    yield rest


async def _writes(client: httpx.AsyncClient, admin: Issued, token_id: str) -> None:
    """A write goes through: the writer is free (a unit of work that kept it would make this
    one wait for it, and fail with a 503 after kit.db.BUSY_SECONDS). A `held` check would
    race with the background writers (the last-access flush, the change table's clean-up)."""
    response = await client.put(f"{TOKENS}/{token_id}", json={"description": "next"},
                                headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.json()["description"] == "next"


@pytest.mark.parametrize("action", ["put", "disable", "enable"])
async def test_a_body_still_arriving_does_not_hold_the_writer(
        action: str, app: FastAPI, backend: str, client: httpx.AsyncClient,
        factory: Factory) -> None:
    """A change whose body is half sent waits for the rest before it reads the token for
    update: meanwhile other writes go through (if it held the writer, the one below would
    wait for it, and `go` would never be set)."""
    _writer(app, backend)
    admin = await factory.admin()
    tenant = await factory.tenant()
    target = await factory.token(tenant.account_id,
                                 status="Disabled" if action == "enable" else "Active")
    asked, go = asyncio.Event(), asyncio.Event()
    headers = {**admin.headers, "Content-Type": "application/json"}
    if action == "put":
        slow = client.put(f"{TOKENS}/{target.id}", headers=headers,
                          content=_slow(b'{"description":', b' "slow"}', asked, go))
    else:
        slow = client.post(f"{TOKENS}/{target.id}/{action}", headers=headers,
                           content=_slow(b"{", b"}", asked, go))
    sending = asyncio.create_task(slow)
    try:
        await asked.wait()
        other = await client.put(f"{TOKENS}/{tenant.id}", json={"description": "meanwhile"},
                                 headers=admin.headers)
        assert other.status_code == 200, other.text
        assert not sending.done()
    finally:
        go.set()
    response = await sending
    assert response.status_code == 200, response.text
    await _writes(client, admin, target.id)


async def test_the_last_access_flush_goes_through_the_writer(
        app: FastAPI, backend: str, client: httpx.AsyncClient, factory: Factory) -> None:
    _writer(app, backend)
    tenant = await factory.tenant()
    recorder = app.state.runtime.last_access
    with recording(app) as units:
        assert (await client.get(f"{TOKENS}/{tenant.id}", headers=tenant.headers)
                ).status_code == 200
        await recorder.flush()
    assert units.writes >= 1 and units.overlaps == []


async def test_postgresql_has_no_writer(app: FastAPI, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite has one")
    engine = app.state.runtime.engine
    assert writer_of(engine) is None
    # The dialect's commit and rollback are its own (no wrapper in the way).
    assert "do_commit" not in vars(engine.sync_engine.dialect)



def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_turn_given_up_while_waiting_leaves_nothing_held(tmp_path: Path) -> None:
    """Turns between processes (kit/db.Turns): two Turns of one file exclude each other as
    two processes would. Waiters that give up (a timeout, a cancelled request) leave no
    thread and no open descriptor behind, and the next one gets the turn."""
    path = tmp_path / "db.sqlite-writer"
    first, second, third = Turns(path), Turns(path), Turns(path)
    await first.take()
    descriptors, threads = _open_descriptors(), threading.active_count()
    for _ in range(20):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.02):
                await second.take()
    waiting = asyncio.create_task(second.take())
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert (_open_descriptors(), threading.active_count()) == (descriptors, threads)
    first.give_back()
    async with asyncio.timeout(30):  # against a hang only: it never takes that long
        await third.take()
    waiting = asyncio.create_task(first.take())
    await asyncio.sleep(0.05)
    assert not waiting.done()  # held by `third`
    third.give_back()
    async with asyncio.timeout(30):
        await waiting
    first.give_back()


async def test_turns_never_follow_a_symbolic_link(tmp_path: Path) -> None:
    """Whoever can write the database's directory could point the turns file elsewhere
    (a file of theirs to hold, or one of the server's to create): it is refused."""
    target = tmp_path / "elsewhere"
    target.write_text("")
    link = tmp_path / "db.sqlite-writer"
    link.symlink_to(target)
    with pytest.raises(OSError):
        await Turns(link).take()


async def test_writes_waiting_for_the_writer_leave_connections_for_reads(
        app: FastAPI, backend: str) -> None:
    """Each write waiting for the writer holds a pooled connection; reads (a first-seen
    credential, a list) must still get one while many wait."""
    _writer(app, backend)
    engine = app.state.runtime.engine
    holder = await engine.connect()
    await holder.execute(text("UPDATE accounts SET name = name WHERE id = 'none'"))

    async def write() -> None:
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE accounts SET name = name WHERE id = 'x'"))

    waiting = [asyncio.create_task(write()) for _ in range(24)]
    try:
        await asyncio.sleep(0.2)
        assert not any(task.done() for task in waiting)
        async with asyncio.timeout(5), engine.connect() as connection:
            assert (await connection.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await holder.rollback()
        await holder.close()
        await asyncio.gather(*waiting)


async def test_writes_to_temporary_tables_take_no_turn(app: FastAPI, backend: str) -> None:
    """A TEMP table is the connection's own (an import's staging): filling it holds nothing,
    and the server's writes go on meanwhile."""
    writer = _writer(app, backend)
    engine = app.state.runtime.engine
    staged = Table("staged_probe", MetaData(), Column("n", Integer), schema="temp",
                   prefixes=["TEMPORARY"])
    async with engine.connect() as staging:
        await staging.run_sync(lambda sync: staged.create(sync))
        await staging.execute(staged.insert(), [{"n": n} for n in range(100)])
        # Not "no one holds it": the app's own background work (webhook deliveries, the
        # expiry job) may hold it for a moment; the staging connection must not.
        raw = await staging.get_raw_connection()
        assert writer._holder is not raw.dbapi_connection
        async with asyncio.timeout(5), engine.begin() as other:
            await other.execute(text("UPDATE accounts SET name = name WHERE id = 'x'"))
        await staging.rollback()
