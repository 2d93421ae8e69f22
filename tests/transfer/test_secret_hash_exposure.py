"""No statement the service runs can put a secret hash into PostgreSQL's log (issue 9,
defect 9), and a hash is never taken for another token's.

PostgreSQL logs every failed statement with its DETAIL. A unique violation's DETAIL quotes the
key ("Key (secret_hash)=(...) already exists"), and with log_parameter_max_length_on_error set
(a DBA's choice) the bound parameters too. So: secret_hash is under no UNIQUE constraint (a
plain index; uniqueness is checked before writing), the service's connections switch the
parameter logging off, and authentication binds the token id with the hash.

The server log is read where it can be (/var/log/postgresql on the test machine, as root);
elsewhere that one test is skipped, and the schema tests still hold.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tests.databases import pg_fetch
from tests.factories import Factory
from tests.helpers import TOKENS
from tokenhouse.kit.db import create_engine, session_factory
from tokenhouse.kit.settings import Settings
from tokenhouse.tokens.repository import find_credential
from tokenhouse.transfer import repository
from tokenhouse.transfer.service import ImportFailed, import_lines

PG_LOGS = Path("/var/log/postgresql")


async def insert_token(session: AsyncSession, row: dict[str, Any]) -> None:
    """A token row written as the import's own statements were before it streamed: a Core
    INSERT binding the hash."""
    await session.execute(insert(repository.TOKENS), [row])


def hash_of(app: FastAPI, secret: str) -> str:
    return hmac.new(app.state.runtime.hmac_key, secret.encode(), hashlib.sha256).hexdigest()


async def secret_hash_indexes(app: FastAPI, backend: str) -> list[tuple[str, bool]]:
    """(name, unique) of every index or unique constraint over api_tokens.secret_hash."""
    async with app.state.runtime.sessions() as session:
        if backend == "postgresql":
            rows = await session.execute(text(
                "SELECT i.relname, x.indisunique FROM pg_index x "
                "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
                "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(x.indkey) "
                "WHERE t.relname = 'api_tokens' AND a.attname = 'secret_hash'"))
            return [(name, unique) for name, unique in rows]
        found = []
        for _, name, unique, *_ in await session.execute(text("PRAGMA index_list(api_tokens)")):
            columns = [row[2] for row in await session.execute(
                text(f"PRAGMA index_info('{name}')"))]
            if "secret_hash" in columns:
                found.append((name, bool(unique)))
        return found


async def test_the_secret_hash_is_indexed_but_under_no_unique_constraint(
        app: FastAPI, backend: str) -> None:
    assert await secret_hash_indexes(app, backend) == [("ix_api_tokens_secret_hash", False)]


async def test_a_hash_stored_on_another_token_authenticates_nothing_but_its_own(
        app: FastAPI, factory: Factory, client: Any) -> None:
    """Two rows with one hash (the database allows it now): the look-up binds the id the
    secret names, so neither the other row's status nor its modules mix in."""
    account = await factory.account()
    own = await factory.token(account["id"], ("Access Management",))
    other = await factory.token(account["id"], ("Billing", "Helpdesk"))
    async with app.state.runtime.sessions() as session:
        await session.execute(text("UPDATE api_tokens SET secret_hash = :h WHERE id = :id"),
                              {"h": hash_of(app, own.secret), "id": other.id})
        await session.commit()
        engine = app.state.runtime.engine
        found = await find_credential(engine, hash_of(app, own.secret), own.id)
        assert found is not None and found.token.id == own.id and found.current
        assert [module.name for module in found.token.modules] == ["Access Management"]
        assert await find_credential(engine, hash_of(app, own.secret), "TKN-0000-0000") is None
    response = await client.get(f"{TOKENS}/{own.id}", headers=own.headers)
    assert response.status_code == 200, response.text
    assert [m["name"] for m in response.json()["modules"]] == ["Access Management"]
    # The other token's own secret no longer matches its row.
    assert (await client.get(f"{TOKENS}/{other.id}", headers=other.headers)).status_code == 401


async def test_a_database_error_names_no_secret_hash(app: FastAPI, factory: Factory) -> None:
    """The text of an error (what a traceback in this process's log shows) leaves the
    statement's values out."""
    account = await factory.account()
    held = await factory.token(account["id"])
    held_hash = hash_of(app, held.secret)
    row = {"id": held.id, "account_id": account["id"], "name": "clash", "status": "Active",
           "secret_hash": held_hash, "revision": 1,
           "created_at": datetime(2025, 1, 1, tzinfo=UTC)}
    async with app.state.runtime.sessions() as session:
        with pytest.raises(IntegrityError) as failed:
            await insert_token(session, row)
        await session.rollback()
    assert "INSERT INTO api_tokens" in str(failed.value)
    assert held_hash not in str(failed.value)


def pg_log() -> Path | None:
    """The newest readable PostgreSQL server log, if this machine has one."""
    try:
        logs = sorted(PG_LOGS.glob("postgresql-*.log"), key=lambda p: p.stat().st_mtime)
        if logs:
            logs[-1].open("rb").close()
            return logs[-1]
    except OSError:
        pass
    return None


async def test_failed_statements_put_no_secret_hash_in_the_server_log(
        app: FastAPI, factory: Factory, settings: Settings, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("PostgreSQL's server log")
    log = pg_log()
    if log is None:
        pytest.skip(f"no readable PostgreSQL log under {PG_LOGS}")
    database = settings.database_url.rsplit("/", 1)[1]
    # As a DBA may have it: every bound parameter of a failed statement in the log.
    await pg_fetch(f'ALTER DATABASE "{database}" SET log_parameter_max_length_on_error = -1')
    account = await factory.account()
    held = await factory.token(account["id"])
    held_hash = hash_of(app, held.secret)
    start = log.stat().st_size
    engine = create_engine(settings)  # new connections: they get the database's setting
    try:
        async with session_factory(engine)() as session:
            # An import of a hash another token holds: refused by the check, before writing.
            line = {"id": "TKN-7100-0001", "name": "clash", "account": {"id": account["id"]},
                    "secretHash": held_hash}
            with pytest.raises(ImportFailed, match="secretHash"):
                await import_lines(session=session, lines=[json.dumps(line)])
            await session.rollback()
            row = {"id": "TKN-7100-0002", "account_id": account["id"], "name": "clash",
                   "status": "Active", "secret_hash": held_hash, "revision": 1,
                   "created_at": datetime(2025, 1, 1, tzinfo=UTC)}
            # A second row with the same hash: no constraint refuses (nor logs) it.
            await insert_token(session, row)
            await session.rollback()
            # A statement that fails (the id is taken) while binding the hash.
            with pytest.raises(IntegrityError):
                await insert_token(session, {**row, "id": held.id})
            await session.rollback()
    finally:
        await engine.dispose()
        await pg_fetch(f'ALTER DATABASE "{database}" RESET log_parameter_max_length_on_error')
    with log.open("rb") as handle:
        handle.seek(start)
        written = handle.read().decode(errors="replace")
    # The failure is in the log (so this is the right log)...
    assert 'violates unique constraint "pk_api_tokens"' in written, written[-3000:]
    # ...and the hash is not.
    assert held_hash not in written, written[-3000:]
