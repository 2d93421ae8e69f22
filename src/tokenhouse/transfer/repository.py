"""All SQL of import and export, with SQLAlchemy Core (the ORM's unit of work would make a
large import take minutes, and its objects would hold the whole store in memory).

Import stages the file in TEMP tables carrying each row's line number (COPY on PostgreSQL,
batched INSERTs on SQLite), checks it there with set-based queries (duplicates, references,
ids and hashes already taken), then copies it into the real tables with INSERT ... SELECT,
all in the caller's one transaction. Export streams rows through a server-side cursor."""

import asyncio
from collections.abc import AsyncGenerator, Iterable, Sequence
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Executable,
    Integer,
    MetaData,
    Select,
    Table,
    Text,
    and_,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.schema import CreateTable, DropTable

from tokenhouse.accounts.models import Account, UserGroup
from tokenhouse.kit.repository import dialect_name
from tokenhouse.modules.models import Module
from tokenhouse.tokens.models import ApiToken, token_modules

BATCH = 2000  # ids in one IN list; rows in one executemany (SQLite)
STREAM_ROWS = 2000  # rows fetched at once from an export's cursor

ACCOUNTS = cast(Table, Account.__table__)
GROUPS = cast(Table, UserGroup.__table__)
MODULES = cast(Table, Module.__table__)
TOKENS = cast(Table, ApiToken.__table__)
LINKS = token_modules

AUDIT = ("created_at", "created_by_id", "created_by_name", "updated_at", "updated_by_id",
         "updated_by_name")
# The staged rows: (line, [position,] *columns[, repeat]), the columns in these orders;
# a link's `repeat` says that its token lists the module earlier already.
ACCOUNT_COLUMNS = ("id", "type", "status", "name", "description", "external_id",
                   "external_name", "pyra_tenant_id", "service_level", "address",
                   "technical_support_email", "website", "revision", *AUDIT)
GROUP_COLUMNS = ("id", "account_id", "name", "description", "logo", "is_default", *AUDIT)
TOKEN_COLUMNS = ("id", "account_id", "name", "description", "icon", "status", "secret_hash",
                 "last_access_at", "revision", *AUDIT, "expires_at", "ip_allowlist",
                 "last_access_ips", "previous_secret_hash", "previous_expires_at",
                 "previous_last_access_at", "retire_previous_on_first_use", "rotated_at",
                 "rate_limit", "rate_limit_window", "status_reason")
LINK_COLUMNS = ("token_id", "module_id")


# -- import: small reads and the module catalog ---------------------------------------------

# Writes nothing, but is a write: see claim_store.
_CLAIM = text("UPDATE api_tokens SET id = id WHERE 0 = 1")


async def claim_store(session: AsyncSession) -> None:
    """Take the store's write lock before the import first reads it (SQLite), so that the
    checks that follow and the writes after them see one state that no other writer can
    change in between. The staging before wrote only TEMP tables, which take no lock (the
    server's writes went on meanwhile, kit/db.py); a write to the store after reads of it
    would fail at once (SQLITE_BUSY_SNAPSHOT) had another process written in between. This
    statement changes no row, but takes the process's writer, the turn between processes
    and SQLite's lock like any write (kit/db.Writer), on a fresh snapshot. PostgreSQL needs
    nothing of the kind: a row another transaction inserts meanwhile fails the import's own
    insert, and nothing is written."""
    if dialect_name(session) == "sqlite":
        await session.execute(_CLAIM)


async def existing_ids(session: AsyncSession, model: Any, ids: Iterable[str]) -> set[str]:
    found: set[str] = set()
    pending = list(ids)
    for start in range(0, len(pending), BATCH):
        chunk = pending[start:start + BATCH]
        found.update(await session.scalars(select(model.id).where(model.id.in_(chunk))))
    return found


