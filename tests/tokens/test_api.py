"""The API tokens endpoints over HTTP: shapes, validation, privileges, tenant isolation."""

import re
from typing import Any

import pytest

from tests.factories import ALL_OF_TYPE
from tests.helpers import TIMESTAMP, TOKENS, problem

SECRET_SHAPE = r"^idt:TKN-\d{4}-\d{4}:[0-9A-Za-z]{49}$"


async def create(client, issued, account_id: str, module_ids: list[str], **extra: Any):
    body = {"name": "CI token", "account": {"id": account_id},
            "modules": [{"id": m} for m in module_ids], **extra}
    return await client.post(TOKENS, json=body, headers=issued.headers)


async def test_create_answers_201_with_secret_and_revision_1(client, factory):
    admin = await factory.admin()
    modules = await factory.modules()
    response = await create(client, admin, admin.account_id, [modules["Access Management"]],
                            description="for the pipeline")
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    token = response.json()
    assert token["id"].startswith("TKN-")
    assert token["href"] == f"{TOKENS}/{token['id']}"
    assert token["status"] == "Active"
    assert token["revision"] == 1
    assert token["description"] == "for the pipeline"
    assert token["lastAccessAt"] is None
    assert token["token"].split(":")[1] == token["id"]
    assert re.match(SECRET_SHAPE, token["token"])
    assert token["account"]["id"] == admin.account_id
    assert token["account"]["type"] == "Operations"
    assert [m["name"] for m in token["modules"]] == ["Access Management"]
    assert TIMESTAMP.match(token["audit"]["created"]["at"])
    assert token["audit"]["created"]["by"]["id"] == admin.id
    assert "updated" not in token["audit"]


async def test_new_secret_authenticates_at_once(client, factory):
    admin = await factory.admin()
    modules = await factory.modules()
    created = (await create(client, admin, admin.account_id,
                            [modules["Access Management"]])).json()
    response = await client.get(TOKENS, headers={"Authorization": f"Bearer {created['token']}"})
    assert response.status_code == 200


async def test_secret_is_shown_only_on_create_and_to_itself(client, factory):
    admin = await factory.admin()
    other = await factory.token(admin.account_id, ("Access Management",))
    # Read by another token: no secret.
    by_admin = (await client.get(f"{TOKENS}/{other.id}", headers=admin.headers)).json()
    assert "token" not in by_admin
    listed = (await client.get(TOKENS, headers=admin.headers)).json()["data"]
    assert all("token" not in item for item in listed)
    # Read by itself (what mpt-cli does): the secret it already holds.
    by_itself = await client.get(f"{TOKENS}/{other.id}?select=", headers=other.headers)
    assert by_itself.status_code == 200
    assert by_itself.json()["token"] == other.secret
    assert by_itself.headers["cache-control"] == "no-store"


async def test_a_token_reads_itself_without_access_management(client, factory):
    tenant = await factory.tenant("Client", modules=("Marketplace",))
    own = await client.get(f"{TOKENS}/{tenant.id}", headers=tenant.headers)
    assert own.status_code == 200
    assert own.json()["account"]["id"] == tenant.account_id
    problem(await client.get(TOKENS, headers=tenant.headers), 403)


