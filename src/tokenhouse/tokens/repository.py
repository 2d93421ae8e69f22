"""All SQL about API tokens. Every read starts from what the actor may see."""

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol, cast

from sqlalchemy import (
    ARRAY,
    DateTime,
    Select,
    String,
    Table,
    Text,
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
from sqlalchemy.sql.elements import BindParameter

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
    run_plain_page,
    scope_account,
    scope_params,
    transient,
)
from tokenhouse.kit.rql import Collection, Obj, Query, Resource, Scalar
from tokenhouse.kit.timeutil import as_utc
from tokenhouse.modules.models import Module
from tokenhouse.modules.repository import module_fields
from tokenhouse.tokens.lifecycle import NOW, status_expression, status_is
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
    # Expired is computed (tokens/lifecycle.py): filters and sorting see what responses show.
    "status": Scalar("enum", status_expression(), nullable=False,
                     values=tuple(s.value for s in TokenStatus), equals=status_is),
    "statusReason": Scalar("string", ApiToken.status_reason),
    "expiresAt": Scalar("datetime", ApiToken.expires_at),
    "ipAllowlist": Scalar("string", filterable=False),
    "rateLimit": Obj({"limit": Scalar("number", ApiToken.rate_limit),
                      "windowSeconds": Scalar("number", ApiToken.rate_limit_window)}),
    "lastAccessAt": Scalar("datetime", ApiToken.last_access_at),
    "lastAccessIps": Scalar("string", filterable=False),
    "previousSecret": Obj({"expiresAt": Scalar("datetime", filterable=False),
                           "lastAccessAt": Scalar("datetime", filterable=False)}),
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
    """A token on a page: what tells whether its view in memory is current, and the columns
    that change without a new revision (tokens/views.Accessed)."""

    id: str
    revision: int
    last_access_at: datetime | None
    last_access_ips: str | None
    previous_last_access_at: datetime | None


PAGE_COLUMNS = (ApiToken.id, ApiToken.revision, ApiToken.last_access_at,
                ApiToken.last_access_ips, ApiToken.previous_last_access_at)


async def list_visible(session: AsyncSession, actor: Actor, query: Query,
                       now: datetime) -> tuple[list[PageRow], int]:
    """One page of the tokens visible to the actor (only the columns of PageRow: the
    representations come from the views; see tokens/service.py), and the total. `now`:
    the clock that tells Expired tokens (tokens/lifecycle.py)."""
    statements = list_statements(actor, query, dialect_name(session))
    rows, total = await run_plain_page(session, statements, query,
                                       params={**scope_params(actor), NOW: now})
    return [PageRow(*row) for row in rows], total


