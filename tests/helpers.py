"""What the API tests share: the collections' addresses and the assertions on answers."""

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from http import HTTPStatus
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import delete, event, text
from sqlalchemy.ext.asyncio import AsyncSession

from tokenhouse.app import create_app
from tokenhouse.audit.models import AuditRecord, EventType
from tokenhouse.kit.direct import DirectSelect
from tokenhouse.kit.settings import Settings
from tokenhouse.models import (
    Account,
    AccountIcon,
    ApiToken,
    Delivery,
    UserGroup,
    Webhook,
    token_modules,
)

V1 = "/public/v1/accounts"
TOKENS = f"{V1}/api-tokens"
ACCOUNTS = f"{V1}/accounts"
MODULES = f"{V1}/modules"
TRACE_ID = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-00$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def problem(response: httpx.Response, status: int, *errors: str) -> dict[str, Any]:
    """Assert an RFC 7807 problem with this status (and these keys in `errors`); return its
    body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["title"] == HTTPStatus(status).phrase
    assert body["type"]
    assert TRACE_ID.match(body["traceId"]), body
    for key in errors:
        assert key in body.get("errors", {}), body
    return body


# What the webhooks' delivery worker sends (webhooks/delivery.py): its look for new records
# and their claim, their marking, its reads of subscribers, and every delivery statement.
WEBHOOK_WORKER = ("NOT audit_records.fanned_out", "SET fanned_out",
                  "audit_webhooks.status = ", "audit_webhook_deliveries")


@contextmanager
def database_use(app: FastAPI) -> Iterator[list[str]]:
    """What the app asks of its database inside the block: the statements SQLAlchemy runs,
    and those the driver sends itself (kit/direct.py, which SQLAlchemy's events do not see),
    as `direct: ...`. Left out: the SQLite invalidation poller, the last-access flusher
    (its read of the rows and its write) and the webhooks' delivery worker, which share the
    engine and run whenever they like."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "auth_changes" not in statement and "SET last_access_at" not in statement \
                and "api_tokens.last_access_ips, api_tokens.previous_expires_at" not in statement \
                and not any(mark in statement for mark in WEBHOOK_WORKER):
            seen.append(statement)

    direct = DirectSelect.rows

    async def rows(self: DirectSelect, *args: Any, **kwargs: Any) -> Any:
        seen.append(f"direct: {self._statement}")
        return await direct(self, *args, **kwargs)

    engine = app.state.runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    DirectSelect.rows = rows  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        DirectSelect.rows = direct  # type: ignore[method-assign]
        event.remove(engine, "before_cursor_execute", record)


async def empty_store(session: AsyncSession) -> None:
    """Delete every account and token (the module catalog stays), in `session`'s unit of work.

    On PostgreSQL the tokens' table is locked first: the app's background flush of accesses
    locks token rows in id order across two statements, a whole-table DELETE locks them in
    its scan order, and the two deadlocked (CI, 2026-11-30)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("LOCK TABLE api_tokens IN EXCLUSIVE MODE"))
        # The webhooks' worker locks records and then webhooks: the same order here.
        await session.execute(text("LOCK TABLE audit_records IN EXCLUSIVE MODE"))
    for table in (Delivery.__table__, Webhook.__table__, token_modules, ApiToken.__table__,
                  UserGroup.__table__, AccountIcon.__table__, Account.__table__,
                  AuditRecord.__table__):
        await session.execute(delete(table))
    # The platform's event types stay, as the module catalog does; integrations' go.
    await session.execute(delete(EventType).where(EventType.owner != ""))


@asynccontextmanager
async def app_with(settings: Settings, **changes: Any) -> AsyncIterator[FastAPI]:
    """Another app on the same database, with `changes` to its settings, running."""
    application = create_app(settings.model_copy(update=changes))
    async with LifespanManager(application):
        yield application


@asynccontextmanager
async def client_with(settings: Settings, **changes: Any
                      ) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app_with(settings, **changes)`."""
    async with app_with(settings, **changes) as application:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://other.test") as c:
            yield c