async def insert_modules(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    # Through the session, so that its hook publishes the catalog change
    # (kit/invalidation.py).
    for start in range(0, len(rows), BATCH):
        await session.execute(insert(MODULES), rows[start:start + BATCH])


async def update_module(session: AsyncSession, module_id: str, values: dict[str, Any]) -> None:
    await session.execute(update(MODULES).where(MODULES.c.id == module_id).values(**values))


# -- import: the staging tables ---------------------------------------------------------------

class Staging:
    """The file's lines in TEMP tables of the session's connection, until the transaction
    ends. `ids` holds (line, id) of every line that got as far as its id; the others hold
    the rows of valid lines only, as they will be written."""

    def __init__(self, connection: AsyncConnection, tables: dict[str, Table]):
        self._connection = connection
        self._postgres = connection.dialect.name == "postgresql"
        self.tables = tables

    @classmethod
    async def open(cls, session: AsyncSession) -> "Staging":
        # The session's own connection: the same transaction as the writes that follow.
        connection = await session.connection()
        postgres = connection.dialect.name == "postgresql"
        metadata = MetaData()
        # PostgreSQL drops them when the transaction ends, whatever its end. SQLite keeps
        # TEMP tables for the connection's life (its driver runs DDL outside transactions):
        # `close` drops them after a successful import.
        # Named in the session's temporary schema, so that no statement here can ever reach
        # a table of the store.
        options: dict[str, Any] = ({"postgresql_on_commit": "DROP", "schema": "pg_temp"}
                                   if postgres else {"schema": "temp"})

        def staged(name: str, source: Table, names: Sequence[str], *, position: bool = False,
                   ) -> Table:
            columns: list[Column[Any]] = [Column("line", Integer)]
            if position:
                columns.append(Column("position", Integer))
            # JSON documents are staged as the text the real column receives.
            columns += [Column(n, Text if n == "address" else source.c[n].type) for n in names]
            if source is LINKS:
                columns.append(Column("repeat", Boolean))
            return Table(name, metadata, *columns, prefixes=["TEMPORARY"], **options)

        tables = {
            "ids": Table("import_ids", metadata, Column("line", Integer), Column("id", Text),
                         prefixes=["TEMPORARY"], **options),
            "accounts": staged("import_accounts", ACCOUNTS, ACCOUNT_COLUMNS),
            "groups": staged("import_groups", GROUPS, GROUP_COLUMNS, position=True),
            "tokens": staged("import_tokens", TOKENS, TOKEN_COLUMNS),
            "links": staged("import_links", LINKS, LINK_COLUMNS, position=True),
        }
        staging = cls(connection, tables)
        # Left over from an earlier import on this connection (SQLite), or in this very
        # transaction (a caller that went on after ImportFailed).
        for table in tables.values():
            await connection.execute(DropTable(table, if_exists=True))
        if postgres:
            # The checks hash a million ids, and a bulk write sorts them into indexes: in
            # the server's memory rather than in temporary files (this transaction only).
            await connection.execute(text("SET LOCAL work_mem = '256MB'"))
            await connection.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
        for table in tables.values():
            await connection.execute(CreateTable(table))
        return staging

    async def close(self) -> None:
        """Drop the tables (SQLite; on PostgreSQL the end of the transaction drops them)."""
        if not self._postgres:
            for table in self.tables.values():
                await self._connection.execute(DropTable(table, if_exists=True))

    async def add(self, name: str, rows: list[tuple[Any, ...]]) -> None:
        """Stage rows (tuples in the table's column order, line first)."""
        if not rows:
            return
        table = self.tables[name]
        names = [column.name for column in table.columns]
        if self._postgres:
            # COPY: one round trip, and no statement text or parameter per row.
            raw = await self._connection.get_raw_connection()
            await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
                table.name, schema_name=table.schema, records=rows, columns=names)
            return
        for start in range(0, len(rows), BATCH):
            await self._connection.execute(insert(table), [
                dict(zip(names, row, strict=True)) for row in rows[start:start + BATCH]])

    async def _rows(self, statement: Executable) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await self._connection.execute(statement)]

    async def repeated(self, name: str, column: str, limit: int
                       ) -> list[tuple[int, str, int]]:
        """(line, value, first line) of the rows repeating a value of `column` (not null)
        that an earlier row (by line, then position) holds. `name` "ids": the id of every
        line that has one (staged as an id, an account or a token)."""
        if name == "ids":
            parts = [select(self.tables[part].c.line, self.tables[part].c.id.label("value"))
                     for part in ("ids", "accounts", "tokens")]
            rows = union_all(*parts).subquery()
            value, order = rows.c.value, [rows.c.line]
        else:
            table = self.tables[name]
            rows = select(*(c for c in (table.c.line, table.c.get("position")) if c is not None),
                          table.c[column].label("value")
                          ).where(table.c[column].is_not(None)).subquery()
            value = rows.c.value
            order = [c for c in (rows.c.line, rows.c.get("position")) if c is not None]
        # Ranked are only the values held more than once (hashed: no sort of every row).
        held_again = select(value).group_by(value).having(func.count() > 1)
        ranked = select(
            rows.c.line, value,
            func.row_number().over(partition_by=value, order_by=order).label("rank"),
            func.min(rows.c.line).over(partition_by=value).label("first"),
        ).where(value.in_(held_again)).subquery()
        statement = (select(ranked.c.line, ranked.c.value, ranked.c.first)
                     .where(ranked.c.rank > 1).order_by(ranked.c.line, ranked.c.value)
                     .limit(limit))
        return [(row[0], row[1], row[2]) for row in await self._rows(statement)]

    async def repeated_hashes(self, limit: int) -> list[tuple[int, str, int]]:
        """(line, property, first line) of the tokens whose secretHash or previousSecretHash
        an earlier line holds as either (hashed: no sort of every row, as `repeated`)."""
        tokens = self.tables["tokens"]
        rows = union_all(*(
            select(tokens.c.line, literal(name).label("name"), tokens.c[column].label("value"))
            .where(tokens.c[column].is_not(None))
            for name, column in (("secretHash", "secret_hash"),
                                 ("previousSecretHash", "previous_secret_hash")))).subquery()
        held_again = select(rows.c.value).group_by(rows.c.value).having(func.count() > 1)
        ranked = select(
            rows.c.line, rows.c.name,
            # A line never holds one hash as both (schemas.TokenLine refuses it).
            func.row_number().over(partition_by=rows.c.value, order_by=rows.c.line
                                   ).label("rank"),
            func.min(rows.c.line).over(partition_by=rows.c.value).label("first"),
        ).where(rows.c.value.in_(held_again)).subquery()
        statement = (select(ranked.c.line, ranked.c.name, ranked.c.first)
                     .where(ranked.c.rank > 1).order_by(ranked.c.line).limit(limit))
        return [(row[0], row[1], row[2]) for row in await self._rows(statement)]

    async def taken(self, name: str, column: str, target: Table, target_column: str,
                    limit: int) -> list[tuple[int, str]]:
        """(line, value) of staged rows whose `column` is already in `target`."""
        table = self.tables[name]
        statement = (select(table.c.line, table.c[column])
                     .where(exists().where(target.c[target_column] == table.c[column]))
                     .order_by(table.c.line, table.c[column]).limit(limit))
        return [(row[0], row[1]) for row in await self._rows(statement)]

    async def unknown_accounts(self, limit: int) -> list[tuple[int, str, str]]:
        """(line, token id, account id) of tokens whose account is in neither the file nor
        the store."""
        tokens, accounts = self.tables["tokens"], self.tables["accounts"]
        statement = (select(tokens.c.line, tokens.c.id, tokens.c.account_id)
                     .where(~exists().where(accounts.c.id == tokens.c.account_id),
                            ~exists().where(ACCOUNTS.c.id == tokens.c.account_id))
                     .order_by(tokens.c.line).limit(limit))
        return [(row[0], row[1], row[2]) for row in await self._rows(statement)]

    async def unknown_modules(self, limit: int) -> list[tuple[int, str, str]]:
        """(line, token id, module id), in the file's order, of the modules of tokens that
        are in neither the file nor the store; the first `limit` such tokens."""
        links, ids = self.tables["links"], self.tables["ids"]
        unknown: ColumnElement[bool] = and_(
            ~exists().where(MODULES.c.id == links.c.module_id),
            ~exists().where(ids.c.id == links.c.module_id))
        lines = (select(links.c.line).where(unknown).group_by(links.c.line)
                 .order_by(links.c.line).limit(limit)).subquery()
        statement = (select(links.c.line, links.c.token_id, links.c.module_id)
                     .where(links.c.line.in_(select(lines.c.line)), unknown)
                     .order_by(links.c.line, links.c.position))
        return [(row[0], row[1], row[2]) for row in await self._rows(statement)]

    async def write(self, *, bulk: bool) -> None:
        """Copy the staged rows into the real tables (then, on PostgreSQL, update the
        planner's statistics of those tables, which autovacuum would do only later).

        On the connection, not through the session: the session's hook would read an
        INSERT ... SELECT of links as naming no token and drop every cache (AllChanged).
        Every row here is new (ids already in the store were refused), and a new row
        changes nothing cached: the same as the hook derives for new tokens and accounts
        inserted row by row (kit/invalidation.py).

        `bulk` (PostgreSQL): the foreign keys and secondary indexes of the tokens and their
        links are dropped before the copy and made again after it, each in one pass over
        the table instead of a trigger call and an index insertion per row (which made a
        million tokens take minutes). This holds an exclusive lock on both tables until
        the transaction ends: requests that read tokens wait for the import. The store's
        definitions are read from its catalog, so they come back exactly as they were, or
        (the same transaction) not at all changed."""
        rebuild: list[str] = []
        if bulk and self._postgres:
            rebuild = await self._drop_derived()
        pairs = ((ACCOUNTS, "accounts"), (GROUPS, "groups"), (TOKENS, "tokens"))
        for target, name in pairs:
            staged = self.tables[name]
            names = [c.name for c in staged.columns if c.name in target.c]
            values = [staged.c[n].cast(JSONB) if n == "address" and self._postgres
                      else staged.c[n] for n in names]
            await self._connection.execute(
                insert(target).from_select(names, select(*values)))
        links = self.tables["links"]
        await self._connection.execute(insert(LINKS).from_select(
            list(LINK_COLUMNS),
            select(links.c.token_id, links.c.module_id).where(links.c.repeat.is_(False))))
        for statement in rebuild:
            await self._connection.execute(text(statement))
        if self._postgres:
            for table in (ACCOUNTS, GROUPS, TOKENS, LINKS):
                await self._connection.execute(text(f"ANALYZE {table.fullname}"))

    async def _drop_derived(self) -> list[str]:
        """Drop the keys, foreign keys and indexes of the tokens and their links (and the
        foreign keys that refer to them); returns the statements that make them again, in
        an order that works (keys before the foreign keys that refer to them)."""
        tables = f"('{TOKENS.name}'::regclass, '{LINKS.name}'::regclass)"
        constraints = await self._rows(text(
            "SELECT contype = 'f',"
            " format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname),"
            " format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::regclass, conname,"
            " pg_get_constraintdef(oid)) FROM pg_constraint"
            f" WHERE (contype IN ('p', 'u') AND conrelid IN {tables})"
            f" OR (contype = 'f' AND (conrelid IN {tables} OR confrelid IN {tables}))"
            " ORDER BY conname"))
        indexes = await self._rows(text(
            "SELECT format('DROP INDEX %s', indexrelid::regclass), pg_get_indexdef(indexrelid)"
            f" FROM pg_index WHERE indrelid IN {tables} AND NOT EXISTS"
            " (SELECT 1 FROM pg_constraint WHERE conindid = indexrelid) ORDER BY indexrelid"))
        foreign = [(drop, make) for is_foreign, drop, make in constraints if is_foreign]
        keys = [(drop, make) for is_foreign, drop, make in constraints if not is_foreign]
        for drop, _ in [*foreign, *keys, *indexes]:
            await self._connection.execute(text(drop))
        return [make for _, make in [*keys, *indexes, *foreign]]

    async def store_has_tokens(self) -> bool:
        return await self._connection.scalar(select(TOKENS.c.id).limit(1)) is not None

    async def analyze(self) -> None:
        """Give PostgreSQL's planner the staged tables' sizes (autovacuum never sees TEMP
        tables), so that the checks join by hashing rather than by nested loops."""
        if self._postgres:
            for table in self.tables.values():
                await self._connection.execute(text(f"ANALYZE {table.fullname}"))


