"""Introspection (RFC 7662, issue 12) over HTTP, on SQLite and PostgreSQL: the claims of an
active token, exactly `{"active": false}` for every other kind of secret, who may ask, the
form and JSON bodies, `clientIp` against allowlists, and an introspection as a use."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import time_machine

from tests.factories import Factory, Issued
from tests.helpers import TOKENS, problem
from tests.tokens.test_expiry import make, now, stamp
from tests.tokens.test_rotation import rotate

INTROSPECT = f"{TOKENS}/introspect"
INACTIVE = {"active": False}


async def ask(client: httpx.AsyncClient, caller: Issued, secret: str, **fields: Any
              ) -> dict[str, Any]:
    response = await client.post(INTROSPECT, headers=caller.headers,
                                 json={"token": secret, **fields})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    answer: dict[str, Any] = response.json()
    return answer


async def test_an_active_token_s_claims(client, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant("Vendor", modules=("Access Management", "Helpdesk"))
    read = (await client.get(f"{TOKENS}/{tenant.id}", headers=admin.headers)).json()
    for _ in range(2):  # from the database, then from memory
        answer = await ask(client, admin, tenant.secret)
        created = datetime.fromisoformat(read["audit"]["created"]["at"].replace("Z", "+00:00"))
        assert answer == {
            "active": True, "token_type": "api_token", "jti": tenant.id,
            "sub": tenant.account_id,
            "scope": " ".join(module["id"] for module in read["modules"]),
            "iat": int(created.timestamp()),
            "apiToken": {"id": tenant.id, "name": read["name"],
                         "account": {"id": tenant.account_id, "name": read["account"]["name"],
                                     "type": "Vendor"},
                         "modules": [{"id": m["id"], "name": m["name"]}
                                     for m in read["modules"]]}}


async def test_the_form_body_of_rfc_7662(client, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    response = await client.post(INTROSPECT, headers=admin.headers,
                                 data={"token": tenant.secret, "token_type_hint": "api_token"})
    assert response.status_code == 200 and response.json()["jti"] == tenant.id
    twice = await client.post(INTROSPECT, content=f"token={tenant.secret}&token=x", headers={
        **admin.headers, "Content-Type": "application/x-www-form-urlencoded"})
    problem(twice, 400, "token")


async def test_every_other_secret_is_inactive_and_nothing_else(client, factory: Factory
                                                              ) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    disabled = await factory.token(tenant.account_id, status="Disabled")
    deleted = await factory.token(tenant.account_id, status="Deleted")
    account = await factory.account("Client")
    of_disabled_account = await factory.token(account["id"])
    assert (await client.post(f"/public/v1/accounts/accounts/{account['id']}/disable",
                              headers=admin.headers)).status_code == 200
    expiring = await make(client, admin, tenant.account_id,
                          expiresAt=stamp(now() + timedelta(minutes=5)))
    fenced = await make(client, admin, tenant.account_id, ipAllowlist=["10.0.0.0/8"])
    pasted = "idt:TKN-0000-0000:" + tenant.secret.rsplit(":", 1)[1]  # onto another id
    for secret in ("", "not-a-token", "idt:TKN-1234-5678:" + "x" * 43, pasted,
                   disabled.secret, deleted.secret, of_disabled_account.secret,
                   fenced["token"]):
        assert await ask(client, admin, secret) == INACTIVE, secret
    assert await ask(client, admin, fenced["token"], clientIp="203.0.113.9") == INACTIVE
    assert (await ask(client, admin, fenced["token"], clientIp="10.1.2.3"))["active"]
    assert (await ask(client, admin, expiring["token"]))["exp"] == int(
        datetime.fromisoformat(expiring["expiresAt"].replace("Z", "+00:00")).timestamp())
    with time_machine.travel(now() + timedelta(minutes=6), tick=True):
        assert await ask(client, admin, expiring["token"]) == INACTIVE


async def test_a_disable_is_seen_at_once(client, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    assert (await ask(client, admin, tenant.secret))["active"]  # now in memory
    assert (await client.post(f"{TOKENS}/{tenant.id}/disable", headers=admin.headers)
            ).status_code == 200
    assert await ask(client, admin, tenant.secret) == INACTIVE


async def test_a_replaced_secret_is_active_until_its_window_ends(client, factory: Factory
                                                                ) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    rotated = await rotate(client, admin, tenant.id, gracePeriodSeconds=60)
    window = datetime.fromisoformat(rotated["previousSecret"]["expiresAt"].replace(
        "Z", "+00:00"))
    old = await ask(client, admin, tenant.secret)
    assert old["jti"] == tenant.id and old["exp"] == int(window.timestamp())
    assert "exp" not in await ask(client, admin, rotated["token"])
    with time_machine.travel(window + timedelta(seconds=1), tick=True):
        assert await ask(client, admin, tenant.secret) == INACTIVE


@pytest.mark.parametrize("caller", ["tenant", "operations_without_module"])
async def test_only_the_platform_s_services_may_ask(client, factory: Factory,
                                                     caller: str) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant(modules=("Access Management",))
    asking = tenant if caller == "tenant" else await factory.token(
        admin.account_id, ("Helpdesk",))
    problem(await client.post(INTROSPECT, headers=asking.headers,
                              json={"token": admin.secret}), 403)
    problem(await client.post(INTROSPECT, json={"token": admin.secret}), 401)


@pytest.mark.parametrize("body", [{"token": 7}, {}, {"token": "x", "clientIp": "10.0.0.0/8"},
                                  {"token": "x", "clientIp": "fe80::1%eth0"},
                                  {"token": "x", "extra": 1}, ["token"]])
async def test_a_bad_question_is_400(client, factory: Factory, body: Any) -> None:
    admin = await factory.admin()
    problem(await client.post(INTROSPECT, headers=admin.headers, json=body), 400)


async def test_an_introspection_is_a_use_from_the_client_s_address(client, factory: Factory
                                                                   ) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    before = datetime.now(UTC)
    await ask(client, admin, tenant.secret, clientIp="::ffff:198.51.100.7")
    read = (await client.get(f"{TOKENS}/{tenant.id}", headers=admin.headers)).json()
    assert datetime.fromisoformat(read["lastAccessAt"].replace("Z", "+00:00")) >= \
        before - timedelta(milliseconds=1)
    assert [address["ip"] for address in read["lastAccessIps"]] == ["198.51.100.7"]
