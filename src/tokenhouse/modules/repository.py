"""All SQL about modules. Every read starts from what the actor may see."""

from collections.abc import Iterable

from sqlalchemy import Select, String, cast, select
from sqlalchemy.ext.asyncio import AsyncSession

from tokenhouse.auth.actor import Actor
from tokenhouse.kit.audit import audit_schema
from tokenhouse.kit.repository import fetch_page
from tokenhouse.kit.rql import Obj, Query, Resource, Scalar
from tokenhouse.modules.models import Module


def module_fields(*, audit: bool) -> dict[str, Scalar | Obj]:
    """A module's fields; nested in a token without its audit."""
    settings = Obj({name: Scalar("boolean") for name in
                    ("sharedAccount", "configurable", "default", "paid")}
                   | {"type": Scalar("string", filterable=False)})
    fields: dict[str, Scalar | Obj] = {
        "id": Scalar("string", Module.id, nullable=False),
        "href": Scalar("string"),
        "name": Scalar("string", Module.name, nullable=False),
        "description": Scalar("string", Module.description),
        # A list of names: shown, not filterable (rql.md's self() is not supported).
        "accountTypes": Scalar("string", filterable=False),
        "isEnabledByDefault": Scalar("boolean", Module.is_enabled_by_default, nullable=False),
        "isConfigurable": Scalar("boolean", Module.is_configurable, nullable=False),
        "paid": Scalar("boolean", Module.paid, nullable=False),
        "settings": settings,
        "filters": Scalar("string", filterable=False),
    }
    if audit:
        fields["audit"] = audit_schema(Module, default=True)
        fields["revision"] = Scalar("number", Module.revision, nullable=False)
    return fields


RESOURCE = Resource("modules", Obj(module_fields(audit=True)), Module.id)


def visible(actor: Actor) -> Select[Module]:
    """Operations sees the whole catalog; other accounts see the modules their type may use."""
    statement = select(Module)
    if not actor.is_operations:
        # account_types is a JSON list of names; its text form holds each name quoted.
        statement = statement.where(
            cast(Module.account_types, String).like(f'%"{actor.account_type}"%'))
    return statement


def can_see(actor: Actor, module: Module) -> bool:
    """`visible(actor)` for a module already in memory: the same rule, kept beside it."""
    return actor.is_operations or actor.account_type in module.account_types


async def list_visible(session: AsyncSession, actor: Actor,
                       query: Query) -> tuple[list[Module], int]:
    return await fetch_page(session, visible(actor), RESOURCE, query)


async def get_visible(session: AsyncSession, actor: Actor, module_id: str) -> Module | None:
    return await session.scalar(visible(actor).where(Module.id == module_id))


async def by_ids(session: AsyncSession, ids: Iterable[str]) -> dict[str, Module]:
    rows = await session.scalars(select(Module).where(Module.id.in_(list(ids))))
    return {module.id: module for module in rows}


async def all_modules(session: AsyncSession) -> list[Module]:
    return list(await session.scalars(select(Module).order_by(Module.id)))
