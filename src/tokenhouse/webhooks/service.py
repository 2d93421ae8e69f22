"""The rules of audit webhooks: who manages which, what a webhook may name and call, and
which records it receives.

Services take keyword arguments and never a Request; they flush but never commit. Every
change of a webhook is itself an audit record (`platform.audit.webhook.*`), never with its
secret.
"""

import re
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tokenhouse.accounts import repository as accounts
from tokenhouse.accounts.models import AccountType
from tokenhouse.audit import service as audit
from tokenhouse.audit.events import Event
from tokenhouse.audit.models import RecordType
from tokenhouse.audit.subjects import Party, Subject
from tokenhouse.auth.actor import Actor
from tokenhouse.kit import ids
from tokenhouse.kit.problems import Conflict, NotFound, ValidationFailed
from tokenhouse.kit.repository import new_unique_id
from tokenhouse.kit.rql import Query
from tokenhouse.webhooks import repository, signing
from tokenhouse.webhooks.auth import MANAGE
from tokenhouse.webhooks.models import Delivery, Webhook, WebhookStatus
from tokenhouse.webhooks.repository import Pending
from tokenhouse.webhooks.schemas import WebhookCreate, WebhookUpdate, render_webhook
from tokenhouse.webhooks.targets import redacted, url_problems

# Webhooks per account: each one multiplies the deliveries of every record of the account.
MAX_PER_ACCOUNT = 20


def _event(action: str, summary: str, verb: str) -> Event:
    return Event(f"platform.audit.webhook.{action}", summary,
                 f"The webhook {{{{webhook.id}}}} was {verb} by {{{{actor.name}}}}.")


CREATED = _event("created", "Webhook created", "created")
UPDATED = _event("updated", "Webhook updated", "changed")
ENABLED = _event("enabled", "Webhook enabled", "enabled")
DISABLED = _event("disabled", "Webhook disabled", "disabled")
DELETED = _event("deleted", "Webhook deleted", "deleted")

# A segment of an event key, or `*`.
SEGMENT = re.compile(r"[A-Za-z0-9_-]{1,64}|\*")
MAX_SEGMENTS = 8


def canonical_events(patterns: list[str]) -> list[str]:
    """The event patterns, checked and without repeats (400 naming the bad ones)."""
    bad = [p for p in patterns
           if len(p) > 255 or not 0 < len(p.split(".")) <= MAX_SEGMENTS
           or not all(SEGMENT.fullmatch(part) for part in p.split("."))]
    if bad:
        raise ValidationFailed({"events": [
            f"{p!r} is not an event key or pattern: dotted words, `*` for any one word "
            "(any words, last), such as 'platform.accounts.apiToken.*'." for p in bad[:5]]})
    return list(dict.fromkeys(patterns))


def matcher(patterns: list[str]) -> re.Pattern[str]:
    """One expression for a webhook's patterns: `*` is one segment, or one or more as the
    last segment."""
    alternatives = []
    for pattern in patterns:
        parts = pattern.split(".")
        regex = [re.escape(part) if part != "*" else r"[^.]+" for part in parts]
        if parts[-1] == "*":
            regex[-1] = r"[^.]+(?:\.[^.]+)*"
        alternatives.append(r"\.".join(regex))
    return re.compile("|".join(f"(?:{a})" for a in alternatives))


def may_see(account_id: str, account_type: str, entry: Pending) -> bool:
    """Whether a webhook of this account receives this record: what the account's tokens
    may read (audit/repository.visible_records). Operations: every record, Private ones
    too; another account: the Public records of its own trail."""
    if account_type == AccountType.OPERATIONS:
        return True
    return entry.account_id == account_id and entry.type == RecordType.PUBLIC


# -- the API -------------------------------------------------------------------------------

async def list_webhooks(*, session: AsyncSession, actor: Actor,
                        query: Query) -> tuple[list[tuple[Webhook, str]], int]:
    MANAGE.check(actor)
    return await repository.list_visible(session, actor, query)


async def get_webhook(*, session: AsyncSession, actor: Actor, webhook_id: str,
                      for_update: bool = False) -> tuple[Webhook, str]:
    """A visible webhook and its account's name, or 404 (another tenant's too)."""
    MANAGE.check(actor)
    found = await repository.get_visible(session, actor, webhook_id, for_update=for_update)
    if found is None:
        raise NotFound(f"Webhook {webhook_id} not found.")
    return found


async def create_webhook(*, session: AsyncSession, actor: Actor, data: WebhookCreate,
                         key: bytes, allow_private: bool) -> tuple[Webhook, str, str]:
    """A new Enabled webhook, its account's name and its signing secret (returned once,
    stored nowhere: see webhooks/signing.py)."""
    MANAGE.check(actor)
    events = canonical_events(data.events)
    _check_url(data.url, allow_private)
    account_id = data.account.id if data.account is not None else actor.account_id
    account = await accounts.find_visible(session, actor, account_id) \
        if account_id is not None else None
    if account is None:
        raise ValidationFailed({"account": [f"Account {account_id} does not exist."]})
    if account.is_disabled:
        raise ValidationFailed({"account": [f"Account {account.id} is Disabled."]})
    # Counted under the account's row lock (PostgreSQL; SQLite's writer, taken by the
    # locking read), held to the commit: concurrent creates count one after the other, so
    # none passes the limit on a count that another is about to raise.
    await repository.lock_account(session, account.id)
    if await repository.count_of_account(session, account.id) >= MAX_PER_ACCOUNT:
        raise ValidationFailed({"account": [f"Account {account.id} has {MAX_PER_ACCOUNT} "
                                            "webhooks, the most it may have; delete one "
                                            "first."]})
    webhook = Webhook(id=await new_unique_id(session, Webhook, lambda: ids.new_id("WHK")),
                      account_id=account.id, url=data.url, events=events,
                      description=data.description, status=WebhookStatus.ENABLED,
                      salt=signing.new_salt(), revision=1)
    webhook.stamp_created(actor.by)
    session.add(webhook)
    await session.flush()
    party = Party(account.id, account.name, account.type)
    _record(session, actor, CREATED, webhook, party)
    return webhook, account.name, signing.secret_of(key, webhook.id, webhook.salt)


