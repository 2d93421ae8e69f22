"""All SQL about webhooks and their deliveries. Every read on behalf of an actor starts from
what the actor may see; the delivery worker's statements (claims) are at the end."""

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import Select, and_, case, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tokenhouse.accounts.models import Account, AccountStatus
from tokenhouse.audit.models import AuditRecord
from tokenhouse.auth.actor import Actor
from tokenhouse.kit.audit import audit_schema
from tokenhouse.kit.repository import (
    AnySelect,
    dialect_name,
    fetch_page,
    page_statements,
    run_page,
)
from tokenhouse.kit.rql import Obj, Query, Resource, Scalar
from tokenhouse.kit.rql.parser import OrderKey
from tokenhouse.webhooks.models import Delivery, DeliveryStatus, Webhook, WebhookStatus

WEBHOOKS = Resource("audit-webhooks", Obj({
    "id": Scalar("string", Webhook.id, nullable=False),
    "href": Scalar("string"),
    "account": Obj({"id": Scalar("string", Webhook.account_id, nullable=False),
                    "name": Scalar("string", Account.name, nullable=False)}),
    "url": Scalar("string", Webhook.url, nullable=False),
    "events": Scalar("string", filterable=False),
    "description": Scalar("string", Webhook.description),
    "status": Scalar("enum", Webhook.status, nullable=False,
                     values=tuple(s.value for s in WebhookStatus)),
    # Never stored, never queried: in the create response alone.
    "secret": Scalar("string", filterable=False, conditional=True),
    "audit": audit_schema(Webhook, default=True),
    "revision": Scalar("number", Webhook.revision, nullable=False),
}), Webhook.id)

DELIVERIES = Resource("audit-webhook-deliveries", Obj({
    "id": Scalar("string", Delivery.id, nullable=False),
    "webhook": Obj({"id": Scalar("string", Delivery.webhook_id, nullable=False)}),
    "record": Obj({"id": Scalar("string", Delivery.record_id, nullable=False)}),
    "event": Scalar("string", Delivery.event, nullable=False),
    "status": Scalar("enum", Delivery.status, nullable=False,
                     values=tuple(s.value for s in DeliveryStatus)),
    "attempts": Scalar("number", Delivery.attempts, nullable=False),
    "createdAt": Scalar("datetime", Delivery.created_at, nullable=False),
    "lastAttemptAt": Scalar("datetime", Delivery.last_attempt_at),
    "lastResponse": Obj({"statusCode": Scalar("number", Delivery.last_status_code),
                         "error": Scalar("string", Delivery.last_error)},
                        presence=Delivery.last_attempt_at),
    "nextAttemptAt": Scalar("datetime", Delivery.next_attempt_at),
    "deliveredAt": Scalar("datetime", Delivery.delivered_at),
}), Delivery.id)

NEWEST_FIRST = (OrderKey(descending=True, path=("createdAt",)),)


def visible(actor: Actor) -> Select[Webhook, str]:
    """The tenant scope, written once: Operations sees every webhook; a Client or Vendor
    token only its own account's. Selects each webhook with its account's name."""
    statement = select(Webhook, Account.name).join(Account, Account.id == Webhook.account_id)
    if not actor.is_operations:
        statement = statement.where(Webhook.account_id == actor.account_id)
    return statement


async def list_visible(session: AsyncSession, actor: Actor,
                       query: Query) -> tuple[list[tuple[Webhook, str]], int]:
    statements = page_statements(visible(actor), WEBHOOKS, query, dialect_name(session))
    rows, total = await run_page(session, statements, query, objects=False)
    return [(row[0], row[1]) for row in rows], total


async def get_visible(session: AsyncSession, actor: Actor, webhook_id: str, *,
                      for_update: bool = False) -> tuple[Webhook, str] | None:
    statement = visible(actor).where(Webhook.id == webhook_id)
    if for_update:
        statement = statement.with_for_update(of=Webhook)
    row = (await session.execute(statement)).first()
    return None if row is None else (row[0], row[1])


