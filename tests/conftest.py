"""Test set-up: every API test runs against the real app over HTTP, on SQLite and on
PostgreSQL (a fresh database per run, dropped at the end).

Set TOKENHOUSE_TEST_BACKENDS=sqlite to run on SQLite alone (PostgreSQL is on CI machines).
"""


from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr

from tests.databases import BACKENDS, create_pg_database, drop_pg_database, pg_url
from tests.factories import Factory
from tests.helpers import empty_store
from tokenhouse.app import create_app
from tokenhouse.kit.migrate import upgrade
from tokenhouse.kit.settings import Settings

TEST_KEY = "test-key-" + "k" * 40


@pytest.fixture(scope="session")
def output_dir() -> Path:
    path = Path(__file__).resolve().parent.parent / "test-output"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session", params=BACKENDS)
async def settings(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                   ) -> AsyncIterator[Settings]:
    """A migrated, empty database of each kind, and the settings that point at it."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "tokenhouse.db"
        settings = Settings(database_url=f"sqlite+aiosqlite:///{path}",
                            secret_key=SecretStr(TEST_KEY), last_access_interval=0.2)
        upgrade(settings)
        yield settings
        return
    name = await create_pg_database()
    settings = Settings(database_url=pg_url(name), secret_key=SecretStr(TEST_KEY),
                        last_access_interval=0.2)
    try:
        upgrade(settings)
        yield settings
    finally:
        await drop_pg_database(name)


@pytest.fixture(scope="session")
def backend(settings: Settings) -> str:
    return "sqlite" if settings.is_embedded else "postgresql"


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the running app; the database is emptied (but for the module
    catalog) before each test."""
    async with app.state.runtime.sessions() as session:
        await empty_store(session)
        await session.commit()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tokenhouse.test") as c:
        yield c


@pytest.fixture
def factory(app: FastAPI, client: httpx.AsyncClient) -> Factory:
    return Factory(app, client)
