"""The expiry job (issue 13) on SQLite and PostgreSQL: `expiring` records 30, 7 and 1 days
before a token's expiry and `expired` once it passed, each once, read back through the Audit
API; a changed expiry gets notices of its own; two rounds at once write each record once;
and, with real server processes on one database, one process does the work while it lives
and another takes over when it dies.

Time moves with time-machine (the service's clock) and the job's round is run directly, not
waited for; the process test runs the job every 0.2 s on real clocks."""

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import time_machine
from fastapi import FastAPI
from sqlalchemy import insert, text

from tests.databases import BACKENDS, pg_fetch_sync
from tests.factories import Factory, Issued
from tests.helpers import TOKENS
from tests.live_server import LiveServer
from tests.processes import Server
from tokenhouse.kit.timeutil import render
from tokenhouse.tokens.expiry import notice_expiries, owed_tokens
from tokenhouse.tokens.models import ApiToken

RECORDS = "/public/v1/audit/records"
EXPIRING = "platform.accounts.apiToken.expiring"
EXPIRED = "platform.accounts.apiToken.expired"
DAY = timedelta(days=1)


def now() -> datetime:
    return datetime.now(UTC)


async def auditor(factory: Factory) -> Issued:
    account = await factory.account("Client")
    return await factory.token(account["id"], ("Access Management", "Audit"))


async def make(client: httpx.AsyncClient, actor: Issued, expires_at: datetime | None,
               **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "expiring", "account": {"id": actor.account_id},
                            "modules": [{"id": "MOD-1732"}], **fields}
    if expires_at is not None:
        body["expiresAt"] = render(expires_at)
    response = await client.post(TOKENS, headers=actor.headers, json=body)
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


async def notices(client: httpx.AsyncClient, reader: Issued,
                  token_id: str) -> list[dict[str, Any]]:
    """The token's expiring and expired records, oldest first."""
    response = await client.get(
        f"{RECORDS}?eq(object.id,{token_id})&in(event,({EXPIRING},{EXPIRED}))"
        "&order=timestamp&limit=100", headers=reader.headers)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def told(records: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(r["event"].rpartition(".")[2], r["documents"]["expiry"]["daysLeft"])
            for r in records]


async def round_at(app: FastAPI, at: datetime, batch: int = 200) -> int:
    with time_machine.travel(at, tick=False):
        return await notice_expiries(app.state.runtime.sessions, batch=batch)


async def test_each_notice_is_recorded_once_on_the_day(client: httpx.AsyncClient,
                                                       factory: Factory, app: FastAPI):
    tenant = await auditor(factory)
    start = now()
    expiry = start + 40 * DAY
    made = await make(client, tenant, expiry)
    forever = await make(client, tenant, None)
    expires = made["expiresAt"]

    assert await round_at(app, start + timedelta(minutes=1)) == 0  # 40 days left: nothing
    assert await round_at(app, expiry - 30 * DAY - timedelta(seconds=1)) == 0
    for at, seen in (
            (expiry - 30 * DAY + timedelta(minutes=1), [("expiring", 30)]),
            (expiry - 20 * DAY, [("expiring", 30)]),  # nothing new between the notices
            (expiry - 7 * DAY + timedelta(seconds=5), [("expiring", 30), ("expiring", 7)]),
            (expiry - DAY + timedelta(hours=1), [("expiring", 30), ("expiring", 7),
                                                 ("expiring", 1)]),
            (expiry + timedelta(seconds=1), [("expiring", 30), ("expiring", 7),
                                             ("expiring", 1), ("expired", 0)]),
            (expiry + 90 * DAY, [("expiring", 30), ("expiring", 7), ("expiring", 1),
                                 ("expired", 0)])):
        await round_at(app, at)
        await round_at(app, at)  # a second round finds nothing more to tell
        assert told(await notices(client, tenant, made["id"])) == seen, at
    assert await notices(client, tenant, forever["id"]) == []

    records = await notices(client, tenant, made["id"])
    first, last = records[0], records[-1]
    assert first["summary"] == "API token expiring"
    assert first["type"] == "Public"  # the token's account reads it
    assert first["actor"] == {"id": "system", "name": "System", "icon": None,
                              "account": None}
    assert first["request"] is None  # made by the job, not by a request
    assert [v["id"] for v in first["viewers"]] == [tenant.account_id]
    assert first["documents"]["expiry"] == {"expiresAt": expires, "daysLeft": 30}
    assert first["documents"]["apiToken"]["id"] == made["id"]
    assert first["documents"]["apiToken"]["status"] == "Active"
    assert last["summary"] == "API token expired"
    assert last["documents"]["apiToken"]["status"] == "Expired"
    assert "token" not in first["documents"]["apiToken"]  # never the secret
    rendered = await client.get(f"{RECORDS}/{first['id']}?render()", headers=tenant.headers)
    assert rendered.json()["details"] == (f"The API token {made['id']} (expiring) expires at "
                                          f"{expires}.")
    # A notice is no change of the token: its revision stays.
    read = await client.get(f"{TOKENS}/{made['id']}", headers=tenant.headers)
    assert read.json()["revision"] == made["revision"]


