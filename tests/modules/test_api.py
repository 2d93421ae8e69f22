"""The module catalog (/public/v1/accounts/modules), over HTTP against the real app."""

import re
from typing import Any

import httpx
import pytest

from tests.factories import Factory, Issued
from tests.helpers import MODULES, TIMESTAMP, problem

MODULE_ID = re.compile(r"^MOD-\d{4}$")
ACCOUNT_TYPES = {"Client", "Vendor", "Operations"}


async def listing(client: httpx.AsyncClient, who: Issued, query: str = "") -> dict[str, Any]:
    response = await client.get(f"{MODULES}?{query}" if query else MODULES, headers=who.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def catalog(client: httpx.AsyncClient, who: Issued) -> list[dict[str, Any]]:
    """Every module the caller sees, in one page."""
    body = await listing(client, who, "limit=100")
    assert body["$meta"]["pagination"]["total"] == len(body["data"])
    return body["data"]


async def get(client: httpx.AsyncClient, who: Issued, module_id: str) -> httpx.Response:
    return await client.get(f"{MODULES}/{module_id}", headers=who.headers)


def assert_module(module: dict[str, Any], *, audit: bool) -> None:
    assert MODULE_ID.match(module["id"])
    assert module["href"] == f"{MODULES}/{module['id']}"
    assert isinstance(module["name"], str) and module["name"]
    assert isinstance(module["description"], str)
    assert module["accountTypes"] and set(module["accountTypes"]) <= ACCOUNT_TYPES
    for flag in ("isEnabledByDefault", "isConfigurable", "paid"):
        assert isinstance(module[flag], bool), flag
    settings = module["settings"]
    assert set(settings) == {"sharedAccount", "configurable", "default", "paid", "type"}
    for flag in ("sharedAccount", "configurable", "default", "paid"):
        assert isinstance(settings[flag], bool), flag
    assert isinstance(settings["type"], list)
    assert isinstance(module["filters"], dict)
    for values in module["filters"].values():
        assert isinstance(values, list)
    if audit:
        assert TIMESTAMP.match(module["audit"]["created"]["at"])
    else:
        assert "audit" not in module


async def test_unauthenticated_is_401(client: httpx.AsyncClient, factory: Factory) -> None:
    ids = await factory.modules()
    for path in (MODULES, f"{MODULES}/{ids['Access Management']}"):
        response = await client.get(path)
        problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"


async def test_operations_sees_the_whole_catalog(client: httpx.AsyncClient,
                                                 factory: Factory) -> None:
    admin = await factory.admin()

    body = await listing(client, admin, "limit=100")

    assert set(body) == {"$meta", "data"}
    assert set(body["$meta"]["pagination"]) == {"offset", "limit", "total"}
    assert "audit" in body["$meta"]["omitted"]
    modules = body["data"]
    assert len(modules) >= 10
    assert body["$meta"]["pagination"] == {"offset": 0, "limit": 100, "total": len(modules)}
    for module in modules:
        assert_module(module, audit=False)
    names = [m["name"] for m in modules]
    assert {"Access Management", "Account Management"} <= set(names)
    assert len(set(names)) == len(names)
    ids = [m["id"] for m in modules]
    assert ids == sorted(ids)
    assert {m["name"]: m["id"] for m in modules} == await factory.modules()


async def test_default_page_is_ten(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.admin()
    everything = await catalog(client, admin)

    body = await listing(client, admin)

    assert body["$meta"]["pagination"] == {"offset": 0, "limit": 10,
                                           "total": len(everything)}
    assert body["data"] == everything[:10]


@pytest.mark.parametrize("kind", ["Client", "Vendor"])
async def test_tenant_sees_only_the_modules_of_its_type(client: httpx.AsyncClient,
                                                        factory: Factory, kind: str) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant(kind)
    everything = await catalog(client, admin)
    expected = [m for m in everything if kind in m["accountTypes"]]

    visible = await catalog(client, tenant)

    assert visible == expected
    assert all(kind in m["accountTypes"] for m in visible)
    assert 0 < len(visible) < len(everything)
    assert {"Access Management", "Account Management"} <= {m["name"] for m in visible}


async def test_client_and_vendor_views_differ(client: httpx.AsyncClient,
                                              factory: Factory) -> None:
    client_view = {m["id"] for m in await catalog(client, await factory.tenant("Client"))}
    vendor_view = {m["id"] for m in await catalog(client, await factory.tenant("Vendor"))}

    assert client_view - vendor_view and vendor_view - client_view


@pytest.mark.parametrize("kind", ["Client", "Vendor"])
async def test_module_of_another_type_is_not_found(client: httpx.AsyncClient,
                                                   factory: Factory, kind: str) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant(kind)
    hidden = [m for m in await catalog(client, admin) if kind not in m["accountTypes"]]
    assert hidden

    for module in hidden:
        body = problem(await get(client, tenant, module["id"]), 404)
        assert body["title"] == "Not Found"
        assert (await get(client, admin, module["id"])).status_code == 200


@pytest.mark.parametrize("kind", ["Client", "Vendor", "Operations"])
async def test_get_a_module(client: httpx.AsyncClient, factory: Factory, kind: str) -> None:
    who = await (factory.admin() if kind == "Operations" else factory.tenant(kind))
    listed = {m["id"]: m for m in await catalog(client, who)}

    for module_id, item in listed.items():
        response = await get(client, who, module_id)
        assert response.status_code == 200, response.text
        module = response.json()
        assert_module(module, audit=True)
        # A list item is the object less `audit`, which lists omit unless it is selected.
        assert {k: v for k, v in module.items() if k != "audit"} == item


@pytest.mark.parametrize("module_id", ["MOD-0000", "MOD-1234-5678", "nonsense", "ACC-0000-0000"])
async def test_unknown_module_is_not_found(client: httpx.AsyncClient, factory: Factory,
                                           module_id: str) -> None:
    admin = await factory.admin()

    problem(await get(client, admin, module_id), 404)


@pytest.mark.parametrize("kind", ["Client", "Operations"])
async def test_paging_covers_the_catalog_once(client: httpx.AsyncClient, factory: Factory,
                                              kind: str) -> None:
    who = await (factory.admin() if kind == "Operations" else factory.tenant(kind))
    everything = [m["id"] for m in await catalog(client, who)]

    seen: list[str] = []
    for offset in range(0, len(everything) + 3, 3):
        body = await listing(client, who, f"limit=3&offset={offset}")
        assert body["$meta"]["pagination"] == {"offset": offset, "limit": 3,
                                               "total": len(everything)}
        assert len(body["data"]) == min(3, max(0, len(everything) - offset))
        seen += [m["id"] for m in body["data"]]

    assert seen == everything


async def test_limit_zero_and_clamping(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.admin()
    total = len(await catalog(client, admin))

    assert await listing(client, admin, "limit=0") == {
        "$meta": {"pagination": {"offset": 0, "limit": 0, "total": total}, "omitted": ["audit"]},
        "data": []}
    clamped = await listing(client, admin, "limit=500&select=")
    assert clamped["$meta"]["pagination"] == {"offset": 0, "limit": 100, "total": total}


@pytest.mark.parametrize("query", ["limit=-1", "limit=abc", "offset=-1", "foo=1",
                                   "eq(title,'Billing')", "select=+title", "order=settings",
                                   "any(accountTypes)", "eq(paid,maybe)"])
async def test_bad_list_parameters_are_400(client: httpx.AsyncClient, factory: Factory,
                                           query: str) -> None:
    admin = await factory.admin()

    problem(await client.get(f"{MODULES}?{query}", headers=admin.headers), 400)


async def test_catalog_is_read_only(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.admin()
    module_id = (await factory.modules())["Billing"]

    problem(await client.post(MODULES, json={"name": "New"}, headers=admin.headers), 405)
    problem(await client.put(f"{MODULES}/{module_id}", json={"name": "x"},
                             headers=admin.headers), 405)
    problem(await client.delete(f"{MODULES}/{module_id}", headers=admin.headers), 405)


async def test_modules_can_be_filtered_and_ordered(client: httpx.AsyncClient,
                                                  factory: Factory) -> None:
    admin = await factory.admin()

    paid = await listing(client, admin, "eq(paid,true)&select=-*,+name,+paid")
    assert paid["data"] and all(m["paid"] is True and set(m) == {"id", "name", "paid"}
                                for m in paid["data"])
    named = [m["name"] for m in
             (await listing(client, admin, "ilike(name,*MANAGEMENT)&order=-name"))["data"]]
    assert named == sorted(named, reverse=True)
    assert {"Access Management", "Account Management"} <= set(named)
    assert all(name.endswith("Management") for name in named)


async def test_omitted_audit_comes_back_with_select(client: httpx.AsyncClient,
                                                    factory: Factory) -> None:
    admin = await factory.admin()

    body = await listing(client, admin, "select=+audit")

    assert body["data"] and all(TIMESTAMP.match(m["audit"]["created"]["at"])
                                for m in body["data"])