def list_statements(actor: Actor, query: Query, dialect: str) -> PageStatements:
    """The SQL behind `list_visible`, run with `scope_params(actor)` and the clock.

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


async def get_for_update(session: AsyncSession, token_id: str) -> ApiToken | None:
    """A token by id, locked, for the service's own bookkeeping
    (auth/service._retire_previous_secret): never on behalf of an actor, whose reads start
    at `visible`."""
    return await session.scalar(select(ApiToken).where(ApiToken.id == token_id)
                                .with_for_update(of=ApiToken))


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


# `lastAccessAt` alone, for tokens whose addresses need no write: one statement for a whole
# batch, the values in two arrays on PostgreSQL. A value never moves backwards (another
# process may have written a newer one).
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


# The accesses of a chunk of tokens: their rows read and locked (in id order, as the
# recorder sorts them), the new values computed in Python (the addresses are merged with
# those stored), and written in one statement. A value never moves backwards (another
# process may have written a newer one).
_ACCESSED = (select(_TOKENS.c.id, _TOKENS.c.last_access_at, _TOKENS.c.last_access_ips,
                    _TOKENS.c.previous_expires_at, _TOKENS.c.previous_last_access_at)
             .where(_TOKENS.c.id.in_(bindparam("ids", expanding=True)))
             .order_by(_TOKENS.c.id).with_for_update())
# PostgreSQL: the values travel as arrays, not as one parameter set per token.
_ACCESSES_PG = text(
    "UPDATE api_tokens AS t SET last_access_at = v.at, last_access_ips = v.ips, "
    "previous_last_access_at = v.previous_at "
    "FROM unnest(:ids, :ats, :ips, :previous_ats) AS v(id, at, ips, previous_at) "
    "WHERE t.id = v.id"
).bindparams(bindparam("ids", type_=ARRAY(String())),
             bindparam("ats", type_=ARRAY(DateTime(timezone=True))),
             bindparam("ips", type_=ARRAY(Text())),
             bindparam("previous_ats", type_=ARRAY(DateTime(timezone=True))))
_ACCESSES = (
    update(_TOKENS).where(_TOKENS.c.id == bindparam("tid"))
    .values(last_access_at=bindparam("at"), last_access_ips=bindparam("ips"),
            previous_last_access_at=bindparam("previous_at"))
)


class Accesses(Protocol):
    """What the recorder noted of one token (tokens/last_access.Noted)."""

    at: datetime
    ips: dict[str, str]
    previous: tuple[datetime, datetime] | None


async def write_accesses(session: AsyncSession, accesses: Mapping[str, Accesses],
                         merge: Callable[[str | None, Iterable[dict[str, str]]],
                                         list[dict[str, str]]]) -> None:
    """Store the accesses noted of tokens (id -> what was noted), where newer than what is
    stored; `merge` makes the stored addresses and the noted ones into the new list.
    Through the connection, not the session: these columns are in no cache (see
    kit/invalidation.py), so the writes must not read as changes of the tokens."""
    connection = await session.connection()
    rows = (await connection.execute(_ACCESSED, {"ids": list(accesses)})).all()
    values = []
    for number, (token_id, stored_at, stored_ips, window, previous_at) in enumerate(rows):
        if number % 250 == 249:
            await asyncio.sleep(0)  # a chunk's merging is not one long stall of every request
        noted = accesses[token_id]
        at = noted.at if stored_at is None or as_utc(stored_at) < noted.at else stored_at
        ips = json.dumps(merge(stored_ips, (noted.ips,)), separators=(",", ":"))
        if (noted.previous is not None and window is not None
                and as_utc(window) == noted.previous[0]
                and (previous_at is None or as_utc(previous_at) < noted.previous[1])):
            previous_at = noted.previous[1]  # of the window the row still has
        values.append((token_id, at, ips, previous_at))
    if not values:
        return
    if connection.dialect.name == "postgresql":
        columns = [list(column) for column in zip(*values, strict=True)]
        await connection.execute(_ACCESSES_PG, dict(zip(
            ("ids", "ats", "ips", "previous_ats"), columns, strict=True)))
    else:
        await connection.execute(_ACCESSES, [
            {"tid": token_id, "at": at, "ips": ips, "previous_at": previous_at}
            for token_id, at, ips, previous_at in values])


# The hashes are never read back: the row is found by one of them (which one is told by a
# computed column, `_CURRENT`).
_TOKEN_NAMES, _TOKEN_COLUMNS = columns_of(ApiToken, leave_out=("secret_hash",
                                                               "previous_secret_hash"))
_ACCOUNT_NAMES, _ACCOUNT_COLUMNS = columns_of(Account)
_MODULE_NAMES, _MODULE_COLUMNS = columns_of(Module)
_T, _A = len(_TOKEN_NAMES), len(_TOKEN_NAMES) + len(_ACCOUNT_NAMES)
_HASH: BindParameter[str] = bindparam("secret_hash")

# One statement, one round trip: the token a secret belongs to with its account and its
# modules (one row per module), everything authentication needs and everything the token's
# representation shows. Built once (see `list_statements`).
# The current secret, or the one a rotation replaced (whose grace window the caller judges).
_CREDENTIAL = DirectSelect(
    select(*_TOKEN_COLUMNS, *_ACCOUNT_COLUMNS, *_MODULE_COLUMNS,
           (ApiToken.secret_hash == _HASH).label("current"))
    .join(Account, Account.id == ApiToken.account_id)
    .outerjoin(token_modules, token_modules.c.token_id == ApiToken.id)
    .outerjoin(Module, Module.id == token_modules.c.module_id)
    .where(or_(ApiToken.secret_hash == _HASH, ApiToken.previous_secret_hash == _HASH),
           ApiToken.id == bindparam("token_id"))
    .order_by(Module.id)
)


@dataclass(frozen=True, slots=True)
class Credential:
    """A token found by a secret hash, and whether the hash is its current secret's (else:
    the secret its last rotation replaced)."""

    token: ApiToken
    current: bool


async def find_credential(engine: AsyncEngine, secret_hash: str,
                          token_id: str) -> Credential | None:
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
        modules=[transient(Module, zip(_MODULE_NAMES, row[_A:-1], strict=True))
                 for row in rows if row[_A] is not None])
    return Credential(token, bool(first[-1]))
