"""Cached credentials and views across processes: two real servers (or two app instances) on
one database. A change made through one takes effect in the other within a second
(PostgreSQL NOTIFY; SQLite's auth_changes table), and at once in the one that made it,
whatever wrote it: the changes come from the session hook (kit/invalidation.py), not from
the callers."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select, update

from tests.conftest import TEST_KEY
from tests.databases import BACKENDS, create_pg_database, drop_pg_database, pg_url
from tests.factories import Factory, Issued
from tests.helpers import TOKENS
from tests.live_server import LiveServer
from tests.processes import Server
from tokenhouse.app import create_app
from tokenhouse.kit import invalidation
from tokenhouse.kit.migrate import upgrade
from tokenhouse.kit.settings import Settings
from tokenhouse.kit.timeutil import utcnow
from tokenhouse.models import Account, ApiToken, Module, token_modules

LAST_ACCESS_INTERVAL = 0.5


@pytest.fixture(scope="module", params=BACKENDS)
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[LiveServer, Server]]:
    """Server A (migrated, bootstrapped) and server B, another process on the same database."""
    live = LiveServer.start(request.param, tmp_path_factory.mktemp(f"pair-{request.param}"),
                            TOKENHOUSE_LAST_ACCESS_INTERVAL=str(LAST_ACCESS_INTERVAL))
    other = Server(cwd=live.workdir, env=live.env)
    try:
        other.wait_healthy()
        yield live, other
    finally:
        other.stop()
        live.stop()


def new_token(live: LiveServer, account_id: str | None = None) -> dict[str, Any]:
    with live.client(live.admin_secret) as admin:
        modules = [m["id"] for m in admin.get("/public/v1/accounts/modules?limit=100").json()[
            "data"] if m["name"] == "Access Management"]
        response = admin.post(TOKENS, json={"name": "cached", "account": {
            "id": account_id or live.account_id}, "modules": [{"id": modules[0]}]})
        assert response.status_code == 201, response.text
        return response.json()


def refused_within(server: Server, secret: str, seconds: float) -> float | None:
    """How long until `server` answers 401 to `secret` (None: not within `seconds`)."""
    start = time.monotonic()
    with server.client(secret) as client:
        while time.monotonic() - start < seconds:
            if client.get(TOKENS).status_code == 401:
                return time.monotonic() - start
            time.sleep(0.02)
    return None


def warm(server: Server, secret: str) -> None:
    with server.client(secret) as client:
        for _ in range(3):  # the first call fills the cache, the next ones are served by it
            assert client.get(TOKENS).status_code == 200


@pytest.mark.parametrize("action", ["disable", "delete"])
def test_a_change_through_one_process_reaches_the_other_within_a_second(
        pair: tuple[LiveServer, Server], action: str) -> None:
    live, other = pair
    token = new_token(live)
    warm(other, token["token"])
    warm(live.server, token["token"])
    with live.client(live.admin_secret) as admin:
        response = (admin.post(f"{TOKENS}/{token['id']}/disable") if action == "disable"
                    else admin.delete(f"{TOKENS}/{token['id']}"))
        assert response.status_code in (200, 204), response.text
    # At once where the change was made ...
    with live.client(token["token"]) as here:
        assert here.get(TOKENS).status_code == 401
    # ... and within a second in the other process.
    elapsed = refused_within(other, token["token"], 1.0)
    assert elapsed is not None, f"server B still accepts a {action}d token after 1 s"


def test_enable_works_everywhere_again(pair: tuple[LiveServer, Server]) -> None:
    live, other = pair
    token = new_token(live)
    with live.client(live.admin_secret) as admin:
        assert admin.post(f"{TOKENS}/{token['id']}/disable").status_code == 200
        assert refused_within(other, token["token"], 1.0) is not None
        assert admin.post(f"{TOKENS}/{token['id']}/enable").status_code == 200
    with other.client(token["token"]) as client:
        assert client.get(TOKENS).status_code == 200


def test_disabling_an_account_reaches_the_other_process(pair: tuple[LiveServer, Server]
                                                        ) -> None:
    live, other = pair
    with live.client(live.admin_secret) as admin:
        account = admin.post("/public/v1/accounts/accounts",
                             json={"name": "Cached Co", "type": "Client"}).json()
    token = new_token(live, account["id"])
    warm(other, token["token"])
    with live.client(live.admin_secret) as admin:
        response = admin.post(f"/public/v1/accounts/accounts/{account['id']}/disable")
        assert response.status_code == 200, response.text
    assert refused_within(other, token["token"], 1.0) is not None


def test_a_module_change_reaches_the_other_process(pair: tuple[LiveServer, Server]) -> None:
    live, other = pair
    token = new_token(live)
    warm(other, token["token"])
    with live.client(live.admin_secret) as admin:
        billing = [m["id"] for m in admin.get("/public/v1/accounts/modules?limit=100").json()[
            "data"] if m["name"] == "Billing"]
        response = admin.put(f"{TOKENS}/{token['id']}", json={"modules": [{"id": billing[0]}]})
        assert response.status_code == 200, response.text
    # Without Access Management the list is forbidden: the other process must know at once.
    deadline = time.monotonic() + 1.0
    status = None
    with other.client(token["token"]) as client:
        while time.monotonic() < deadline:
            status = client.get(TOKENS).status_code
            if status == 403:
                break
            time.sleep(0.02)
    assert status == 403


def test_an_access_through_one_process_shows_in_the_others_cached_view(
        pair: tuple[LiveServer, Server]) -> None:
    """Views live for minutes; `lastAccessAt` still follows accesses made elsewhere, within
    about one write interval (the `seen` notes), with no change to the token."""
    live, other = pair
    token = new_token(live)
    url = f"{TOKENS}/{token['id']}"
    with live.client(live.admin_secret) as admin:
        assert admin.get(url).json()["lastAccessAt"] is None  # A now holds the view
        assert admin.get(url).json()["lastAccessAt"] is None
        with other.client(token["token"]) as elsewhere:
            assert elsewhere.get(TOKENS).status_code == 200  # an access through B only
        deadline = time.monotonic() + LAST_ACCESS_INTERVAL + 1.0
        seen = None
        while seen is None and time.monotonic() < deadline:
            seen = admin.get(url).json()["lastAccessAt"]
            time.sleep(0.05)
    assert seen is not None, "server A never showed the access made through server B"


def test_a_rename_reaches_the_other_processs_cached_view(pair: tuple[LiveServer, Server]) -> None:
    live, other = pair
    token = new_token(live)
    url = f"{TOKENS}/{token['id']}"
    with other.client(live.admin_secret) as reader:
        for _ in range(2):  # the first read makes the view, the second is served by it
            assert reader.get(url).json()["name"] == "cached"
        with live.client(live.admin_secret) as admin:
            assert admin.put(url, json={"name": "renamed"}).status_code == 200
        deadline = time.monotonic() + 1.0
        name = None
        while time.monotonic() < deadline:
            name = reader.get(url).json()["name"]
            if name == "renamed":
                break
            time.sleep(0.02)
    assert name == "renamed", "server B still shows the old name after 1 s"


# -- two app instances on one database --------------------------------------------------------

@asynccontextmanager
async def apps_on(backend: str, tmp_path: Path) -> AsyncIterator[tuple[FastAPI, FastAPI]]:
    """Two app instances on one database: two processes, as far as the database knows
    (each has its engine, caches and listener or poller)."""
    database = None
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    else:
        database = await create_pg_database("tokenhouse_pair")
        url = pg_url(database)
    try:
        settings = Settings(database_url=url, secret_key=SecretStr(TEST_KEY),
                            last_access_interval=60)
        await asyncio.to_thread(upgrade, settings)
        one, other = create_app(settings), create_app(settings)
        async with LifespanManager(one), LifespanManager(other):
            yield one, other
    finally:
        if database is not None:
            await drop_pg_database(database)


@pytest.fixture(params=BACKENDS)
async def two_apps(request: pytest.FixtureRequest, tmp_path: Path
                   ) -> AsyncIterator[tuple[FastAPI, FastAPI]]:
    async with apps_on(request.param, tmp_path) as apps:
        yield apps


@pytest.fixture
async def two_sqlite_apps(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, FastAPI]]:
    async with apps_on("sqlite", tmp_path) as apps:
        yield apps


async def answers(app: FastAPI, secret: str, path: str = TOKENS) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path, headers={"Authorization": f"Bearer {secret}"})


async def within_a_second(app: FastAPI, secret: str, check: Callable[[httpx.Response], bool],
                          path: str = TOKENS) -> bool:
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        if check(await answers(app, secret, path)):
            return True
        await asyncio.sleep(0.02)
    return False


def refused(response: httpx.Response) -> bool:
    return response.status_code == 401


async def issued(app: FastAPI, count: int = 1) -> tuple[Issued, list[Issued]]:
    """An admin and `count` tokens of its account, each cached by both apps' callers."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        factory = Factory(app, client)
        admin = await factory.admin()
        return admin, [await factory.token(admin.account_id) for _ in range(count)]


