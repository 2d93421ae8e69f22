"""A token's create and update write their record as one plain insert (audit.write, issue
10), the other changes through the ORM (audit.record): both rows must be alike, and the plain
insert must stay one statement in the change's transaction."""

import json
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from tests.factories import Factory
from tests.helpers import TOKENS, database_use

JSON_COLUMNS = ("actor", "request", "documents", "viewers")
ROWS = text("SELECT * FROM audit_records WHERE object_id = :id ORDER BY timestamp")


async def stored(app: FastAPI, object_id: str) -> list[dict[str, Any]]:
    """The object's records as the database holds them, oldest first."""
    async with app.state.runtime.engine.connect() as connection:
        result = await connection.execute(ROWS, {"id": object_id})
        return [dict(row._mapping) for row in result]


async def test_a_plain_insert_stores_a_record_as_the_orm_does(app: FastAPI,
                                                             client: httpx.AsyncClient,
                                                             factory: Factory, backend: str):
    tenant = await factory.tenant()
    made = await client.post(TOKENS, headers=tenant.headers, json={
        "name": "écrit", "account": {"id": tenant.account_id},
        "modules": [{"id": "MOD-1732"}]})
    assert made.status_code == 201, made.text
    path = f"{TOKENS}/{made.json()['id']}"
    assert (await client.put(path, headers=tenant.headers,
                             json={"name": "réécrit"})).status_code == 200
    assert (await client.post(f"{path}/disable", headers=tenant.headers)).status_code == 200

    rows = await stored(app, made.json()["id"])
    # Oldest first: the plain inserts (create, update), then the ORM's (disable).
    assert [row["event"].rsplit(".", 1)[1] for row in rows] == [
        "created", "updated", "disabled"]
    created, updated, disabled = rows
    assert created.keys() == disabled.keys()
    for row in rows:
        assert row["type"] == "Public" and row["object_type"] == "ApiToken"
        assert row["fanned_out"] in (False, 0, True, 1)  # the outbox's default was written
        assert row["account_id"] == row["actor_account_id"] == tenant.account_id
        # The same JSON, written the same way: the same actor and viewers to the byte.
        for column in ("actor", "viewers"):
            assert row[column] == disabled[column]
        if backend == "sqlite":  # stored as text: the ORM's serializer, whichever path
            for column in JSON_COLUMNS:
                assert row[column] == json.dumps(json.loads(row[column])), column
    documents = [json.loads(row["documents"]) if isinstance(row["documents"], str)
                 else row["documents"] for row in rows]
    assert [d["apiToken"]["name"] for d in documents] == ["écrit", "réécrit", "réécrit"]
    assert documents[1]["changes"] == {"name": {"from": "écrit", "to": "réécrit"}}
    assert all(d["actor"]["id"] == tenant.id for d in documents)


async def test_a_create_writes_its_record_last_in_its_transaction(app: FastAPI,
                                                                 client: httpx.AsyncClient,
                                                                 factory: Factory):
    tenant = await factory.tenant()
    with database_use(app) as seen:
        made = await client.post(TOKENS, headers=tenant.headers, json={
            "name": "one", "account": {"id": tenant.account_id},
            "modules": [{"id": "MOD-1732"}]})
    assert made.status_code == 201, made.text
    writes = [s.split("(")[0].strip() for s in seen if s.lstrip().startswith("INSERT")]
    # The token, its links, its record: three statements, and no flush of the unit of work
    # at commit writes anything after them.
    assert writes == ["INSERT INTO api_tokens", "INSERT INTO api_token_modules",
                      "INSERT INTO audit_records"]
    assert seen[-1].startswith("INSERT INTO audit_records")

    with database_use(app) as seen:
        renamed = await client.put(f"{TOKENS}/{made.json()['id']}", headers=tenant.headers,
                                   json={"name": "two"})
    assert renamed.status_code == 200, renamed.text
    writes = [s.split(" SET")[0].split("(")[0].strip() for s in seen
              if s.lstrip().startswith(("INSERT", "UPDATE"))]
    assert writes == ["UPDATE api_tokens", "INSERT INTO audit_records"]
