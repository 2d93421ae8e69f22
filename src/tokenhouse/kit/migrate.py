"""Schema migrations (Alembic), shipped inside the package so they run from any directory."""

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

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