async def test_list_envelope_and_defaults(client, factory):
    admin = await factory.admin()
    for _ in range(11):
        await factory.token(admin.account_id)
    response = await client.get(TOKENS, headers=admin.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["$meta"]["pagination"] == {"offset": 0, "limit": 10, "total": 12}
    assert body["$meta"]["omitted"] == ["audit"]
    ids = [item["id"] for item in body["data"]]
    assert len(ids) == 10 and ids == sorted(ids)
    assert all("audit" not in item for item in body["data"])


@pytest.mark.parametrize("query,limit,count", [("limit=0", 0, 0), ("limit=500", 100, 13),
                                               ("limit=5&offset=10", 5, 3),
                                               ("offset=20", 10, 0), ("select=", 10, 10),
                                               ("limit=3&select=&order=", 3, 3)])
async def test_list_paging(client, factory, query, limit, count):
    admin = await factory.admin()
    for _ in range(12):
        await factory.token(admin.account_id)
    body = (await client.get(f"{TOKENS}?{query}", headers=admin.headers)).json()
    assert body["$meta"]["pagination"]["limit"] == limit
    assert body["$meta"]["pagination"]["total"] == 13
    assert len(body["data"]) == count


async def test_pages_cover_every_token_once(client, factory):
    admin = await factory.admin()
    for _ in range(14):
        await factory.token(admin.account_id)
    seen: list[str] = []
    for offset in range(0, 15, 4):
        page = (await client.get(f"{TOKENS}?limit=4&offset={offset}",
                                 headers=admin.headers)).json()
        seen += [item["id"] for item in page["data"]]
    assert len(seen) == 15 and len(set(seen)) == 15


@pytest.mark.parametrize("query", ["limit=-1", "limit=abc", "offset=-5", "limit=1.5",
                                   "foo=1", "eq(status,Active", "limit=1&limit=2",
                                   "select=-nickname", "order=modules", "eq(secret,1)",
                                   "gt(status,Active)", "eq(modules.name,Billing)"])
async def test_bad_list_queries_are_400(client, factory, query):
    admin = await factory.admin()
    body = problem(await client.get(f"{TOKENS}?{query}", headers=admin.headers), 400)
    assert body["detail"]


@pytest.mark.parametrize("payload,field", [
    ({"name": None}, "name"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 256}, "name"),
    ({"description": "d" * 2001}, "description"),
    ({"modules": []}, "modules"),
    ({"modules": None}, "modules"),
    ({"modules": [{"id": "MOD-0000"}]}, "modules"),
    ({"modules": [{"name": "Access Management"}]}, "modules[0].id"),
    ({"account": None}, "account"),
    ({"account": {"id": "ACC-0000-0000"}}, "account"),
    ({"colour": "blue"}, "colour"),
])
async def test_create_validation_names_the_property(client, factory, payload, field):
    admin = await factory.admin()
    modules = await factory.modules()
    body = {"name": "ok", "account": {"id": admin.account_id},
            "modules": [{"id": modules["Access Management"]}], **payload}
    body = {key: value for key, value in body.items() if value is not None}
    result = problem(await client.post(TOKENS, json=body, headers=admin.headers), 400)
    assert field in result["errors"], result
    assert result["errors"][field][0]


async def test_malformed_json_and_wrong_content_type(client, factory):
    admin = await factory.admin()
    headers = {**admin.headers, "Content-Type": "application/json"}
    bad = problem(await client.post(TOKENS, content=b'{"name": ', headers=headers), 400)
    assert "JSON" in bad["detail"]
    problem(await client.post(TOKENS, content=b"[1, 2]", headers=headers), 400)
    problem(await client.post(TOKENS, content=b"", headers=headers), 400)
    text = {**admin.headers, "Content-Type": "text/plain"}
    problem(await client.post(TOKENS, content=b'{"name": "x"}', headers=text), 415)


async def test_read_only_fields_are_accepted_and_ignored(client, factory):
    admin = await factory.admin()
    modules = await factory.modules()
    response = await create(client, admin, admin.account_id, [modules["Access Management"]],
                            id="TKN-1111-1111", href="/elsewhere", status="Disabled",
                            token="idt:TKN-1111-1111:chosen", lastAccessAt="2020-01-01",
                            audit={"created": {"at": "2020-01-01"}}, revision=7,
                            **{"$meta": {"omitted": []}})
    assert response.status_code == 201, response.text
    token = response.json()
    assert token["id"] != "TKN-1111-1111"
    assert token["status"] == "Active"
    assert token["revision"] == 1
    assert token["token"] != "idt:TKN-1111-1111:chosen"


async def test_a_token_cannot_grant_a_module_it_does_not_hold(client, factory):
    vendor = await factory.tenant("Vendor", modules=("Access Management",))
    modules = await factory.modules()
    result = problem(await create(client, vendor, vendor.account_id,
                                  [modules["Access Management"], modules["Catalog Management"]]),
                     400)
    assert "modules" in result["errors"]
    assert "Catalog Management" in result["errors"]["modules"][0]


async def test_a_module_must_suit_the_account_type(client, factory):
    admin = await factory.admin()
    client_account = await factory.account("Client")
    modules = await factory.modules()
    # The admin holds Catalog Management, but Client accounts may not use it.
    result = problem(await create(client, admin, client_account["id"],
                                  [modules["Catalog Management"]]), 400)
    assert "not available to Client" in result["errors"]["modules"][0]
    ok = await create(client, admin, client_account["id"], [modules["Marketplace"]])
    assert ok.status_code == 201, ok.text


async def test_operations_creates_tokens_for_any_account(client, factory):
    admin = await factory.admin()
    vendor_account = await factory.account("Vendor")
    modules = await factory.modules()
    response = await create(client, admin, vendor_account["id"], [modules["Access Management"]])
    assert response.status_code == 201
    assert response.json()["account"]["type"] == "Vendor"


