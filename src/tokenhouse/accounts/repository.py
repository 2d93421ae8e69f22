"""All SQL about accounts. Every read starts from what the actor may see."""

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from tokenhouse.accounts.models import Account, AccountIcon, AccountType
from tokenhouse.auth.actor import Actor
from tokenhouse.kit.paging import Page
from tokenhouse.kit.repository import fetch_page


def visible(actor: Actor) -> Select[tuple[Account]]:
    """Operations sees every account; a Client or Vendor token only its own."""
    statement = select(Account)
    if not actor.is_operations:
        statement = statement.where(Account.id == actor.account_id)
    return statement


async def list_visible(session: AsyncSession, actor: Actor,
                       page: Page) -> tuple[list[Account], int]:
    return await fetch_page(session, visible(actor), page, Account.id)


async def get_visible(session: AsyncSession, actor: Actor, account_id: str) -> Account | None:
    return await session.scalar(visible(actor).where(Account.id == account_id))


async def first_operations(session: AsyncSession) -> Account | None:
    return await session.scalar(select(Account).where(Account.type == AccountType.OPERATIONS)
                                .order_by(Account.created_at, Account.id).limit(1))


async def any_account(session: AsyncSession) -> bool:
    return await session.scalar(select(Account.id).limit(1)) is not None


async def get_icon(session: AsyncSession, account_id: str) -> AccountIcon | None:
    return await session.get(AccountIcon, account_id)
