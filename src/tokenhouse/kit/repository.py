"""Query helpers shared by the domain repositories."""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from sqlalchemy import BindParameter, Select, bindparam, func, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import instance_dict

from tokenhouse.kit.direct import DirectSelect
from tokenhouse.kit.rql import Query, Resource
from tokenhouse.kit.rql.sql import Compiler

# A select of any columns (SQLAlchemy 2.1 types a select by the types of its columns).
AnySelect = Select[*tuple[Any, ...]]


class Tenant(Protocol):
    """What a tenant scope needs to know of the actor (auth/actor.py)."""

    @property
    def is_operations(self) -> bool: ...
    @property
    def account_id(self) -> str | None: ...


# Statements kept for every actor of a kind carry the tenant's account as this required
# parameter, never as a value inside the shared statement: one run without it fails instead
# of reading another tenant's rows.
SCOPE_ACCOUNT = "scope_account_id"


def scope_account() -> BindParameter[Any]:
    """The tenant's account in a statement kept for every actor of a kind."""
    return bindparam(SCOPE_ACCOUNT, required=True)


def scope_params(actor: Tenant) -> dict[str, Any]:
    """The parameters that statement is run with for `actor`."""
    return {} if actor.is_operations else {SCOPE_ACCOUNT: actor.account_id}


def columns_of(model: type[Any], *, leave_out: tuple[str, ...] = ()
               ) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """A model's attribute names and their columns, for a plain query whose rows become
    transient objects (`transient(model, zip(names, row))`)."""
    attributes = [attribute for attribute in inspect(model).column_attrs
                  if attribute.key not in leave_out]
    return (tuple(attribute.key for attribute in attributes),
            tuple(attribute.columns[0] for attribute in attributes))


def transient[M](model: type[M], values: Iterable[tuple[str, Any]]) -> M:
    """An object of `model` with these attribute values that no session holds or will
    write: for what is read or written with plain statements and then only judged and
    rendered. The values are set the way the ORM's own loader sets them (into the instance's
    dict, no attribute events): a constructor with keywords cost ~140 µs for a token with its
    account and a module, this ~12 µs."""
    instance = model()
    instance_dict(instance).update(values)
    return instance


@dataclass(frozen=True)
class PageStatements:
    count: AnySelect
    rows: AnySelect
    # Execution options: none, or no compiled cache for a large filter (see CACHED_TERMS).
    options: dict[str, Any]

    # Sent by the driver itself, for a page of plain rows (`run_plain_page`): made at their
    # first use, then kept with the statements (compiled once).
    @cached_property
    def direct_count(self) -> DirectSelect:
        return DirectSelect(self.count)

    @cached_property
    def direct_rows(self) -> DirectSelect:
        return DirectSelect(self.rows)

    @cached_property
    def direct_first(self) -> DirectSelect:
        """The page with the total as its last column, in one statement."""
        return DirectSelect(self.rows.add_columns(self.count.scalar_subquery().label("total")))


# Filters of at most this many comparisons have their statements kept (here and in
# SQLAlchemy's compiled cache): clients repeat their queries. A larger one is compiled for its
# one use: any token may send filters of up to 256 comparisons, each different, and kept they
# held about 0.3 MB apiece (a worker grew past 1 GB under such a stream).
CACHED_TERMS = 16


def cacheable(query: Query) -> bool:
    """Whether the statements of `query` may be kept (see CACHED_TERMS)."""
    return query.terms <= CACHED_TERMS


def page_statements(statement: AnySelect, resource: Resource, query: Query,
                    dialect: str) -> PageStatements:
    """The total and the page of `statement` narrowed by the query's filter, in the query's
    order (ties broken by id). `statement` is already scoped to what the actor may see: the
    filter is ANDed to it and can never widen it."""
    compiler = Compiler(resource, dialect)
    if query.filter is not None:
        statement = statement.where(compiler.filter(query.filter))
    count = select(func.count()).select_from(statement.order_by(None).subquery())
    rows = (statement.order_by(*compiler.order(query.order)).limit(query.limit)
            .offset(query.offset))
    options: dict[str, Any] = {} if cacheable(query) else {"compiled_cache": None}
    return PageStatements(count=count, rows=rows, options=options)