async def test_only_the_most_pressing_notice_is_written(client: httpx.AsyncClient,
                                                        factory: Factory, app: FastAPI):
    tenant = await auditor(factory)
    start = now()
    soon = await make(client, tenant, start + 3 * DAY)
    tomorrow = await make(client, tenant, start + 20 * 3600 * timedelta(seconds=1))
    missed = await make(client, tenant, start + timedelta(hours=1))
    # The servers were down from before any notice was due until after `missed` expired.
    assert await round_at(app, start + timedelta(hours=2)) == 3
    assert told(await notices(client, tenant, soon["id"])) == [("expiring", 3)]
    assert told(await notices(client, tenant, tomorrow["id"])) == [("expiring", 1)]
    assert told(await notices(client, tenant, missed["id"])) == [("expired", 0)]


async def test_a_changed_expiry_gets_notices_of_its_own(client: httpx.AsyncClient,
                                                        factory: Factory, app: FastAPI):
    tenant = await auditor(factory)
    start = now()
    made = await make(client, tenant, start + 5 * DAY)
    path = f"{TOKENS}/{made['id']}"
    second = timedelta(seconds=1)
    assert await round_at(app, start) == 1
    # Sent back as read, the expiry is not changed: nothing is told again.
    same = await client.put(path, headers=tenant.headers, json={
        "name": "renamed", "expiresAt": made["expiresAt"]})
    assert same.status_code == 200, same.text
    assert await round_at(app, start + second) == 0

    later = start + 20 * DAY
    moved = await client.put(path, headers=tenant.headers, json={"expiresAt": render(later)})
    assert moved.status_code == 200, moved.text
    assert await round_at(app, start + 2 * second) == 1
    rotated = await client.post(f"{path}/rotate", headers=tenant.headers,
                                json={"expiresAt": render(start + 2 * DAY)})
    assert rotated.status_code == 200, rotated.text
    assert await round_at(app, start + 3 * second) == 1
    records = await notices(client, tenant, made["id"])
    assert told(records) == [("expiring", 5), ("expiring", 20), ("expiring", 2)]
    assert records[1]["documents"]["expiry"]["expiresAt"] == render(later)
    assert records[1]["documents"]["apiToken"]["name"] == "renamed"

    # Expired, then rotated: Active again with a new expiry, told of it in turn.
    assert await round_at(app, start + 3 * DAY) == 1
    with time_machine.travel(start + 3 * DAY, tick=False):
        again = await client.post(f"{path}/rotate", headers=tenant.headers,
                                  json={"expiresAt": render(start + 9 * DAY)})
        assert again.status_code == 200, again.text
    assert await round_at(app, start + 3 * DAY + second) == 1
    assert told(await notices(client, tenant, made["id"]))[-2:] == [("expired", 0),
                                                                    ("expiring", 6)]


async def test_disabled_and_deleted_tokens_are_not_told(client: httpx.AsyncClient,
                                                        factory: Factory, app: FastAPI):
    tenant = await auditor(factory)
    start = now()
    disabled = await make(client, tenant, start + 2 * DAY)
    deleted = await make(client, tenant, start + 2 * DAY)
    assert (await client.post(f"{TOKENS}/{disabled['id']}/disable",
                              headers=tenant.headers)).status_code == 200
    assert (await client.delete(f"{TOKENS}/{deleted['id']}",
                                headers=tenant.headers)).status_code == 204
    assert await round_at(app, start) == 0
    assert await round_at(app, start + 3 * DAY) == 0
    # Enabled again before its expiry, the token is owed its notice.
    assert (await client.post(f"{TOKENS}/{disabled['id']}/enable",
                              headers=tenant.headers)).status_code == 200
    assert await round_at(app, start) == 1
    assert told(await notices(client, tenant, disabled["id"])) == [("expiring", 2)]


async def test_rounds_at_once_and_in_batches_tell_each_token_once(
        client: httpx.AsyncClient, factory: Factory, app: FastAPI):
    tenant = await auditor(factory)
    start = now()
    made = [await make(client, tenant, start + (index + 1) * 3600 * timedelta(seconds=1))
            for index in range(7)]
    with time_machine.travel(start, tick=False):
        sessions = app.state.runtime.sessions
        counts = await asyncio.gather(*(notice_expiries(sessions, batch=2) for _ in range(3)))
    assert sum(counts) == 7
    for token in made:
        assert told(await notices(client, tenant, token["id"])) == [("expiring", 1)]