async def update_webhook(*, session: AsyncSession, actor: Actor, webhook: Webhook,
                         account_name: str, data: WebhookUpdate,
                         allow_private: bool) -> Webhook:
    """Change the URL, the events or the description; what is left out stays. The
    secret, the account and the status do not change here."""
    MANAGE.check(actor)
    given = data.model_fields_set
    if data.account is not None and data.account.id != webhook.account_id:
        raise ValidationFailed({"account": ["A webhook cannot be moved to another account."]})
    if "url" in given and data.url is None:
        raise ValidationFailed({"url": ["The URL is required."]})
    if "events" in given and data.events is None:
        raise ValidationFailed({"events": ["At least one event is required."]})
    events = canonical_events(data.events) if data.events is not None else None
    if data.url is not None and data.url != webhook.url:
        _check_url(data.url, allow_private)
    if data.revision is not None and data.revision != webhook.revision:
        raise Conflict(f"The webhook was changed since revision {data.revision}; it is at "
                       f"revision {webhook.revision}. Read it again and repeat the change.")
    before = render_webhook(webhook, account_name)
    if data.url is not None:
        webhook.url = data.url
    if events is not None:
        webhook.events = events
    if "description" in given:
        webhook.description = data.description
    after = render_webhook(webhook, account_name)
    changed = audit.changes(before, after)
    if changed:  # a PUT that changes nothing is no new revision, and no record
        webhook.stamp_updated(actor.by)
        await session.flush()
        _record(session, actor, UPDATED, webhook, await _party(session, actor, webhook),
                changes=changed)
    return webhook


async def enable_webhook(*, session: AsyncSession, actor: Actor, webhook: Webhook) -> Webhook:
    """Disabled -> Enabled: records made from now on are delivered, and so are deliveries
    left pending while it was Disabled."""
    return await _move(session, actor, webhook, WebhookStatus.DISABLED, WebhookStatus.ENABLED,
                       ENABLED)


async def disable_webhook(*, session: AsyncSession, actor: Actor,
                          webhook: Webhook) -> Webhook:
    """Enabled -> Disabled: it receives no new record, and its pending deliveries wait."""
    return await _move(session, actor, webhook, WebhookStatus.ENABLED, WebhookStatus.DISABLED,
                       DISABLED)


async def delete_webhook(*, session: AsyncSession, actor: Actor, webhook: Webhook) -> None:
    """Delete the webhook and its deliveries (final)."""
    MANAGE.check(actor)
    party = await _party(session, actor, webhook)
    _record(session, actor, DELETED, webhook, party)
    await session.delete(webhook)
    await session.flush()


async def list_deliveries(*, session: AsyncSession, actor: Actor, webhook: Webhook,
                          query: Query) -> tuple[list[Delivery], int]:
    MANAGE.check(actor)
    return await repository.list_deliveries(session, webhook.id, query)


async def _move(session: AsyncSession, actor: Actor, webhook: Webhook, source: str,
                target: str, event: Event) -> Webhook:
    MANAGE.check(actor)
    if webhook.status != source:
        raise Conflict(f"The webhook is {webhook.status}.")
    webhook.status = target
    webhook.stamp_updated(actor.by)
    await session.flush()
    _record(session, actor, event, webhook, await _party(session, actor, webhook))
    return webhook


def _check_url(url: str, allow_private: bool) -> None:
    problems = url_problems(url, allow_private=allow_private)
    if problems:
        raise ValidationFailed({"url": problems})


async def _party(session: AsyncSession, actor: Actor, webhook: Webhook) -> Party:
    account = await accounts.find_visible(session, actor, webhook.account_id)
    assert account is not None  # the webhook was found visible, so is its account
    return Party(account.id, account.name, account.type)


def _record(session: AsyncSession, actor: Actor, event: Event, webhook: Webhook,
            party: Party, changes: dict[str, Any] | None = None) -> None:
    """The change's audit record. The URL is in it redacted (targets.redacted): a record
    never changes and reaches other webhooks, and the URL's path or query may hold the
    receiver's credential; the webhook's own GET shows it whole."""
    name = webhook.description[:255] if webhook.description else None
    documents: dict[str, Any] = {"webhook": {**render_webhook(webhook, party.name),
                                             "url": redacted(webhook.url)}}
    if changes is not None:
        if "url" in changes:  # still recorded as changed when only the elided part did
            changes = {**changes, "url": {side: redacted(url)
                                          for side, url in changes["url"].items()}}
        documents["changes"] = changes
    audit.record(session, actor=actor, event=event,
                 subject=Subject(webhook.id, name, "Webhook", party), documents=documents)
