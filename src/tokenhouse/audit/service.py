"""The rules of the audit trail: what a record holds, who reads it, what an integration may
record.

`record` is how every service writes its change into the trail: it adds the record to the
caller's unit of work, so the change and its record commit together or not at all (`entry`
and `write`: the same row as one plain insert, for a token's create and update, the hot
paths). A record
never holds a secret, a hash or a credential: documents are the objects' representations,
which have none (the secret of a token is shown once, in a response, never in a document).
"""

import re
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tokenhouse.accounts.models import AccountType
from tokenhouse.audit import repository
from tokenhouse.audit.auth import AUDIT, MANAGE_EVENT_TYPES
from tokenhouse.audit.events import PLATFORM, Event
from tokenhouse.audit.models import AuditRecord, EventType, RecordType
from tokenhouse.audit.schemas import EventTypeUpdate, RecordCreate
from tokenhouse.audit.subjects import Party, Subject
from tokenhouse.auth.actor import Actor
from tokenhouse.kit import ids
from tokenhouse.kit.origin import current_origin
from tokenhouse.kit.problems import Forbidden, NotFound, ValidationFailed
from tokenhouse.kit.rql import Query
from tokenhouse.kit.timeutil import render, utcnow
from tokenhouse.kit.tracing import trace_id_var

SYSTEM = {"id": "system", "name": "System", "icon": None, "account": None}


def record(session: AsyncSession, *, actor: Actor, event: Event, subject: Subject,
           documents: dict[str, Any], private: bool = False) -> AuditRecord:
    """Add the record of a change (`event`, about `subject`, made by `actor`) to the
    session's unit of work: it commits with the change, or neither does. `documents`: the
    object as it is after the change (and `changes`, for an update), by name."""
    return add(session, entry(actor=actor, event=event, subject=subject,
                              documents=documents, private=private))


def entry(*, actor: Actor, event: Event, subject: Subject, documents: dict[str, Any],
          private: bool = False) -> dict[str, Any]:
    """The row of a change's record, as `record` adds it, for `write`: built before the
    change's first write statement, so that on SQLite the work is not done while the
    change holds the writer (kit/db.Writer). Its time is set by `write`."""
    return _row(actor=actor, key=event.key, summary=event.summary, details=event.details,
                subject=subject, documents=documents,
                kind=RecordType.PRIVATE if private else RecordType.PUBLIC)


async def write(session: AsyncSession, row: dict[str, Any]) -> None:
    """Write the record `row` (from `entry`) now, in the session's transaction: it commits
    with the change, or neither does. One plain insert, where `record`'s object costs a
    flush of the unit of work at commit (a create's hot path, issue 10)."""
    await repository.insert_record(session, {**row, "timestamp": utcnow()})


def add(session: AsyncSession, row: dict[str, Any]) -> AuditRecord:
    """Add the record `row` (from `entry`) to the session's unit of work, as `record` does:
    it is flushed with the change."""
    added = AuditRecord(timestamp=utcnow(), **row)
    session.add(added)
    return added


def _row(*, actor: Actor, key: str, summary: str, details: str, subject: Subject,
         documents: dict[str, Any], kind: RecordType) -> dict[str, Any]:
    shown = actor_of(actor)
    viewers = [subject.account.viewer()] if subject.account is not None else []
    if actor.is_operations and actor.account_id is not None and (
            subject.account is None or actor.account_id != subject.account.id):
        viewers.append(Party(actor.account_id, actor.account_name or "",
                             AccountType.OPERATIONS).viewer())
    return dict(
        id=ids.new_id("AUD", 4), event=key, summary=summary, details=details,
        object_id=subject.id, object_name=subject.name or subject.id, object_icon=None,
        object_type=subject.object_type, actor_id=shown["id"], actor_name=shown["name"],
        actor_account_id=actor.account_id, actor=shown, type=kind, request=_request(),
        documents={**documents, "actor": shown},
        account_id=subject.account.id if subject.account is not None else None,
        viewers=viewers)


def actor_of(actor: Actor) -> dict[str, Any]:
    """The actor as a record shows it: the acting token and its account, or `system` (the
    server's command line and its jobs)."""
    if actor.token_id is None:
        return dict(SYSTEM)
    return {"id": actor.token_id, "name": actor.token_name, "icon": None,
            "account": {"id": actor.account_id, "name": actor.account_name, "icon": None,
                        "accountType": actor.account_type}}