async def test_a_round_reads_only_the_tokens_owed_a_notice(
        client: httpx.AsyncClient, factory: Factory, app: FastAPI, backend: str) -> None:
    """20,000 tokens, most told of their expiry long ago or never expiring: a round's query
    scans the partial index of the tokens still owed a notice, in its order (no sort)."""
    if backend != "postgresql":
        pytest.skip("query plans are checked on PostgreSQL, the production database")
    account = await factory.account("Client")
    start = now()
    tokens = [{"id": f"TKN-9{n:03d}-{n:04d}", "account_id": account["id"], "name": "t",
               "status": "Active", "revision": 1, "created_at": start,
               "expires_at": None if n % 3 else start - (n % 900) * DAY,
               "expiry_notice": 4 if n % 3 == 0 else 0}
              for n in range(20_000)]
    async with app.state.runtime.sessions() as session:
        connection = await session.connection()
        await connection.execute(insert(ApiToken.__table__), tokens)
        await session.commit()
    async with app.state.runtime.engine.connect() as connection:
        await connection.execute(text("ANALYZE api_tokens"))
        compiled = owed_tokens(start).compile(dialect=connection.dialect,
                                              compile_kwargs={"literal_binds": True})
        plan = "\n".join(row[0] for row in await connection.execute(
            text(f"EXPLAIN {compiled}")))
    assert "ix_api_tokens_expiry_owed" in plan, plan
    assert "Seq Scan on api_tokens" not in plan and "Sort" not in plan, plan


# -- real processes ---------------------------------------------------------------------

INTERVAL = 0.2


@pytest.fixture(params=BACKENDS)
def servers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[LiveServer,
                                                                             Server]]:
    """Two server processes on one database, each running the job every 0.2 s."""
    live = LiveServer.start(request.param, tmp_path / request.param,
                            TOKENHOUSE_JOB_INTERVAL=str(INTERVAL))
    other = Server(cwd=live.workdir, env=live.env)
    try:
        other.wait_healthy()
        yield live, other
    finally:
        other.stop()
        live.stop()


def lease_holder(live: LiveServer) -> int | None:
    """The pid of the process holding the expiry job's lease (None: none)."""
    sql = "SELECT holder FROM job_leases WHERE name = 'tokens.expiry'"
    if live.backend == "sqlite":
        with sqlite3.connect(live.workdir / "db.sqlite") as connection:
            rows = connection.execute(sql).fetchall()
    else:
        assert live.pg_database is not None
        rows = pg_fetch_sync(sql, live.pg_database)
    return int(rows[0][0].split(":")[1]) if rows else None


def create(client: httpx.Client, live: LiveServer, expires_at: datetime) -> str:
    response = client.post(TOKENS, json={
        "name": "soon", "account": {"id": live.account_id},
        "modules": [{"id": "MOD-1732"}], "expiresAt": render(expires_at)})
    assert response.status_code == 201, response.text
    token_id: str = response.json()["id"]
    return token_id


def wait_for_notices(client: httpx.Client, token_ids: list[str], count: int,
                     timeout: float = 15.0) -> list[dict[str, Any]]:
    """The tokens' expiring and expired records once there are `count` of them."""
    query = (f"{RECORDS}?in(object.id,({','.join(token_ids)}))"
             f"&in(event,({EXPIRING},{EXPIRED}))&order=timestamp&limit=100")
    deadline = time.monotonic() + timeout
    while True:
        records: list[dict[str, Any]] = client.get(query).json()["data"]
        if len(records) >= count or time.monotonic() > deadline:
            return records
        time.sleep(0.1)


def test_two_processes_tell_each_notice_once_and_one_takes_over(
        servers: tuple[LiveServer, Server]):
    live, other = servers
    assert live.server is not None
    with live.client(live.admin_secret) as client:
        first = create(client, live, now() + timedelta(seconds=3))
        records = wait_for_notices(client, [first], 2)
        # Many rounds of both processes ran meanwhile: one expiring (1 day), one expired.
        time.sleep(10 * INTERVAL)
        records = wait_for_notices(client, [first], 2)
        assert [(r["object"]["id"], r["event"]) for r in records] == [
            (first, EXPIRING), (first, EXPIRED)]

        # The holder dies without a word (no release): the other process takes the lease
        # once its time (three intervals) is up, and tells the next token.
        holder = lease_holder(live)
        dying, survivor = ((live.server, other) if holder == live.server.process.pid
                           else (other, live.server))
        assert holder == dying.process.pid
        dying.process.kill()
        dying.process.wait(10)
    with survivor.client(live.admin_secret) as client:
        second = create(client, live, now() + timedelta(seconds=2))
        records = wait_for_notices(client, [second], 2)
        assert [r["event"] for r in records] == [EXPIRING, EXPIRED]
        assert lease_holder(live) == survivor.process.pid
