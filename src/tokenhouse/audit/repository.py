"""All SQL about the audit trail. Every read starts from what the actor may see."""

from dataclasses import replace
from typing import Any, cast

from sqlalchemy import Select, Table, func, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tokenhouse.audit.models import AuditRecord, EventType
from tokenhouse.auth.actor import Actor
from tokenhouse.kit.repository import dialect_name, fetch_page
from tokenhouse.kit.rql import Obj, Query, Resource, Scalar
from tokenhouse.kit.rql.parser import OrderKey

RECORDS = Resource("audit-records", Obj({
    "id": Scalar("string", AuditRecord.id, nullable=False),
    "event": Scalar("string", AuditRecord.event, nullable=False),
    "summary": Scalar("string", AuditRecord.summary, nullable=False),
    "details": Scalar("string", AuditRecord.details, nullable=False),
    "object": Obj({"id": Scalar("string", AuditRecord.object_id, nullable=False),
                   "name": Scalar("string", AuditRecord.object_name),
                   "icon": Scalar("string", AuditRecord.object_icon),
                   "objectType": Scalar("string", AuditRecord.object_type, nullable=False)}),
    "timestamp": Scalar("datetime", AuditRecord.timestamp, nullable=False),
    "actor": Obj({"id": Scalar("string", AuditRecord.actor_id, nullable=False),
                  "name": Scalar("string", AuditRecord.actor_name),
                  "icon": Scalar("string"),
                  "account": Obj({"id": Scalar("string", AuditRecord.actor_account_id),
                                  "name": Scalar("string"), "icon": Scalar("string"),
                                  "accountType": Scalar("string")})}),
    "type": Scalar("enum", AuditRecord.type, nullable=False, values=("Public", "Private")),
    # Documents of any shape: shown and selected, not queried.
    "request": Scalar("string", filterable=False),
    "documents": Scalar("string", filterable=False),
    "viewers": Scalar("string", filterable=False),
}), AuditRecord.id)

EVENT_TYPES = Resource("audit-event-types", Obj({
    "id": Scalar("string", EventType.id, nullable=False),
    "key": Scalar("string", EventType.key, nullable=False),
    "name": Scalar("string", EventType.name, nullable=False),
    "description": Scalar("string", EventType.description),
}), EventType.id)

# Newest first, unless the query orders otherwise (as the platform lists records).
NEWEST_FIRST = (OrderKey(descending=True, path=("timestamp",)),)


def visible_records(actor: Actor) -> Select[AuditRecord]:
    """The tenant scope of records, written once: Operations reads every record; a Client
    or Vendor token the Public records of its own account's trail (where its account is a
    viewer)."""
    statement = select(AuditRecord)
    if not actor.is_operations:
        statement = statement.where(AuditRecord.account_id == actor.account_id,
                                    AuditRecord.type == "Public")
    return statement


async def list_records(session: AsyncSession, actor: Actor,
                       query: Query) -> tuple[list[AuditRecord], int]:
    if not query.order:
        query = replace(query, order=NEWEST_FIRST)
    return await fetch_page(session, visible_records(actor), RECORDS, query)


async def get_record(session: AsyncSession, actor: Actor, record_id: str) -> AuditRecord | None:
    return await session.scalar(visible_records(actor).where(AuditRecord.id == record_id))


# A Table: declarative types `__table__` as any FromClause, which insert() refuses. Built once:
# a statement reused is not built and fingerprinted again on every change.
_INSERT_RECORD = insert(cast(Table, AuditRecord.__table__))


async def insert_record(session: AsyncSession, row: dict[str, Any]) -> None:
    """Insert one record as a plain statement, without the ORM's flush (`row`: its columns'
    values; `fanned_out` takes its default)."""
    await session.execute(_INSERT_RECORD, row)


def visible_event_types(actor: Actor) -> Select[EventType]:
    """The platform's events, and those an integration of the actor's account recorded
    first (Operations: every one)."""
    statement = select(EventType)
    if not actor.is_operations:
        statement = statement.where(or_(EventType.owner == "",
                                        EventType.owner == actor.account_id))
    return statement


async def list_event_types(session: AsyncSession, actor: Actor,
                           query: Query) -> tuple[list[EventType], int]:
    return await fetch_page(session, visible_event_types(actor), EVENT_TYPES, query)


async def get_event_type(session: AsyncSession, actor: Actor, type_id: str,
                         *, for_update: bool = False) -> EventType | None:
    statement = visible_event_types(actor).where(EventType.id == type_id)
    if for_update:
        statement = statement.with_for_update()
    return await session.scalar(statement)


async def known_event(session: AsyncSession, key: str, owner: str) -> bool:
    """Whether `key` is in the catalog the owner's account sees."""
    found = await session.scalar(select(EventType.id).where(
        EventType.key == key, or_(EventType.owner == "", EventType.owner == owner)).limit(1))
    return found is not None


async def add_event_type(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Add a catalog entry unless the same owner has the key already (two integrations
    recording a new key at once: one row). False when nothing was added for another
    reason: its id is taken (the caller draws another)."""
    insert = postgresql.insert if dialect_name(session) == "postgresql" else sqlite.insert
    # Any conflict, not only (owner, key): a clash of the random id is no 500 either.
    await session.execute(insert(EventType).values(**values).on_conflict_do_nothing())
    return await known_event(session, values["key"], values["owner"])


async def count_event_types(session: AsyncSession, owner: str) -> int:
    return await session.scalar(select(func.count()).select_from(EventType)
                                .where(EventType.owner == owner)) or 0