async def lock_account(session: AsyncSession, account_id: str) -> None:
    """Lock the account's row until the transaction ends (SELECT ... FOR UPDATE on
    PostgreSQL; on SQLite the read begins the transaction with the file's writer)."""
    await session.execute(select(Account.id).where(Account.id == account_id)
                          .with_for_update())


async def count_of_account(session: AsyncSession, account_id: str) -> int:
    return await session.scalar(select(func.count()).select_from(Webhook).where(
        Webhook.account_id == account_id)) or 0


async def list_deliveries(session: AsyncSession, webhook_id: str,
                          query: Query) -> tuple[list[Delivery], int]:
    """A webhook's deliveries (the webhook was found visible first), newest first unless
    ordered otherwise."""
    if not query.order:
        query = replace(query, order=NEWEST_FIRST)
    return await fetch_page(session, select(Delivery).where(Delivery.webhook_id == webhook_id),
                            DELIVERIES, query)


# -- the delivery worker ----------------------------------------------------------------

# The predicates of the partial indexes, written as they are (migration 0011): a planner
# uses a partial index only for a query whose condition implies its own, and neither
# PostgreSQL nor SQLite proves that of `fanned_out IS false` or of a bound parameter.
NOT_FANNED_OUT = text("NOT audit_records.fanned_out")
PENDING_DELIVERY = text("audit_webhook_deliveries.status = 'Pending'")

class Pending(Protocol):
    """What fan-out reads of a record."""

    id: str
    event: str
    timestamp: datetime
    account_id: str | None
    type: str


async def work_waiting(session: AsyncSession, now: datetime) -> tuple[bool, bool]:
    """Whether a record waits to be fanned out, and whether a delivery is due: two reads of
    the partial indexes, without a lock, so that an idle worker never takes SQLite's
    writer."""
    pending = (await session.execute(pending_records(1))).first()
    due = await session.scalar(due_deliveries(now, 1))
    return pending is not None, due is not None


async def claim_pending_records(session: AsyncSession, limit: int) -> list[Pending]:
    """The oldest records not yet fanned out, locked for this transaction. PostgreSQL skips
    rows another process has locked (each process fans out different records); SQLite
    takes the file's writer for the whole transaction (kit/db.Writer: BEGIN IMMEDIATE on a
    FOR UPDATE read), so two processes fan out one after the other, and the second sees
    the first's records as done."""
    rows = await session.execute(pending_records(limit).with_for_update(skip_locked=True))
    return cast(list[Pending], list(rows))


def pending_records(limit: int) -> AnySelect:
    """The oldest records not yet fanned out (in the order of the partial index)."""
    return (select(AuditRecord.id, AuditRecord.event, AuditRecord.timestamp,
                   AuditRecord.account_id, AuditRecord.type)
            .where(NOT_FANNED_OUT).order_by(AuditRecord.timestamp, AuditRecord.id)
            .limit(limit))


async def subscribers(session: AsyncSession) -> list[tuple[Webhook, str]]:
    """Every Enabled webhook of an account that is not Disabled, with its account's type."""
    rows = await session.execute(
        select(Webhook, Account.type).join(Account, Account.id == Webhook.account_id)
        .where(Webhook.status == WebhookStatus.ENABLED,
               Account.status != AccountStatus.DISABLED))
    return [(row[0], row[1]) for row in rows]


