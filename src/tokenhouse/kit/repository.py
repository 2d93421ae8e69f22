"""Query helpers shared by the domain repositories."""

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tokenhouse.kit.paging import Page


async def fetch_page(session: AsyncSession, statement: Select[Any], page: Page,
                     order_by: Any) -> tuple[list[Any], int]:
    """One page of `statement` in a stable order, with the total of the whole set."""
    total = await session.scalar(select(func.count()).select_from(
        statement.order_by(None).subquery()))
    if page.limit == 0 or not total:
        return [], total or 0
    rows = await session.scalars(statement.order_by(order_by).limit(page.limit)
                                 .offset(page.offset))
    return list(rows.unique()), total


async def new_unique_id(session: AsyncSession, model: Any, make: Any, attempts: int = 8) -> str:
    """A fresh random id not yet used by `model` (deleted rows are kept, so never reused)."""
    for _ in range(attempts):
        candidate = make()
        if await session.get(model, candidate) is None:
            return candidate
    raise RuntimeError(f"no free {model.__name__} id after {attempts} attempts")
