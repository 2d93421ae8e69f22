"""What one tenant can learn of another's tokens and of modules it may not see: nothing,
neither from answers nor from how they are computed."""


import httpx
from fastapi import FastAPI

from tests.factories import ALL_OF_TYPE, Factory
from tests.helpers import TOKENS, database_use, problem

EXCHANGE = "MOD-8342"  # Operations accounts only


async def test_another_tenants_token_costs_the_same_404_as_a_missing_one(
        app: FastAPI, client: httpx.AsyncClient, factory: Factory) -> None:
    """A token kept in memory must not answer another tenant's read faster than an id that
    does not exist: both go to the database, with the same statements."""
    owner = await factory.tenant(modules=("Access Management",))
    other = await factory.tenant("Vendor", modules=("Access Management",))
    # Both tokens read themselves: their credentials and the owner's view are in memory.
    for issued in (owner, other):
        assert (await client.get(f"{TOKENS}/{issued.id}", headers=issued.headers)
                ).status_code == 200
    with database_use(app) as cached:
        problem(await client.get(f"{TOKENS}/{owner.id}", headers=other.headers), 404)
    with database_use(app) as missing:
        problem(await client.get(f"{TOKENS}/TKN-0000-0000", headers=other.headers), 404)
    assert cached, "the 404 of a token in memory was answered without the database"
    assert len(cached) == len(missing)
    # The owner itself is still served from memory.
    with database_use(app) as own:
        assert (await client.get(f"{TOKENS}/{owner.id}", headers=owner.headers)
                ).status_code == 200
    assert own == []


async def test_create_does_not_name_modules_the_tenant_cannot_see(
        client: httpx.AsyncClient, factory: Factory) -> None:
    """GET /modules/MOD-8342 is 404 for a Client token; the create error says no more than
    it would for an id that does not exist."""
    tenant = await factory.tenant("Client", ALL_OF_TYPE)
    problem(await client.get(f"/public/v1/accounts/modules/{EXCHANGE}",
                             headers=tenant.headers), 404)
    answers = []
    for module_id in (EXCHANGE, "MOD-0000"):
        body = problem(await client.post(TOKENS, headers=tenant.headers, json={
            "name": "probe", "account": {"id": tenant.account_id},
            "modules": [{"id": module_id}]}), 400)
        answers.append(body["errors"]["modules"][0].replace(module_id, "<id>"))
    assert answers[0] == answers[1], answers
    assert "Exchange" not in answers[0]


async def test_operations_still_hears_why_a_module_cannot_be_given(
        client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.admin()
    client_account = await factory.account("Client")
    body = problem(await client.post(TOKENS, headers=admin.headers, json={
        "name": "x", "account": {"id": client_account["id"]},
        "modules": [{"id": EXCHANGE}]}), 400)
    assert "Exchange" in body["errors"]["modules"][0]
    assert "not available to Client" in body["errors"]["modules"][0]