def _request() -> dict[str, Any] | None:
    origin = current_origin()
    if origin is None:
        return None  # not made by a request: the command line or a job
    return {"api": {"ip": origin.ip, "userAgent": origin.user_agent},
            "log": {"correlationId": trace_id_var.get()}}


def changes(before: dict[str, Any], after: dict[str, Any],
            ignore: tuple[str, ...] = ("audit", "revision")) -> dict[str, Any]:
    """`{field: {"from": ..., "to": ...}}` for each top-level field that differs."""
    return {name: {"from": before.get(name), "to": value} for name, value in after.items()
            if name not in ignore and before.get(name) != value}


# -- the Audit API ----------------------------------------------------------------------

async def list_records(*, session: AsyncSession, actor: Actor,
                       query: Query) -> tuple[list[AuditRecord], int]:
    """The records the actor's account may see, newest first unless ordered otherwise."""
    AUDIT.check(actor)
    return await repository.list_records(session, actor, query)


async def get_record(*, session: AsyncSession, actor: Actor, record_id: str) -> AuditRecord:
    AUDIT.check(actor)
    found = await repository.get_record(session, actor, record_id)
    if found is None:
        raise NotFound(f"Audit record {record_id} not found.")
    return found


# A dotted key: `extensions.e2e.test`, `extension.billing.invoice.sent`.
EVENT_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}(?:\.[A-Za-z0-9_-]{1,64}){1,7}")


async def create_record(*, session: AsyncSession, actor: Actor,
                        data: RecordCreate) -> AuditRecord:
    """An integration's record of its own event about an object of its own account. The
    server sets the id, time, actor, request and viewers; `payload` is kept in the
    documents. The platform's own events (`platform.*`) are the server's alone: a token
    cannot write a record that reads as one of its changes."""
    AUDIT.check(actor)
    key = data.event
    if not EVENT_KEY.fullmatch(key):
        raise ValidationFailed({"event": ["An event key is dotted words, such as "
                                          "'extension.billing.invoice.sent'."]})
    if key.lower().startswith(PLATFORM):
        raise Forbidden("The platform's events (platform.*) are recorded by the platform; "
                        "record your own under another prefix, such as 'extension.'.")
    subject = await _own_object(session, actor, data)
    owner = actor.account_id or ""
    if not await repository.known_event(session, key, owner):
        await _join_catalog(session, key, owner)
    documents: dict[str, Any] = dict(data.documents or {})
    if data.payload is not None:
        documents["payload"] = data.payload
    return add(session, _row(actor=actor, key=key, summary=data.summary,
                             details=data.details or "", subject=subject,
                             documents=documents, kind=RecordType.PUBLIC))


# Event keys an account may add to the catalog: each is a row every reader of the catalog
# (Operations, the page's event filter) lists.
MAX_OWN_EVENT_TYPES = 1000
ID_ATTEMPTS = 8


async def _join_catalog(session: AsyncSession, key: str, owner: str) -> None:
    """A key first recorded by `owner`'s account joins its catalog (400 past the limit)."""
    if await repository.count_event_types(session, owner) >= MAX_OWN_EVENT_TYPES:
        raise ValidationFailed({"event": [
            f"The account has recorded {MAX_OWN_EVENT_TYPES} event keys (the limit); "
            "record under one of them."]})
    for _ in range(ID_ATTEMPTS):
        if await repository.add_event_type(session, {
                "id": ids.new_id("AET"), "key": key, "name": key, "owner": owner,
                "description": f"Recorded first by account {owner}."}):
            return
    raise RuntimeError(f"no free event type id after {ID_ATTEMPTS} attempts")


