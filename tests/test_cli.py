"""The `tokenhouse` command, run as real subprocesses on real databases: `migrate`,
`bootstrap`, `serve` (health, the shutdown flush of lastAccessAt, workers), the refusal to run
on PostgreSQL without TOKENHOUSE_SECRET_KEY, and secrets never reaching the disk or the logs.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.databases import fresh_pg_database, pg_fetch_sync
from tests.helpers import TOKENS
from tests.processes import Server, clean_env, describe, free_port, run_cli

pytestmark = pytest.mark.slow

SECRET_KEY = "cli-test-key-" + "c" * 40
ACCOUNT_ID = re.compile(r"^ACC-\d{4}-\d{4}$")
TOKEN_ID = re.compile(r"^TKN-\d{4}-\d{4}$")


@dataclass(frozen=True)
class Installation:
    """A working directory where `migrate` and `bootstrap --json` ran (default database)."""

    cwd: Path
    output: dict[str, Any]

    @property
    def var(self) -> Path:
        return self.cwd / "var"

    @property
    def db(self) -> Path:
        return self.var / "tokenhouse.db"

    @property
    def secret(self) -> str:
        return self.output["token"]["token"]

    @property
    def token_id(self) -> str:
        return self.output["token"]["id"]

    @property
    def account_id(self) -> str:
        return self.output["account"]["id"]


def bootstrap_json(cwd: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run_cli("bootstrap", "--json", *args, cwd=cwd, env=env)
    assert result.returncode == 0, describe(result)
    # stdout is the JSON document alone (messages go to stderr).
    return json.loads(result.stdout)


def migrate(cwd: Path, env: dict[str, str] | None = None) -> None:
    result = run_cli("migrate", cwd=cwd, env=env)
    assert result.returncode == 0, describe(result)
    assert "Traceback" not in result.stderr, describe(result)


def query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the SQLite file with the standard library, read-only."""
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def copy_installation(source: Installation, target: Path) -> Installation:
    """An independent copy (database and key file) for a test that changes it."""
    shutil.copytree(source.var, target / "var")
    return Installation(cwd=target, output=source.output)


def parse_timestamp(value: str) -> datetime:
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", value), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def stored_timestamp(value: Any) -> datetime:
    """A DateTime column as SQLite stores it (ISO text, naive meaning UTC)."""
    assert isinstance(value, str) and value, value
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    """`migrate` then `bootstrap --json` in an empty directory, with no TOKENHOUSE_ setting."""
    cwd = tmp_path_factory.mktemp("install")
    migrate(cwd)
    return Installation(cwd=cwd, output=bootstrap_json(cwd))


@pytest.fixture
def installation(installed: Installation, tmp_path: Path) -> Installation:
    return copy_installation(installed, tmp_path)


# --- migrate and bootstrap on the embedded default ---------------------------------------------


def test_migrate_and_bootstrap_create_database_and_key_under_cwd(installed: Installation
                                                                  ) -> None:
    assert installed.db.is_file()
    key = installed.var / "secret.key"
    assert key.is_file()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(key.read_bytes().strip()) >= 32
    # The tables are there and hold what bootstrap printed.
    assert query(installed.db, "SELECT type FROM accounts WHERE id = ?",
                 installed.account_id) == [("Operations",)]
    assert query(installed.db, "SELECT account_id FROM api_tokens WHERE id = ?",
                 installed.token_id) == [(installed.account_id,)]


def test_bootstrap_json_prints_account_and_token_with_secret(installed: Installation) -> None:
    account, token = installed.output["account"], installed.output["token"]
    assert ACCOUNT_ID.match(account["id"]), account
    assert account["type"] == "Operations"
    assert account["name"] == "Operations"
    assert TOKEN_ID.match(token["id"]), token
    assert token["status"] == "Active"
    assert token["account"]["id"] == account["id"]
    assert token["modules"], token
    assert all(re.match(r"^MOD-\d{4}$", m["id"]) for m in token["modules"]), token["modules"]
    prefix, token_id, random_part = token["token"].split(":")
    assert prefix == "idt"
    assert token_id == token["id"]
    # At least 256 bits: 43 characters of URL-safe base64.
    assert re.match(r"^[A-Za-z0-9_-]{43,}$", random_part), token["token"]