async def add_deliveries(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert deliveries; one that exists already (the same record and webhook) is kept."""
    if not rows:
        return
    insert = postgresql.insert if dialect_name(session) == "postgresql" else sqlite.insert
    await session.execute(insert(Delivery).values(rows).on_conflict_do_nothing(
        index_elements=["webhook_id", "record_id"]))


async def mark_fanned_out(session: AsyncSession, record_ids: list[str]) -> None:
    await session.execute(update(AuditRecord).where(AuditRecord.id.in_(record_ids))
                          .values(fanned_out=True))


def _due(now: datetime) -> Any:
    return and_(PENDING_DELIVERY, Delivery.next_attempt_at <= now)


def due_deliveries(now: datetime, limit: int) -> Select[str]:
    """The ids of the due deliveries of Enabled webhooks of accounts that are not Disabled
    (theirs wait until both are enabled again), the longest due first."""
    return (select(Delivery.id).join(Webhook, Webhook.id == Delivery.webhook_id)
            .join(Account, Account.id == Webhook.account_id)
            .where(_due(now), Webhook.status == WebhookStatus.ENABLED,
                   Account.status != AccountStatus.DISABLED)
            .order_by(Delivery.next_attempt_at).limit(limit))


def fair_due(now: datetime, limit: int, per_webhook: int,
             held: Mapping[str, int]) -> Select[str]:
    """Up to `limit` due deliveries, at most `per_webhook` of each webhook less the attempts
    `held` in flight for it: each webhook's oldest first, then each one's second...
    Ordering by next_attempt_at alone let one webhook's backlog (or a receiver that hangs)
    take every slot while another tenant's delivery waited."""
    rank = func.row_number().over(partition_by=Delivery.webhook_id,
                                  order_by=(Delivery.next_attempt_at, Delivery.id))
    ranked = (due_deliveries(now, 1).limit(None).order_by(None)
              .add_columns(Delivery.webhook_id, Delivery.next_attempt_at, rank.label("rank"))
              .subquery())
    room = per_webhook - (case(dict(held), value=ranked.c.webhook_id, else_=0) if held
                          else 0)
    return (select(ranked.c.id).where(ranked.c.rank <= room)
            .order_by(ranked.c.rank, ranked.c.next_attempt_at).limit(limit))


async def claim_due(session: AsyncSession, now: datetime, lease_until: datetime, claim: str,
                    limit: int, per_webhook: int, held: Mapping[str, int]) -> list[str]:
    """Claim up to `limit` due deliveries (fairly across webhooks: `fair_due`): each is
    leased to `claim` until `lease_until` (its `next_attempt_at`), so no other process
    takes it meanwhile, and a process that dies holding it only delays it to then. Locked
    while claimed (SKIP LOCKED on PostgreSQL, the writer on SQLite): two processes never
    claim one delivery. The lock is taken by an outer statement (PostgreSQL allows no FOR
    UPDATE beside a window function), which checks again that each is still due (another
    process may have claimed it since this statement's snapshot)."""
    ids = list(await session.scalars(
        select(Delivery.id).where(Delivery.id.in_(fair_due(now, limit, per_webhook, held)),
                                  _due(now))
        .with_for_update(skip_locked=True)))
    if ids:
        await session.execute(update(Delivery).where(Delivery.id.in_(ids))
                              .values(next_attempt_at=lease_until, claim=claim))
    return ids


async def claimed(session: AsyncSession, claim: str) -> list[tuple[Delivery, Webhook,
                                                                   AuditRecord]]:
    """The deliveries of `claim`, with their webhooks and records."""
    rows = await session.execute(
        select(Delivery, Webhook, AuditRecord)
        .join(Webhook, Webhook.id == Delivery.webhook_id)
        .join(AuditRecord, AuditRecord.id == Delivery.record_id)
        .where(Delivery.claim == claim))
    return [(row[0], row[1], row[2]) for row in rows]


async def settle(session: AsyncSession, delivery_id: str, claim: str,
                 values: dict[str, Any]) -> bool:
    """Write an attempt's outcome, if the claim still holds the delivery (a claim whose
    lease ran out may have been taken over: the newer one writes)."""
    result = await session.execute(
        update(Delivery).where(Delivery.id == delivery_id, Delivery.claim == claim)
        .values(claim=None, **values))
    return bool(getattr(result, "rowcount", 0))


async def release(session: AsyncSession, claims: list[str], now: datetime) -> None:
    """Give back deliveries claimed but not attempted (a clean stop): due again now."""
    await session.execute(
        update(Delivery).where(Delivery.claim.in_(claims),
                               Delivery.status == DeliveryStatus.PENDING)
        .values(claim=None, next_attempt_at=now))