async def warm_apps(apps: tuple[FastAPI, ...], *tokens: Issued) -> None:
    for app in apps:
        for token in tokens:
            for _ in range(2):  # the first fills the caches, the second is served by them
                assert (await answers(app, token.secret)).status_code == 200
                assert (await answers(app, token.secret, f"{TOKENS}/{token.id}")
                        ).status_code == 200


async def test_a_disable_reaches_the_other_process_after_the_clean_up_emptied_the_table(
        two_sqlite_apps: tuple[FastAPI, FastAPI]) -> None:
    """Defect 1: the clean-up emptied auth_changes, new ids restarted from 1 and the other
    process, waiting for ids above the old maximum, kept a disabled token for minutes."""
    one, other = two_sqlite_apps
    admin, [*earlier, target] = await issued(one, 4)
    await warm_apps((other,), *earlier, target)
    transport = httpx.ASGITransport(app=one)
    async with httpx.AsyncClient(transport=transport, base_url="http://t",
                                 headers=admin.headers) as client:
        for token in earlier:  # announcements 1..3, read by the other process
            assert (await client.post(f"{TOKENS}/{token.id}/disable")).status_code == 200
            assert await within_a_second(other, token.secret, refused)
        assert (await answers(other, target.secret)).status_code == 200
        # The clean-up runs (its clock ten minutes on): every announcement goes.
        await one.state.runtime.invalidation.clean_up(now=utcnow() + invalidation.KEEP
                                              + timedelta(seconds=1))
        assert (await client.post(f"{TOKENS}/{target.id}/disable")).status_code == 200
    assert await within_a_second(other, target.secret, refused), \
        "the other process still accepts a disabled token after the clean-up"