def test_second_bootstrap_reuses_the_account_and_makes_a_new_token(
        installation: Installation) -> None:
    again = bootstrap_json(installation.cwd)
    assert again["account"]["id"] == installation.account_id
    assert again["token"]["id"] != installation.token_id
    assert again["token"]["token"] != installation.secret
    assert again["token"]["token"].startswith(f"idt:{again['token']['id']}:")
    assert query(installation.db, "SELECT count(*) FROM accounts") == [(1,)]
    assert query(installation.db, "SELECT count(*) FROM api_tokens") == [(2,)]


def test_bootstrap_if_empty_does_nothing_once_an_account_exists(
        installation: Installation) -> None:
    result = run_cli("bootstrap", "--if-empty", cwd=installation.cwd)
    assert result.returncode == 0, describe(result)
    assert "idt:" not in result.stdout + result.stderr, describe(result)
    assert "TKN-" not in result.stdout, describe(result)
    assert query(installation.db, "SELECT count(*) FROM accounts") == [(1,)]
    assert query(installation.db, "SELECT count(*) FROM api_tokens") == [(1,)]


def test_bootstrap_account_name_names_the_account_it_creates(tmp_path: Path) -> None:
    migrate(tmp_path)
    # --if-empty on an empty database does create.
    first = bootstrap_json(tmp_path, "--account-name", "Platform Ops", "--if-empty")
    assert first["account"]["name"] == "Platform Ops"
    assert first["account"]["type"] == "Operations"
    assert first["token"]["token"].startswith("idt:")
    # Once the account exists, the name given is that of an account that would be created: the
    # existing one is reused as it is.
    second = bootstrap_json(tmp_path, "--account-name", "Another Name")
    assert second["account"]["id"] == first["account"]["id"]
    assert second["account"]["name"] == "Platform Ops"
    db = tmp_path / "var" / "tokenhouse.db"
    assert query(db, "SELECT name FROM accounts") == [("Platform Ops",)]


def test_secret_is_not_stored_in_clear(installed: Installation) -> None:
    secret = installed.secret
    random_part = secret.rsplit(":", 1)[1]
    files = [p for p in installed.var.iterdir() if p.is_file()]
    assert installed.db in files
    for path in files:  # tokenhouse.db, and -wal / -shm when present, and the key file
        data = path.read_bytes()
        assert secret.encode() not in data, path
        assert random_part.encode() not in data, path
    # What is stored is a keyed hash: a row exists, but no column holds the secret or its part.
    rows = query(installed.db, "SELECT * FROM api_tokens WHERE id = ?", installed.token_id)
    assert len(rows) == 1
    assert not any(isinstance(v, str) and random_part in v for v in rows[0])


# --- PostgreSQL: the secret key is required --------------------------------------------------


