"""All SQL about API tokens. Every read starts from what the actor may see."""

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    DateTime,
    Select,
    String,
    Table,
    bindparam,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import contains_eager
from sqlalchemy.orm.attributes import instance_dict

from tokenhouse.accounts.models import Account
from tokenhouse.accounts.repository import account_fields
from tokenhouse.auth.actor import Actor
from tokenhouse.kit.audit import audit_schema
from tokenhouse.kit.direct import DirectSelect
from tokenhouse.kit.repository import (
    PageStatements,
    cacheable,
    columns_of,
    dialect_name,
    page_statements,
    run_page,
    scope_account,
    scope_params,
    transient,
)
from tokenhouse.kit.rql import Collection, Obj, Query, Resource, Scalar
from tokenhouse.modules.models import Module
from tokenhouse.modules.repository import module_fields
from tokenhouse.tokens.models import ApiToken, TokenStatus, token_modules


def _modules_exist(condition):  # type: ignore[no-untyped-def]
    statement = (select(literal(1))
                 .select_from(token_modules.join(Module, Module.id == token_modules.c.module_id))
                 .where(token_modules.c.token_id == ApiToken.id))
    if condition is not None:
        statement = statement.where(condition)
    return statement.exists()


RESOURCE = Resource("api-tokens", Obj({
    "id": Scalar("string", ApiToken.id, nullable=False),
    "href": Scalar("string"),
    "name": Scalar("string", ApiToken.name, nullable=False),
    "description": Scalar("string", ApiToken.description),
    "icon": Scalar("string", ApiToken.icon),
    "status": Scalar("enum", ApiToken.status, nullable=False,
                     values=tuple(s.value for s in TokenStatus)),
    "lastAccessAt": Scalar("datetime", ApiToken.last_access_at),
    # The secret: in the create response and a token's GET of itself only; never queried.
    "token": Scalar("string", filterable=False, conditional=True),
    "account": Obj(account_fields(full=False)),
    "modules": Collection(Obj(module_fields(audit=False)), exists=_modules_exist),
    "audit": audit_schema(ApiToken, default=True),
    "revision": Scalar("number", ApiToken.revision, nullable=False),
}), ApiToken.id)


def visible(actor: Actor) -> Select[ApiToken]:
    """The tenant scope, written once (here and in `_scope`): Operations sees every token
    (Deleted included); a Client or Vendor token sees its own account's tokens that are not
    Deleted. Every read of tokens on behalf of an actor starts here, and query filters are
    only ever ANDed to it.

    Selects the tokens with their accounts (joined: filters and orders may name its
    fields)."""
    statement = (select(ApiToken).join(ApiToken.account)
                 .options(contains_eager(ApiToken.account)))
    return _scope(statement, operations=actor.is_operations, account=actor.account_id)


def _scope[*Ts](statement: Select[*Ts], *, operations: bool, account: Any) -> Select[*Ts]:
    if not operations:
        statement = statement.where(ApiToken.account_id == account,
                                    ApiToken.status != TokenStatus.DELETED)
    return statement


def can_see(actor: Actor, account_id: str, status: str) -> bool:
    """`visible(actor)` for a token already in memory: the same rule, kept beside it (a test
    holds the two to the same answers)."""
    return actor.is_operations or (account_id == actor.account_id
                                   and status != TokenStatus.DELETED)


@dataclass(frozen=True, slots=True)
class PageRow:
    """A token on a page: what tells whether its view in memory is current, and the one
    column that changes without a new revision."""

    id: str
    revision: int
    last_access_at: datetime | None


PAGE_COLUMNS = (ApiToken.id, ApiToken.revision, ApiToken.last_access_at)


async def list_visible(session: AsyncSession, actor: Actor,
                       query: Query) -> tuple[list[PageRow], int]:
    """One page of the tokens visible to the actor (only the columns of PageRow: the
    representations come from the views; see tokens/service.py), and the total."""
    statements = list_statements(actor, query, dialect_name(session))
    rows, total = await run_page(session, statements, query, params=scope_params(actor),
                                 objects=False)
    return [PageRow(*row) for row in rows], total


def list_statements(actor: Actor, query: Query, dialect: str) -> PageStatements:
    """The SQL behind `list_visible`, run with `scope_params(actor)`.

    Built once per query and kind of actor, and kept: building and fingerprinting a
    statement costs more than running it. The tenant's account is therefore a required
    parameter (kit/repository.scope_account)."""
    build = _list_statements if cacheable(query) else _list_statements.__wrapped__
    return build(query, actor.is_operations, dialect)


@lru_cache(maxsize=1024)
def _list_statements(query: Query, operations: bool, dialect: str) -> PageStatements:
    statement = _scope(select(*PAGE_COLUMNS).join(ApiToken.account), operations=operations,
                       account=scope_account())
    return page_statements(statement, RESOURCE, query, dialect)


async def get_many_visible(session: AsyncSession, actor: Actor,
                           token_ids: list[str]) -> list[ApiToken]:
    return list((await session.scalars(visible(actor).where(ApiToken.id.in_(token_ids))))
                .unique())


