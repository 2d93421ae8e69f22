"""IP allowlists and last-used addresses (issue 11) over HTTP, on SQLite and PostgreSQL: the
list is stored canonical, a request from outside it is refused (403) and records nothing,
X-Forwarded-For is believed only from trusted proxies, and the last five client addresses
are shown newest first. The client's address is the transport's peer (httpx's ASGI
transport lets each client choose the socket address the app sees)."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.factories import Factory, Issued
from tests.helpers import TOKENS, app_with, problem
from tests.tokens.conftest import Connect
from tests.tokens.test_expiry import bearer, make
from tokenhouse.kit.settings import Settings


async def listed(client: httpx.AsyncClient, admin: Issued, tenant: Issued,
                 allowlist: Any) -> dict[str, Any]:
    return await make(client, admin, tenant.account_id, ipAllowlist=allowlist)


async def test_the_allowlist_is_stored_canonical(client, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    made = await listed(client, admin, tenant, ["10.0.0.0/8", "2001:DB8::1", "192.0.2.7",
                                                "::ffff:198.51.100.0/120", "10.0.0.0/8"])
    assert made["ipAllowlist"] == ["10.0.0.0/8", "2001:db8::1/128", "192.0.2.7/32",
                                   "198.51.100.0/24"]
    for empty in ([], None):
        assert (await listed(client, admin, tenant, empty))["ipAllowlist"] is None


@pytest.mark.parametrize(("allowlist", "error"), [
    (["10.0.0.0/8", "10.0.0.1/8"], "ipAllowlist[1]"),
    (["not-an-address"], "ipAllowlist[0]"),
    (["fe80::1%eth0"], "ipAllowlist[0]"),
    ([f"10.0.{n}.0/24" for n in range(51)], "ipAllowlist"),
    ("10.0.0.0/8", "ipAllowlist"),
    ([7], "ipAllowlist[0]"),
])
async def test_a_bad_allowlist_is_400_naming_the_entry(client, factory: Factory,
                                                      allowlist: Any, error: str) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    modules = await factory.modules()
    body = {"name": "x", "account": {"id": tenant.account_id},
            "modules": [{"id": modules["Access Management"]}], "ipAllowlist": allowlist}
    detail = problem(await client.post(TOKENS, headers=admin.headers, json=body), 400, error)
    if allowlist == ["10.0.0.0/8", "10.0.0.1/8"]:
        assert "10.0.0.1/8" in detail["errors"][error][0]
    problem(await client.put(f"{TOKENS}/{tenant.id}", headers=admin.headers,
                             json={"ipAllowlist": allowlist}), 400, error)
    assert (await client.get(f"{TOKENS}/{tenant.id}", headers=admin.headers)
            ).json()["ipAllowlist"] is None


@pytest.mark.parametrize(("allowlist", "inside", "outside"), [
    (["10.0.0.0/8"], "10.20.30.40", "203.0.113.9"),
    (["10.0.0.0/8"], "::ffff:10.1.2.3", "::ffff:11.0.0.1"),
    (["2001:db8::/32"], "2001:db8:1::5", "2001:db9::1"),
    (["192.0.2.7"], "192.0.2.7", "192.0.2.8"),
])
async def test_a_request_from_outside_the_list_is_refused(
        client, factory: Factory, from_address: Connect, allowlist: list[str], inside: str,
        outside: str) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    made = await listed(client, admin, tenant, allowlist)
    url = f"{TOKENS}/{made['id']}"
    async with from_address(inside) as near, from_address(outside) as far:
        for _ in range(2):  # from the database, then cached
            assert (await near.get(url, headers=bearer(made["token"]))).status_code == 200
            refused = problem(await far.get(url, headers=bearer(made["token"])), 403)
            shown = outside.removeprefix("::ffff:")
            assert refused["detail"] == f"Token {made['id']} cannot be used from {shown}."
    read = (await client.get(url, headers=admin.headers)).json()
    # The refused requests recorded nothing.
    assert [address["ip"] for address in read["lastAccessIps"]] == [
        inside.removeprefix("::ffff:")]


async def test_a_changed_allowlist_applies_at_once(client, factory: Factory,
                                                    from_address: Connect) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    async with from_address("198.51.100.1") as far:
        assert (await far.get(TOKENS, headers=tenant.headers)).status_code == 200  # cached
        changed = await client.put(f"{TOKENS}/{tenant.id}", headers=admin.headers,
                                   json={"ipAllowlist": ["10.0.0.0/8"]})
        assert changed.status_code == 200, changed.text
        problem(await far.get(TOKENS, headers=tenant.headers), 403)
        await client.put(f"{TOKENS}/{tenant.id}", headers=admin.headers,
                         json={"ipAllowlist": None})
        assert (await far.get(TOKENS, headers=tenant.headers)).status_code == 200


async def test_x_forwarded_for_is_ignored_without_trusted_proxies(
        client, factory: Factory, from_address: Connect) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    made = await listed(client, admin, tenant, ["10.0.0.0/8"])
    async with from_address("203.0.113.9") as far:
        forged = {**bearer(made["token"]), "X-Forwarded-For": "10.0.0.1"}
        refused = problem(await far.get(TOKENS, headers=forged), 403)
        assert "203.0.113.9" in refused["detail"]


@pytest.fixture
async def behind_proxy(settings: Settings, client) -> AsyncIterator[FastAPI]:
    """The same database, served behind a trusted proxy at 192.0.2.1."""
    async with app_with(settings, trusted_proxies="192.0.2.1") as application:
        yield application


async def test_x_forwarded_for_from_a_trusted_proxy_is_the_client(
        client, factory: Factory, from_address: Connect, behind_proxy: FastAPI) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    made = await listed(client, admin, tenant, ["10.0.0.0/8"])
    headers = bearer(made["token"])
    async with from_address("192.0.2.1", behind_proxy) as proxy, \
            from_address("203.0.113.9", behind_proxy) as direct:
        # The proxy vouches for its client; what that client wrote further left is not
        # believed.
        ok = await proxy.get(TOKENS, headers={**headers, "X-Forwarded-For": "1.2.3.4, 10.9.8.7"})
        assert ok.status_code == 200, ok.text
        problem(await proxy.get(TOKENS, headers={**headers,
                                                 "X-Forwarded-For": "10.9.8.7, 1.2.3.4"}), 403)
        # A peer that is not a trusted proxy is the client, whatever it sends.
        problem(await direct.get(TOKENS, headers={**headers, "X-Forwarded-For": "10.9.8.7"}),
                403)
        # A malformed hop: the client is unknown, and no allowlist admits it.
        unknown = problem(await proxy.get(TOKENS, headers={**headers,
                                                           "X-Forwarded-For": "junk"}), 403)
        assert "an unknown address" in unknown["detail"]


async def test_the_last_five_addresses_are_shown_newest_first(
        client, factory: Factory, from_address: Connect, app: FastAPI) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    addresses = [f"192.0.2.{n}" for n in range(1, 8)]
    for address in addresses:
        async with from_address(address) as near:
            assert (await near.get(TOKENS, headers=tenant.headers)).status_code == 200
    expected = list(reversed(addresses))[:5]
    read = (await client.get(f"{TOKENS}/{tenant.id}", headers=admin.headers)).json()
    assert [address["ip"] for address in read["lastAccessIps"]] == expected
    # Written in the background with lastAccessAt; read back from the row (another process
    # would), the same list.
    await app.state.runtime.last_access.flush()
    app.state.runtime.token_views.clear()
    listed_page = (await client.get(f"{TOKENS}?eq(id,{tenant.id})", headers=admin.headers)
                   ).json()
    assert [address["ip"] for address in listed_page["data"][0]["lastAccessIps"]] == expected
    async with app.state.runtime.sessions() as session:
        from tokenhouse.tokens.models import ApiToken
        stored = await session.get(ApiToken, tenant.id)
        assert stored is not None and stored.last_access_ips is not None
        assert [address in stored.last_access_ips for address in expected] == [True] * 5


async def test_an_address_seen_again_is_written_again_only_when_its_time_is_old(
        client, factory: Factory, from_address: Connect, app: FastAPI,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Addresses are read, merged and written only for a new address or an old stored time;
    lastAccessAt is written every flush (tokens/last_access.py)."""
    from tokenhouse.tokens import last_access
    from tokenhouse.tokens.models import ApiToken

    admin = await factory.admin()
    tenant = await factory.tenant()
    recorder = app.state.runtime.last_access

    async def stored() -> ApiToken:
        await recorder.flush()
        async with app.state.runtime.sessions() as session:
            token = await session.get(ApiToken, tenant.id)
            assert token is not None
            return token

    async def use(address: str) -> None:
        async with from_address(address) as near:
            assert (await near.get(TOKENS, headers=tenant.headers)).status_code == 200

    await use("192.0.2.1")
    first = await stored()
    await use("192.0.2.1")
    again = await stored()
    assert again.last_access_at > first.last_access_at
    assert again.last_access_ips == first.last_access_ips  # the same address: not rewritten
    await use("192.0.2.2")
    assert "192.0.2.2" in ((await stored()).last_access_ips or "")
    monkeypatch.setattr(last_access, "ADDRESS_REFRESH_SECONDS", 0.0)
    await use("192.0.2.1")
    refreshed = await stored()
    assert refreshed.last_access_ips != first.last_access_ips
    assert refreshed.last_access_ips.index("192.0.2.1") < refreshed.last_access_ips.index(
        "192.0.2.2")  # newest first
    read = (await client.get(f"{TOKENS}/{tenant.id}", headers=admin.headers)).json()
    assert [address["ip"] for address in read["lastAccessIps"]] == ["192.0.2.1", "192.0.2.2"]
