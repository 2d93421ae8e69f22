"""Migration 0007 (secret_hash: an index, no UNIQUE constraint) on a store holding data, on
SQLite and PostgreSQL: every row and link is kept, up and down, and the indexes are those the
models declare (SQLite rebuilds the table: its DESC list index and the links, which dropping
the old table cascades away, must come back)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.databases import BACKENDS, create_pg_database_sync, drop_pg_database_sync, pg_fetch
from tests.databases import pg_url as make_pg_url
from tokenhouse.kit.migrate import upgrade
from tokenhouse.kit.settings import Settings

KEY = "migration-test-key-" + "m" * 40
ROWS = [
    "INSERT INTO accounts (id, type, status, name, revision, created_at) "
    "VALUES ('ACC-1000-0001', 'Client', 'Active', 'a', 1, '2025-01-01 00:00:00+00')",
    *(f"INSERT INTO api_tokens (id, account_id, name, status, secret_hash, revision, created_at) "
      f"VALUES ('TKN-1000-000{n}', 'ACC-1000-0001', 't{n}', 'Active', '{str(n) * 64}', 1, "
      f"'2025-01-0{n} 00:00:00+00')" for n in (1, 2)),
    "INSERT INTO api_token_modules VALUES ('TKN-1000-0001', 'MOD-1732'), "
    "('TKN-1000-0001', 'MOD-5907'), ('TKN-1000-0002', 'MOD-1732')",
]
CHECKS = {
    "tokens": "SELECT id, secret_hash FROM api_tokens ORDER BY id",
    "links": "SELECT token_id, module_id FROM api_token_modules ORDER BY token_id, module_id",
}


class Store:
    def __init__(self, backend: str, tmp_path: Path):
        self.backend = backend
        self.pg_name: str | None = None
        if backend == "sqlite":
            self.file = tmp_path / "tokenhouse.db"
            url = f"sqlite+aiosqlite:///{self.file}"
        else:
            self.pg_name = create_pg_database_sync("tokenhouse_migration")
            url = make_pg_url(self.pg_name)
        self.settings = Settings(database_url=url, secret_key=SecretStr(KEY))

    def run(self, *statements: str) -> list[list[tuple[Any, ...]]]:
        if self.pg_name is None:
            connection = sqlite3.connect(self.file)
            try:
                answers = [connection.execute(sql).fetchall() for sql in statements]
                connection.commit()
                return answers
            finally:
                connection.close()

        async def fetch() -> list[list[tuple[Any, ...]]]:
            assert self.pg_name is not None
            return [[tuple(row) for row in await pg_fetch(sql, self.pg_name)]
                    for sql in statements]

        return asyncio.run(fetch())

    def state(self) -> dict[str, list[tuple[Any, ...]]]:
        return dict(zip(CHECKS, self.run(*CHECKS.values()), strict=True))

    def indexes(self) -> set[str]:
        """The definitions of api_tokens' indexes, and its unique constraints."""
        if self.pg_name is None:
            return {sql for (sql,) in self.run(
                "SELECT sql FROM sqlite_master WHERE tbl_name = 'api_tokens' "
                "AND type = 'index' AND sql IS NOT NULL")[0]} | \
                {"UNIQUE secret_hash" for (sql,) in self.run(
                    "SELECT sql FROM sqlite_master WHERE name = 'api_tokens'")[0]
                 if "UNIQUE (secret_hash)" in sql}
        return {definition for (definition,) in self.run(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'api_tokens' "
            "AND indexname <> 'pk_api_tokens'")[0]}


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made = Store(request.param, tmp_path)
    try:
        yield made
    finally:
        if made.pg_name is not None:
            drop_pg_database_sync(made.pg_name)


def test_0007_keeps_every_row_and_link_up_and_down(store: Store) -> None:
    upgrade(store.settings, "0006")
    store.run(*ROWS)
    before = store.state()
    assert len(before["links"]) == 3
    at_0006 = store.indexes()

    upgrade(store.settings, "0007")
    assert store.state() == before
    indexes = store.indexes()
    assert not any("UNIQUE" in definition for definition in indexes), indexes
    assert any("ix_api_tokens_secret_hash" in d and "secret_hash" in d for d in indexes)
    list_index = [d for d in indexes if "ix_api_tokens_account_id_status_created_at" in d]
    assert len(list_index) == 1 and "created_at DESC" in list_index[0], indexes
    # Two tokens may now share a hash (the service checks it; the database no longer does).
    store.run("UPDATE api_tokens SET secret_hash = '" + "1" * 64 + "' WHERE id = 'TKN-1000-0002'")
    assert store.run("SELECT count(DISTINCT secret_hash) FROM api_tokens")[0] == [(1,)]
    store.run("UPDATE api_tokens SET secret_hash = '" + "2" * 64 + "' WHERE id = 'TKN-1000-0002'")

    _downgrade(store, "0006")
    assert store.state() == before
    assert store.indexes() == at_0006


def _downgrade(store: Store, revision: str) -> None:
    from alembic import command

    from tokenhouse.kit.migrate import alembic_config

    command.downgrade(alembic_config(store.settings), revision)
