"""Changing tokens and their states: PUT, disable, enable, delete."""

import asyncio

import pytest

from tests.helpers import TIMESTAMP, TOKENS, problem


async def test_put_changes_given_fields_and_bumps_revision(client, factory):
    admin = await factory.admin()
    target = await factory.token(admin.account_id, name="before")
    response = await client.put(f"{TOKENS}/{target.id}", json={"description": "after"},
                                headers=admin.headers)
    assert response.status_code == 200, response.text
    token = response.json()
    assert token["name"] == "before"
    assert token["description"] == "after"
    assert token["revision"] == 2
    assert TIMESTAMP.match(token["audit"]["updated"]["at"])
    assert token["audit"]["updated"]["by"]["id"] == admin.id
    assert token["audit"]["updated"]["by"]["href"] == f"{TOKENS}/{admin.id}"
    again = (await client.get(f"{TOKENS}/{target.id}", headers=admin.headers)).json()
    assert again["description"] == "after" and again["revision"] == 2


async def test_put_back_what_was_read(client, factory):
    admin = await factory.admin()
    target = await factory.token(admin.account_id, ("Access Management", "Billing"))
    read = (await client.get(f"{TOKENS}/{target.id}", headers=admin.headers)).json()
    read["name"] = "renamed"
    response = await client.put(f"{TOKENS}/{target.id}", json=read, headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "renamed"
    assert [m["name"] for m in response.json()["modules"]] == [m["name"] for m in read["modules"]]


async def test_a_put_of_everything_is_one_revision(client, factory):
    admin = await factory.admin()
    modules = await factory.modules()
    target = await factory.token(admin.account_id, ("Access Management",))
    response = await client.put(f"{TOKENS}/{target.id}", headers=admin.headers, json={
        "name": "renamed", "description": "d", "modules": [{"id": modules["Billing"]}]})
    assert response.status_code == 200, response.text
    assert response.json()["revision"] == 2
    again = (await client.get(f"{TOKENS}/{target.id}", headers=admin.headers)).json()
    assert again["revision"] == 2


async def test_put_replaces_modules(client, factory):
    admin = await factory.admin()
    modules = await factory.modules()
    target = await factory.token(admin.account_id, ("Access Management",))
    response = await client.put(f"{TOKENS}/{target.id}", headers=admin.headers,
                                json={"modules": [{"id": modules["Billing"]}]})
    assert [m["name"] for m in response.json()["modules"]] == ["Billing"]
    # The change is in force for the token at once.
    problem(await client.get(TOKENS, headers=target.headers), 403)


async def test_stale_revision_is_409(client, factory):
    admin = await factory.admin()
    target = await factory.token(admin.account_id)
    first = await client.put(f"{TOKENS}/{target.id}", json={"name": "a", "revision": 1},
                             headers=admin.headers)
    assert first.status_code == 200
    second = problem(await client.put(f"{TOKENS}/{target.id}",
                                      json={"name": "b", "revision": 1},
                                      headers=admin.headers), 409)
    assert "revision" in second["detail"]
    assert (await client.get(f"{TOKENS}/{target.id}",
                             headers=admin.headers)).json()["name"] == "a"


async def test_put_cannot_move_a_token_or_escalate(client, factory):
    vendor = await factory.tenant("Vendor", modules=("Access Management",))
    target = await factory.token(vendor.account_id, ("Access Management",))
    modules = await factory.modules()
    other = await factory.account("Vendor")
    moved = problem(await client.put(f"{TOKENS}/{target.id}", headers=vendor.headers,
                                     json={"account": {"id": other["id"]}}), 400)
    assert "account" in moved["errors"]
    same = await client.put(f"{TOKENS}/{target.id}", headers=vendor.headers,
                            json={"account": {"id": vendor.account_id}, "name": "kept"})
    assert same.status_code == 200
    escalate = problem(await client.put(
        f"{TOKENS}/{target.id}", headers=vendor.headers,
        json={"modules": [{"id": modules["Catalog Management"]}]}), 400)
    assert "modules" in escalate["errors"]


@pytest.mark.parametrize("payload,field", [({"name": ""}, "name"), ({"name": None}, "name"),
                                           ({"modules": []}, "modules"),
                                           ({"modules": None}, "modules"),
                                           ({"nickname": "x"}, "nickname"),
                                           ({"revision": "new"}, "revision")])
async def test_put_validation(client, factory, payload, field):
    admin = await factory.admin()
    target = await factory.token(admin.account_id)
    result = problem(await client.put(f"{TOKENS}/{target.id}", json=payload,
                                      headers=admin.headers), 400)
    assert field in result["errors"]
    assert (await client.get(f"{TOKENS}/{target.id}",
                             headers=admin.headers)).json()["revision"] == 1


async def test_disable_stops_authentication_at_once_and_enable_restores_it(client, factory):
    admin = await factory.admin()
    target = await factory.token(admin.account_id)
    assert (await client.get(TOKENS, headers=target.headers)).status_code == 200
    disabled = await client.post(f"{TOKENS}/{target.id}/disable", headers=admin.headers)
    assert disabled.status_code == 200
    assert disabled.json()["status"] == "Disabled"
    assert disabled.json()["revision"] == 2
    problem(await client.get(TOKENS, headers=target.headers), 401)
    enabled = await client.post(f"{TOKENS}/{target.id}/enable", headers=admin.headers)
    assert enabled.status_code == 200 and enabled.json()["status"] == "Active"
    assert enabled.json()["revision"] == 3
    assert (await client.get(TOKENS, headers=target.headers)).status_code == 200


async def test_enable_and_disable_take_empty_bodies(client, factory):
    admin = await factory.admin()
    target = await factory.token(admin.account_id)
    # As mpt-api-client sends it: Content-Length 0, no Content-Type.
    response = await client.post(f"{TOKENS}/{target.id}/disable",
                                 headers={**admin.headers, "Content-Length": "0"})
    assert response.status_code == 200
    response = await client.post(f"{TOKENS}/{target.id}/enable", json={},
                                 headers=admin.headers)
    assert response.status_code == 200
    problem(await client.post(f"{TOKENS}/{target.id}/disable", json={"why": "x"},
                              headers=admin.headers), 400)


async def test_state_conflicts_name_the_current_status(client, factory):
    admin = await factory.admin()
    target = await factory.token(admin.account_id)
    conflict = problem(await client.post(f"{TOKENS}/{target.id}/enable",
                                         headers=admin.headers), 409)
    assert "Active" in conflict["detail"]
    await client.post(f"{TOKENS}/{target.id}/disable", headers=admin.headers)
    conflict = problem(await client.post(f"{TOKENS}/{target.id}/disable",
                                         headers=admin.headers), 409)
    assert conflict["detail"] == ("The API token is Disabled; only an Active token can be "
                                  "disabled.")


async def test_delete_is_final(client, factory):
    admin = await factory.admin()
    target = await factory.token(admin.account_id)
    response = await client.delete(f"{TOKENS}/{target.id}", headers=admin.headers)
    assert response.status_code == 204
    problem(await client.get(TOKENS, headers=target.headers), 401)
    seen = (await client.get(f"{TOKENS}/{target.id}", headers=admin.headers)).json()
    assert seen["status"] == "Deleted"
    for method, suffix in (("POST", "/enable"), ("POST", "/disable"), ("DELETE", ""),
                           ("PUT", "")):
        result = problem(await client.request(method, f"{TOKENS}/{target.id}{suffix}",
                                              json={"name": "x"} if method == "PUT" else None,
                                              headers=admin.headers), 409)
        assert "Deleted" in result["detail"]


async def test_disabled_token_can_be_deleted(client, factory):
    admin = await factory.admin()
    target = await factory.token(admin.account_id, status="Disabled")
    assert (await client.delete(f"{TOKENS}/{target.id}", headers=admin.headers)).status_code == 204


async def test_everything_on_a_deleted_token_is_404_for_a_tenant(client, factory):
    tenant = await factory.tenant("Client")
    target = await factory.token(tenant.account_id)
    assert (await client.delete(f"{TOKENS}/{target.id}",
                                headers=tenant.headers)).status_code == 204
    for method, suffix in (("GET", ""), ("PUT", ""), ("DELETE", ""), ("POST", "/enable"),
                           ("POST", "/disable")):
        problem(await client.request(method, f"{TOKENS}/{target.id}{suffix}",
                                     json={"name": "x"} if method == "PUT" else None,
                                     headers=tenant.headers), 404)


async def test_a_token_can_disable_itself_and_then_nothing_works(client, factory):
    tenant = await factory.tenant("Client")
    response = await client.post(f"{TOKENS}/{tenant.id}/disable", headers=tenant.headers)
    assert response.status_code == 200
    problem(await client.get(f"{TOKENS}/{tenant.id}", headers=tenant.headers), 401)


async def test_concurrent_edits_of_one_revision_let_exactly_one_win(client, factory):
    admin = await factory.admin()
    target = await factory.token(admin.account_id)
    responses = await asyncio.gather(*(
        client.put(f"{TOKENS}/{target.id}", json={"name": f"editor {i}", "revision": 1},
                   headers=admin.headers) for i in range(8)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * 7, [r.text for r in responses]
    final = (await client.get(f"{TOKENS}/{target.id}", headers=admin.headers)).json()
    assert final["revision"] == 2
    winner = next(r for r in responses if r.status_code == 200).json()
    assert final["name"] == winner["name"]


async def test_concurrent_blind_edits_all_apply_in_turn(client, factory):
    admin = await factory.admin()
    target = await factory.token(admin.account_id)
    responses = await asyncio.gather(*(
        client.put(f"{TOKENS}/{target.id}", json={"description": f"edit {i}"},
                   headers=admin.headers) for i in range(5)))
    ok = [r for r in responses if r.status_code == 200]
    # Without a revision in the body an edit is last-writer-wins; none may fail with a 500.
    assert all(r.status_code in (200, 409) for r in responses), [r.text for r in responses]
    final = (await client.get(f"{TOKENS}/{target.id}", headers=admin.headers)).json()
    assert final["revision"] == 1 + len(ok)
