"""The token lifecycle (issue 11) attacked: what a review found, each test asserting the safe
behaviour (it failed on the code before the fix), and the odd input it tried."""

from datetime import timedelta

import pytest
import time_machine

from tests.factories import Factory
from tests.helpers import TOKENS, empty_store, problem
from tests.tokens.conftest import Connect
from tests.tokens.test_allowlist import listed
from tests.tokens.test_expiry import bearer, make, now, stamp
from tests.tokens.test_rotation import rotate, works


# F1: a token with a manager-set expiry lived forever by rotating itself before it expired.
async def test_self_rotation_cannot_slide_the_expiry(client, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant(modules=("Helpdesk",))
    made = await make(client, admin, tenant.account_id,
                      expiresAt=stamp(now() + timedelta(days=7)))
    with time_machine.travel(now() + timedelta(days=6), tick=True):
        rotated = await client.post(f"{TOKENS}/self/rotate", headers=bearer(made["token"]))
        assert rotated.status_code == 200, rotated.text
        assert rotated.json()["expiresAt"] == made["expiresAt"]
        secret = rotated.json()["token"]
    with time_machine.travel(now() + timedelta(days=8), tick=True):
        problem(await client.post(f"{TOKENS}/self/rotate", headers=bearer(secret)), 401)


# F2: the secret a rotation replaced (still in its grace window: perhaps the leaked one) took
# the token over (rotated it, the owner's new secret cut off) or deleted it.
async def test_a_replaced_secret_cannot_take_the_token_over(client, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    leaked = tenant.secret
    owners = await rotate(client, admin, tenant.id, gracePeriodSeconds=3600)
    own = f"{TOKENS}/{tenant.id}"
    for method, url, body in (("POST", f"{TOKENS}/self/rotate", {"gracePeriodSeconds": 0}),
                              ("DELETE", f"{TOKENS}/self", None),
                              ("POST", f"{own}/rotate", {}), ("PUT", own, {"name": "mine"}),
                              ("POST", f"{own}/revoke-previous-secret", {}),
                              ("POST", f"{own}/disable", {}), ("DELETE", own, None)):
        problem(await client.request(method, url, headers=bearer(leaked), json=body), 403)
    assert await works(client, owners["token"]) and await works(client, leaked)
    read = (await client.get(own, headers=admin.headers)).json()
    assert read["revision"] == owners["revision"] and read["status"] == "Active"


# F3: a token whose expiry is far away (no policy: allowed) cannot be rotated at all: 500.
@pytest.mark.parametrize("route", ["manager", "self"])
async def test_rotating_a_far_expiry_is_no_500(client, factory: Factory, route: str) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    made = await make(client, admin, tenant.account_id, expiresAt="9999-12-31T23:59:59.000Z")
    if route == "manager":
        with time_machine.travel(now() + timedelta(seconds=2), tick=True):
            response = await client.post(f"{TOKENS}/{made['id']}/rotate",
                                         headers=admin.headers)
    else:
        with time_machine.travel(now() + timedelta(seconds=2), tick=True):
            response = await client.post(f"{TOKENS}/self/rotate", headers=bearer(made["token"]),
                                         json={"expiresAt": stamp(now() + timedelta(days=1))})
    assert response.status_code < 500, response.text


# F4: a request refused by the allowlist (403, "records nothing") still retires the old secret.
async def test_a_refused_request_does_not_retire_the_old_secret(
        client, factory: Factory, from_address: Connect) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    made = await listed(client, admin, tenant, ["10.0.0.0/8"])
    rotated = await rotate(client, admin, made["id"], gracePeriodSeconds=3600,
                           retirePreviousOnFirstUse=True)
    async with from_address("10.0.0.5") as near, from_address("203.0.113.9") as far:
        problem(await far.get(f"{TOKENS}/self", headers=bearer(rotated["token"])), 403)
        assert (await near.get(f"{TOKENS}/self", headers=bearer(made["token"]))
                ).status_code == 200, "a refused request ended the grace window"


@pytest.mark.parametrize("body", [[], "x", 1, True, None, {"gracePeriodSeconds": True},
                                  {"gracePeriodSeconds": 1.0}, {"gracePeriodSeconds": -1},
                                  {"gracePeriodSeconds": 10**30},
                                  {"expiresAt": "9999-12-31T23:59:59.999-14:00"},
                                  {"expiresAt": "0001-01-01T00:00:00+14:00"},
                                  {"expiresAt": "+275760-09-13T00:00:00Z"},
                                  {"expiresAt": 1e308}, {"expiresAt": 99999999999999},
                                  {"retirePreviousOnFirstUse": "yes"}, {"unknown": 1}])
async def test_odd_rotate_bodies_are_problems(client, factory: Factory, body: object) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    response = await client.post(f"{TOKENS}/{tenant.id}/rotate", headers=admin.headers,
                                 json=body)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        problem(response, response.status_code)


# F5: rotating a Disabled (leaked) token with a grace window, then enabling it, revived the
# leaked secret for the window.
async def test_a_disabled_token_s_old_secret_gets_no_grace(client, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    leaked = tenant.secret
    assert (await client.post(f"{TOKENS}/{tenant.id}/disable", headers=admin.headers)
            ).status_code == 200
    problem(await client.post(f"{TOKENS}/{tenant.id}/rotate", headers=admin.headers,
                              json={"gracePeriodSeconds": 3600}), 409)
    rotated = await rotate(client, admin, tenant.id)
    assert (await client.post(f"{TOKENS}/{tenant.id}/enable", headers=admin.headers)
            ).status_code == 200
    assert await works(client, rotated["token"])
    assert not await works(client, leaked)


# F6 (low): the grace-window secret is told the token's expiry, not when it itself stops.
async def test_the_old_secret_is_told_when_it_stops(client, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    made = await make(client, admin, tenant.account_id,
                      expiresAt=stamp(now() + timedelta(days=30)))
    rotated = await rotate(client, admin, made["id"], gracePeriodSeconds=60)
    answer = await client.get(f"{TOKENS}/self", headers=bearer(made["token"]))
    assert answer.status_code == 200
    assert answer.headers["api-token-expiration"] == rotated["previousSecret"]["expiresAt"]


# F7: export/import (backup, restore, the SQLite -> PostgreSQL move) drops expiresAt and
# ipAllowlist: a restored token never expires and works from anywhere, with its old secret.
async def test_export_import_keeps_expiry_and_allowlist(client, factory: Factory, app,
                                                       from_address: Connect
                                                       ) -> None:
    from contextlib import aclosing

    from tokenhouse.transfer.service import export_lines, import_lines

    admin = await factory.admin()
    tenant = await factory.tenant()
    made = await make(client, admin, tenant.account_id,
                      expiresAt=stamp(now() + timedelta(days=1)), ipAllowlist=["10.0.0.0/8"])
    sessions = app.state.runtime.sessions
    async with sessions() as session, aclosing(export_lines(session=session)) as lines:
        exported = [line async for line in lines]
    async with sessions() as session:
        await empty_store(session)
        await import_lines(session=session, lines=exported)
        await session.commit()
    async with from_address("203.0.113.9") as far:
        read = await far.get(f"{TOKENS}/self", headers=bearer(made["token"]))
    assert read.status_code == 403, (read.status_code, read.json().get("expiresAt"),
                                     read.json().get("ipAllowlist"))


@pytest.mark.parametrize("query", ["lt(expiresAt,9999-12-31T23:59:59.999-14:00)",
                                   "gt(expiresAt,0001-01-01T00:00:00+14:00)",
                                   "eq(status,Expired)&order=-status,expiresAt",
                                   "eq(previousSecret.expiresAt,null())",
                                   "select=previousSecret,lastAccessIps,ipAllowlist",
                                   "order=lastAccessIps", "order=ipAllowlist",
                                   "eq(ipAllowlist,10.0.0.0/8)"])
async def test_odd_queries_are_no_500(client, factory: Factory, query: str) -> None:
    admin = await factory.admin()
    response = await client.get(f"{TOKENS}?{query}", headers=admin.headers)
    assert response.status_code < 500, response.text


async def test_concurrent_rotations(client, factory: Factory) -> None:
    import asyncio
    admin = await factory.admin()
    tenant = await factory.tenant()
    answers = await asyncio.gather(*(client.post(
        f"{TOKENS}/{tenant.id}/rotate", headers=admin.headers,
        json={"gracePeriodSeconds": 60}) for _ in range(6)))
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    revisions = sorted(a.json()["revision"] for a in answers)
    assert revisions == list(range(2, 8))
    working = [await works(client, a.json()["token"]) for a in answers]
    assert sum(working) == 2, working


# The first use of the new secret ends the old one: the token's representation changes
# (previousSecret), so its revision moves, as for any change.
async def test_first_use_moves_the_revision(client, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    rotated = await rotate(client, admin, tenant.id, gracePeriodSeconds=600,
                           retirePreviousOnFirstUse=True)
    assert await works(client, rotated["token"])
    problem(await client.put(f"{TOKENS}/{tenant.id}", headers=admin.headers,
                             json={"name": "renamed", "revision": rotated["revision"]}), 409)
    read = (await client.get(f"{TOKENS}/{tenant.id}", headers=admin.headers)).json()
    assert read["revision"] == rotated["revision"] + 1 and read["previousSecret"] is None


# F0: rotate hands a manager the new secret of a token holding modules the manager does not
# hold: "a token can never give what it does not hold itself" (modules/service.grantable) is
# broken. An Operations token with Access Management alone becomes the Administrator.
async def test_rotate_gives_no_module_the_manager_does_not_hold(client,
                                                               factory: Factory) -> None:
    admin = await factory.admin()  # every module
    helper = await factory.token(admin.account_id, ("Access Management",), name="helper")
    mine = (await client.get(f"{TOKENS}/{helper.id}", headers=helper.headers)).json()
    theirs = (await client.get(f"{TOKENS}/{admin.id}", headers=admin.headers)).json()
    assert len(theirs["modules"]) > len(mine["modules"]) == 1
    taken = await client.post(f"{TOKENS}/{admin.id}/rotate", headers=helper.headers,
                              json={"gracePeriodSeconds": 0})
    detail = problem(taken, 403)["detail"]
    assert "Account Management" in detail
    assert await works(client, admin.secret)
    # A token holding no more than the manager may be rotated by it.
    peer = await factory.token(admin.account_id, ("Access Management",), name="peer")
    assert (await client.post(f"{TOKENS}/{peer.id}/rotate", headers=helper.headers)
            ).status_code == 200


async def test_another_tenants_token_is_404_like_a_missing_one(client, factory: Factory) -> None:
    one = await factory.tenant()
    two = await factory.tenant()
    for action in ("rotate", "revoke-previous-secret"):
        theirs = await client.post(f"{TOKENS}/{two.id}/{action}", headers=one.headers)
        missing = await client.post(f"{TOKENS}/TKN-0000-0000/{action}", headers=one.headers)
        assert theirs.status_code == missing.status_code == 404
        assert theirs.json()["detail"].replace(two.id, "X") == \
            missing.json()["detail"].replace("TKN-0000-0000", "X")
    assert await works(client, two.secret)