def dialect_name(session: AsyncSession) -> str:
    """The name of the database `session` talks to: "postgresql" or "sqlite"."""
    return session.get_bind().dialect.name


async def fetch_page(session: AsyncSession, statement: AnySelect, resource: Resource,
                     query: Query) -> tuple[list[Any], int]:
    """One page of the ORM objects `statement` selects, and the total of the filtered set
    (see `page_statements`)."""
    statements = page_statements(statement, resource, query, dialect_name(session))
    return await run_page(session, statements, query)


async def run_page(session: AsyncSession, statements: PageStatements, query: Query, *,
                   params: dict[str, Any] | None = None,
                   objects: bool = True) -> tuple[list[Any], int]:
    """The total and the page of prepared `statements` (with `params`): ORM objects, or with
    `objects=False` rows (see also `run_plain_page`)."""

    # One trip through SQLAlchemy's async bridge for both statements (and any relationship
    # loads), instead of one per statement: on a list, the bridge costs as much as a query.
    def page(sync: Session) -> tuple[list[Any], int]:
        options = statements.options
        total = sync.scalar(statements.count, params, execution_options=options) or 0
        if query.limit == 0 or not total or query.offset >= total:
            return [], total
        result = sync.execute(statements.rows, params, execution_options=options)
        return list(result.scalars().unique() if objects else result.all()), total

    return await session.run_sync(page)


def _by_the_driver(session: AsyncSession) -> bool:
    """Whether a page of plain rows is sent by the driver itself (kit/direct.py: asyncpg)."""
    return session.get_bind().dialect.driver == "asyncpg"


async def run_plain_page(session: AsyncSession, statements: PageStatements, query: Query, *,
                         params: dict[str, Any]) -> tuple[list[Sequence[Any]], int]:
    """`run_page` of statements that select plain columns (no ORM entity, no type that
    SQLAlchemy converts: kit/direct.DirectSelect refuses them), sent by asyncpg itself where
    it is the driver. Through SQLAlchemy a token list's two statements cost ~0.55 ms of CPU,
    sent by asyncpg ~0.2 ms (measured on PostgreSQL, a page of 10 of 119; a third of the
    list's CPU before, bench/README.md). They run on the unit of work's own connection (the
    one `kit/db.reading` took): they see what it wrote, and a second connection held by each
    request could leave the pool empty with every request waiting for one."""
    if not _by_the_driver(session):
        return await run_page(session, statements, query, params=params, objects=False)
    connection = await session.connection()
    if query.offset == 0 and query.limit > 0:
        # A first page (most lists) and its total in one statement: one round trip, each
        # costing ~0.1 ms of CPU (the send wakes the server). One snapshot too: no row means
        # a total of 0. A later page counts first and reads the page only if it is in range,
        # so that one past the end costs the database no more than its count.
        rows = await statements.direct_first.rows(connection, params)
        return [row[:-1] for row in rows], rows[0][-1] if rows else 0
    counted = await statements.direct_count.rows(connection, params)
    total: int = counted[0][0] or 0
    if query.limit == 0 or not total or query.offset >= total:
        return [], total
    return list(await statements.direct_rows.rows(connection, params)), total


async def new_unique_id(session: AsyncSession, model: Any, make: Callable[[], str],
                        attempts: int = 8) -> str:
    """A fresh random id not yet used by `model` (deleted rows are kept, so never reused)."""
    for _ in range(attempts):
        candidate = make()
        if await session.get(model, candidate) is None:
            return candidate
    raise RuntimeError(f"no free {model.__name__} id after {attempts} attempts")
