"""Per-token rate limits over HTTP (issue 12): the field, the server's default, the IETF
draft's headers, 429, introspection's count, on both databases; counted in-process here
(tests/tokens/test_rate_limit_processes.py counts on Redis across processes)."""

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import time_machine

from tests.factories import Factory, Issued
from tests.helpers import TOKENS, client_with, problem
from tests.metrics.test_metrics import delta, scrape
from tokenhouse.app import create_app
from tokenhouse.kit.settings import ConfigurationError, Settings
from tokenhouse.kit.timeutil import utcnow

INTROSPECT = f"{TOKENS}/introspect"


async def make(client: httpx.AsyncClient, admin: Issued, account_id: str,
               **fields: Any) -> dict[str, Any]:
    modules = {m["name"]: m["id"] for m in (await client.get(
        "/public/v1/accounts/modules?limit=100", headers=admin.headers)).json()["data"]}
    response = await client.post(TOKENS, headers=admin.headers, json={
        "name": "limited", "account": {"id": account_id},
        "modules": [{"id": modules["Access Management"]}], **fields})
    assert response.status_code == 201, response.text
    return response.json()


def bearer(token: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token['token']}"}


async def test_the_rate_limit_is_set_shown_changed_and_removed(client, factory: Factory):
    admin = await factory.admin()
    tenant = await factory.tenant()
    made = await make(client, admin, tenant.account_id,
                      rateLimit={"limit": 100, "windowSeconds": 60})
    assert made["rateLimit"] == {"limit": 100, "windowSeconds": 60}
    assert made["statusReason"] is None
    path = f"{TOKENS}/{made['id']}"
    read = (await client.get(path, headers=admin.headers)).json()
    assert read["rateLimit"] == {"limit": 100, "windowSeconds": 60}
    listed = (await client.get(f"{TOKENS}?eq(rateLimit.limit,100)",
                               headers=admin.headers)).json()["data"]
    assert [item["id"] for item in listed] == [made["id"]]
    assert listed[0]["rateLimit"] == {"limit": 100, "windowSeconds": 60}

    changed = await client.put(path, headers=admin.headers,
                               json={"rateLimit": {"limit": 5, "windowSeconds": 1}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["rateLimit"] == {"limit": 5, "windowSeconds": 1}
    # Sent back as read, it stays; left out, it stays.
    same = await client.put(path, headers=admin.headers, json={**changed.json(), "name": "n"})
    assert same.json()["rateLimit"] == {"limit": 5, "windowSeconds": 1}
    removed = await client.put(path, headers=admin.headers, json={"rateLimit": None})
    assert removed.json()["rateLimit"] is None
    assert (await client.get(path, headers=admin.headers)).json()["rateLimit"] is None


@pytest.mark.parametrize("value", [
    {"limit": 0, "windowSeconds": 60}, {"limit": 1_000_001, "windowSeconds": 60},
    {"limit": 10, "windowSeconds": 0}, {"limit": 10, "windowSeconds": 86_401},
    {"limit": "10", "windowSeconds": 60}, {"limit": 10.5, "windowSeconds": 60},
    {"limit": 10}, {"limit": 10, "windowSeconds": 60, "burst": 3}, "600/60", 600, [],
])
async def test_a_bad_rate_limit_is_a_400_and_changes_nothing(client, factory: Factory,
                                                              value: Any):
    admin = await factory.admin()
    tenant = await factory.tenant()
    made = await make(client, admin, tenant.account_id)
    path = f"{TOKENS}/{made['id']}"
    problem(await client.put(path, headers=admin.headers, json={"rateLimit": value}), 400)
    body = {"name": "x", "account": {"id": tenant.account_id},
            "modules": made["modules"], "rateLimit": value}
    problem(await client.post(TOKENS, headers=admin.headers, json=body), 400)
    after = (await client.get(path, headers=admin.headers)).json()
    assert (after["rateLimit"], after["revision"]) == (None, 1)


async def test_a_limited_token_gets_the_headers_then_429(client, factory: Factory):
    admin = await factory.admin()
    tenant = await factory.tenant()
    made = await make(client, admin, tenant.account_id,
                      rateLimit={"limit": 3, "windowSeconds": 3600})
    path = f"{TOKENS}/{made['id']}"
    with time_machine.travel(utcnow(), tick=False):
        seen = []
        for _ in range(3):
            response = await client.get(path, headers=bearer(made))
            assert response.status_code == 200, response.text
            assert response.headers["ratelimit-policy"] == '"default";q=3;w=3600'
            seen.append(response.headers["ratelimit"])
        # One request earned every 1200 s; the whole quota is back 1200 s per request used.
        assert seen == ['"default";r=2;t=1200', '"default";r=1;t=2400',
                        '"default";r=0;t=3600']
        refused = await client.get(path, headers=bearer(made))
        detail = problem(refused, 429)
        assert refused.headers["retry-after"] == "1200"
        assert refused.headers["ratelimit"] == '"default";r=0;t=3600'
        assert detail["type"] == "https://tools.ietf.org/html/rfc6585#section-4"
        assert "3 requests per 3600 s" in detail["detail"]
        # Every route the token calls counts, errors included (a 404 after the count).
        problem(await client.get(f"{TOKENS}/TKN-0000-0000", headers=bearer(made)), 429)
        # The limit is the token's: another token is not held back.
        assert (await client.get(TOKENS, headers=admin.headers)).status_code == 200
        assert "ratelimit" not in (await client.get(TOKENS, headers=admin.headers)).headers
    # One interval later, one more request passes.
    with time_machine.travel(utcnow() + timedelta(seconds=1201), tick=False):
        again = await client.get(path, headers=bearer(made))
        assert again.status_code == 200, again.text
        assert again.headers["ratelimit"].startswith('"default";r=0;')
        problem(await client.get(path, headers=bearer(made)), 429)


async def test_a_refused_request_is_not_counted_as_a_use(client, factory: Factory):
    admin = await factory.admin()
    tenant = await factory.tenant()
    made = await make(client, admin, tenant.account_id,
                      rateLimit={"limit": 1, "windowSeconds": 3600})
    path = f"{TOKENS}/{made['id']}"
    start = utcnow()
    with time_machine.travel(start, tick=False):
        assert (await client.get(path, headers=bearer(made))).status_code == 200
        used = (await client.get(path, headers=admin.headers)).json()["lastAccessAt"]
    with time_machine.travel(start + timedelta(seconds=5), tick=False):
        problem(await client.get(path, headers=bearer(made)), 429)
        after = (await client.get(path, headers=admin.headers)).json()["lastAccessAt"]
    assert used is not None and after == used


async def test_a_changed_limit_applies_at_once(client, factory: Factory):
    admin = await factory.admin()
    tenant = await factory.tenant()
    made = await make(client, admin, tenant.account_id)
    path = f"{TOKENS}/{made['id']}"
    assert "ratelimit" not in (await client.get(path, headers=bearer(made))).headers
    await client.put(path, headers=admin.headers,
                     json={"rateLimit": {"limit": 1, "windowSeconds": 86400}})
    assert (await client.get(path, headers=bearer(made))).status_code == 200
    problem(await client.get(path, headers=bearer(made)), 429)
    await client.put(path, headers=admin.headers, json={"rateLimit": None})
    assert (await client.get(path, headers=bearer(made))).status_code == 200


async def test_introspection_counts_unless_told_not_to(client, factory: Factory):
    admin = await factory.admin()
    tenant = await factory.tenant()
    made = await make(client, admin, tenant.account_id,
                      rateLimit={"limit": 2, "windowSeconds": 3600})
    with time_machine.travel(utcnow(), tick=False):
        looked = (await client.post(INTROSPECT, headers=admin.headers,
                                    json={"token": made["token"], "consume": False})).json()
        assert looked["active"] is True
        assert looked["rateLimit"] == {"limit": 2, "windowSeconds": 3600, "remaining": 2,
                                       "reset": 0, "allowed": True}
        counted = (await client.post(INTROSPECT, headers=admin.headers,
                                     json={"token": made["token"]})).json()
        assert counted["rateLimit"]["remaining"] == 1
        form = await client.post(INTROSPECT, headers=admin.headers,
                                 data={"token": made["token"], "consume": "false"})
        assert form.json()["rateLimit"]["remaining"] == 1
        problem(await client.post(INTROSPECT, headers=admin.headers,
                                  data={"token": made["token"], "consume": "no"}), 400,
                "consume")
        # The token's own request takes the last one; introspection then reports it used up,
        # still active (the token is valid: the caller answers 429).
        assert (await client.get(f"{TOKENS}/{made['id']}",
                                 headers=bearer(made))).status_code == 200
        used = (await client.post(INTROSPECT, headers=admin.headers,
                                  json={"token": made["token"]})).json()
        assert used["active"] is True
        assert used["rateLimit"]["allowed"] is False and used["rateLimit"]["remaining"] == 0
    unlimited = await make(client, admin, tenant.account_id)
    answer = (await client.post(INTROSPECT, headers=admin.headers,
                                json={"token": unlimited["token"]})).json()
    assert answer["active"] is True and "rateLimit" not in answer


@pytest.fixture
async def defaulted(settings: Settings, client) -> AsyncIterator[httpx.AsyncClient]:
    """The same database served with TOKENHOUSE_DEFAULT_RATE_LIMIT=600/60."""
    async with client_with(settings, default_rate_limit="600/60") as other:
        yield other


async def test_the_servers_default_applies_to_tokens_made_without_one(
        defaulted: httpx.AsyncClient, factory: Factory):
    admin = await factory.admin()
    tenant = await factory.tenant()
    made = await make(defaulted, admin, tenant.account_id)
    assert made["rateLimit"] == {"limit": 600, "windowSeconds": 60}
    response = await defaulted.get(f"{TOKENS}/{made['id']}", headers=bearer(made))
    assert response.headers["ratelimit-policy"] == '"default";q=600;w=60'
    unlimited = await make(defaulted, admin, tenant.account_id, rateLimit=None)
    assert unlimited["rateLimit"] is None
    own = await make(defaulted, admin, tenant.account_id,
                     rateLimit={"limit": 5, "windowSeconds": 10})
    assert own["rateLimit"] == {"limit": 5, "windowSeconds": 10}


@pytest.mark.parametrize("value", ["600", "600/0", "0/60", "abc/60", "600/86401", "-1/60"])
def test_a_bad_default_stops_the_server_from_starting(settings: Settings, value: str):
    with pytest.raises(ConfigurationError, match="TOKENHOUSE_DEFAULT_RATE_LIMIT"):
        create_app(settings.model_copy(update={"default_rate_limit": value}))


async def test_a_refusal_past_the_limit_is_counted_in_the_metrics(client, factory: Factory):
    admin = await factory.admin()
    tenant = await factory.tenant()
    made = await make(client, admin, tenant.account_id,
                      rateLimit={"limit": 1, "windowSeconds": 3600})
    _, _, before = await scrape(client)
    assert (await client.get(f"{TOKENS}/{made['id']}", headers=bearer(made))).status_code == 200
    problem(await client.get(f"{TOKENS}/{made['id']}", headers=bearer(made)), 429)
    _, _, after = await scrape(client)
    for outcome, counted in (("rate_limited", 1), ("valid", 1)):  # one outcome a request
        assert delta(before, after, "tokenhouse_authentications_total",
                     outcome=outcome) == counted, outcome


async def test_a_refused_first_use_does_not_retire_the_old_secret(client, factory: Factory):
    """Found by review: a 429 on the first use of a rotated secret still ended the old
    secret's grace window (retirePreviousOnFirstUse)."""
    admin = await factory.admin()
    tenant = await factory.tenant()
    made = await make(client, admin, tenant.account_id,
                      rateLimit={"limit": 1, "windowSeconds": 3600})
    path = f"{TOKENS}/{made['id']}"
    assert (await client.get(path, headers=bearer(made))).status_code == 200  # used up
    rotated = (await client.post(f"{path}/rotate", headers=admin.headers, json={
        "gracePeriodSeconds": 600, "retirePreviousOnFirstUse": True})).json()
    problem(await client.get(path, headers=bearer(rotated)), 429)
    after = (await client.get(path, headers=admin.headers)).json()
    assert after["previousSecret"] is not None
    assert after["revision"] == rotated["revision"]


@pytest.fixture
async def capped(settings: Settings, client) -> AsyncIterator[httpx.AsyncClient]:
    """The same database served with TOKENHOUSE_MAX_RATE_LIMIT=100/60 (and no default)."""
    async with client_with(settings, max_rate_limit="100/60") as other:
        yield other


async def test_a_tenant_keeps_its_tokens_within_the_servers_loosest_limit(
        capped: httpx.AsyncClient, factory: Factory):
    """Found by review: the limit was the tenant's to lift (null on its own token, or a new
    token without one), whatever the operator's default."""
    admin = await factory.admin()
    account = await factory.account("Client")
    manager = await factory.token(account["id"], ("Access Management",))
    made = await make(capped, manager, account["id"])
    assert made["rateLimit"] == {"limit": 100, "windowSeconds": 60}  # the ceiling, by default
    path = f"{TOKENS}/{made['id']}"
    for looser in (None, {"limit": 101, "windowSeconds": 60},
                   {"limit": 100, "windowSeconds": 59}, {"limit": 50, "windowSeconds": 10}):
        detail = problem(await capped.put(path, headers=manager.headers,
                                          json={"rateLimit": looser}), 400, "rateLimit")
        assert "100 requests per 60 seconds" in detail["errors"]["rateLimit"][0]
        body = {"name": "x", "account": {"id": account["id"]},
                "modules": made["modules"], "rateLimit": looser}
        problem(await capped.post(TOKENS, headers=manager.headers, json=body), 400, "rateLimit")
    tighter = await capped.put(path, headers=manager.headers,
                               json={"rateLimit": {"limit": 10, "windowSeconds": 60}})
    assert tighter.status_code == 200, tighter.text
    # Operations may give any, and the tenant may send back what it read.
    lifted = await capped.put(path, headers=admin.headers, json={"rateLimit": None})
    assert lifted.json()["rateLimit"] is None
    same = await capped.put(path, headers=manager.headers, json={**lifted.json(), "name": "y"})
    assert same.status_code == 200, same.text
    assert same.json()["rateLimit"] is None


def test_a_default_looser_than_the_ceiling_stops_the_server(settings: Settings):
    with pytest.raises(ConfigurationError, match="looser than TOKENHOUSE_MAX_RATE_LIMIT"):
        create_app(settings.model_copy(update={"default_rate_limit": "600/60",
                                               "max_rate_limit": "100/60"}))
    with pytest.raises(ConfigurationError, match="TOKENHOUSE_MAX_RATE_LIMIT"):
        create_app(settings.model_copy(update={"max_rate_limit": "lots"}))
