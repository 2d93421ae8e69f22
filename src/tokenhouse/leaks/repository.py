"""The SQL of leak reports."""

from collections.abc import Collection

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from tokenhouse.tokens.models import ApiToken


async def reported_for_update(session: AsyncSession, token_ids: Collection[str],
                              hashes: Collection[str]) -> list[ApiToken]:
    """The tokens among `token_ids` whose current or replaced secret has one of `hashes`,
    locked for the change: SELECT ... FOR UPDATE on PostgreSQL, SQLite's writer taken from
    this read on (kit/db.Writer). On behalf of no actor: a leak report reaches every
    tenant's tokens, and only by secrets.

    One statement for the whole report, found by primary key, whatever matched: the work
    does not grow with what was found (see leaks/service.py). In id order, so that two
    reports naming the same tokens lock them in the same order (no deadlock). The account
    and the modules come in the same statement (joined), for the audit record of a match:
    one statement still, matched or not."""
    statement = (select(ApiToken)
                 .where(ApiToken.id.in_(token_ids),
                        or_(ApiToken.secret_hash.in_(hashes),
                            ApiToken.previous_secret_hash.in_(hashes)))
                 .options(joinedload(ApiToken.account), joinedload(ApiToken.modules))
                 .order_by(ApiToken.id)
                 .with_for_update(of=ApiToken))
    return list((await session.scalars(statement)).unique())
