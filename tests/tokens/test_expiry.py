"""Expiry (issue 11) over HTTP, on SQLite and PostgreSQL: `expiresAt` on create and PUT, the
computed `Expired` status everywhere (reads, lists, filters), an expired token refused even
when its credential was cached, the longest-lifetime policy, and `API-Token-Expiration`.

Time moves with time-machine (the service's clock: datetime.now and time.time), not sleeps."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import time_machine

from tests.factories import Factory, Issued
from tests.helpers import TOKENS, client_with, problem
from tokenhouse.kit.settings import Settings


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def now() -> datetime:
    return datetime.now(UTC)


async def make(client: httpx.AsyncClient, admin: Issued, account_id: str,
               **fields: Any) -> dict[str, Any]:
    modules = {m["name"]: m["id"] for m in (await client.get(
        "/public/v1/accounts/modules?limit=100", headers=admin.headers)).json()["data"]}
    response = await client.post(TOKENS, headers=admin.headers, json={
        "name": "expiring", "account": {"id": account_id},
        "modules": [{"id": modules["Access Management"]}], **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_expires_at_is_stored_shown_and_queried(client, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    when = now() + timedelta(days=3)
    made = await make(client, admin, tenant.account_id, expiresAt=stamp(when))
    forever = await make(client, admin, tenant.account_id)
    assert made["expiresAt"] == stamp(when) and made["status"] == "Active"
    assert forever["expiresAt"] is None
    read = (await client.get(f"{TOKENS}/{made['id']}", headers=admin.headers)).json()
    assert read["expiresAt"] == stamp(when)
    soon = await client.get(f"{TOKENS}?lt(expiresAt,{stamp(when + timedelta(days=1))})",
                            headers=tenant.headers)
    assert [item["id"] for item in soon.json()["data"]] == [made["id"]]
    never = await client.get(f"{TOKENS}?eq(expiresAt,null())&eq(id,{forever['id']})",
                             headers=tenant.headers)
    assert [item["id"] for item in never.json()["data"]] == [forever["id"]]
    ordered = await client.get(f"{TOKENS}?order=-expiresAt&select=id", headers=tenant.headers)
    assert ordered.status_code == 200


@pytest.mark.parametrize("when", ["2000-01-01T00:00:00.000Z", "yesterday",
                                  "2030-01-01T00:00:00"])
async def test_a_past_or_naive_expiry_is_refused_naming_the_field(client, factory: Factory,
                                                                 when: str) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    modules = await factory.modules()
    body = {"name": "x", "account": {"id": tenant.account_id},
            "modules": [{"id": modules["Access Management"]}], "expiresAt": when}
    problem(await client.post(TOKENS, headers=admin.headers, json=body), 400, "expiresAt")
    problem(await client.put(f"{TOKENS}/{tenant.id}", headers=admin.headers,
                             json={"expiresAt": when}), 400, "expiresAt")
    # Nothing was made or changed.
    listed = (await client.get(TOKENS, headers=tenant.headers)).json()
    assert [item["expiresAt"] for item in listed["data"]] == [None]


async def test_an_expired_token_shows_expired_and_authenticates_nothing(
        client, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    made = await make(client, admin, tenant.account_id,
                      expiresAt=stamp(now() + timedelta(hours=1)))
    own = bearer(made["token"])
    url = f"{TOKENS}/{made['id']}"
    # Warm: the credential and the view are in memory before the expiry.
    for _ in range(2):
        assert (await client.get(url, headers=own)).status_code == 200
        assert (await client.get(url, headers=admin.headers)).json()["status"] == "Active"
    with time_machine.travel(now() + timedelta(hours=2), tick=True):
        refused = problem(await client.get(url, headers=own), 401)
        assert refused["detail"] == (f"The API token {made['id']} expired at "
                                     f"{made['expiresAt']}.")
        assert (await client.get(url, headers=admin.headers)).json()["status"] == "Expired"
        expired = await client.get(f"{TOKENS}?eq(status,Expired)", headers=tenant.headers)
        assert [item["id"] for item in expired.json()["data"]] == [made["id"]]
        assert expired.json()["data"][0]["status"] == "Expired"
        active = await client.get(f"{TOKENS}?eq(status,Active)", headers=tenant.headers)
        assert [item["id"] for item in active.json()["data"]] == [tenant.id]
        for query, expected in (("ne(status,Expired)", [tenant.id]),
                                ("in(status,(Expired,Disabled))", [made["id"]]),
                                ("out(status,(Active))", [made["id"]]),
                                ("not(eq(status,Active))", [made["id"]])):
            page = await client.get(f"{TOKENS}?{query}&order=name", headers=tenant.headers)
            assert [item["id"] for item in page.json()["data"]] == expected, query
        # It cannot be extended by PUT, nor enabled once disabled; other changes and the
        # delete are allowed.
        later = stamp(now() + timedelta(days=1))
        problem(await client.put(url, headers=admin.headers, json={"expiresAt": later}), 409)
        problem(await client.put(url, headers=admin.headers, json={"expiresAt": None}), 409)
        renamed = await client.put(url, headers=admin.headers,
                                   json={"name": "renamed", "expiresAt": made["expiresAt"]})
        assert renamed.status_code == 200 and renamed.json()["status"] == "Expired"
        assert (await client.post(f"{url}/disable", headers=admin.headers)).status_code == 200
        detail = problem(await client.post(f"{url}/enable", headers=admin.headers), 409)
        assert "rotate" in detail["detail"]
        assert (await client.delete(url, headers=admin.headers)).status_code == 204


async def test_every_answer_to_a_token_with_an_expiry_carries_the_header(
        client, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    made = await make(client, admin, tenant.account_id,
                      expiresAt=stamp(now() + timedelta(days=30)))
    for _ in range(2):  # from the database, then cached
        ok = await client.get(f"{TOKENS}/{made['id']}", headers=bearer(made["token"]))
        assert ok.headers["api-token-expiration"] == made["expiresAt"]
        missing = await client.get(f"{TOKENS}/TKN-0000-0000", headers=bearer(made["token"]))
        assert missing.status_code == 404
        assert missing.headers["api-token-expiration"] == made["expiresAt"]
    never = await client.get(f"{TOKENS}/{tenant.id}", headers=tenant.headers)
    assert "api-token-expiration" not in never.headers
    refused = await client.get(TOKENS, headers={"Authorization": "Bearer nope"})
    assert "api-token-expiration" not in refused.headers


@pytest.fixture
async def limited(settings: Settings, client) -> AsyncIterator[httpx.AsyncClient]:
    """The same database served with TOKENHOUSE_MAX_TOKEN_LIFETIME_DAYS=30."""
    async with client_with(settings, max_token_lifetime_days=30) as other:
        yield other


async def test_the_longest_lifetime_is_the_default_and_the_limit(
        limited: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    before = now()
    made = await make(limited, admin, tenant.account_id)
    expires = datetime.fromisoformat(made["expiresAt"].replace("Z", "+00:00"))
    assert before + timedelta(days=30) <= expires + timedelta(milliseconds=1)
    assert expires <= now() + timedelta(days=30)
    modules = await factory.modules()
    body = {"name": "x", "account": {"id": tenant.account_id},
            "modules": [{"id": modules["Access Management"]}]}
    for when in (stamp(now() + timedelta(days=31)), None):
        detail = problem(await limited.post(TOKENS, headers=admin.headers,
                                            json={**body, "expiresAt": when}), 400, "expiresAt")
        assert "30 days" in detail["errors"]["expiresAt"][0]
        problem(await limited.put(f"{TOKENS}/{made['id']}", headers=admin.headers,
                                  json={"expiresAt": when}), 400, "expiresAt")
    within = stamp(now() + timedelta(days=29))
    changed = await limited.put(f"{TOKENS}/{made['id']}", headers=admin.headers,
                                json={"expiresAt": within})
    assert changed.status_code == 200 and changed.json()["expiresAt"] == within