# -- export -----------------------------------------------------------------------------------

async def _stream(session: AsyncSession, statement: Select[Any]
                  ) -> AsyncGenerator[Row[Any], None]:
    """The rows of `statement`, STREAM_ROWS at a time from a server-side cursor (one hop
    through SQLAlchemy's async bridge per batch, not per row).

    The next batch is asked for while the caller works on this one: the database computes
    it meanwhile, instead of waiting idle for each request (two batches in memory at most)."""
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        # The plan of a query over every row is costly enough for JIT compilation, which
        # takes seconds and gains nothing for a stream read once.
        await connection.execute(text("SET LOCAL jit = off"))
    result = await session.stream(statement.execution_options(yield_per=STREAM_ROWS))
    batches = aiter(result.partitions(STREAM_ROWS))
    pending = asyncio.ensure_future(anext(batches, None))
    try:
        while (batch := await pending) is not None:
            pending = asyncio.ensure_future(anext(batches, None))
            await asyncio.sleep(0)  # the fetch starts: its request goes out now
            for row in batch:
                yield row
    finally:
        # A stream left early (close it with contextlib.aclosing) waits for the fetch in
        # flight: cancelled half-way, it would leave the connection busy for the rollback.
        # Its outcome no longer matters.
        await asyncio.wait([pending])
        if not pending.cancelled():
            pending.exception()


