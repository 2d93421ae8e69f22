"""The self-service routes (issue 11): a token reads, rotates and deletes itself with no
module, and never reaches another token through them."""

from datetime import timedelta

import time_machine

from tests.factories import Factory
from tests.helpers import TOKENS, problem
from tests.tokens.test_expiry import bearer, make, now, stamp
from tests.tokens.test_rotation import works


async def test_a_token_reads_itself_without_its_secret(client, factory: Factory) -> None:
    tenant = await factory.tenant(modules=("Helpdesk",))  # no Access Management
    for _ in range(2):  # from the database, then cached
        read = await client.get(f"{TOKENS}/self", headers=tenant.headers)
        assert read.status_code == 200, read.text
        body = read.json()
        assert body["id"] == tenant.id and "token" not in body
        assert body["lastAccessIps"][0]["ip"] == "127.0.0.1"
    selected = await client.get(f"{TOKENS}/self?select=-modules", headers=tenant.headers)
    assert "modules" not in selected.json()


async def test_a_token_rotates_itself_without_a_module(client, factory: Factory) -> None:
    tenant = await factory.tenant(modules=("Helpdesk",))
    rotated = await client.post(f"{TOKENS}/self/rotate", headers=tenant.headers,
                                json={"gracePeriodSeconds": 60})
    assert rotated.status_code == 200, rotated.text
    assert rotated.headers["cache-control"] == "no-store"
    secret = rotated.json()["token"]
    assert rotated.json()["id"] == tenant.id and rotated.json()["previousSecret"] is not None
    assert await works(client, secret) and await works(client, tenant.secret)
    # Still no module: it may not rotate itself through the managers' route.
    problem(await client.post(f"{TOKENS}/{tenant.id}/rotate", headers=bearer(secret)), 403)
    problem(await client.post(f"{TOKENS}/{tenant.id}/revoke-previous-secret",
                              headers=bearer(secret)), 403)


async def test_a_token_deletes_itself(client, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant(modules=("Helpdesk",))
    other = await factory.token(tenant.account_id)
    gone = await client.delete(f"{TOKENS}/self", headers=tenant.headers)
    assert gone.status_code == 204
    problem(await client.get(f"{TOKENS}/self", headers=tenant.headers), 401)
    assert (await client.get(f"{TOKENS}/{tenant.id}", headers=admin.headers)
            ).json()["status"] == "Deleted"
    assert await works(client, other.secret)  # only itself


async def test_an_expired_token_cannot_serve_itself(client, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    made = await make(client, admin, tenant.account_id,
                      expiresAt=stamp(now() + timedelta(minutes=5)))
    with time_machine.travel(now() + timedelta(minutes=6), tick=True):
        for method in ("GET", "DELETE"):
            problem(await client.request(method, f"{TOKENS}/self",
                                         headers=bearer(made["token"])), 401)
        problem(await client.post(f"{TOKENS}/self/rotate", headers=bearer(made["token"])), 401)


async def test_a_token_rotating_itself_cannot_lengthen_its_lifetime(client, factory: Factory
                                                                    ) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant(modules=("Helpdesk",))
    made = await make(client, admin, tenant.account_id,
                      expiresAt=stamp(now() + timedelta(days=7)))
    url = f"{TOKENS}/self/rotate"
    for longer in (stamp(now() + timedelta(days=8)), None):
        problem(await client.post(url, headers=bearer(made["token"]),
                                  json={"expiresAt": longer}), 400, "expiresAt")
    assert await works(client, made["token"])  # nothing changed
    shorter = stamp(now() + timedelta(days=1))
    rotated = await client.post(url, headers=bearer(made["token"]), json={"expiresAt": shorter})
    assert rotated.status_code == 200 and rotated.json()["expiresAt"] == shorter
    # A manager may set any expiry.
    longer = stamp(now() + timedelta(days=30))
    assert (await client.post(f"{TOKENS}/{made['id']}/rotate", headers=admin.headers,
                              json={"expiresAt": longer})).json()["expiresAt"] == longer
