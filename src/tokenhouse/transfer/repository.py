"""All SQL of import and export: bulk reads and bulk writes with SQLAlchemy Core (the ORM's
unit of work would make a 100,000-token import take minutes)."""

from collections.abc import AsyncIterator, Iterable
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from tokenhouse.accounts.models import Account, UserGroup
from tokenhouse.modules.models import Module
from tokenhouse.tokens.models import ApiToken, token_modules

BATCH = 2000


async def existing_ids(session: AsyncSession, model: Any, ids: Iterable[str]) -> set[str]:
    found: set[str] = set()
    pending = list(ids)
    for start in range(0, len(pending), BATCH):
        chunk = pending[start:start + BATCH]
        found.update(await session.scalars(select(model.id).where(model.id.in_(chunk))))
    return found


async def existing_hashes(session: AsyncSession, hashes: Iterable[str]) -> set[str]:
    found: set[str] = set()
    pending = list(hashes)
    for start in range(0, len(pending), BATCH):
        chunk = pending[start:start + BATCH]
        found.update(await session.scalars(
            select(ApiToken.secret_hash).where(ApiToken.secret_hash.in_(chunk))))
    return found


async def insert_rows(session: AsyncSession, table: Any, rows: list[dict[str, Any]]) -> None:
    # Through the session, so that its hook derives what caches must drop
    # (kit/invalidation.py).
    for start in range(0, len(rows), BATCH):
        await session.execute(insert(table), rows[start:start + BATCH])


async def update_module(session: AsyncSession, module_id: str, values: dict[str, Any]) -> None:
    table = cast(Table, Module.__table__)
    await session.execute(update(table).where(table.c.id == module_id).values(**values))


TABLES = {"accounts": Account.__table__, "user_groups": UserGroup.__table__,
          "modules": Module.__table__, "api_tokens": ApiToken.__table__,
          "api_token_modules": token_modules}


async def stream(session: AsyncSession, model: Any) -> AsyncIterator[Any]:
    """Every row of `model` in id order, loaded in batches."""
    statement = select(model)
    if model is Account:
        statement = statement.options(selectinload(Account.groups))
    result = await session.stream_scalars(
        statement.order_by(model.id).execution_options(yield_per=500))
    async for row in result:
        yield row