@pytest.fixture
def pg_database() -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL database: (name, SQLAlchemy URL); dropped WITH (FORCE) after."""
    with fresh_pg_database("tokenhouse_cli") as database:
        yield database


@pytest.mark.parametrize("command", [["migrate"], ["bootstrap", "--json"],
                                     ["serve", "--port", "0"]])
def test_postgresql_without_secret_key_is_refused(command: list[str], tmp_path: Path,
                                                  pg_database: tuple[str, str]) -> None:
    name, url = pg_database
    result = run_cli(*command, cwd=tmp_path, env=clean_env(TOKENHOUSE_DATABASE_URL=url),
                     timeout=30)
    assert result.returncode == 2, describe(result)
    assert "TOKENHOUSE_SECRET_KEY" in result.stderr, describe(result)
    assert "Traceback" not in result.stdout + result.stderr, describe(result)
    assert "idt:" not in result.stdout, describe(result)
    # Nothing was done: no table, and no key file generated anywhere near.
    tables = pg_fetch_sync("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", name)
    assert tables == []
    assert not (tmp_path / "var").exists()


def test_postgresql_with_secret_key_migrates_and_bootstraps(tmp_path: Path,
                                                           pg_database: tuple[str, str]) -> None:
    name, url = pg_database
    env = clean_env(TOKENHOUSE_DATABASE_URL=url, TOKENHOUSE_SECRET_KEY=SECRET_KEY)
    migrate(tmp_path, env)
    output = bootstrap_json(tmp_path, env=env)
    assert output["account"]["type"] == "Operations"
    secret = output["token"]["token"]
    assert secret.startswith(f"idt:{output['token']['id']}:")
    rows = pg_fetch_sync("SELECT a.id, a.type, t.id AS token_id, row_to_json(t)::text AS row "
                         "FROM accounts a JOIN api_tokens t ON t.account_id = a.id", name)
    assert [(r["id"], r["type"], r["token_id"]) for r in rows] == [
        (output["account"]["id"], "Operations", output["token"]["id"])]
    assert secret.rsplit(":", 1)[1] not in rows[0]["row"]
    # The embedded default was not touched.
    assert not (tmp_path / "var").exists()


# --- serve -----------------------------------------------------------------------------------


def test_serve_flushes_last_access_on_sigterm(installation: Installation) -> None:
    env = clean_env(TOKENHOUSE_LAST_ACCESS_INTERVAL="3600")
    with Server(cwd=installation.cwd, env=env) as server:
        server.wait_healthy()
        with server.client() as anonymous:
            ready = anonymous.get("/readyz")
        assert ready.status_code == 200, ready.text
        before = datetime.now(UTC)
        with server.client(installation.secret) as client:
            response = client.get(TOKENS)
        after = datetime.now(UTC)
        assert response.status_code == 200, response.text
        [mine] = [t for t in response.json()["data"] if t["id"] == installation.token_id]
        seen = parse_timestamp(mine["lastAccessAt"])
        assert before - timedelta(seconds=1) <= seen <= after + timedelta(seconds=1)
        # With an interval of an hour nothing has been written yet.
        assert query(installation.db, "SELECT last_access_at FROM api_tokens WHERE id = ?",
                     installation.token_id) == [(None,)]
        code = server.terminate(timeout=10)
        assert code is not None, f"serve did not stop within 10 s of SIGTERM:\n{server.logs()}"
        logs = server.logs()
    assert "Traceback" not in logs, logs
    [(stored,)] = query(installation.db, "SELECT last_access_at FROM api_tokens WHERE id = ?",
                        installation.token_id)
    assert stored is not None, f"lastAccessAt was not flushed on shutdown:\n{logs}"
    assert abs(stored_timestamp(stored) - seen) < timedelta(seconds=1), (stored, seen)


def test_serve_exits_zero_on_sigterm(installation: Installation) -> None:
    with Server(cwd=installation.cwd) as server:
        server.wait_healthy()
        code = server.terminate(timeout=10)
        logs = server.logs()
    assert code == 0, f"exit status {code}:\n{logs}"
    assert '"GET /healthz HTTP/1.1" 200' in logs  # the access log is on by default


def test_serve_logs_its_cache_counters_and_no_access_line_when_told(
        installation: Installation) -> None:
    with Server(cwd=installation.cwd, env=clean_env(TOKENHOUSE_ACCESS_LOG="false")) as server:
        server.wait_healthy()
        with server.client(installation.secret) as client:
            for _ in range(3):
                assert client.get(f"{TOKENS}/{installation.token_id}").status_code == 200
        assert server.terminate(timeout=10) == 0
        logs = server.logs()
    assert "GET /" not in logs, logs
    # The first read found nothing in memory; the next two found the credential and the view
    # that first read kept.
    assert "cache stats: credentials hits=2 misses=1 token_views hits=2 misses=0" in logs, logs


def test_serve_with_two_workers(installation: Installation) -> None:
    with Server("--workers", "2", cwd=installation.cwd) as server:
        server.wait_healthy()
        with server.client(installation.secret) as client:
            for _ in range(6):
                # A new connection each time, so both workers are likely to take some.
                response = client.get(TOKENS, headers={"Connection": "close"})
                assert response.status_code == 200, response.text
                assert response.json()["$meta"]["pagination"]["total"] == 1
            assert client.get(f"{TOKENS}/{installation.token_id}").json()["token"] == \
                installation.secret
        code = server.terminate(timeout=15)
        logs = server.logs()
        assert code == 0, f"exit status {code}:\n{logs}"
    assert "Traceback" not in logs, logs
    # The workers stopped cleanly too: their shutdown flush wrote the access.
    [(stored,)] = query(installation.db, "SELECT last_access_at FROM api_tokens WHERE id = ?",
                        installation.token_id)
    assert stored is not None


def test_readyz_is_503_problem_when_database_is_unreachable(tmp_path: Path) -> None:
    env = clean_env(TOKENHOUSE_DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:1/none",
                    TOKENHOUSE_SECRET_KEY=SECRET_KEY)
    with Server(cwd=tmp_path, env=env) as server:
        server.wait_healthy()
        with server.client() as client:
            health = client.get("/healthz")
            ready = client.get("/readyz")
    assert health.status_code == 200
    assert ready.status_code == 503, ready.text
    assert ready.headers["content-type"].startswith("application/problem+json")
    body = ready.json()
    assert {"type", "title", "status", "traceId"} <= body.keys(), body
    assert body["status"] == 503
    assert body["title"] == "Service Unavailable"
    assert re.match(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-00$", body["traceId"]), body


def test_server_logs_never_hold_a_secret(installation: Installation) -> None:
    env = clean_env(TOKENHOUSE_LOG_LEVEL="debug", TOKENHOUSE_LAST_ACCESS_INTERVAL="0.2")
    module_id = installation.output["token"]["modules"][0]["id"]
    wrong = installation.secret[:-4] + ("AAAA" if not installation.secret.endswith("AAAA")
                                        else "BBBB")
    with Server(cwd=installation.cwd, env=env) as server:
        server.wait_healthy()
        with server.client(installation.secret) as admin:
            created = admin.post(TOKENS, json={"name": "n",
                                               "account": {"id": installation.account_id},
                                               "modules": [{"id": module_id}]})
            assert created.status_code == 201, created.text
            new_secret = created.json()["token"]
            assert new_secret.startswith(f"idt:{created.json()['id']}:")
            assert admin.get(TOKENS).status_code == 200
        with server.client(new_secret) as client:
            own = client.get(f"{TOKENS}/{created.json()['id']}")
            assert own.status_code == 200, own.text
            assert own.json()["token"] == new_secret
            # A request that fails authorization or validation, with the secret in the body too.
            bad = client.post(TOKENS, json={"name": new_secret, "account": {"id": "ACC-0"},
                                            "modules": []})
            assert bad.status_code in (400, 403, 404), bad.text
        with server.client(wrong) as client:
            assert client.get(TOKENS).status_code == 401
        code = server.terminate(timeout=10)
        assert code is not None
        logs = server.logs()
    # The log did capture the run (so an absent secret means something).
    assert "/public/v1/accounts/api-tokens" in logs, logs
    for secret in (installation.secret, new_secret, wrong):
        random_part = secret.rsplit(":", 1)[1]
        assert random_part not in logs, f"a secret is in the server's log:\n{logs}"


@pytest.mark.parametrize("command", [["import", "data.jsonl"], ["export", "out.jsonl"]])
def test_import_and_export_without_a_database_are_a_message(command: list[str],
                                                            tmp_path: Path) -> None:
    """Nothing listens on the port: one line naming the database, exit 1, no traceback,
    and no export file (nor a temporary one) left behind."""
    (tmp_path / "data.jsonl").write_text('{"id": "MOD-1732", "description": "d"}\n')
    env = clean_env(TOKENHOUSE_SECRET_KEY=SECRET_KEY, TOKENHOUSE_DATABASE_URL=(
        f"postgresql+asyncpg://postgres:hunter2@127.0.0.1:{free_port()}/nowhere"))
    result = run_cli(*command, cwd=tmp_path, env=env)
    assert result.returncode == 1, describe(result)
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr, describe(result)
    assert "error: the database postgresql+asyncpg://postgres:***@127.0.0.1" in result.stderr, \
        describe(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl"]