# A write path of the future that knows nothing of caches: plain ORM or Core through the
# session, no service, no announcement. The session hook alone must tell every process.

async def test_a_token_disabled_through_the_orm_alone_is_refused_everywhere(
        two_apps: tuple[FastAPI, FastAPI]) -> None:
    one, other = two_apps
    _, [token] = await issued(one)
    await warm_apps((one, other), token)
    async with one.state.runtime.sessions() as session:
        row = await session.get(ApiToken, token.id)
        assert row is not None
        row.status = "Disabled"
        await session.commit()
    assert refused(await answers(one, token.secret))  # at once where it was made
    assert await within_a_second(other, token.secret, refused)


async def test_a_token_renamed_by_a_core_update_shows_everywhere(
        two_apps: tuple[FastAPI, FastAPI]) -> None:
    one, other = two_apps
    _, [token] = await issued(one)
    await warm_apps((one, other), token)
    async with one.state.runtime.sessions() as session:
        await session.execute(update(ApiToken).where(ApiToken.id == token.id)
                              .values(name="renamed"))
        await session.commit()
    for app in (one, other):
        assert await within_a_second(app, token.secret,
                                     lambda r: r.json()["name"] == "renamed",
                                     f"{TOKENS}/{token.id}")


async def test_a_module_linked_by_a_core_insert_shows_everywhere(
        two_apps: tuple[FastAPI, FastAPI]) -> None:
    one, other = two_apps
    _, [token] = await issued(one)
    await warm_apps((one, other), token)
    async with one.state.runtime.sessions() as session:
        billing = await session.scalar(select(Module.id).where(Module.name == "Billing"))
        await session.execute(token_modules.insert(), [{"token_id": token.id,
                                                        "module_id": billing}])
        await session.commit()
    for app in (one, other):
        assert await within_a_second(
            app, token.secret, lambda r: "Billing" in {m["name"] for m in r.json()["modules"]},
            f"{TOKENS}/{token.id}")


async def test_an_account_disabled_through_the_orm_alone_is_refused_everywhere(
        two_apps: tuple[FastAPI, FastAPI]) -> None:
    one, other = two_apps
    _, [token] = await issued(one)
    await warm_apps((one, other), token)
    async with one.state.runtime.sessions() as session:
        account = await session.get(Account, token.account_id)
        assert account is not None
        account.status = "Disabled"
        await session.commit()
    for app in (one, other):
        assert await within_a_second(app, token.secret, refused)


async def test_a_module_renamed_through_the_orm_alone_shows_everywhere(
        two_apps: tuple[FastAPI, FastAPI]) -> None:
    """Credentials and views hold module names: a catalog change must reach them."""
    one, other = two_apps
    _, [token] = await issued(one)
    await warm_apps((one, other), token)
    async with one.state.runtime.sessions() as session:
        module = await session.scalar(select(Module).where(Module.name == "Access Management"))
        assert module is not None
        module.name = "Renamed"
        await session.commit()
    for app in (one, other):
        assert await within_a_second(
            app, token.secret, lambda r: r.json()["modules"][0]["name"] == "Renamed",
            f"{TOKENS}/{token.id}")


async def test_a_rolled_back_change_drops_nothing(two_apps: tuple[FastAPI, FastAPI]) -> None:
    one, _ = two_apps
    _, [token] = await issued(one)
    await warm_apps((one,), token)
    before = len(one.state.runtime.credentials)
    async with one.state.runtime.sessions() as session:
        row = await session.get(ApiToken, token.id)
        assert row is not None
        row.name = "never"
        await session.flush()
        await session.rollback()
    assert len(one.state.runtime.credentials) == before
