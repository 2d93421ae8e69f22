"""Query helpers shared by the domain repositories."""

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tokenhouse.kit.rql import Query, Resource
from tokenhouse.kit.rql.sql import Compiler


async def fetch_page(session: AsyncSession, statement: Select[Any], resource: Resource,
                     query: Query) -> tuple[list[Any], int]:
    """One page of `statement` narrowed by the query's filter, in the query's order (ties
    broken by id), with the total of the whole filtered set. `statement` is already scoped
    to what the actor may see: the filter is ANDed to it and can never widen it."""
    compiler = Compiler(resource, session.bind.dialect.name)
    if query.filter is not None:
        statement = statement.where(compiler.filter(query.filter))
    order = compiler.order(query.order)
    total = await session.scalar(select(func.count()).select_from(
        statement.order_by(None).subquery()))
    if query.limit == 0 or not total or query.offset >= total:
        return [], total or 0
    rows = await session.scalars(statement.order_by(*order).limit(query.limit)
                                 .offset(query.offset))
    return list(rows.unique()), total


async def new_unique_id(session: AsyncSession, model: Any, make: Any, attempts: int = 8) -> str:
    """A fresh random id not yet used by `model` (deleted rows are kept, so never reused)."""
    for _ in range(attempts):
        candidate = make()
        if await session.get(model, candidate) is None:
            return candidate
    raise RuntimeError(f"no free {model.__name__} id after {attempts} attempts")
