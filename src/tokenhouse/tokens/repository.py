"""All SQL about API tokens. Every read starts from what the actor may see."""

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from tokenhouse.auth.actor import Actor
from tokenhouse.kit.paging import Page
from tokenhouse.kit.repository import fetch_page
from tokenhouse.tokens.models import ApiToken, TokenStatus


def visible(actor: Actor) -> Select[tuple[ApiToken]]:
    """The tenant scope, written once: Operations sees every token (Deleted included); a
    Client or Vendor token sees its own account's tokens that are not Deleted. Every read of
    tokens on behalf of an actor starts here, so no filter can widen it."""
    statement = select(ApiToken)
    if not actor.is_operations:
        statement = statement.where(ApiToken.account_id == actor.account_id,
                                    ApiToken.status != TokenStatus.DELETED)
    return statement


async def list_visible(session: AsyncSession, actor: Actor,
                       page: Page) -> tuple[list[ApiToken], int]:
    return await fetch_page(session, visible(actor), page, ApiToken.id)


async def get_visible(session: AsyncSession, actor: Actor, token_id: str,
                      *, for_update: bool = False) -> ApiToken | None:
    statement = visible(actor).where(ApiToken.id == token_id)
    if for_update:
        # Two concurrent changes of one token are serialised, so `revision` checks hold.
        statement = statement.with_for_update(of=ApiToken)
    return await session.scalar(statement)


async def find_by_secret_hash(session: AsyncSession, secret_hash: str) -> ApiToken | None:
    """The token a credential belongs to, whatever its state (the caller decides)."""
    return await session.scalar(select(ApiToken).where(ApiToken.secret_hash == secret_hash))
