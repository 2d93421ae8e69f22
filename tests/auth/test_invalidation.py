"""Cached credentials across processes: two real servers on one database. A change made
through one takes effect in the other within a second (PostgreSQL NOTIFY; SQLite's
auth_changes table), and at once in the one that made it."""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr

from tests.conftest import TEST_KEY
from tests.databases import BACKENDS
from tests.factories import Factory
from tests.live_server import LiveServer
from tests.processes import Server
from tokenhouse.app import create_app
from tokenhouse.auth import invalidation
from tokenhouse.auth.actor import Actor
from tokenhouse.auth.cache import CredentialCache
from tokenhouse.kit.migrate import upgrade
from tokenhouse.kit.settings import Settings
from tokenhouse.kit.timeutil import utcnow

TOKENS = "/public/v1/accounts/api-tokens"
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


# -- the cache itself -----------------------------------------------------------------------

def actor(token_id: str, account_id: str = "ACC-1") -> Actor:
    return Actor(account_id=account_id, account_type="Client", modules=frozenset(),
                 module_ids=frozenset(), token_id=token_id, token_name="t")


def test_a_read_that_raced_an_invalidation_is_not_stored() -> None:
    cache = CredentialCache()
    cache.enable()
    generation = cache.generation  # noted before reading the database ...
    cache.invalidate_token("TKN-1")  # ... a change arrives while the read is in flight ...
    cache.put("hash-1", actor("TKN-1"), generation)  # ... so the stale result is dropped.
    assert cache.get("hash-1") is None
    cache.put("hash-1", actor("TKN-1"), cache.generation)
    assert cache.get("hash-1") is not None


def test_the_cache_is_bounded_and_forgets_the_least_recently_used() -> None:
    cache = CredentialCache(max_entries=3)
    cache.enable()
    for n in range(3):
        cache.put(f"h{n}", actor(f"TKN-{n}"), cache.generation)
    cache.get("h0")  # used: h1 is now the least recently used
    cache.put("h3", actor("TKN-3"), cache.generation)
    assert len(cache) == 3
    assert cache.get("h1") is None and cache.get("h0") is not None


def test_account_invalidation_drops_every_token_of_it_only() -> None:
    cache = CredentialCache()
    cache.enable()
    cache.put("a1", actor("TKN-1", "ACC-A"), cache.generation)
    cache.put("a2", actor("TKN-2", "ACC-A"), cache.generation)
    cache.put("b1", actor("TKN-3", "ACC-B"), cache.generation)
    cache.invalidate_account("ACC-A")
    assert cache.get("a1") is None and cache.get("a2") is None
    assert cache.get("b1") is not None


def test_a_disabled_cache_answers_nothing() -> None:
    cache = CredentialCache()
    cache.put("h", actor("TKN-1"), cache.generation)  # not listening yet: not stored
    assert cache.get("h") is None
    cache.enable()
    cache.put("h", actor("TKN-1"), cache.generation)
    cache.disable()
    assert cache.get("h") is None


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


# -- SQLite: the change table emptied by the clean-up ------------------------------------

@pytest.fixture
async def two_apps(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, FastAPI]]:
    """Two app instances on one SQLite file: two processes, as far as the database knows
    (each has its engine, caches and poller)."""
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}",
                        secret_key=SecretStr(TEST_KEY), last_access_interval=60)
    upgrade(settings)
    one, other = create_app(settings), create_app(settings)
    async with LifespanManager(one), LifespanManager(other):
        yield one, other


async def answers(app: FastAPI, secret: str) -> int:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get(TOKENS, headers={"Authorization": f"Bearer {secret}"})
        return response.status_code


async def refused_by(app: FastAPI, secret: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await answers(app, secret) == 401:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_a_disable_reaches_the_other_process_after_the_clean_up_emptied_the_table(
        two_apps: tuple[FastAPI, FastAPI]) -> None:
    """Defect 1: the clean-up emptied auth_changes, new ids restarted from 1 and the other
    process, waiting for ids above the old maximum, kept a disabled token for minutes."""
    one, other = two_apps
    transport = httpx.ASGITransport(app=one)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        factory = Factory(one, client)
        admin = await factory.admin()
        earlier = [await factory.token(admin.account_id) for _ in range(3)]
        target = await factory.token(admin.account_id)
        for issued in [*earlier, target]:
            assert await answers(other, issued.secret) == 200  # cached by the other process
        for issued in earlier:  # announcements 1..3, read by the other process
            assert (await client.post(f"{TOKENS}/{issued.id}/disable",
                                      headers=admin.headers)).status_code == 200
            assert await refused_by(other, issued.secret, 1.0)
        assert await answers(other, target.secret) == 200
        # The clean-up runs (its clock ten minutes on): every announcement goes.
        await one.state.invalidation.clean_up(now=utcnow() + invalidation.KEEP
                                              + timedelta(seconds=1))
        assert (await client.post(f"{TOKENS}/{target.id}/disable",
                                  headers=admin.headers)).status_code == 200
    assert await refused_by(other, target.secret, 1.0), \
        "the other process still accepts a disabled token after the clean-up"
