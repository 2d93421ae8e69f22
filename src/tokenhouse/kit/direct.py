"""Plain reads straight on the driver's connection, for the misses of hot paths.

Running one statement through SQLAlchemy costs more CPU than the indexed look-up it runs:
measured on PostgreSQL, a connection checked out, a SELECT by primary key run and the
connection handed back cost 0.45-0.5 ms of CPU, asyncpg alone 0.11 ms. A first-seen
credential (auth/service.py) pays that on every request after a restart, so its one
statement runs here: compiled once, then sent by asyncpg on a connection of the engine's own
pool (the same checkout rules, the same server settings, the same codecs). SQLite's driver
runs every statement through a thread of its own anyway; there the statement goes through
SQLAlchemy as usual, on a connection of its own (outside any transaction: the driver begins
one only for a write).
"""

from collections.abc import Sequence
from typing import Any

import asyncpg
from sqlalchemy import Select, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine
from sqlalchemy.util import greenlet_spawn


class DirectSelect:
    """A SELECT whose rows are read without SQLAlchemy's execution machinery where the
    driver allows it (asyncpg). The rows are those SQLAlchemy would return: the statement
    is refused at its first run if a column's type may need SQLAlchemy to convert its
    values."""

    def __init__(self, statement: Select[Any]):
        self._statement = statement
        self._compiled: SQLCompiler | None = None

    async def rows(self, engine: AsyncEngine, parameters: dict[str, Any]
                   ) -> Sequence[Sequence[Any]]:
        if engine.dialect.driver != "asyncpg":
            async with engine.connect() as connection:
                found: Sequence[Sequence[Any]] = (
                    await connection.execute(self._statement, parameters)).all()
                return found
        compiled = self._compiled or self._compile(engine.dialect)
        # The values given, and those the statement holds itself (a literal), in order.
        values = compiled.construct_params(parameters)
        arguments = [values[name] for name in compiled.positiontup or ()]
        pooled = await engine.raw_connection()
        driver = pooled.driver_connection
        try:
            # Outside any transaction: one statement, its own snapshot (as in autocommit).
            rows: Sequence[Sequence[Any]] = await driver.fetch(  # type: ignore[union-attr]
                compiled.string, *arguments)
        except BaseException as error:
            # Which connection failed is judged as SQLAlchemy judges the statements it runs
            # itself (closed after the error: the link is gone), and also by the driver's
            # own refusals (another operation in progress, an internal state error): a
            # backend killed while its connection sat in the pool leaves it so, with a
            # message from the server half-read. Either is an outage (503, kit/outage.py).
            broken = driver is not None and (driver.is_closed() or isinstance(
                error, asyncpg.InterfaceError | asyncpg.InternalClientError))
            # Failed or cancelled half-way, the connection may be in any state: it is never
            # handed to another request (the pool opens a new one).
            pooled.invalidate()
            if broken and isinstance(error, Exception):  # a cancellation stays one
                raise exc.DBAPIError(None, None, error, connection_invalidated=True) from error
            raise
        finally:
            # Handing back runs the pool's reset, which may await: inside SQLAlchemy's bridge.
            await greenlet_spawn(pooled.close)
        return rows

    def _compile(self, dialect: Dialect) -> SQLCompiler:
        for column in self._statement.selected_columns:
            if not _as_the_driver_gives(column.type, dialect):
                raise TypeError(f"{column} may need SQLAlchemy's result processing")
        compiled = self._statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        self._compiled = compiled
        return compiled


def _as_the_driver_gives(type_: TypeEngine[Any], dialect: Dialect) -> bool:
    """Whether SQLAlchemy would hand over the driver's values of this type unchanged: no
    result processor on this dialect (for JSON, asyncpg decodes with the codecs SQLAlchemy
    installs on each pooled connection). A type whose processor depends on what the driver
    reports (Numeric) cannot say here: refused too."""
    try:
        return type_.dialect_impl(dialect).result_processor(dialect, None) is None
    except Exception:
        return False