async def get_visible(session: AsyncSession, actor: Actor, token_id: str,
                      *, for_update: bool = False) -> ApiToken | None:
    statement = visible(actor).where(ApiToken.id == token_id)
    if for_update:
        # Two concurrent changes of one token are serialised, so `revision` checks hold.
        statement = statement.with_for_update(of=ApiToken)
    return await session.scalar(statement)


async def insert_new(session: AsyncSession, token: ApiToken) -> bool:
    """Insert a new token (and its module links) as plain statements, without the ORM's
    flush. False, with nothing written, when its id is taken: the caller draws another.
    Ids are random, so a clash is rare but possible; ON CONFLICT makes it one statement
    instead of a look-up before every insert, and it holds against a concurrent insert."""
    values = {column.key: getattr(token, column.key) for column in _TOKENS.columns}
    statement = _INSERT_NEW[dialect_name(session)]
    if (await session.execute(statement, values)).first() is None:
        return False
    await session.execute(token_modules.insert(), [
        {"token_id": token.id, "module_id": module.id} for module in token.modules])
    return True


# A Table: declarative types `__table__` as any FromClause, which insert() and update() refuse.
_TOKENS = cast(Table, ApiToken.__table__)
# Built once: a statement reused is not built and fingerprinted again on every create.
_INSERT_NEW = {name: insert(_TOKENS).on_conflict_do_nothing(index_elements=[_TOKENS.c.id])
               .returning(_TOKENS.c.id)
               for name, insert in (("postgresql", postgresql.insert),
                                    ("sqlite", sqlite.insert))}


# One statement for a whole batch: the values travel as two arrays, not as one parameter set
# per token. A value never moves backwards (another process may have written a newer one).
_LAST_ACCESS_PG = text(
    "UPDATE api_tokens AS t SET last_access_at = v.at "
    "FROM unnest(:ids, :ats) AS v(id, at) "
    "WHERE t.id = v.id AND (t.last_access_at IS NULL OR t.last_access_at < v.at)"
).bindparams(bindparam("ids", type_=ARRAY(String())),
             bindparam("ats", type_=ARRAY(DateTime(timezone=True))))
_LAST_ACCESS = (
    update(_TOKENS)
    .where(_TOKENS.c.id == bindparam("tid"),
           or_(_TOKENS.c.last_access_at.is_(None), _TOKENS.c.last_access_at < bindparam("at")))
    .values(last_access_at=bindparam("at"))
)


async def write_last_access(session: AsyncSession, accesses: dict[str, datetime]) -> None:
    """Store the latest accesses of tokens (id -> when), where newer than what is stored."""
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        await connection.execute(_LAST_ACCESS_PG, {"ids": list(accesses),
                                                   "ats": list(accesses.values())})
    else:
        await connection.execute(_LAST_ACCESS, [{"tid": token_id, "at": at}
                                                for token_id, at in accesses.items()])


# The hash is never read back: it is what the row was found by.
_TOKEN_NAMES, _TOKEN_COLUMNS = columns_of(ApiToken, leave_out=("secret_hash",))
_ACCOUNT_NAMES, _ACCOUNT_COLUMNS = columns_of(Account)
_MODULE_NAMES, _MODULE_COLUMNS = columns_of(Module)
_T, _A = len(_TOKEN_NAMES), len(_TOKEN_NAMES) + len(_ACCOUNT_NAMES)

# One statement, one round trip: the token a secret belongs to with its account and its
# modules (one row per module), everything authentication needs and everything the token's
# representation shows. Built once (see `list_statements`).
_CREDENTIAL = DirectSelect(
    select(*_TOKEN_COLUMNS, *_ACCOUNT_COLUMNS, *_MODULE_COLUMNS)
    .join(Account, Account.id == ApiToken.account_id)
    .outerjoin(token_modules, token_modules.c.token_id == ApiToken.id)
    .outerjoin(Module, Module.id == token_modules.c.module_id)
    .where(ApiToken.secret_hash == bindparam("secret_hash"),
           ApiToken.id == bindparam("token_id"))
    .order_by(Module.id)
)


async def find_credential(engine: AsyncEngine, secret_hash: str,
                          token_id: str) -> ApiToken | None:
    """The token a secret hash belongs to, whatever its state (the caller decides), with its
    account and modules loaded: a transient object, attached to no session, to be
    judged and rendered (its representation is the same as a token read through the ORM:
    the same renderer runs on the same values). It runs on every uncached request, so it is
    one plain query, run on the driver's connection (kit/direct.py), and no ORM loading.

    The hash is not UNIQUE in the database (see migration 0007), so the token id the secret
    names is bound too: a hash stored on another row (a damaged import) never matches it."""
    rows = await _CREDENTIAL.rows(engine, {"secret_hash": secret_hash, "token_id": token_id})
    if not rows:
        return None
    first = rows[0]
    token = transient(ApiToken, zip(_TOKEN_NAMES, first[:_T], strict=True))
    instance_dict(token).update(
        account=transient(Account, zip(_ACCOUNT_NAMES, first[_T:_A], strict=True)),
        modules=[transient(Module, zip(_MODULE_NAMES, row[_A:], strict=True))
                 for row in rows if row[_A] is not None])
    return token
