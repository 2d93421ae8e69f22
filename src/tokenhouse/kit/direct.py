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

from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import TypeEngine
from sqlalchemy.util import greenlet_spawn


class DirectSelect:
    """A SELECT whose rows are read without SQLAlchemy's execution machinery where the
    driver allows it (asyncpg). The rows are those SQLAlchemy would return: the statement
    is refused at its first run if a column's type may need SQLAlchemy to convert its
    values."""

    def __init__(self, statement: Select[Any]):
        self._statement = statement
        self._compiled: tuple[str, tuple[str, ...]] | None = None

    async def rows(self, engine: AsyncEngine, parameters: dict[str, Any]
                   ) -> Sequence[Sequence[Any]]:
        if engine.dialect.driver != "asyncpg":
            async with engine.connect() as connection:
                found: Sequence[Sequence[Any]] = (
                    await connection.execute(self._statement, parameters)).all()
                return found
        sql, names = self._compiled or self._compile(engine.dialect)
        pooled = await engine.raw_connection()
        driver = pooled.driver_connection
        try:
            # Outside any transaction: one statement, its own snapshot (as in autocommit).
            rows: Sequence[Sequence[Any]] = await driver.fetch(  # type: ignore[union-attr]
                sql, *[parameters[name] for name in names])
        except BaseException:
            # Failed or cancelled half-way, the connection may be in any state: it is never
            # handed to another request (the pool opens a new one). What failed is judged
            # as for any statement: a lost link or a server going away is a 503
            # (kit/outage.py knows the driver's errors), anything else a 500.
            pooled.invalidate()
            raise
        finally:
            # Handing back runs the pool's reset, which may await: inside SQLAlchemy's bridge.
            await greenlet_spawn(pooled.close)
        return rows

    def _compile(self, dialect: Dialect) -> tuple[str, tuple[str, ...]]:
        for column in self._statement.selected_columns:
            if not _as_the_driver_gives(column.type, dialect):
                raise TypeError(f"{column} may need SQLAlchemy's result processing")
        compiled = self._statement.compile(dialect=dialect)
        self._compiled = compiled.string, tuple(compiled.positiontup or ())
        return self._compiled


def _as_the_driver_gives(type_: TypeEngine[Any], dialect: Dialect) -> bool:
    """Whether SQLAlchemy would hand over the driver's values of this type unchanged: no
    result processor on this dialect (for JSON, asyncpg decodes with the codecs SQLAlchemy
    installs on each pooled connection). A type whose processor depends on what the driver
    reports (Numeric) cannot say here: refused too."""
    try:
        return type_.dialect_impl(dialect).result_processor(dialect, None) is None
    except Exception:
        return False
