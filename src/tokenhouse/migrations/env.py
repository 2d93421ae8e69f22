"""Alembic environment: runs migrations over the app's own async engine."""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

import tokenhouse.models  # noqa: F401  (registers every table on the metadata)
from tokenhouse.kit.db import Base, create_engine
from tokenhouse.kit.settings import get_settings

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    settings = context.config.attributes.get("settings") or get_settings()
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


asyncio.run(_main())
