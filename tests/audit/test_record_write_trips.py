"""On SQLite a create holds the process's writer (kit/db.Writer) from its first write to its
commit, and every trip to the connection's thread in between makes the next writer wait
(issue 10): one trip a statement (kit/db._OneTripCursor), whatever the adapter does."""

import asyncio
from typing import Any

import aiosqlite.core
import httpx
import pytest
from fastapi import FastAPI

from tests.factories import Factory
from tests.helpers import TOKENS
from tokenhouse.kit.db import writer_of


async def test_a_create_makes_one_trip_a_statement_while_it_holds_the_writer(
        app: FastAPI, client: httpx.AsyncClient, factory: Factory, backend: str,
        monkeypatch: pytest.MonkeyPatch):
    if backend != "sqlite":
        pytest.skip("the writer is SQLite's")
    writer = writer_of(app.state.runtime.engine)
    assert writer is not None
    tenant = await factory.tenant()
    trips: list[str] = []
    queue = aiosqlite.core.Connection._execute

    async def counted(self: aiosqlite.core.Connection, fn: Any, *args: Any, **kwargs: Any
                      ) -> Any:
        # This request's own trips (ASGITransport runs the app in the test's task), not a
        # background task's.
        holder = writer._holder
        if holder is not None and holder._connection is self \
                and writer._task is asyncio.current_task():
            trips.append(getattr(fn, "__name__", repr(fn)))
        return await queue(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.core.Connection, "_execute", counted)
    made = await client.post(TOKENS, headers=tenant.headers, json={
        "name": "quick", "account": {"id": tenant.account_id},
        "modules": [{"id": "MOD-1732"}]})
    assert made.status_code == 201, made.text
    # The token's insert (which took the writer), its links, its record, the commit: four,
    # where the adapter's own cursor made ten (a cursor opened, executed, fetched, closed).
    assert trips == ["_run", "_run", "_run", "commit"], trips

    # Rows, counts and errors come back as through the adapter's own cursor.
    trips.clear()
    renamed = await client.put(f"{TOKENS}/{made.json()['id']}", headers=tenant.headers,
                               json={"name": "quicker", "revision": 1})
    assert renamed.status_code == 200 and renamed.json()["revision"] == 2, renamed.text
    stale = await client.put(f"{TOKENS}/{made.json()['id']}", headers=tenant.headers,
                             json={"name": "stale", "revision": 1})
    assert stale.status_code == 409, stale.text
    listed = await client.get(f"{TOKENS}?eq(name,quicker)", headers=tenant.headers)
    assert [t["id"] for t in listed.json()["data"]] == [made.json()["id"]]
