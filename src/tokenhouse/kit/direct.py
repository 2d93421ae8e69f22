"""Plain reads straight on the driver's connection, for hot paths.

Running one statement through SQLAlchemy costs more CPU than the indexed look-up it runs:
measured on PostgreSQL, a connection checked out, a SELECT by primary key run and the
connection handed back cost 0.45-0.5 ms of CPU, asyncpg alone 0.11 ms. A first-seen
credential (auth/service.py) pays that on every request after a restart, and a list page
(kit/repository.run_page) on every request, so their statements run here: compiled once,
then sent by asyncpg on a connection of the engine's own pool (the same checkout rules, the
same server settings, the same codecs). SQLite's driver runs every statement through a
thread of its own anyway; there the statement goes through SQLAlchemy as usual.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import asyncpg
from sqlalchemy import Select, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine
from sqlalchemy.util import greenlet_spawn


class DirectSelect:
    """A SELECT whose rows are read without SQLAlchemy's execution machinery where the
    driver allows it (asyncpg). The rows are those SQLAlchemy would return: the statement
    is refused at its first run if a column's type may need SQLAlchemy to convert its
    values, and its parameters are converted and sent as SQLAlchemy sends them."""

    def __init__(self, statement: Select[Any]):
        self._statement = statement
        self._compiled: SQLCompiler | None = None

    async def rows(self, bind: AsyncEngine | AsyncConnection, parameters: dict[str, Any]
                   ) -> Sequence[Sequence[Any]]:
        """The rows, read on a connection of `bind`'s pool of its own (outside any
        transaction: the driver begins one only for a write), or on `bind`, a connection
        already held (a unit of work's: what it wrote is seen)."""
        found: Sequence[Sequence[Any]]
        if isinstance(bind, AsyncConnection):
            if bind.dialect.driver != "asyncpg":
                found = (await bind.execute(self._statement, parameters)).all()
                return found
            held = bind.sync_connection
            assert held is not None  # an AsyncConnection is started
            # The pooled connection of a live Connection: an attribute, no round trip.
            return await self._fetch(bind.dialect, held.connection.driver_connection,
                                     parameters, held.invalidate)
        if bind.dialect.driver != "asyncpg":
            async with bind.connect() as connection:
                found = (await connection.execute(self._statement, parameters)).all()
                return found
        pooled = await bind.raw_connection()
        try:
            # Outside any transaction: one statement, its own snapshot (as in autocommit).
            return await self._fetch(bind.dialect, pooled.driver_connection, parameters,
                                     pooled.invalidate)
        finally:
            # Handing back runs the pool's reset, which may await: inside SQLAlchemy's bridge.
            await greenlet_spawn(pooled.close)

    async def _fetch(self, dialect: Dialect, driver: Any, parameters: dict[str, Any],
                     invalidate: Callable[[], None]) -> Sequence[Sequence[Any]]:
        compiled = self._compiled or self._compile(dialect)
        string, arguments = _arguments(compiled, parameters)
        try:
            rows: Sequence[Sequence[Any]] = await driver.fetch(string, *arguments)
        except BaseException as error:
            # Which connection failed is judged as SQLAlchemy judges the statements it runs
            # itself (closed after the error: the link is gone), and also by the driver's
            # own refusals (another operation in progress, an internal state error): a
            # backend killed while its connection sat in the pool leaves it so, with a
            # message from the server half-read. Either is an outage (503, kit/outage.py).
            broken = driver.is_closed() or isinstance(
                error, asyncpg.InterfaceError | asyncpg.InternalClientError)
            # Failed or cancelled half-way, the connection may be in any state: it is never
            # used again (a Connection invalidated this way fails the rest of its unit of
            # work, and the pool opens a new one).
            invalidate()
            if broken and isinstance(error, Exception):  # a cancellation stays one
                raise exc.DBAPIError(None, None, error, connection_invalidated=True) from error
            raise
        return rows

    def _compile(self, dialect: Dialect) -> SQLCompiler:
        for column in self._statement.selected_columns:
            if not _as_the_driver_gives(column.type, dialect):
                raise TypeError(f"{column} may need SQLAlchemy's result processing")
        compiled = self._statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        self._compiled = compiled
        return compiled


def _arguments(compiled: SQLCompiler, parameters: dict[str, Any]) -> tuple[str, list[Any]]:
    """The statement's text and its positional values, as SQLAlchemy's execution makes them
    (engine/default.py, DefaultExecutionContext._init_compiled): the values given and those
    the statement holds itself (a literal, a limit), a required one missing refused, each
    passed through its type's bind processor, and IN lists expanded for their values."""
    constructed = compiled.construct_params(parameters, escape_names=False)
    string = compiled.string
    names: Sequence[str] = compiled.positiontup or []
    values: Mapping[str, Any] = constructed
    processors: Mapping[str, Any] = compiled._bind_processors
    if compiled.post_compile_params or compiled.literal_execute_params:
        expanded = compiled._process_parameters_for_postcompile(constructed)
        string, names = expanded.statement, expanded.positiontup or []
        values = expanded.parameters
        processors = {**processors, **expanded.processors}
    return string, [processors[name](values[name]) if name in processors else values[name]
                    for name in names]


def _as_the_driver_gives(type_: TypeEngine[Any], dialect: Dialect) -> bool:
    """Whether SQLAlchemy would hand over the driver's values of this type unchanged: no
    result processor on this dialect (for JSON, asyncpg decodes with the codecs SQLAlchemy
    installs on each pooled connection). A type whose processor depends on what the driver
    reports (Numeric) cannot say here: refused too."""
    try:
        return type_.dialect_impl(dialect).result_processor(dialect, None) is None
    except Exception:
        return False
