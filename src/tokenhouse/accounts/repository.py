"""All SQL about accounts. Every read starts from what the actor may see."""

from typing import Any

from sqlalchemy import Select, bindparam, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from tokenhouse.accounts.models import Account, AccountIcon, AccountStatus, AccountType, UserGroup
from tokenhouse.auth.actor import Actor
from tokenhouse.kit.audit import audit_schema
from tokenhouse.kit.repository import (
    columns_of,
    fetch_page,
    scope_account,
    scope_params,
    transient,
)
from tokenhouse.kit.rql import Collection, Obj, Query, Resource, Scalar

ADDRESS = ("addressLine1", "addressLine2", "postCode", "city", "state", "country")


def _groups_exist(condition):  # type: ignore[no-untyped-def]
    statement = select(literal(1)).where(UserGroup.account_id == Account.id)
    if condition is not None:
        statement = statement.where(condition)
    return statement.exists()


def account_fields(*, full: bool) -> dict[str, Scalar | Obj | Collection]:
    """An account's fields; nested in a token without groups and audit."""
    fields: dict[str, Scalar | Obj | Collection] = {
        "id": Scalar("string", Account.id, nullable=False),
        "href": Scalar("string"),
        "type": Scalar("enum", Account.type, nullable=False,
                       values=tuple(t.value for t in AccountType)),
        "status": Scalar("enum", Account.status, nullable=False,
                         values=tuple(s.value for s in AccountStatus)),
        "name": Scalar("string", Account.name, nullable=False),
        "description": Scalar("string", Account.description),
        "icon": Scalar("string"),
        "externalIds": Obj({"pyraTenantId": Scalar("string", Account.pyra_tenant_id)}),
        "externalId": Scalar("string", Account.external_id),
        "externalName": Scalar("string", Account.external_name),
        "serviceLevel": Scalar("string", Account.service_level),
        "address": Obj({name: Scalar("string", Account.address[name].as_string())
                        for name in ADDRESS}, presence=Account.address),
        "technicalSupportEmail": Scalar("string", Account.technical_support_email),
        "website": Scalar("string", Account.website),
    }
    if full:
        fields["groups"] = Collection(Obj({
            "id": Scalar("string", UserGroup.id, nullable=False),
            "href": Scalar("string"),
            "name": Scalar("string", UserGroup.name, nullable=False),
            "description": Scalar("string", UserGroup.description),
            "logo": Scalar("string", UserGroup.logo),
            "isDefault": Scalar("boolean", UserGroup.is_default, nullable=False),
            "modules": Scalar("string", filterable=False),
        }), exists=_groups_exist)
        fields["audit"] = audit_schema(Account, default=True)
        fields["revision"] = Scalar("number", Account.revision, nullable=False)
    return fields


RESOURCE = Resource("accounts", Obj(account_fields(full=True)), Account.id)


def visible(actor: Actor) -> Select[Account]:
    """The accounts the actor may see, with their user groups."""
    return _scope(select(Account).options(selectinload(Account.groups)),
                  operations=actor.is_operations, account=actor.account_id)


def _scope[*Ts](statement: Select[*Ts], *, operations: bool, account: Any) -> Select[*Ts]:
    """The tenant scope, written once: Operations sees every account; a Client or Vendor
    token only its own."""
    if not operations:
        statement = statement.where(Account.id == account)
    return statement


_NAMES, _COLUMNS = columns_of(Account)
# Built once, the tenant's account a required parameter (as tokens/repository.py does for
# lists): building an ORM select and loading through the ORM was a third of a create's
# time (profile in bench/README.md).
_SUMMARY = {operations: _scope(select(*_COLUMNS), operations=operations,
                               account=scope_account())
            .where(Account.id == bindparam("account_id"))
            for operations in (False, True)}


async def find_visible(session: AsyncSession, actor: Actor, account_id: str) -> Account | None:
    """A visible account without its groups, to be judged and rendered only (a transient
    object, attached to no session): the account a new token is to belong to."""
    row = (await session.execute(_SUMMARY[actor.is_operations],
                                 {"account_id": account_id, **scope_params(actor)})).first()
    return None if row is None else transient(Account, zip(_NAMES, row, strict=True))


async def list_visible(session: AsyncSession, actor: Actor,
                       query: Query) -> tuple[list[Account], int]:
    return await fetch_page(session, visible(actor), RESOURCE, query)


async def get_visible(session: AsyncSession, actor: Actor, account_id: str) -> Account | None:
    return await session.scalar(visible(actor).where(Account.id == account_id))


async def first_operations(session: AsyncSession) -> Account | None:
    return await session.scalar(select(Account).options(selectinload(Account.groups))
                                .where(Account.type == AccountType.OPERATIONS)
                                .order_by(Account.created_at, Account.id).limit(1))


async def any_account(session: AsyncSession) -> bool:
    return await session.scalar(select(Account.id).limit(1)) is not None


async def get_icon(session: AsyncSession, account_id: str) -> AccountIcon | None:
    return await session.get(AccountIcon, account_id)
