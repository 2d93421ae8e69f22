"""Faults survived, nothing lost: PostgreSQL backends killed (in flight and under load), the
invalidation listener's connection killed, the database unreachable for a while (a TCP proxy
between server and PostgreSQL cuts and restores the link), SQLite's lock held too long.

During a fault a request may fail, as a 503 problem (never a 500, never a driver message);
after it, service comes back by itself, and no cached credential outlives a disable.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from tests.conftest import TEST_KEY
from tests.databases import (
    BACKENDS,
    PG_ADMIN_DSN,
    create_pg_database,
    drop_pg_database,
    pg_fetch_sync,
    pg_url,
)
from tests.factories import Factory
from tests.helpers import TOKENS, problem
from tests.live_server import SECRET_KEY, LiveServer
from tests.processes import Server, clean_env, describe, run_cli
from tests.tcp_proxy import TcpProxy
from tokenhouse.app import create_app
from tokenhouse.kit import db
from tokenhouse.kit.invalidation import LISTENER_NAME
from tokenhouse.kit.migrate import upgrade
from tokenhouse.kit.settings import Settings

postgresql = pytest.mark.skipif("postgresql" not in BACKENDS, reason="PostgreSQL not tested")
SERVER_DSN = PG_ADMIN_DSN.rsplit("/", 1)[0]
# What a driver's message looks like; none may reach a response.
DRIVER_WORDS = ("asyncpg", "sqlalchemy", "connect call", "refused", "terminat", "sqlite",
                "locked", "select ", "insert ")


def unavailable(response: httpx.Response) -> dict[str, Any]:
    """A 503 problem that says nothing of the driver, with Retry-After."""
    body = problem(response, 503)
    assert int(response.headers["retry-after"]) > 0
    assert not any(word in response.text.lower() for word in DRIVER_WORDS), response.text
    return body


async def terminate(database: str, *, where: str = "true") -> int:
    """pg_terminate_backend of every connection to `database` (but this one) matching
    `where`; returns how many, once they are gone."""
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        pids = [row["pid"] for row in await admin.fetch(
            f"SELECT pid FROM pg_stat_activity WHERE datname = $1 "  # noqa: S608 - test SQL
            f"AND pid <> pg_backend_pid() AND ({where})", database)]
        for pid in pids:
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
        while pids and await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = any($1::int[])", pids):
            await asyncio.sleep(0.01)
        return len(pids)
    finally:
        await admin.close()


# -- in-process apps on fresh databases -----------------------------------------------------

def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.fixture
async def pg_app() -> AsyncIterator[tuple[FastAPI, str]]:
    """An app on a fresh PostgreSQL database of its own (its connections may be killed)."""
    if "postgresql" not in BACKENDS:
        pytest.skip("PostgreSQL not tested")
    name = await create_pg_database("tokenhouse_faults")
    try:
        settings = Settings(database_url=pg_url(name), secret_key=SecretStr(TEST_KEY))
        await asyncio.to_thread(upgrade, settings)
        app = create_app(settings)
        async with LifespanManager(app):
            yield app, name
    finally:
        await drop_pg_database(name)


async def test_a_request_after_the_backends_were_killed_is_never_a_500(
        pg_app: tuple[FastAPI, str]) -> None:
    """Defect 6: the first request after pg_terminate_backend answered 500."""
    app, database = pg_app
    async with client_of(app) as client:
        admin = await Factory(app, client).admin()
        assert (await client.get(TOKENS, headers=admin.headers)).status_code == 200
        assert await terminate(database) > 0  # the pool's connection and the listener's
        response = await client.get(TOKENS, headers=admin.headers)
        if response.status_code != 200:
            unavailable(response)
        for _ in range(3):  # the pool healed by itself
            assert (await client.get(TOKENS, headers=admin.headers)).status_code == 200


async def test_a_connection_killed_in_the_middle_of_a_request_is_a_503_problem(
        pg_app: tuple[FastAPI, str]) -> None:
    app, database = pg_app
    async with client_of(app) as client:
        admin = await Factory(app, client).admin()
        assert (await client.get(TOKENS, headers=admin.headers)).status_code == 200
        locker = await asyncpg.connect(f"{SERVER_DSN}/{database}")
        try:
            async with locker.transaction():
                await locker.execute("LOCK TABLE api_tokens IN ACCESS EXCLUSIVE MODE")
                request = asyncio.create_task(client.get(TOKENS, headers=admin.headers))
                # The request waits for the lock, in the middle of its statement: kill it.
                while not await terminate(database, where="wait_event_type = 'Lock'"):
                    await asyncio.sleep(0.01)
                unavailable(await request)
        finally:
            await locker.close()
        assert (await client.get(TOKENS, headers=admin.headers)).status_code == 200


async def test_sqlite_locked_past_the_busy_timeout_is_a_503_problem(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "BUSY_SECONDS", 0.2)
    path = tmp_path / "locked.db"
    settings = Settings(database_url=f"sqlite+aiosqlite:///{path}",
                        secret_key=SecretStr(TEST_KEY))
    upgrade(settings)
    app = create_app(settings)
    async with LifespanManager(app), client_of(app) as client:
        admin = await Factory(app, client).admin()
        body = {"name": "n", "account": {"id": admin.account_id},
                "modules": [{"id": (await Factory(app, client).modules())["Billing"]}]}
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")  # another process's writer that never ends
            unavailable(await client.post(TOKENS, json=body, headers=admin.headers))
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert (await client.post(TOKENS, json=body, headers=admin.headers)).status_code == 201


# -- real server processes ------------------------------------------------------------------

@pytest.fixture(scope="module")
def live_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    if "postgresql" not in BACKENDS:
        pytest.skip("PostgreSQL not tested")
    live = LiveServer.start("postgresql", tmp_path_factory.mktemp("faults"),
                            TOKENHOUSE_LAST_ACCESS_INTERVAL="0.5")
    try:
        yield live
    finally:
        live.stop()


def new_token(client: httpx.Client, account_id: str, module: str = "Access Management"
              ) -> dict[str, Any]:
    modules = {m["name"]: m["id"] for m in client.get(
        "/public/v1/accounts/modules?limit=100").json()["data"]}
    response = client.post(TOKENS, json={"name": "faults", "account": {"id": account_id},
                                         "modules": [{"id": modules[module]}]})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.slow
async def test_backends_killed_under_load_fail_as_503_problems_and_service_goes_on(
        live_pg: LiveServer) -> None:
    assert live_pg.pg_database is not None
    with live_pg.client(live_pg.admin_secret) as admin:
        token = new_token(admin, live_pg.account_id)
    headers = {"Authorization": f"Bearer {live_pg.admin_secret}"}
    statuses: list[int] = []
    stop = asyncio.Event()

    async def load(client: httpx.AsyncClient, n: int) -> None:
        while not stop.is_set():
            if n % 4 == 0:
                response = await client.post(TOKENS, json={
                    "name": "load", "account": {"id": live_pg.account_id},
                    "modules": token["modules"][:1]})
            else:
                response = await client.get(TOKENS if n % 2 else f"{TOKENS}/{token['id']}")
            statuses.append(response.status_code)
            if response.status_code == 503:
                unavailable(response)
            else:
                assert response.status_code in (200, 201), response.text

    async with httpx.AsyncClient(base_url=live_pg.url, headers=headers, timeout=10) as client:
        workers = [asyncio.create_task(load(client, n)) for n in range(8)]
        killed = 0
        for _ in range(10):
            await asyncio.sleep(0.2)
            killed += await terminate(live_pg.pg_database)
        stop.set()
        await asyncio.gather(*workers)
        assert killed >= 10 and len(statuses) > 50
        # Without a restart: the next requests succeed (the pool and listener heal).
        for _ in range(20):
            response = await client.get(TOKENS)
            assert response.status_code == 200, response.text
    assert "unexpected error" not in live_pg.log(200_000)


@pytest.mark.slow
def test_no_cached_credential_outlives_a_disable_while_the_listener_is_away(
        live_pg: LiveServer) -> None:
    assert live_pg.pg_database is not None
    with live_pg.client(live_pg.admin_secret) as admin:
        token = new_token(admin, live_pg.account_id)
    other = Server(cwd=live_pg.workdir, env=live_pg.env)
    try:
        other.wait_healthy()
        with other.client(token["token"]) as client:
            for _ in range(3):  # cached by the other process
                assert client.get(TOKENS).status_code == 200
            wait_for_listeners(live_pg.pg_database, 2)  # both processes listen
            listening = f"application_name = '{LISTENER_NAME}'"
            assert asyncio.run(terminate(live_pg.pg_database, where=listening)) == 2
            with live_pg.client(live_pg.admin_secret) as admin:  # heard by nobody
                assert admin.post(f"{TOKENS}/{token['id']}/disable").status_code == 200
            assert client.get(TOKENS).status_code == 401  # at once
        # The listeners come back by themselves, and carry changes again.
        wait_for_listeners(live_pg.pg_database, 2)
        with live_pg.client(live_pg.admin_secret) as admin:
            token = new_token(admin, live_pg.account_id)
        with other.client(token["token"]) as client:
            for _ in range(3):
                assert client.get(TOKENS).status_code == 200
            with live_pg.client(live_pg.admin_secret) as admin:
                assert admin.post(f"{TOKENS}/{token['id']}/disable").status_code == 200
            deadline = time.monotonic() + 1
            while client.get(TOKENS).status_code != 401:
                assert time.monotonic() < deadline, "a disable did not reach the other process"
                time.sleep(0.02)
    finally:
        other.stop()


def wait_for_listeners(database: str, count: int) -> None:
    """Until `count` invalidation listeners are connected to `database` (10 s at most)."""
    deadline = time.monotonic() + 10
    while int(pg_fetch_sync(
            f"SELECT count(*) AS n FROM pg_stat_activity WHERE datname = '{database}' "
            f"AND application_name = '{LISTENER_NAME}'")[0]["n"]) != count:
        assert time.monotonic() < deadline, f"not {count} listeners after 10 s"
        time.sleep(0.05)


# Every route, as (method, path); {token}, {account} are filled in.
ROUTES = [
    ("GET", TOKENS), ("POST", TOKENS), ("GET", f"{TOKENS}/{{token}}"),
    ("PUT", f"{TOKENS}/{{token}}"), ("DELETE", f"{TOKENS}/{{token}}"),
    ("POST", f"{TOKENS}/{{token}}/disable"), ("POST", f"{TOKENS}/{{token}}/enable"),
    ("GET", "/public/v1/accounts/modules"), ("GET", "/public/v1/accounts/modules/MOD-1732"),
    ("GET", "/public/v1/accounts/accounts"), ("POST", "/public/v1/accounts/accounts"),
    ("GET", "/public/v1/accounts/accounts/{account}"),
    ("PUT", "/public/v1/accounts/accounts/{account}"),
    ("GET", "/public/v1/accounts/accounts/{account}/icon"),
    ("POST", "/public/v1/accounts/accounts/{account}/disable"),
    ("POST", "/public/v1/accounts/accounts/{account}/enable"),
]


@pytest.mark.slow
@postgresql
def test_the_database_unreachable_for_a_while(tmp_path: Path) -> None:
    """Every route a 503 problem and /readyz 503 while the link is cut; service back by
    itself within a few seconds once restored; the lastAccessAt noted before the cut is
    written after it (retried, not dropped)."""
    database = asyncio.run(create_pg_database("tokenhouse_outage"))
    direct = pg_url(database)
    env = clean_env(TOKENHOUSE_DATABASE_URL=direct, TOKENHOUSE_SECRET_KEY=SECRET_KEY,
                    TOKENHOUSE_LAST_ACCESS_INTERVAL="2", PYTHONUNBUFFERED="1")
    try:
        for args in (("migrate",), ("bootstrap", "--json")):
            result = run_cli(*args, cwd=tmp_path, env=env)
            assert result.returncode == 0, describe(result)
        admin_secret = json.loads(result.stdout)["token"]["token"]
        port = make_url(direct).port or 5432
        with TcpProxy(port) as proxy:
            proxied = {**env, "TOKENHOUSE_DATABASE_URL": direct.replace(
                f":{port}/", f":{proxy.port}/")}
            with Server(cwd=tmp_path, env=proxied) as server:
                server.wait_healthy()
                outage(server, proxy, admin_secret, database)
    finally:
        asyncio.run(drop_pg_database(database))


def outage(server: Server, proxy: TcpProxy, admin_secret: str, database: str) -> None:
    with server.client(admin_secret) as admin:
        account = admin.get(TOKENS).json()["data"][0]["account"]["id"]
        token = new_token(admin, account)
    with server.client(token["token"]) as client:
        assert client.get(f"{TOKENS}/{token['id']}").status_code == 200  # noted, not written
        proxy.cut()
        assert stored_access(database, token["id"]) is None, "written before the cut"
        time.sleep(2.5)  # a write of lastAccessAt was due, and failed
    assert stored_access(database, token["id"]) is None
    with server.client(admin_secret) as admin:
        for method, path in ROUTES:
            url = path.format(token=token["id"], account=account)
            body = {"name": "x"} if method in ("POST", "PUT") else None
            unavailable(admin.request(method, url, json=body))
        unavailable(admin.get("/readyz"))
        assert admin.get("/healthz").status_code == 200
        proxy.restore()
        deadline = time.monotonic() + 5
        while admin.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "not ready 5 s after the link came back"
            time.sleep(0.05)
        deadline = time.monotonic() + 5
        while (status := admin.get(TOKENS).status_code) != 200:
            assert time.monotonic() < deadline, f"still {status} 5 s after the link came back"
            time.sleep(0.05)
    deadline = time.monotonic() + 5
    while stored_access(database, token["id"]) is None:
        assert time.monotonic() < deadline, "the lastAccessAt noted before the outage was lost"
        time.sleep(0.1)
    assert "unexpected error" not in server.logs()


def stored_access(database: str, token_id: str) -> Any:
    rows = pg_fetch_sync(f"SELECT last_access_at FROM api_tokens WHERE id = '{token_id}'",
                         database)
    return rows[0]["last_access_at"]
