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
from dataclasses import dataclass
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
    values, and its parameters are converted and sent as SQLAlchemy sends them. The values
    a run is given are those of the statement's required parameters (a bindparam without a
    value); the others are the statement's own."""

    def __init__(self, statement: Select[Any]):
        self._statement = statement
        self._prepared: _Prepared | None = None

    async def rows(self, bind: AsyncEngine | AsyncConnection, parameters: dict[str, Any]
                   ) -> Sequence[Sequence[Any]]:
        """The rows, read on a connection of `bind`'s pool of its own (outside any
        transaction: the driver begins one only for a write), or on `bind`, a connection
        already held (a unit of work's). On a held connection the driver sends the statement
        itself only in autocommit (kit/db.reading), where each statement is on its own
        anyway; in a transaction SQLAlchemy runs it: its adapter begins the transaction
        lazily, at its first statement, so one sent past it could run outside the unit of
        work it belongs to (its own snapshot, no lock kept)."""
        found: Sequence[Sequence[Any]]
        if isinstance(bind, AsyncConnection):
            held = bind.sync_connection
            assert held is not None  # an AsyncConnection is started
            if bind.dialect.driver != "asyncpg" or \
                    held.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
                found = (await bind.execute(self._statement, parameters)).all()
                return found
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
        prepared = self._prepared or self._prepare(dialect)
        arguments = prepared.arguments(parameters)
        try:
            rows: Sequence[Sequence[Any]] = await driver.fetch(prepared.string, *arguments)
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

    def _prepare(self, dialect: Dialect) -> "_Prepared":
        for column in self._statement.selected_columns:
            if not _as_the_driver_gives(column.type, dialect):
                raise TypeError(f"{column} may need SQLAlchemy's result processing")
        compiled = self._statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        self._prepared = _Prepared.of(compiled)
        return self._prepared


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A compiled statement reduced to what each run needs (the compiler itself is not
    kept: a list's first-page statement, kept for each query, held ~25 KB with it and ~10
    without, most of it what compiling left on the statement): its text, and for each
    positional parameter either the name of a required one, whose value each run gives, or
    the value the statement holds (a literal, a limit), already converted. Made as
    SQLAlchemy's execution makes them (engine/default.py, DefaultExecutionContext.
    _init_compiled): each value through its type's bind processor, and IN lists of the
    statement's own values expanded."""

    string: str
    # (the name of a required parameter or None, the value, the bind processor of a
    # required parameter's type or None)
    slots: tuple[tuple[str | None, Any, Callable[[Any], Any] | None], ...]

    @classmethod
    def of(cls, compiled: SQLCompiler) -> "_Prepared":
        required = {name: bind.key for bind, name in compiled.bind_names.items()
                    if bind.required}
        for bind in compiled.bind_names:
            if bind.callable is not None or (bind.required and (
                    bind.expanding or bind.literal_execute)):
                raise TypeError(f"{bind.key}: a parameter only known at each run")
        # Required values are given at each run: here, placeholders the processors never see.
        values: Mapping[str, Any] = compiled.construct_params(
            dict.fromkeys(required.values()), escape_names=False)
        string = compiled.string
        names: Sequence[str] = compiled.positiontup or []
        processors: Mapping[str, Any] = compiled._bind_processors
        if compiled.post_compile_params or compiled.literal_execute_params:
            expanded = compiled._process_parameters_for_postcompile(dict(values))
            string, names = expanded.statement, expanded.positiontup or []
            values = expanded.parameters
            processors = {**processors, **expanded.processors}
        slots: list[tuple[str | None, Any, Callable[[Any], Any] | None]] = []
        for name in names:
            process = processors.get(name)
            if name in required:
                slots.append((required[name], None, process))
            else:
                slots.append((None, values[name] if process is None
                              else process(values[name]), None))
        return cls(string, tuple(slots))

    def arguments(self, parameters: dict[str, Any]) -> list[Any]:
        """The positional values of a run given `parameters` (by name); a required one
        missing is refused, as SQLAlchemy refuses it."""
        arguments = []
        for name, value, process in self.slots:
            if name is not None:
                if name not in parameters:
                    raise exc.InvalidRequestError(
                        f"A value is required for bind parameter {name!r}")
                value = parameters[name] if process is None else process(parameters[name])
            arguments.append(value)
        return arguments


def _as_the_driver_gives(type_: TypeEngine[Any], dialect: Dialect) -> bool:
    """Whether SQLAlchemy would hand over the driver's values of this type unchanged: no
    result processor on this dialect (for JSON, asyncpg decodes with the codecs SQLAlchemy
    installs on each pooled connection). A type whose processor depends on what the driver
    reports (Numeric) cannot say here: refused too."""
    try:
        return type_.dialect_impl(dialect).result_processor(dialect, None) is None
    except Exception:
        return False