async def _own_object(session: AsyncSession, actor: Actor, data: RecordCreate) -> Subject:
    """The object of an integration's record: its own account, one of its account's tokens
    (400 otherwise), or an object of its own that tokenhouse does not hold (the record then
    goes to its own account's trail)."""
    # Imported here: the token and account services record through this module.
    from tokenhouse.accounts import repository as accounts
    from tokenhouse.tokens import repository as tokens

    object_id = data.object.id
    prefix = object_id.partition("-")[0].upper()
    # An object the actor cannot see is a property of the body (400, as a token's account
    # is), answered as for one that does not exist.
    if prefix == "ACC":
        account = await accounts.get_visible(session, actor, object_id)
        if account is None:
            raise ValidationFailed({"object.id": [f"Account {object_id} does not exist."]})
        return Subject(account.id, data.object.name or account.name, "Account",
                       Party(account.id, account.name, account.type))
    if prefix == "TKN":
        token = await tokens.get_visible(session, actor, object_id)
        if token is None:
            raise ValidationFailed({"object.id": [f"API token {object_id} does not exist."]})
        return Subject(token.id, data.object.name or token.name, "ApiToken",
                       Party(token.account.id, token.account.name, token.account.type))
    own = await accounts.get_visible(session, actor, actor.account_id) \
        if actor.account_id is not None else None
    return Subject(object_id, data.object.name, data.object.object_type or "Object",
                   Party(own.id, own.name, own.type) if own is not None else None)


def render_record(entry: AuditRecord, *, rendered: bool = False) -> dict[str, Any]:
    """A record as the API shows it; `rendered`: with its details' placeholders filled
    from its documents (the query's `render()`)."""
    details = render_details(entry.details, entry.documents or {}) if rendered \
        else entry.details
    return {
        "id": entry.id,
        "event": entry.event,
        "summary": entry.summary,
        "details": details,
        "object": {"id": entry.object_id, "name": entry.object_name, "icon": entry.object_icon,
                   "objectType": entry.object_type},
        "timestamp": render(entry.timestamp),
        "actor": entry.actor,
        "type": entry.type,
        "request": entry.request,
        "documents": entry.documents,
        "viewers": entry.viewers,
    }


# `{{` then anything but braces, then `}}`: no nested quantifiers, so a template of any
# shape is scanned in linear time (a lazy group between `\s*`s backtracked cubically: a
# record of 10,000 spaces held the event loop for minutes).
PLACEHOLDER = re.compile(r"\{\{([^{}]*)\}\}")
MAX_INDEX = 6  # digits of a list index in a placeholder


def render_details(template: str, documents: dict[str, Any]) -> str:
    """`{{a.b}}` replaced by the value at that path of the documents (an object by its
    `name`, else its `id`), an unknown path or a list by nothing; no `{{` or `}}` is
    left. Total: whatever a template or its documents hold, it renders."""

    def value(match: re.Match[str]) -> str:
        found: Any = documents
        for part in match.group(1).strip().split("."):
            if isinstance(found, dict) and part in found:
                found = found[part]
            # ASCII digits only, and few: `²` is a digit to isdigit() and not to int(),
            # and int() of thousands of digits raises (either was a 500 for every reader).
            elif (isinstance(found, list) and part.isascii() and part.isdigit()
                  and len(part) <= MAX_INDEX and int(part) < len(found)):
                found = found[int(part)]
            else:
                return ""
        if isinstance(found, dict):
            found = found.get("name") or found.get("id") or ""
        if found is None or isinstance(found, (list, dict)):
            return ""
        if isinstance(found, bool):
            return "true" if found else "false"
        return str(found)

    return PLACEHOLDER.sub(value, template).replace("{{", "{").replace("}}", "}")


# -- event types --------------------------------------------------------------------------

async def list_event_types(*, session: AsyncSession, actor: Actor,
                           query: Query) -> tuple[list[EventType], int]:
    AUDIT.check(actor)
    return await repository.list_event_types(session, actor, query)


async def get_event_type(*, session: AsyncSession, actor: Actor, type_id: str,
                         for_update: bool = False) -> EventType:
    AUDIT.check(actor)
    found = await repository.get_event_type(session, actor, type_id, for_update=for_update)
    if found is None:
        raise NotFound(f"Event type {type_id} not found.")
    return found


async def update_event_type(*, session: AsyncSession, actor: Actor, event_type: EventType,
                            data: EventTypeUpdate) -> EventType:
    """Change an event type's description (Operations only: the catalog is the
    platform's)."""
    MANAGE_EVENT_TYPES.check(actor)
    if "description" in data.model_fields_set:
        event_type.description = data.description
    await session.flush()
    return event_type


def render_event_type(event_type: EventType) -> dict[str, Any]:
    return {"id": event_type.id, "key": event_type.key, "name": event_type.name,
            "description": event_type.description}