def account_rows(session: AsyncSession) -> AsyncGenerator[Row[Any], None]:
    """Every account in id order, one row per user group (in id order; one row with null
    group columns for an account without any)."""
    group_columns = [GROUPS.c[n].label(f"group_{n}") for n in
                     ("id", "name", "description", "logo", "is_default")]
    statement = (select(*ACCOUNTS.c, *group_columns)
                 .select_from(ACCOUNTS.outerjoin(GROUPS, GROUPS.c.account_id == ACCOUNTS.c.id))
                 .order_by(ACCOUNTS.c.id, GROUPS.c.id))
    return _stream(session, statement)


def module_rows(session: AsyncSession) -> AsyncGenerator[Row[Any], None]:
    return _stream(session, select(*MODULES.c).order_by(MODULES.c.id))


# The first columns of token_rows, in this order.
TOKEN_EXPORT = ("id", "name", "description", "icon", "status", "last_access_at", "created_at",
                "created_by_id", "created_by_name", "updated_at", "updated_by_id",
                "updated_by_name", "revision", "secret_hash", "expires_at", "ip_allowlist",
                "last_access_ips", "previous_secret_hash", "previous_expires_at",
                "previous_last_access_at", "retire_previous_on_first_use", "rotated_at",
                "rate_limit", "rate_limit_window", "status_reason", "account_id")


def token_rows(session: AsyncSession) -> AsyncGenerator[Row[Any], None]:
    """Every token in id order: the columns TOKEN_EXPORT, its modules' ids (`module_ids`:
    comma separated, in no particular order), then its account's columns (`owner_*`; the
    address as JSON text, decoded only where it is used)."""
    owner = [ACCOUNTS.c[n].label(f"owner_{n}") for n in (
        "id", "type", "status", "name", "description", "icon_updated_at", "pyra_tenant_id",
        "external_id", "external_name", "service_level", "technical_support_email",
        "website")]
    module_ids = (select(func.aggregate_strings(LINKS.c.module_id, ","))
                  .where(LINKS.c.token_id == TOKENS.c.id).scalar_subquery())
    statement = (select(*(TOKENS.c[n] for n in TOKEN_EXPORT), module_ids.label("module_ids"),
                        *owner, ACCOUNTS.c.address.cast(Text).label("owner_address"))
                 .select_from(TOKENS.join(ACCOUNTS, ACCOUNTS.c.id == TOKENS.c.account_id))
                 .order_by(TOKENS.c.id))
    return _stream(session, statement)
