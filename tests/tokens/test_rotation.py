"""Rotation (issue 11) over HTTP, on SQLite and PostgreSQL: a new secret for the same token,
the grace window of the replaced one, at most two secrets at a time, revoke-previous-secret,
retirePreviousOnFirstUse, and the rules for Disabled, Expired and Deleted tokens. Across
server processes: test_rotation_processes.py."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import time_machine

from tests.factories import Factory, Issued
from tests.helpers import TOKENS, problem
from tests.tokens.test_expiry import bearer, make, now, stamp


def parse(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


async def works(client: httpx.AsyncClient, secret: str) -> bool:
    response = await client.get(f"{TOKENS}/self", headers=bearer(secret))
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


async def rotate(client: httpx.AsyncClient, admin: Issued, token_id: str,
                 **body: Any) -> dict[str, Any]:
    response = await client.post(f"{TOKENS}/{token_id}/rotate", headers=admin.headers,
                                 json=body or None)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    rotated: dict[str, Any] = response.json()
    return rotated


async def test_a_rotation_gives_a_new_secret_and_ends_the_old_one_at_once(
        client, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    assert await works(client, tenant.secret)  # cached before the rotation
    rotated = await rotate(client, admin, tenant.id)
    assert rotated["id"] == tenant.id and rotated["revision"] == 2
    assert rotated["token"] != tenant.secret and rotated["previousSecret"] is None
    assert not await works(client, tenant.secret)
    assert await works(client, rotated["token"])
    read = (await client.get(f"{TOKENS}/{tenant.id}", headers=admin.headers)).json()
    assert "token" not in read and read["revision"] == 2


async def test_the_old_secret_works_through_its_grace_window_and_then_stops(
        client, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    before = now()
    rotated = await rotate(client, admin, tenant.id, gracePeriodSeconds=60)
    window = parse(rotated["previousSecret"]["expiresAt"])
    assert before + timedelta(seconds=60) <= window + timedelta(milliseconds=1)
    assert window <= now() + timedelta(seconds=60)
    assert rotated["previousSecret"]["lastAccessAt"] is None
    assert await works(client, tenant.secret) and await works(client, rotated["token"])
    read = (await client.get(f"{TOKENS}/{tenant.id}", headers=admin.headers)).json()
    assert read["previousSecret"]["lastAccessAt"] is not None  # the old secret's use
    with time_machine.travel(window + timedelta(seconds=1), tick=True):
        refused = problem(await client.get(f"{TOKENS}/self", headers=bearer(tenant.secret)),
                          401)
        assert "grace window" in refused["detail"]
        assert await works(client, rotated["token"])
        read = (await client.get(f"{TOKENS}/{tenant.id}", headers=admin.headers)).json()
        assert read["previousSecret"] is None


async def test_at_most_two_secrets_work(client, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    first = await rotate(client, admin, tenant.id, gracePeriodSeconds=600)
    second = await rotate(client, admin, tenant.id, gracePeriodSeconds=600)
    assert not await works(client, tenant.secret)  # the oldest stopped at once
    assert await works(client, first["token"]) and await works(client, second["token"])
    assert second["revision"] == 3


async def test_revoke_previous_secret_ends_the_window_now(client, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    rotated = await rotate(client, admin, tenant.id, gracePeriodSeconds=600)
    assert await works(client, tenant.secret)
    url = f"{TOKENS}/{tenant.id}/revoke-previous-secret"
    revoked = await client.post(url, headers=admin.headers)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["previousSecret"] is None and "token" not in revoked.json()
    assert not await works(client, tenant.secret)
    assert await works(client, rotated["token"])
    problem(await client.post(url, headers=admin.headers), 409)


async def test_the_first_use_of_the_new_secret_retires_the_old_one(
        client, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    rotated = await rotate(client, admin, tenant.id, gracePeriodSeconds=600,
                           retirePreviousOnFirstUse=True)
    # The old secret works (again and again) until the new one is first used.
    assert await works(client, tenant.secret) and await works(client, tenant.secret)
    assert await works(client, rotated["token"])
    assert not await works(client, tenant.secret)
    assert await works(client, rotated["token"])
    read = (await client.get(f"{TOKENS}/{tenant.id}", headers=admin.headers)).json()
    assert read["previousSecret"] is None


async def test_the_window_never_outlives_the_old_secret_s_expiry(client, factory: Factory
                                                                 ) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    made = await make(client, admin, tenant.account_id,
                      expiresAt=stamp(now() + timedelta(minutes=10)))
    rotated = await rotate(client, admin, made["id"], gracePeriodSeconds=3600)
    assert rotated["previousSecret"]["expiresAt"] == made["expiresAt"]
    # No expiresAt in the body: the same lifetime (10 minutes) from now.
    lifetime = parse(rotated["expiresAt"]) - now()
    assert timedelta(minutes=9) < lifetime <= timedelta(minutes=10)


async def test_a_disabled_token_rotated_stays_disabled(client, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    disabled = await factory.token(tenant.account_id, status="Disabled")
    rotated = await rotate(client, admin, disabled.id)  # no grace: see test_lifecycle_attacks
    assert rotated["status"] == "Disabled"
    detail = problem(await client.get(TOKENS, headers=bearer(rotated["token"])), 401)
    assert detail["detail"] == "The API token is Disabled."
    assert not await works(client, disabled.secret)


async def test_an_expired_token_rotated_is_active_again(client, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    made = await make(client, admin, tenant.account_id,
                      expiresAt=stamp(now() + timedelta(hours=1)))
    with time_machine.travel(now() + timedelta(hours=3), tick=True):
        assert not await works(client, made["token"])
        rotated = await rotate(client, admin, made["id"], gracePeriodSeconds=600)
        assert rotated["status"] == "Active" and rotated["previousSecret"] is None
        lifetime = parse(rotated["expiresAt"]) - now()
        assert timedelta(minutes=59) < lifetime <= timedelta(hours=1)
        assert await works(client, rotated["token"])
        assert not await works(client, made["token"])  # its expiry passed: no grace
        later = stamp(now() + timedelta(days=2))
        again = await rotate(client, admin, made["id"], expiresAt=later)
        assert again["expiresAt"] == later


async def test_a_deleted_token_cannot_be_rotated(client, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    deleted = await factory.token(tenant.account_id, status="Deleted")
    problem(await client.post(f"{TOKENS}/{deleted.id}/rotate", headers=admin.headers), 409)
    problem(await client.post(f"{TOKENS}/{deleted.id}/rotate", headers=tenant.headers), 404)


@pytest.mark.parametrize("body", [{"gracePeriodSeconds": 604801}, {"gracePeriodSeconds": -1},
                                  {"gracePeriodSeconds": "60"}, {"gracePeriodSeconds": 1.5},
                                  {"retirePreviousOnFirstUse": 1},
                                  {"expiresAt": "2001-01-01T00:00:00.000Z"},
                                  {"secret": "chosen"}, ["not", "an", "object"]])
async def test_a_bad_rotation_body_is_400_and_changes_nothing(client, factory: Factory,
                                                              body: Any) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    problem(await client.post(f"{TOKENS}/{tenant.id}/rotate", headers=admin.headers,
                              json=body), 400)
    assert await works(client, tenant.secret)
    read = (await client.get(f"{TOKENS}/{tenant.id}", headers=admin.headers)).json()
    assert read["revision"] == 1


async def test_a_week_is_the_longest_grace(client, factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    rotated = await rotate(client, admin, tenant.id, gracePeriodSeconds=604800)
    window = parse(rotated["previousSecret"]["expiresAt"])
    assert timedelta(days=7) - timedelta(seconds=5) < window - datetime.now(UTC)
