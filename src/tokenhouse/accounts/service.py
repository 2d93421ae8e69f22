"""The rules of accounts: every token reads its own account; Operations tokens with Account
Management create, change, enable and disable any account."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tokenhouse.accounts import repository
from tokenhouse.accounts.auth import MANAGE
from tokenhouse.accounts.models import Account, AccountIcon, AccountStatus, UserGroup
from tokenhouse.accounts.schemas import (
    AccountCreate,
    AccountFields,
    AccountUpdate,
    render_account,
)
from tokenhouse.audit import events
from tokenhouse.audit import service as audit
from tokenhouse.audit.subjects import Party, Subject
from tokenhouse.auth.actor import Actor
from tokenhouse.kit import ids
from tokenhouse.kit.problems import Conflict, NotFound, ValidationFailed
from tokenhouse.kit.repository import new_unique_id
from tokenhouse.kit.rql import Query
from tokenhouse.kit.timeutil import utcnow


@dataclass(frozen=True)
class Icon:
    content_type: str
    data: bytes


async def list_accounts(*, session: AsyncSession, actor: Actor,
                        query: Query) -> tuple[list[Account], int]:
    """Every account for Operations; a Client or Vendor token sees only its own."""
    return await repository.list_visible(session, actor, query)


async def get_account(*, session: AsyncSession, actor: Actor, account_id: str) -> Account:
    account = await repository.get_visible(session, actor, account_id)
    if account is None:
        raise NotFound(f"Account {account_id} not found.")
    return account


async def get_icon(*, session: AsyncSession, actor: Actor, account_id: str) -> AccountIcon:
    account = await get_account(session=session, actor=actor, account_id=account_id)
    icon = await repository.get_icon(session, account.id)
    if icon is None:
        raise NotFound(f"Account {account_id} has no icon.")
    return icon


async def create_account(*, session: AsyncSession, actor: Actor, data: AccountCreate,
                         icon: Icon | None = None) -> Account:
    """A new Active account with its default user group."""
    MANAGE.check(actor)
    account_id = await new_unique_id(session, Account, lambda: ids.new_id("ACC"))
    account = Account(id=account_id, type=data.type, status=AccountStatus.ACTIVE,
                      name=data.name, groups=[])
    _apply(account, data)
    account.stamp_created(actor.by)
    group_id = await new_unique_id(session, UserGroup, lambda: ids.new_id("UGR"))
    group = UserGroup(id=group_id, name="Default", is_default=True,
                      description=f"Default user group of {data.name}")
    group.stamp_created(actor.by)
    account.groups.append(group)
    if icon is not None:
        account.icon_updated_at = utcnow()
    session.add(account)
    await session.flush()
    await _store_icon(session, account, icon)
    _record(session, actor, events.ACCOUNT_CREATED, account)
    return account


async def update_account(*, session: AsyncSession, actor: Actor, account: Account,
                         data: AccountUpdate, icon: Icon | None = None) -> Account:
    """Change the given properties (and the icon); the type of an account never changes."""
    MANAGE.check(actor)
    before = render_account(account)
    # The body is judged (400) before the revision (409), as everywhere.
    if data.type is not None and data.type != account.type:
        raise ValidationFailed({"type": ["The type of an account cannot be changed."]})
    if "name" in data.model_fields_set and data.name is None:
        raise ValidationFailed({"name": ["The name is required."]})
    if data.revision is not None and data.revision != account.revision:
        raise Conflict(f"The account was changed since revision {data.revision}; it is at "
                       f"revision {account.revision}. Read it again and repeat the change.")
    if "name" in data.model_fields_set and data.name is not None:  # None was refused above
        account.name = data.name
    _apply(account, data)
    if icon is not None:
        account.icon_updated_at = utcnow()
    account.stamp_updated(actor.by)
    # One write of the account row (one revision); the icon bytes live in their own table.
    await session.flush()
    await _store_icon(session, account, icon)
    after = render_account(account)
    _record(session, actor, events.ACCOUNT_UPDATED, account, after,
            changes=audit.changes(before, after))
    return account


async def disable_account(*, session: AsyncSession, actor: Actor, account: Account) -> Account:
    """Every token of a Disabled account stops authenticating at once."""
    MANAGE.check(actor)
    if account.id == actor.account_id:
        raise Conflict("A token cannot disable its own account.")
    if account.status == AccountStatus.DISABLED:
        raise Conflict("The account is already Disabled.")
    account.status = AccountStatus.DISABLED
    account.stamp_updated(actor.by)
    await session.flush()
    _record(session, actor, events.ACCOUNT_DISABLED, account)
    return account


async def enable_account(*, session: AsyncSession, actor: Actor, account: Account) -> Account:
    """Disabled -> Active: the account's Active tokens authenticate again."""
    MANAGE.check(actor)
    if account.status != AccountStatus.DISABLED:
        raise Conflict(f"The account is {account.status}; only a Disabled account can be "
                       "enabled.")
    account.status = AccountStatus.ACTIVE
    account.stamp_updated(actor.by)
    await session.flush()
    _record(session, actor, events.ACCOUNT_ENABLED, account)
    return account


def _record(session: AsyncSession, actor: Actor, event: events.Event, account: Account,
            document: dict[str, Any] | None = None, **more: Any) -> None:
    """The change's record in the audit trail (the account's own), in its unit of work."""
    audit.record(session, actor=actor, event=event,
                 subject=Subject(account.id, account.name, "Account",
                                 Party(account.id, account.name, account.type)),
                 documents={"account": document or render_account(account), **more})


def _apply(account: Account, data: AccountFields) -> None:
    given = data.model_fields_set
    for field in ("description", "external_id", "external_name", "service_level",
                  "technical_support_email", "website"):
        if field in given:
            setattr(account, field, getattr(data, field))
    if "external_ids" in given:
        tenant = data.external_ids.pyra_tenant_id if data.external_ids else None
        account.pyra_tenant_id = str(tenant) if tenant else None
    if "address" in given:
        account.address = (data.address.model_dump(by_alias=True) if data.address else None)


async def _store_icon(session: AsyncSession, account: Account, icon: Icon | None) -> None:
    if icon is None:
        return
    await session.merge(AccountIcon(account_id=account.id, content_type=icon.content_type,
                                    data=icon.data))
    await session.flush()
