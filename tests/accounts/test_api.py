"""The accounts API (/public/v1/accounts/accounts), over HTTP against the real app."""

import asyncio
import json
import re
import struct
import zlib
from typing import Any

import httpx
import pytest

from tests.factories import Factory, Issued
from tests.helpers import ACCOUNTS, TIMESTAMP, TOKENS, problem

ACCOUNT_ID = re.compile(r"^ACC-\d{4}-\d{4}$")
GROUP_ID = re.compile(r"^UGR-\d{4}-\d{4}$")
MIB = 1024 * 1024

FULL = {
    "name": "Adastra Ltd",
    "type": "Client",
    "description": "A client of the platform",
    "externalIds": {"pyraTenantId": "0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0"},
    "externalId": "EXT-42",
    "externalName": "Adastra",
    "serviceLevel": "Gold",
    "address": {"addressLine1": "1 Main Street", "addressLine2": "Floor 2",
                "postCode": "10001", "city": "New York", "state": "NY", "country": "US"},
    "technicalSupportEmail": "support@adastra.com",
    "website": "https://adastra.com",
}


# --- helpers ------------------------------------------------------------------------------

def tiny_png() -> bytes:
    """A valid 1x1 transparent PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x00\x00\x00\x00")
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def url(account_id: str, action: str = "") -> str:
    return f"{ACCOUNTS}/{account_id}" + (f"/{action}" if action else "")


async def listing(client: httpx.AsyncClient, who: Issued, query: str = "") -> dict[str, Any]:
    return ok(await client.get(f"{ACCOUNTS}?{query}" if query else ACCOUNTS,
                               headers=who.headers))


async def create(client: httpx.AsyncClient, who: Issued, **fields: Any) -> dict[str, Any]:
    payload = {"name": "New account", "type": "Client", **fields}
    return ok(await client.post(ACCOUNTS, json=payload, headers=who.headers), 201)


async def post_multipart(client: httpx.AsyncClient, who: Issued, files: dict[str, Any],
                         data: dict[str, str] | None = None, account_id: str | None = None
                         ) -> httpx.Response:
    method = client.put if account_id else client.post
    return await method(url(account_id) if account_id else ACCOUNTS, headers=who.headers,
                        data=data, files=files)


async def manager_without_account_management(factory: Factory) -> Issued:
    operations = await factory.account("Operations")
    return await factory.token(operations["id"], modules=("Access Management",))


async def count_accounts(client: httpx.AsyncClient, admin: Issued) -> int:
    return (await listing(client, admin, "limit=0"))["$meta"]["pagination"]["total"]


# --- authentication and error shape --------------------------------------------------------

@pytest.mark.parametrize("authorization", [None, "Bearer ", "Basic dXNlcjpwYXNz",
                                           "Bearer idt:TKN-0000-0000:nonsense", "nonsense"])
@pytest.mark.parametrize("method,path", [
    ("GET", ACCOUNTS), ("GET", f"{ACCOUNTS}/ACC-0000-0000"), ("POST", ACCOUNTS),
    ("PUT", f"{ACCOUNTS}/ACC-0000-0000"), ("POST", f"{ACCOUNTS}/ACC-0000-0000/disable"),
    ("POST", f"{ACCOUNTS}/ACC-0000-0000/enable"), ("GET", f"{ACCOUNTS}/ACC-0000-0000/icon"),
])
async def test_without_a_valid_credential_is_401(client: httpx.AsyncClient, factory: Factory,
                                                 method: str, path: str,
                                                 authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = await client.request(method, path, headers=headers, json={"name": "x"})
    problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_each_error_has_its_own_trace_id(client: httpx.AsyncClient) -> None:
    first, second = [problem(await client.get(ACCOUNTS), 401) for _ in range(2)]
    assert first["traceId"] != second["traceId"]


# --- list ----------------------------------------------------------------------------------

async def test_operations_token_lists_every_account(client: httpx.AsyncClient,
                                                    factory: Factory) -> None:
    admin = await factory.admin()
    client_token = await factory.tenant("Client")
    vendor_token = await factory.tenant("Vendor")
    disabled = await factory.account("Vendor", disabled=True)

    body = await listing(client, admin)

    assert body["$meta"]["pagination"] == {"offset": 0, "limit": 10, "total": 4}
    assert {a["id"] for a in body["data"]} == {admin.account_id, client_token.account_id,
                                                vendor_token.account_id, disabled["id"]}
    statuses = {a["id"]: a["status"] for a in body["data"]}
    assert statuses[disabled["id"]] == "Disabled"


@pytest.mark.parametrize("kind", ["Client", "Vendor"])
async def test_tenant_token_lists_only_its_own_account(client: httpx.AsyncClient,
                                                       factory: Factory, kind: str) -> None:
    await factory.admin()
    await factory.tenant("Client")
    await factory.tenant("Vendor")
    mine = await factory.tenant(kind)

    body = await listing(client, mine)

    assert body["$meta"]["pagination"] == {"offset": 0, "limit": 10, "total": 1}
    assert [a["id"] for a in body["data"]] == [mine.account_id]
    assert body["data"][0]["type"] == kind


async def test_list_items_are_full_accounts(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.admin()
    created = await create(client, admin, **{k: v for k, v in FULL.items() if k != "name"},
                           name="Listed")

    page = await listing(client, admin)
    listed = {a["id"]: a for a in page["data"]}

    # A list item is the object less `audit`, which lists omit unless it is selected.
    assert page["$meta"]["omitted"] == ["audit"]
    assert listed[created["id"]] == {k: v for k, v in created.items() if k != "audit"}


async def test_default_page_is_ten_in_id_order_with_exact_pagination_keys(
        client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.admin()
    for _ in range(11):
        await factory.account("Client")

    body = await listing(client, admin)

    assert set(body) == {"$meta", "data"}
    assert set(body["$meta"]["pagination"]) == {"offset", "limit", "total"}
    assert body["$meta"]["pagination"] == {"offset": 0, "limit": 10, "total": 12}
    ids = [a["id"] for a in body["data"]]
    assert len(ids) == 10
    assert ids == sorted(ids)


async def test_paging_is_stable_and_complete(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.admin()
    for kind in ("Client", "Vendor", "Operations") * 3 + ("Client", "Vendor"):
        await factory.account(kind)
    everything = [a["id"] for a in (await listing(client, admin, "limit=100"))["data"]]
    assert len(everything) == 12
    assert everything == sorted(everything)

    pages = []
    for offset in range(0, 15, 5):
        body = await listing(client, admin, f"limit=5&offset={offset}")
        assert body["$meta"]["pagination"] == {"offset": offset, "limit": 5, "total": 12}
        pages.append([a["id"] for a in body["data"]])

    assert [len(page) for page in pages] == [5, 5, 2]
    assert [i for page in pages for i in page] == everything
    again = await listing(client, admin, "offset=5&limit=5")
    assert [a["id"] for a in again["data"]] == pages[1]


async def test_offset_past_the_end_is_an_empty_page(client: httpx.AsyncClient,
                                                    factory: Factory) -> None:
    admin = await factory.admin()

    body = await listing(client, admin, "offset=50")

    assert body == {"$meta": {"pagination": {"offset": 50, "limit": 10, "total": 1},
                              "omitted": ["audit"]}, "data": []}


async def test_limit_zero_answers_only_the_total(client: httpx.AsyncClient,
                                                 factory: Factory) -> None:
    admin = await factory.admin()
    await factory.account("Vendor")

    body = await listing(client, admin, "limit=0")

    assert body["data"] == []
    assert body["$meta"]["pagination"] == {"offset": 0, "limit": 0, "total": 2}


async def test_limit_above_the_maximum_is_reported_clamped(client: httpx.AsyncClient,
                                                           factory: Factory) -> None:
    admin = await factory.admin()

    body = await listing(client, admin, "limit=500")

    assert body["$meta"]["pagination"] == {"offset": 0, "limit": 100, "total": 1}


@pytest.mark.parametrize("query", ["select=", "order=", "select=&order=", "limit=&offset=",
                                   "LIMIT=2", "limit=2&offset=0&select="])
async def test_empty_select_and_order_are_accepted(client: httpx.AsyncClient, factory: Factory,
                                                   query: str) -> None:
    admin = await factory.admin()

    body = await listing(client, admin, query)

    assert [a["id"] for a in body["data"]] == [admin.account_id]


@pytest.mark.parametrize("query,key", [
    ("limit=-1", "limit"), ("limit=abc", "limit"), ("limit=1.5", "limit"),
    ("offset=-3", "offset"), ("offset=x", "offset"), ("limit=1&limit=2", "limit"),
    ("foo=1", "foo"), ("select=+nickname", "select"), ("order=-groups", "groups"),
    ("eq(nickname,x)", "nickname"), ("any(groups,eq(nickname,x))", "nickname"),
])
async def test_bad_list_parameters_are_400(client: httpx.AsyncClient, factory: Factory,
                                           query: str, key: str) -> None:
    admin = await factory.admin()

    problem(await client.get(f"{ACCOUNTS}?{query}", headers=admin.headers), 400, key)


async def test_filters_select_accounts(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.admin()
    spaced = await factory.account("Client", name="A B")
    vendor = await factory.account("Vendor", name="x")

    assert [a["id"] for a in (await listing(client, admin, "eq(name,x)"))["data"]] == [
        vendor["id"]]
    both = await listing(client, admin, f"or(eq(id,'{spaced['id']}'),eq(name,'A%20B'))")
    assert [a["id"] for a in both["data"]] == [spaced["id"]]
    grouped = await listing(client, admin, "any(groups,eq(isDefault,true))&type=vendor")
    assert [a["id"] for a in grouped["data"]] == [vendor["id"]]
    ordered = await listing(client, admin, "order=-name&select=-*,+name")
    assert [a["name"] for a in ordered["data"]] == sorted(
        [a["name"] for a in ordered["data"]], reverse=True)
    assert all(set(a) == {"id", "name"} for a in ordered["data"])


# --- get -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["Client", "Vendor"])
async def test_tenant_reads_its_own_account(client: httpx.AsyncClient, factory: Factory,
                                            kind: str) -> None:
    mine = await factory.tenant(kind)

    body = ok(await client.get(url(mine.account_id), headers=mine.headers))

    assert body["id"] == mine.account_id
    assert body["href"] == url(mine.account_id)
    assert body["type"] == kind
    assert body["status"] == "Active"


async def test_another_tenants_account_is_not_found(client: httpx.AsyncClient,
                                                    factory: Factory) -> None:
    mine = await factory.tenant("Client")
    theirs = await factory.tenant("Vendor")
    operations = await factory.admin()

    for other in (theirs.account_id, operations.account_id):
        body = problem(await client.get(url(other), headers=mine.headers), 404)
        assert body["title"] == "Not Found"


async def test_operations_reads_any_account(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant("Vendor")

    body = ok(await client.get(url(tenant.account_id), headers=admin.headers))

    assert body["id"] == tenant.account_id
    assert body["type"] == "Vendor"


@pytest.mark.parametrize("account_id", ["ACC-0000-0000", "nonsense", "TKN-1234-5678"])
async def test_unknown_account_is_not_found(client: httpx.AsyncClient, factory: Factory,
                                            account_id: str) -> None:
    admin = await factory.admin()

    problem(await client.get(url(account_id), headers=admin.headers), 404)


# --- create --------------------------------------------------------------------------------

async def test_create_returns_the_new_active_account(client: httpx.AsyncClient,
                                                     factory: Factory) -> None:
    admin = await factory.admin()

    body = await create(client, admin, **FULL)

    assert ACCOUNT_ID.match(body["id"])
    assert body["href"] == url(body["id"])
    assert body["status"] == "Active"
    assert body["revision"] == 1
    assert body["icon"] is None
    for key, value in FULL.items():
        assert body[key] == value, key
    created = body["audit"]["created"]
    assert TIMESTAMP.match(created["at"])
    assert created["by"]["id"] == admin.id
    assert "updated" not in body["audit"] or body["audit"]["updated"] is None
    [group] = body["groups"]
    assert GROUP_ID.match(group["id"])
    assert group["isDefault"] is True
    assert group["name"]
    assert ok(await client.get(url(body["id"]), headers=admin.headers)) == body


async def test_create_with_only_the_required_fields(client: httpx.AsyncClient,
                                                    factory: Factory) -> None:
    admin = await factory.admin()

    body = await create(client, admin, name="  Minimal  ", type="Vendor")

    assert body["name"] == "Minimal"
    assert body["type"] == "Vendor"
    assert body["externalIds"] == {"pyraTenantId": None}
    for key in ("description", "externalId", "externalName", "serviceLevel", "address",
                "technicalSupportEmail", "website", "icon"):
        assert body[key] is None, key


async def test_created_ids_are_distinct(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.admin()

    bodies = [await create(client, admin, name=f"A{i}") for i in range(5)]

    assert len({b["id"] for b in bodies}) == 5
    assert len({b["groups"][0]["id"] for b in bodies}) == 5


@pytest.mark.parametrize("payload,key", [
    ({"type": "Client"}, "name"),
    ({"name": "", "type": "Client"}, "name"),
    ({"name": "   ", "type": "Client"}, "name"),
    ({"name": "x" * 256, "type": "Client"}, "name"),
    ({"name": 42, "type": "Client"}, "name"),
    ({"name": "A"}, "type"),
    ({"name": "A", "type": "Reseller"}, "type"),
    ({"name": "A", "type": "client"}, "type"),
    ({"name": "A", "type": "Client", "technicalSupportEmail": "not-an-email"},
     "technicalSupportEmail"),
    ({"name": "A", "type": "Client", "externalIds": {"pyraTenantId": "not-a-uuid"}},
     "externalIds.pyraTenantId"),
    ({"name": "A", "type": "Client", "colour": "red"}, "colour"),
    ({"name": "A", "type": "Client", "address": {"street": "Main"}}, "address.street"),
    ({"name": "A", "type": "Client", "description": "d" * 2001}, "description"),
])
async def test_create_rejects_invalid_input(client: httpx.AsyncClient, factory: Factory,
                                            payload: dict[str, Any], key: str) -> None:
    admin = await factory.admin()

    body = problem(await client.post(ACCOUNTS, json=payload, headers=admin.headers), 400, key)

    assert body["errors"][key] and all(isinstance(m, str) for m in body["errors"][key])
    assert await count_accounts(client, admin) == 1


async def test_missing_name_message(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.admin()

    body = problem(await client.post(ACCOUNTS, json={"type": "Client"}, headers=admin.headers),
                   400)

    assert body["errors"] == {"name": ["The name is required."]}


async def test_unknown_property_is_named(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.admin()

    body = problem(await client.post(ACCOUNTS, json={"name": "A", "type": "Client",
                                                     "colour": "red"}, headers=admin.headers),
                   400)

    assert "colour" in json.dumps(body["errors"])


@pytest.mark.parametrize("content", [b'{"name": "A", "type": ', b"not json", b"\xff\xfe"])
async def test_malformed_json_is_400(client: httpx.AsyncClient, factory: Factory,
                                     content: bytes) -> None:
    admin = await factory.admin()

    problem(await client.post(ACCOUNTS, content=content, headers={
        **admin.headers, "Content-Type": "application/json"}), 400)


@pytest.mark.parametrize("content", [b"", b"[]", b'"name"', b"null"])
async def test_body_must_be_a_json_object(client: httpx.AsyncClient, factory: Factory,
                                          content: bytes) -> None:
    admin = await factory.admin()

    problem(await client.post(ACCOUNTS, content=content, headers={
        **admin.headers, "Content-Type": "application/json"}), 400)


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
async def test_wrong_content_type_is_415(client: httpx.AsyncClient, factory: Factory,
                                         content_type: str | None) -> None:
    admin = await factory.admin()
    headers = {**admin.headers}
    if content_type:
        headers["Content-Type"] = content_type

    problem(await client.post(ACCOUNTS, content=json.dumps({"name": "A", "type": "Client"}),
                              headers=headers), 415)
    assert await count_accounts(client, admin) == 1


async def test_json_body_over_one_mib_is_413(client: httpx.AsyncClient,
                                             factory: Factory) -> None:
    admin = await factory.admin()

    problem(await client.post(ACCOUNTS, headers=admin.headers, json={
        "name": "A", "type": "Client", "description": "x" * (MIB + 1)}), 413)


async def test_json_with_charset_is_accepted(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.admin()

    response = await client.post(ACCOUNTS, content=json.dumps({"name": "A", "type": "Client"}),
                                 headers={**admin.headers,
                                          "Content-Type": "application/json; charset=utf-8"})

    assert ok(response, 201)["name"] == "A"


async def test_read_only_fields_are_accepted_and_ignored(client: httpx.AsyncClient,
                                                         factory: Factory) -> None:
    admin = await factory.admin()
    read_only = {
        "id": "ACC-1111-2222", "href": "/elsewhere", "status": "Disabled", "revision": 7,
        "audit": {"created": {"at": "2000-01-01T00:00:00.000Z", "by": {"id": "TKN-1-1"}}},
        "$meta": {"anything": True}, "icon": "/some/icon.png",
        "groups": [{"id": "UGR-1111-1111", "name": "Mine", "isDefault": False}],
    }

    body = await create(client, admin, name="Read-only", **read_only)

    assert body["id"] != "ACC-1111-2222"
    assert body["href"] == url(body["id"])
    assert body["status"] == "Active"
    assert body["revision"] == 1
    assert body["icon"] is None
    assert body["audit"]["created"]["by"]["id"] == admin.id
    assert body["audit"]["created"]["at"] != "2000-01-01T00:00:00.000Z"
    assert [g["isDefault"] for g in body["groups"]] == [True]
    assert "$meta" not in body


@pytest.mark.parametrize("kind", ["Client", "Vendor"])
async def test_tenant_cannot_create_accounts(client: httpx.AsyncClient, factory: Factory,
                                             kind: str) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant(kind, modules=("Access Management", "Account Management"))

    problem(await client.post(ACCOUNTS, json={"name": "A", "type": kind},
                              headers=tenant.headers), 403)
    assert await count_accounts(client, admin) == 2


async def test_create_needs_the_account_management_module(client: httpx.AsyncClient,
                                                          factory: Factory) -> None:
    admin = await factory.admin()
    operator = await manager_without_account_management(factory)

    problem(await client.post(ACCOUNTS, json={"name": "A", "type": "Client"},
                              headers=operator.headers), 403)
    assert await count_accounts(client, admin) == 2


async def test_forbidden_comes_before_body_checks(client: httpx.AsyncClient,
                                                  factory: Factory) -> None:
    tenant = await factory.tenant("Client")

    problem(await client.post(ACCOUNTS, content=b"not json", headers={
        **tenant.headers, "Content-Type": "text/plain"}), 403)


# --- multipart and icons -------------------------------------------------------------------

async def test_multipart_create_stores_and_serves_the_icon(client: httpx.AsyncClient,
                                                           factory: Factory) -> None:
    admin = await factory.admin()
    image = tiny_png()

    response = await post_multipart(client, admin, data={"account": json.dumps(FULL)},
                                    files={"icon": ("icon.png", image, "image/png")})

    body = ok(response, 201)
    assert body["name"] == FULL["name"]
    assert body["address"] == FULL["address"]
    assert body["icon"].startswith(url(body["id"], "icon"))
    icon = await client.get(url(body["id"], "icon"), headers=admin.headers)
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/png"
    assert icon.headers["x-content-type-options"] == "nosniff"
    assert icon.content == image
    linked = await client.get(body["icon"], headers=admin.headers)
    assert linked.status_code == 200 and linked.content == image
    assert ok(await client.get(url(body["id"]), headers=admin.headers))["icon"] == body["icon"]


async def test_multipart_account_as_json_file_part_and_logo(client: httpx.AsyncClient,
                                                            factory: Factory) -> None:
    admin = await factory.admin()
    image = b"GIF89a" + b"\x01\x00\x01\x00\x00\x00\x00;"
    files = {"account": ("account.json", json.dumps({"name": "Filed", "type": "Vendor"}),
                         "application/json"),
             "logo": ("logo.gif", image, "image/gif")}

    body = ok(await post_multipart(client, admin, files=files), 201)

    assert (body["name"], body["type"]) == ("Filed", "Vendor")
    icon = await client.get(url(body["id"], "icon"), headers=admin.headers)
    assert icon.headers["content-type"] == "image/gif"
    assert icon.content == image


async def test_multipart_without_icon(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.admin()
    files = {"account": ("account.json", json.dumps({"name": "Plain", "type": "Client"}),
                         "application/json")}

    body = ok(await post_multipart(client, admin, files=files), 201)

    assert body["icon"] is None
    problem(await client.get(url(body["id"], "icon"), headers=admin.headers), 404)


async def test_tenant_reads_its_own_icon_but_not_anothers(client: httpx.AsyncClient,
                                                          factory: Factory) -> None:
    admin = await factory.admin()
    mine = await factory.tenant("Client")
    theirs = await factory.tenant("Client")
    image = tiny_png()
    for tenant in (mine, theirs):
        ok(await post_multipart(client, admin, account_id=tenant.account_id,
                                data={"account": "{}"},
                                files={"icon": ("i.png", image, "image/png")}))

    own = await client.get(url(mine.account_id, "icon"), headers=mine.headers)
    assert own.status_code == 200 and own.content == image
    problem(await client.get(url(theirs.account_id, "icon"), headers=mine.headers), 404)


@pytest.mark.parametrize("content,content_type", [
    (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
     "image/svg+xml"),
    (b"just some text", "text/plain"),
    (b"just some text", "image/png"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", "image/webp"),
    (b"", "image/png"),
])
async def test_non_image_icon_is_400(client: httpx.AsyncClient, factory: Factory,
                                     content: bytes, content_type: str) -> None:
    admin = await factory.admin()

    response = await post_multipart(client, admin,
                                    data={"account": json.dumps({"name": "A", "type": "Client"})},
                                    files={"icon": ("icon", content, content_type)})

    problem(response, 400, "icon")
    assert await count_accounts(client, admin) == 1


async def test_icon_sent_as_a_text_field_is_400(client: httpx.AsyncClient,
                                                factory: Factory) -> None:
    admin = await factory.admin()
    account = ("account.json", json.dumps({"name": "A", "type": "Client"}), "application/json")

    response = await post_multipart(client, admin, data={"icon": "just some text"},
                                    files={"account": account})

    problem(response, 400, "icon")
    assert await count_accounts(client, admin) == 1


@pytest.mark.parametrize("extra", [1, MIB + 1])
async def test_icon_over_one_mib_is_413(client: httpx.AsyncClient, factory: Factory,
                                        extra: int) -> None:
    admin = await factory.admin()
    image = tiny_png()
    image += b"\x00" * (MIB - len(image) + extra)

    response = await post_multipart(client, admin,
                                    data={"account": json.dumps({"name": "A", "type": "Client"})},
                                    files={"icon": ("big.png", image, "image/png")})

    problem(response, 413)
    assert await count_accounts(client, admin) == 1


async def test_icon_of_exactly_one_mib_is_accepted(client: httpx.AsyncClient,
                                                   factory: Factory) -> None:
    admin = await factory.admin()
    image = tiny_png()
    image += b"\x00" * (MIB - len(image))

    body = ok(await post_multipart(
        client, admin, data={"account": json.dumps({"name": "A", "type": "Client"})},
        files={"icon": ("big.png", image, "image/png")}), 201)

    assert (await client.get(url(body["id"], "icon"), headers=admin.headers)).content == image


async def test_multipart_without_account_part_is_400(client: httpx.AsyncClient,
                                                     factory: Factory) -> None:
    admin = await factory.admin()

    response = await post_multipart(client, admin,
                                    files={"icon": ("icon.png", tiny_png(), "image/png")})

    problem(response, 400, "account")
    assert await count_accounts(client, admin) == 1


@pytest.mark.parametrize("data,files,key", [
    ({"account": "{not json"}, {"icon": ("i.png", tiny_png(), "image/png")}, None),
    ({"account": json.dumps({"type": "Client"})}, {"icon": ("i.png", tiny_png(), "image/png")},
     "name"),
    ({"account": json.dumps({"name": "A", "type": "Client"}), "other": "x"},
     {"icon": ("i.png", tiny_png(), "image/png")}, "other"),
])
async def test_invalid_multipart_is_400(client: httpx.AsyncClient, factory: Factory,
                                        data: dict[str, str], files: dict[str, Any],
                                        key: str | None) -> None:
    admin = await factory.admin()

    response = await post_multipart(client, admin, data=data, files=files)

    problem(response, 400, *([key] if key else []))
    assert await count_accounts(client, admin) == 1


async def test_malformed_multipart_body_is_400(client: httpx.AsyncClient,
                                               factory: Factory) -> None:
    admin = await factory.admin()

    response = await client.post(ACCOUNTS, content=b"--nope\r\nrubbish", headers={
        **admin.headers, "Content-Type": "multipart/form-data"})

    problem(response, 400)


async def test_multipart_update_replaces_the_icon(client: httpx.AsyncClient,
                                                  factory: Factory) -> None:
    admin = await factory.admin()
    account = await factory.account("Vendor")
    first, second = tiny_png(), b"\xff\xd8\xff\xe0" + b"\x00" * 20

    for image, kind in ((first, "image/png"), (second, "image/jpeg")):
        body = ok(await post_multipart(client, admin, account_id=account["id"],
                                       data={"account": json.dumps({"description": kind})},
                                       files={"icon": ("icon", image, kind)}))
        assert body["description"] == kind
        assert body["icon"].startswith(url(account["id"], "icon"))
        icon = await client.get(url(account["id"], "icon"), headers=admin.headers)
        assert (icon.headers["content-type"], icon.content) == (kind, image)

    assert body["name"] == account["name"]


async def test_create_with_an_icon_is_at_revision_one(client: httpx.AsyncClient,
                                                      factory: Factory) -> None:
    admin = await factory.admin()

    body = ok(await post_multipart(
        client, admin, data={"account": json.dumps({"name": "A", "type": "Client"})},
        files={"icon": ("i.png", tiny_png(), "image/png")}), 201)

    assert body["revision"] == 1
    assert ok(await client.get(url(body["id"]), headers=admin.headers))["revision"] == 1
    ok(await client.put(url(body["id"]), headers=admin.headers,
                        json={"description": "x", "revision": body["revision"]}))


async def test_multipart_update_of_fields_and_icon_is_one_revision(client: httpx.AsyncClient,
                                                                   factory: Factory) -> None:
    admin = await factory.admin()
    account = await factory.account("Vendor")

    body = ok(await post_multipart(client, admin, account_id=account["id"],
                                   data={"account": json.dumps({"description": "new"})},
                                   files={"icon": ("i.png", tiny_png(), "image/png")}))

    assert body["revision"] == 2
    assert ok(await client.get(url(account["id"]), headers=admin.headers))["revision"] == 2


async def test_icon_of_an_unknown_account_is_404(client: httpx.AsyncClient,
                                                 factory: Factory) -> None:
    admin = await factory.admin()

    problem(await client.get(url("ACC-0000-0000", "icon"), headers=admin.headers), 404)


# --- update --------------------------------------------------------------------------------

async def test_update_changes_given_fields_and_keeps_the_others(client: httpx.AsyncClient,
                                                                factory: Factory) -> None:
    admin = await factory.admin()
    before = await create(client, admin, **FULL)

    response = await client.put(url(before["id"]), headers=admin.headers, json={
        "name": "Renamed", "address": {"city": "Boston"}, "website": None})

    after = ok(response)
    assert after["name"] == "Renamed"
    assert after["address"]["city"] == "Boston"
    assert after["website"] is None
    for key in ("type", "description", "externalIds", "externalId", "externalName",
                "serviceLevel", "technicalSupportEmail", "groups", "status", "id"):
        assert after[key] == before[key], key
    assert after["revision"] == before["revision"] + 1
    assert after["audit"]["created"] == before["audit"]["created"]
    updated = after["audit"]["updated"]
    assert TIMESTAMP.match(updated["at"])
    assert updated["at"] >= before["audit"]["created"]["at"]
    assert updated["by"]["id"] == admin.id
    assert ok(await client.get(url(before["id"]), headers=admin.headers)) == after


async def test_put_back_what_get_returned(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.admin()
    created = await create(client, admin, **FULL)
    read = ok(await client.get(url(created["id"]), headers=admin.headers))

    after = ok(await client.put(url(created["id"]), headers=admin.headers, json=read))

    assert after["revision"] == read["revision"] + 1
    for key, value in read.items():
        if key not in ("revision", "audit"):
            assert after[key] == value, key


async def test_put_back_a_bare_account_and_one_with_an_icon(client: httpx.AsyncClient,
                                                            factory: Factory) -> None:
    admin = await factory.admin()
    bare = await factory.account("Vendor")
    ok(await client.put(url(bare["id"]), headers=admin.headers, json=bare))
    ok(await post_multipart(client, admin, account_id=bare["id"], data={"account": "{}"},
                            files={"icon": ("i.png", tiny_png(), "image/png")}))
    read = ok(await client.get(url(bare["id"]), headers=admin.headers))

    after = ok(await client.put(url(bare["id"]), headers=admin.headers, json=read))

    assert after["icon"] == read["icon"]
    assert after["revision"] == 4


async def test_stale_revision_is_409(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.admin()
    account = await factory.account("Client")
    ok(await client.put(url(account["id"]), headers=admin.headers,
                        json={"description": "first", "revision": 1}))

    problem(await client.put(url(account["id"]), headers=admin.headers,
                             json={"description": "second", "revision": 1}), 409)

    current = ok(await client.get(url(account["id"]), headers=admin.headers))
    assert (current["description"], current["revision"]) == ("first", 2)


async def test_concurrent_updates_of_one_revision_exactly_one_wins(
        client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.admin()
    account = await factory.account("Client")

    responses = await asyncio.gather(*(
        client.put(url(account["id"]), headers=admin.headers,
                   json={"description": f"edit {i}", "revision": 1}) for i in range(2)))

    assert sorted(r.status_code for r in responses) == [200, 409]
    winner = next(r.json() for r in responses if r.status_code == 200)
    problem(next(r for r in responses if r.status_code == 409), 409)
    current = ok(await client.get(url(account["id"]), headers=admin.headers))
    assert (current["description"], current["revision"]) == (winner["description"], 2)


async def test_changing_the_type_is_400(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.admin()
    account = await factory.account("Client")

    problem(await client.put(url(account["id"]), headers=admin.headers,
                             json={"type": "Vendor"}), 400, "type")
    same = ok(await client.put(url(account["id"]), headers=admin.headers, json={"type": "Client"}))
    assert same["type"] == "Client"


@pytest.mark.parametrize("payload,key", [
    ({"name": None}, "name"), ({"name": ""}, "name"), ({"name": "n" * 256}, "name"),
    ({"technicalSupportEmail": "nope"}, "technicalSupportEmail"),
    ({"unknown": 1}, "unknown"), ({"type": "Reseller"}, "type"),
])
async def test_update_rejects_invalid_input(client: httpx.AsyncClient, factory: Factory,
                                            payload: dict[str, Any], key: str) -> None:
    admin = await factory.admin()
    account = await factory.account("Client")

    problem(await client.put(url(account["id"]), headers=admin.headers, json=payload), 400, key)
    assert ok(await client.get(url(account["id"]), headers=admin.headers)) == account


async def test_update_wrong_content_type_is_415(client: httpx.AsyncClient,
                                                factory: Factory) -> None:
    admin = await factory.admin()
    account = await factory.account("Client")

    problem(await client.put(url(account["id"]), content=b'{"name": "x"}', headers={
        **admin.headers, "Content-Type": "text/plain"}), 415)


@pytest.mark.parametrize("kind", ["Client", "Vendor"])
async def test_tenant_cannot_update_accounts(client: httpx.AsyncClient, factory: Factory,
                                             kind: str) -> None:
    tenant = await factory.tenant(kind, modules=("Access Management", "Account Management"))
    other = await factory.account(kind)

    for account_id in (tenant.account_id, other["id"]):
        problem(await client.put(url(account_id), headers=tenant.headers,
                                 json={"name": "Mine now"}), 403)


async def test_update_needs_the_account_management_module(client: httpx.AsyncClient,
                                                          factory: Factory) -> None:
    operator = await manager_without_account_management(factory)
    account = await factory.account("Client")

    problem(await client.put(url(account["id"]), headers=operator.headers,
                             json={"name": "x"}), 403)


async def test_update_of_an_unknown_account_is_404(client: httpx.AsyncClient,
                                                   factory: Factory) -> None:
    admin = await factory.admin()

    problem(await client.put(url("ACC-0000-0000"), headers=admin.headers,
                             json={"name": "x"}), 404)


# --- disable and enable --------------------------------------------------------------------

async def action(client: httpx.AsyncClient, who: Issued, account_id: str,
                 name: str) -> httpx.Response:
    """POST enable/disable the way the official client does: Content-Length 0, no type."""
    return await client.post(url(account_id, name), headers={**who.headers,
                                                             "Content-Length": "0"})


async def test_disable_stops_every_token_of_the_account_and_enable_restores_them(
        client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant("Client")
    second = await factory.token(tenant.account_id)
    bystander = await factory.tenant("Client")

    disabled = ok(await action(client, admin, tenant.account_id, "disable"))

    assert disabled["status"] == "Disabled"
    assert disabled["revision"] == 2
    assert disabled["audit"]["updated"]["by"]["id"] == admin.id
    for token in (tenant, second):
        for path in (TOKENS, url(tenant.account_id), ACCOUNTS):
            response = await client.get(path, headers=token.headers)
            problem(response, 401)
            assert response.headers["www-authenticate"] == "Bearer"
    ok(await client.get(TOKENS, headers=bystander.headers))
    read = ok(await client.get(url(tenant.account_id), headers=admin.headers))
    assert read["status"] == "Disabled"

    enabled = ok(await action(client, admin, tenant.account_id, "enable"))

    assert enabled["status"] == "Active"
    assert enabled["revision"] == 3
    for token in (tenant, second):
        ok(await client.get(TOKENS, headers=token.headers))
        ok(await client.get(url(tenant.account_id), headers=token.headers))


async def test_disable_twice_is_409(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.admin()
    account = await factory.account("Vendor")
    ok(await action(client, admin, account["id"], "disable"))

    problem(await action(client, admin, account["id"], "disable"), 409)


async def test_enable_of_an_active_account_is_409(client: httpx.AsyncClient,
                                                  factory: Factory) -> None:
    admin = await factory.admin()
    account = await factory.account("Vendor")

    problem(await action(client, admin, account["id"], "enable"), 409)
    assert ok(await client.get(url(account["id"]), headers=admin.headers))["revision"] == 1


async def test_an_admin_cannot_disable_its_own_account(client: httpx.AsyncClient,
                                                       factory: Factory) -> None:
    admin = await factory.admin()

    problem(await action(client, admin, admin.account_id, "disable"), 409)
    ok(await client.get(TOKENS, headers=admin.headers))


async def test_another_operations_account_can_be_disabled(client: httpx.AsyncClient,
                                                          factory: Factory) -> None:
    admin = await factory.admin()
    other = await factory.admin()

    ok(await action(client, admin, other.account_id, "disable"))

    problem(await client.get(TOKENS, headers=other.headers), 401)
    ok(await client.get(TOKENS, headers=admin.headers))


async def test_concurrent_disables_exactly_one_wins(client: httpx.AsyncClient,
                                                   factory: Factory) -> None:
    admin = await factory.admin()
    account = await factory.account("Vendor")

    responses = await asyncio.gather(*(action(client, admin, account["id"], "disable")
                                       for _ in range(2)))

    assert sorted(r.status_code for r in responses) == [200, 409]
    current = ok(await client.get(url(account["id"]), headers=admin.headers))
    assert (current["status"], current["revision"]) == ("Disabled", 2)


@pytest.mark.parametrize("name", ["disable", "enable"])
async def test_actions_accept_an_empty_json_object(client: httpx.AsyncClient, factory: Factory,
                                                   name: str) -> None:
    admin = await factory.admin()
    account = await factory.account("Client", disabled=name == "enable")

    body = ok(await client.post(url(account["id"], name), json={}, headers=admin.headers))

    assert body["status"] == ("Disabled" if name == "disable" else "Active")


@pytest.mark.parametrize("name", ["disable", "enable"])
async def test_actions_refuse_a_body_with_properties(client: httpx.AsyncClient,
                                                     factory: Factory, name: str) -> None:
    admin = await factory.admin()
    account = await factory.account("Client", disabled=name == "enable")

    problem(await client.post(url(account["id"], name), json={"status": "x"},
                              headers=admin.headers), 400)


@pytest.mark.parametrize("name", ["disable", "enable"])
async def test_tenant_cannot_disable_or_enable(client: httpx.AsyncClient, factory: Factory,
                                               name: str) -> None:
    tenant = await factory.tenant("Client", modules=("Access Management", "Account Management"))
    other = await factory.account("Client", disabled=name == "enable")

    for account_id in (tenant.account_id, other["id"]):
        problem(await action(client, tenant, account_id, name), 403)


@pytest.mark.parametrize("name", ["disable", "enable"])
async def test_actions_need_the_account_management_module(client: httpx.AsyncClient,
                                                          factory: Factory, name: str) -> None:
    operator = await manager_without_account_management(factory)
    account = await factory.account("Client", disabled=name == "enable")

    problem(await action(client, operator, account["id"], name), 403)


@pytest.mark.parametrize("name", ["disable", "enable"])
async def test_actions_on_an_unknown_account_are_404(client: httpx.AsyncClient,
                                                     factory: Factory, name: str) -> None:
    admin = await factory.admin()

    problem(await action(client, admin, "ACC-0000-0000", name), 404)
