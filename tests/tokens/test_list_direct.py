"""A list page's statements sent by asyncpg itself (kit/repository.run_plain_page,
kit/direct.py) on PostgreSQL: the answers are byte for byte those of the same statements run
through SQLAlchemy, a tenant sees only its own account's tokens, and a page cancelled or
killed half-way leaves no connection behind."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import time_machine
from fastapi import FastAPI
from sqlalchemy import exc

from tests.factories import ALL_OF_TYPE, Factory, Issued
from tests.helpers import TOKENS, database_use
from tests.kit.test_direct import cancelled, held_at_lock, killed
from tests.test_faults import client_of, pg_app
from tests.tokens.test_query_plans import crowded, explain
from tokenhouse.auth.actor import Actor
from tokenhouse.kit import repository as kit_repository
from tokenhouse.kit.repository import scope_params
from tokenhouse.kit.rql import parse_query
from tokenhouse.tokens.lifecycle import NOW
from tokenhouse.tokens.repository import list_statements

__all__ = ["crowded", "pg_app"]  # the fixtures, imported to be used here

# Every list is asked at this moment, so that the lister's own lastAccessAt (noted with each
# request) is the same in both answers; the expiring tokens have expired by then.
MOMENT = datetime(2031, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)


@pytest.fixture
def postgresql(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("the driver sends the page itself on PostgreSQL alone")


async def expiring(client: httpx.AsyncClient, admin: Issued, account_id: str, name: str,
                   expires_at: datetime) -> None:
    modules = {m["name"]: m["id"] for m in (await client.get(
        "/public/v1/accounts/modules?limit=100", headers=admin.headers)).json()["data"]}
    response = await client.post(TOKENS, headers=admin.headers, json={
        "name": name, "account": {"id": account_id}, "expiresAt": expires_at.isoformat(),
        "modules": [{"id": modules["Access Management"]}]})
    assert response.status_code == 201, response.text


async def populate(client: httpx.AsyncClient, factory: Factory
                   ) -> tuple[Issued, Issued, Issued]:
    """An Operations admin and two Client tenants whose tokens share names, in every
    status (Expired too, at MOMENT), with one module or all of their type."""
    admin = await factory.admin()
    first, second = await factory.tenant(), await factory.tenant()
    for tenant in (first, second):
        for name, status, modules in (
                ("alpha", "Active", ("Access Management",)),
                ("Beta", "Active", ALL_OF_TYPE),
                ("gamma*star", "Disabled", ("Access Management",)),
                ("Ωmega", "Active", ALL_OF_TYPE),
                ("shared", "Deleted", ("Access Management",)),
                ("shared", "Active", ("Access Management",))):
            await factory.token(tenant.account_id, modules, name=name, status=status)
        await expiring(client, admin, tenant.account_id, "soon",
                       MOMENT - timedelta(days=1))
    return admin, first, second


def queries(other_account: str) -> list[str]:
    return [
        "",
        "eq(status,Active)&order=-audit.created.at&limit=10",
        "order=name&limit=2&offset=1",
        "order=-name,audit.created.at&offset=3",
        "ilike(name,*A*)&order=-name",
        "like(name,gamma\\**)",
        "in(name,(alpha,Beta,%CE%A9mega))&order=name",
        "out(status,(Disabled,Expired))&order=status,name",
        "eq(status,Expired)",
        "any(modules,ne(name,Access%20Management))&order=name",
        "ne(name,shared)&select=id,name&order=name",
        "select=+audit,-description&order=-revision,name",
        "gt(expiresAt,2020-01-01T00:00:00Z)",
        "eq(lastAccessAt,null())&limit=3",
        f"eq(account.id,{other_account})",
        f"or(eq(account.id,{other_account}),eq(name,shared))",
        "limit=0",
        "offset=50",
        # More than CACHED_TERMS comparisons: statements built for their one use.
        "or(" + ",".join(f"eq(name,n{i})" for i in range(20)) + ",eq(name,alpha))",
    ]


async def answer(app: FastAPI, client: httpx.AsyncClient, url: str,
                 issued: Issued) -> tuple[int, str | None, bytes, bool]:
    """The answer, and whether the driver sent the page's statements itself."""
    with database_use(app) as seen:
        response = await client.get(url, headers=issued.headers)
    direct = any(statement.startswith("direct: ") and "api_tokens" in statement
                 for statement in seen)
    return response.status_code, response.headers.get("content-type"), response.content, \
        direct


