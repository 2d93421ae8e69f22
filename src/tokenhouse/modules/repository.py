"""All SQL about modules. Every read starts from what the actor may see."""

from collections.abc import Iterable

from sqlalchemy import Select, String, cast, select
from sqlalchemy.ext.asyncio import AsyncSession

from tokenhouse.auth.actor import Actor
from tokenhouse.kit.paging import Page
from tokenhouse.kit.repository import fetch_page
from tokenhouse.modules.models import Module


def visible(actor: Actor) -> Select[tuple[Module]]:
    """Operations sees the whole catalog; other accounts see the modules their type may use."""
    statement = select(Module)
    if not actor.is_operations:
        # account_types is a JSON list of names; its text form holds each name quoted.
        statement = statement.where(
            cast(Module.account_types, String).like(f'%"{actor.account_type}"%'))
    return statement


async def list_visible(session: AsyncSession, actor: Actor, page: Page) -> tuple[list[Module], int]:
    return await fetch_page(session, visible(actor), page, Module.id)


async def get_visible(session: AsyncSession, actor: Actor, module_id: str) -> Module | None:
    return await session.scalar(visible(actor).where(Module.id == module_id))


async def by_ids(session: AsyncSession, ids: Iterable[str]) -> dict[str, Module]:
    rows = await session.scalars(select(Module).where(Module.id.in_(list(ids))))
    return {module.id: module for module in rows}


async def all_modules(session: AsyncSession) -> list[Module]:
    return list(await session.scalars(select(Module).order_by(Module.id)))
