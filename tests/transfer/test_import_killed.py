"""`tokenhouse import` killed with SIGKILL while it writes leaves the store as it was (issue 9,
item 4), on SQLite and PostgreSQL.

A store holding data is exported; a large file is imported by a real `tokenhouse` process,
which is killed the moment it is seen writing: on PostgreSQL, its INSERT into api_tokens is
active in pg_stat_activity; on SQLite, its uncommitted pages have spilled into the -wal file
(the one transaction's write lock held). The process must have died of the signal (not
finished first). Then the counts are those of before and an export is byte-identical to the
one before (and SQLite's file passes its integrity check).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.databases import (
    BACKENDS,
    create_pg_database_sync,
    drop_pg_database_sync,
    pg_fetch_sync,
    pg_url,
)
from tests.processes import clean_env, describe, run_cli, tokenhouse_script

pytestmark = pytest.mark.slow

KEY = "killed-import-key-" + "k" * 40
TABLES = ("accounts", "user_groups", "modules", "api_tokens", "api_token_modules")
# Enough for the writing to last well over a second on both databases.
ACCOUNTS, TOKENS_PER_ACCOUNT = 40, 400
WRITING_TIMEOUT = 60.0


def objects(prefix: str, accounts: int, per_account: int) -> Iterator[dict[str, Any]]:
    modules = ["MOD-1732", "MOD-2846", "MOD-3419", "MOD-4588", "MOD-5907"]
    for a in range(accounts):
        yield {"id": f"ACC-{prefix}{a // 10000:03d}-{a % 10000:04d}", "name": f"Account {a}",
               "type": "Client",
               "groups": [{"id": f"UGR-{prefix}{a // 10000:03d}-{a % 10000:04d}",
                           "name": "Default", "isDefault": True}]}
    for t in range(accounts * per_account):
        a = t % accounts
        yield {"id": f"TKN-{prefix}{t // 10000:03d}-{t % 10000:04d}", "name": f"token {t}",
               "description": f"token {t} of account {a}", "status": "Active",
               "account": {"id": f"ACC-{prefix}{a // 10000:03d}-{a % 10000:04d}"},
               "modules": [{"id": m} for m in modules[t % 5: t % 5 + 2]],
               "audit": {"created": {"at": "2025-02-01T08:00:00.000Z", "by": None}},
               "secretHash": hmac.new(KEY.encode(), f"{prefix}-{t}".encode(),
                                      hashlib.sha256).hexdigest()}


def write_file(path: Path, prefix: str, accounts: int, per_account: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for obj in objects(prefix, accounts, per_account):
            out.write(json.dumps(obj) + "\n")
    return path


class Store:
    def __init__(self, backend: str, workdir: Path):
        self.backend = backend
        self.workdir = workdir
        self.pg_name: str | None = None
        if backend == "sqlite":
            self.url = f"sqlite+aiosqlite:///{workdir / 'tokenhouse.db'}"
        else:
            self.pg_name = create_pg_database_sync("tokenhouse_killed")
            self.url = pg_url(self.pg_name)
        self.env = clean_env(TOKENHOUSE_DATABASE_URL=self.url, TOKENHOUSE_SECRET_KEY=KEY)

    @property
    def sqlite_file(self) -> Path:
        return self.workdir / "tokenhouse.db"

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = run_cli(*args, cwd=self.workdir, env=self.env)
        assert result.returncode == 0, describe(result)
        return result

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.pg_name is not None:
            return [tuple(row) for row in pg_fetch_sync(sql, self.pg_name)]
        connection = sqlite3.connect(f"file:{self.sqlite_file}?mode=ro", uri=True, timeout=30)
        try:
            return connection.execute(sql).fetchall()
        finally:
            connection.close()

    def counts(self) -> dict[str, int]:
        return {table: self.query(f"SELECT count(*) FROM {table}")[0][0] for table in TABLES}

    def export(self, name: str) -> bytes:
        path = self.workdir / name
        self.ok("export", str(path))
        return path.read_bytes()

    def close(self) -> None:
        if self.pg_name is not None:
            drop_pg_database_sync(self.pg_name)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made = Store(request.param, tmp_path)
    try:
        made.ok("migrate")
        made.ok("import", str(write_file(tmp_path / "seed.jsonl", "1", 3, 5)))
        yield made
    finally:
        made.close()


def pg_insert_running(store: Store) -> Callable[[], bool]:
    def seen() -> bool:
        return bool(pg_fetch_sync(
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'active' AND query ILIKE 'INSERT INTO api_tokens %'", store.pg_name or ""))
    return seen


def sqlite_pages_spilled(store: Store) -> Callable[[], bool]:
    wal = store.sqlite_file.with_name("tokenhouse.db-wal")
    start = wal.stat().st_size if wal.exists() else 0

    def seen() -> bool:
        if not wal.exists() or wal.stat().st_size < start + 1024 * 1024:
            return False
        # The growth is the import's open transaction: its write lock is still held.
        probe = sqlite3.connect(store.sqlite_file, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError:
            return True
        finally:
            probe.close()
    return seen


def test_an_import_killed_while_writing_leaves_the_store_as_it_was(store: Store) -> None:
    before_counts = store.counts()
    before_export = store.export("before.jsonl")
    big = write_file(store.workdir / "big.jsonl", "2", ACCOUNTS, TOKENS_PER_ACCOUNT)
    writing = pg_insert_running(store) if store.backend == "postgresql" \
        else sqlite_pages_spilled(store)

    process = subprocess.Popen([str(tokenhouse_script()), "import", str(big)],
                               cwd=store.workdir, env=store.env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + WRITING_TIMEOUT
        while not writing():
            assert process.poll() is None, \
                f"the import ended (exit {process.returncode}) before it was seen writing: " \
                f"make the file larger\n{process.stderr.read().decode() if process.stderr else ''}"
            assert time.monotonic() < deadline, "the import was never seen writing"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    assert process.returncode == -signal.SIGKILL, process.returncode

    if store.pg_name is not None:
        # The server notices the lost client and rolls its transaction back.
        deadline = time.monotonic() + 30
        while pg_fetch_sync("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                            "AND pid <> pg_backend_pid()", store.pg_name):
            assert time.monotonic() < deadline, "the killed import's backend stays"
            time.sleep(0.05)
    else:
        assert store.query("PRAGMA integrity_check") == [("ok",)]
    assert store.counts() == before_counts
    assert store.export("after.jsonl") == before_export