async def test_the_driver_sends_the_page_sqlalchemy_would(
        app: FastAPI, client: httpx.AsyncClient, factory: Factory, postgresql: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    admin, first, second = await populate(client, factory)
    compared = 0
    with time_machine.travel(MOMENT, tick=False):
        for lister, other in ((first, second), (admin, first)):
            for raw in queries(other.account_id):
                url = f"{TOKENS}?{raw}" if raw else TOKENS
                direct = await answer(app, client, url, lister)
                with monkeypatch.context() as patched:
                    patched.setattr(kit_repository, "_by_the_driver", lambda _session: False)
                    through_sqlalchemy = await answer(app, client, url, lister)
                assert direct[0] == 200, (url, direct[2])
                assert direct[3] and not through_sqlalchemy[3], url
                assert direct[:3] == through_sqlalchemy[:3], url
                compared += len(httpx.Response(200, content=direct[2]).json()["data"])
    assert compared > 50  # the pages were not all empty


async def test_a_tenant_sees_its_own_tokens_alone_on_the_direct_path(
        app: FastAPI, client: httpx.AsyncClient, factory: Factory, postgresql: None) -> None:
    _, first, second = await populate(client, factory)
    with time_machine.travel(MOMENT, tick=False):
        everything = (await client.get(f"{TOKENS}?limit=100&select=id,account.id,status",
                                       headers=first.headers)).json()
        assert {item["account"]["id"] for item in everything["data"]} == {first.account_id}
        assert "Deleted" not in {item["status"] for item in everything["data"]}
        # Its own token, five named ones but the Deleted "shared", and "soon".
        assert everything["$meta"]["pagination"]["total"] == len(everything["data"]) == 7
        for raw in (f"eq(account.id,{second.account_id})", f"eq(id,{second.id})",
                    f"or(eq(account.id,{second.account_id}),eq(status,Deleted))",
                    f"not(eq(account.id,{first.account_id}))"):
            body = (await client.get(f"{TOKENS}?{raw}", headers=first.headers)).json()
            assert body["data"] == [] and body["$meta"]["pagination"]["total"] == 0, raw
        shared = (await client.get(f"{TOKENS}?eq(name,shared)&select=id,account.id",
                                   headers=first.headers)).json()["data"]
        assert [item["account"]["id"] for item in shared] == [first.account_id]


async def test_a_tenants_statement_never_runs_without_its_account(
        app: FastAPI, postgresql: None) -> None:
    """The statements kept for every Client carry the account as a required parameter: sent
    without it, by the driver too, they fail instead of reading every tenant's tokens."""
    tenant = Actor(account_id="ACC-0000-0001", account_type="Client",
                   modules=frozenset({"Access Management"}), module_ids=frozenset())
    statements = list_statements(tenant, parse_query(""), "postgresql")
    engine = app.state.runtime.engine
    for statement in (statements.direct_count, statements.direct_rows):
        with pytest.raises(exc.InvalidRequestError, match="scope_account_id"):
            await statement.rows(engine, {NOW: MOMENT})
        async with engine.connect() as connection:  # in a transaction: SQLAlchemy runs it
            with pytest.raises(exc.StatementError, match="scope_account_id"):
                await statement.rows(connection, {NOW: MOMENT})
        async with engine.connect() as connection:  # in autocommit: the driver
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            with pytest.raises(exc.InvalidRequestError, match="scope_account_id"):
                await statement.rows(connection, {NOW: MOMENT})


@pytest.mark.parametrize("raw", ["eq(status,Active)&order=-audit.created.at&limit=10",
                                 "order=-audit.created.at"])
async def test_a_first_page_with_its_total_is_read_by_index(app: FastAPI, crowded: Actor,
                                                            raw: str) -> None:
    """A first page is one statement, the page with its total (the count a subquery run
    once): both parts use the tenant's indexes, and the newest Active ones are read in the
    index's order, not sorted (as the two statements on their own: test_query_plans)."""
    statements = list_statements(crowded, parse_query(raw), "postgresql")
    plan = await explain(app, statements.direct_first._statement.params(
        scope_params(crowded), now=MOMENT))
    assert "Seq Scan on api_tokens" not in plan, plan
    assert plan.count("ix_api_tokens_account_id_status") == 2, plan
    if raw.startswith("eq(status,Active)"):
        assert "Index Scan using ix_api_tokens_account_id_status_created_at" in plan, plan
        assert "Sort" not in plan, plan


async def list_ids(client: httpx.AsyncClient, issued: Issued) -> Any:
    response = await client.get(f"{TOKENS}?select=id", headers=issued.headers)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["data"]]


async def test_a_page_cancelled_half_way_leaves_no_connection_behind(
        pg_app: tuple[FastAPI, str]) -> None:
    """A client gone while its page is being read: the unit of work's connection, with the
    statement in flight, is dropped, not handed to the next request."""
    app, database = pg_app
    async with client_of(app) as client:
        factory = Factory(app, client)
        first, second = await factory.tenant(), await factory.tenant()
        assert await list_ids(client, first) == [first.id]  # its credential is kept
        async with held_at_lock(database, client.get(TOKENS, headers=first.headers)) as request:
            await cancelled(request)
        for _ in range(10):
            assert await list_ids(client, second) == [second.id]


async def test_a_backend_killed_during_a_page_is_a_503_and_the_pool_heals(
        pg_app: tuple[FastAPI, str]) -> None:
    app, database = pg_app
    async with client_of(app) as client:
        tenant = await Factory(app, client).tenant()
        assert await list_ids(client, tenant) == [tenant.id]
        async with held_at_lock(database, client.get(TOKENS, headers=tenant.headers)) as request:
            await killed(database, request)
        for _ in range(10):
            assert await list_ids(client, tenant) == [tenant.id]
