"""The database of a run: a fresh PostgreSQL database (created here, dropped at the end) or a
SQLite file in the work directory, and the upkeep between scenarios."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from pathlib import Path
from typing import Any


class Database:
    """A fresh PostgreSQL database (created and dropped here) or a SQLite file in the work
    directory."""

    def __init__(self, kind: str, workdir: Path, admin_dsn: str):
        self.kind = kind
        self.admin_dsn = admin_dsn
        self.name: str | None = None
        self.path = workdir / "bench.db"

    @property
    def url(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite+aiosqlite:///{self.path}"
        server = self.admin_dsn.rsplit("/", 1)[0]
        return f"{server.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{self.name}"

    def _dsn(self, database: str | None = None) -> str:
        if database is None:
            return self.admin_dsn
        return f"{self.admin_dsn.rsplit('/', 1)[0]}/{database}"

    def create(self) -> None:
        if self.kind == "sqlite":
            return
        self.name = f"tokenhouse_bench_{secrets.token_hex(4)}"
        self._pg(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        if self.kind == "sqlite" or self.name is None:
            return
        self._pg(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.name = None

    def analyze(self) -> None:
        """Statistics and visibility map after the bulk import, as autovacuum would leave
        them: the runs then measure the steady state, not the planner's first guesses or an
        autovacuum that starts in the middle of a run."""
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as connection:
                connection.execute("ANALYZE")
            return
        self._pg("VACUUM (ANALYZE)", database=self.name)

    def settle(self) -> None:
        """After a scenario, what autovacuum and the checkpointer would do in time: the
        next scenario then does not pay for this one's writes (lastAccessAt, creates)."""
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as connection:
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return
        self._pg("VACUUM api_tokens", database=self.name)
        self._pg("CHECKPOINT", database=self.name)

    def token_count(self) -> int:
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as connection:
                return int(connection.execute("SELECT count(*) FROM api_tokens").fetchone()[0])
        return int(self._pg("SELECT count(*) FROM api_tokens", database=self.name, fetch=True))

    def version(self) -> str:
        if self.kind == "sqlite":
            return f"SQLite {sqlite3.sqlite_version}"
        return str(self._pg("SELECT version()", database=self.name, fetch=True))

    def size(self) -> int | None:
        if self.kind == "sqlite":
            return self.path.stat().st_size if self.path.exists() else None
        return int(self._pg(f"SELECT pg_database_size('{self.name}')", fetch=True))

    def _pg(self, sql: str, *, database: str | None = None, fetch: bool = False) -> Any:
        import asyncpg

        async def run() -> Any:
            connection = await asyncpg.connect(self._dsn(database))
            try:
                if fetch:
                    return await connection.fetchval(sql)
                await connection.execute(sql)
                return None
            finally:
                await connection.close()

        return asyncio.run(run())
