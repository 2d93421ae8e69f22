"""Schema migrations (Alembic), shipped inside the package so they run from any directory."""

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from tokenhouse.kit.settings import Settings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["settings"] = settings
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database to `revision`. Safe to run from async code (it gets its own loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(alembic_config(settings), revision)
        return
    # Called from inside an event loop (tests): run Alembic's own loop in a worker thread.
    import threading

    failure: list[BaseException] = []

    def run() -> None:
        try:
            command.upgrade(alembic_config(settings), revision)
        except BaseException as exc:  # handed back to the caller below
            failure.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    if failure:
        raise failure[0]


async def is_current(settings: Settings) -> bool:
    """Whether the database is at the newest migration (False when it has none yet)."""
    from tokenhouse.kit.db import create_engine

    heads = set(ScriptDirectory.from_config(alembic_config(settings)).get_heads())

    def current(connection: Connection) -> set[str]:
        return set(MigrationContext.configure(connection).get_current_heads())

    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(current) == heads
    finally:
        await engine.dispose()