async def test_disabled_account_gets_no_new_tokens(client, factory):
    admin = await factory.admin()
    gone = await factory.account("Client", disabled=True)
    modules = await factory.modules()
    result = problem(await create(client, admin, gone["id"], [modules["Access Management"]]),
                     400)
    assert "account" in result["errors"]


class TestTenantIsolation:
    """A Vendor token cannot see, change or learn of another account's tokens."""

    async def setup(self, factory):
        mine = await factory.tenant("Vendor", modules=ALL_OF_TYPE)
        theirs = await factory.tenant("Vendor", modules=ALL_OF_TYPE)
        return mine, theirs

    async def test_list_shows_only_own_tokens(self, client, factory):
        mine, theirs = await self.setup(factory)
        await factory.token(mine.account_id)
        body = (await client.get(TOKENS, headers=mine.headers)).json()
        assert body["$meta"]["pagination"]["total"] == 2
        assert {item["account"]["id"] for item in body["data"]} == {mine.account_id}
        assert theirs.id not in {item["id"] for item in body["data"]}

    async def test_one_query_string_is_scoped_anew_for_each_tenant(self, client, factory):
        """List statements are built once per query and kept: the tenant is a parameter of
        each run, never a value left in the kept statement by whoever came first."""
        mine, theirs = await self.setup(factory)
        query = f"{TOKENS}?eq(status,Active)&order=-audit.created.at&limit=10"
        for _ in range(2):
            for who in (mine, theirs):
                body = (await client.get(query, headers=who.headers)).json()
                assert [item["id"] for item in body["data"]] == [who.id]

    @pytest.mark.parametrize("method,suffix,body", [
        ("GET", "", None), ("PUT", "", {"name": "mine now"}), ("DELETE", "", None),
        ("POST", "/disable", None), ("POST", "/enable", None),
        ("PUT", "", {"bogus": True}), ("PUT", "", None)])
    async def test_another_tenants_token_is_404(self, client, factory, method, suffix, body):
        mine, theirs = await self.setup(factory)
        url = f"{TOKENS}/{theirs.id}{suffix}"
        response = await client.request(method, url, json=body, headers=mine.headers)
        # 404 before any state (enable of an Active token would be 409) or body check.
        result = problem(response, 404)
        assert result["title"] == "Not Found"
        unknown = await client.request(method, f"{TOKENS}/TKN-0000-0000{suffix}", json=body,
                                       headers=mine.headers)
        assert unknown.json()["detail"].replace("TKN-0000-0000", theirs.id) == result["detail"]
        # ... and nothing changed.
        still = (await client.get(f"{TOKENS}/{theirs.id}", headers=theirs.headers)).json()
        assert still["status"] == "Active" and still["revision"] == 1

    async def test_cannot_create_tokens_for_another_account(self, client, factory):
        mine, theirs = await self.setup(factory)
        modules = await factory.modules()
        result = problem(await create(client, mine, theirs.account_id,
                                      [modules["Access Management"]]), 400)
        assert "account" in result["errors"]


async def test_client_does_not_see_deleted_tokens_operations_does(client, factory):
    tenant = await factory.tenant("Client")
    deleted = await factory.token(tenant.account_id, status="Deleted")
    admin = await factory.admin()
    problem(await client.get(f"{TOKENS}/{deleted.id}", headers=tenant.headers), 404)
    listed = (await client.get(TOKENS, headers=tenant.headers)).json()
    assert deleted.id not in {item["id"] for item in listed["data"]}
    seen = await client.get(f"{TOKENS}/{deleted.id}", headers=admin.headers)
    assert seen.status_code == 200 and seen.json()["status"] == "Deleted"


async def test_a_create_that_draws_a_taken_id_draws_again(client, factory, monkeypatch):
    """Ids are random: a clash with an existing token (Deleted ones included) must neither
    fail the create nor touch the other token."""
    from tokenhouse.kit import ids

    admin = await factory.admin()
    taken = await factory.token(admin.account_id, status="Deleted")
    real = ids.new_id
    draws = iter([taken.id, taken.id])
    monkeypatch.setattr(ids, "new_id", lambda prefix, *rest: (
        next(draws, None) if prefix == "TKN" else None) or real(prefix, *rest))
    created = await client.post(TOKENS, headers=admin.headers, json={
        "name": "lucky", "account": {"id": admin.account_id},
        "modules": [{"id": "MOD-1732"}]})
    assert created.status_code == 201, created.text
    assert created.json()["id"] not in (taken.id, admin.id)
    assert next(draws, None) is None  # both clashing draws were used
    monkeypatch.undo()
    old = (await client.get(f"{TOKENS}/{taken.id}", headers=admin.headers)).json()
    assert (old["name"], old["status"]) != ("lucky", "Active")
