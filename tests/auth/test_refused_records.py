"""Refused uses of a token in the audit trail (issue 13), over HTTP on SQLite and
PostgreSQL: a valid secret refused from outside its IP allowlist (403) or after its token
expired (401) leaves a Private record that only Operations reads, at most one per token and
reason per ten minutes, also across two app instances on one database; a wrong secret
leaves none; a slow or failing database never holds or changes the refusal's answer.

Time moves with time-machine (the service's clock)."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import time_machine
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from tests.factories import Factory, Issued
from tests.helpers import TOKENS, problem
from tokenhouse.app import create_app
from tokenhouse.auth import refusals
from tokenhouse.kit.settings import Settings
from tokenhouse.kit.timeutil import render

RECORDS = "/public/v1/audit/records"
REFUSED = "platform.accounts.apiToken.refused"
ALLOWED = "203.0.113.0/24"
INSIDE = "203.0.113.9"
OUTSIDE = "198.51.100.7"

Connect = Callable[..., Any]


@pytest.fixture
def from_address(app: FastAPI, client: httpx.AsyncClient) -> Connect:
    """A client of an app (the test app by default) whose requests come from `address`."""

    @asynccontextmanager
    async def connect(address: str, application: FastAPI = app
                      ) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=application, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://ip.test") as c:
            yield c

    return connect


async def auditor(factory: Factory) -> Issued:
    account = await factory.account("Client")
    return await factory.token(account["id"], ("Access Management", "Audit"))


async def make(client: httpx.AsyncClient, actor: Issued, **fields: Any) -> dict[str, Any]:
    response = await client.post(TOKENS, headers=actor.headers, json={
        "name": "guarded", "account": {"id": actor.account_id},
        "modules": [{"id": "MOD-1732"}], **fields})
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", "User-Agent": "refused/1.0"}


async def refused(client: httpx.AsyncClient, reader: Issued,
                  token_id: str) -> list[dict[str, Any]]:
    """The token's refused-use records, oldest first."""
    response = await client.get(f"{RECORDS}?eq(object.id,{token_id})&eq(event,{REFUSED})"
                                "&order=timestamp&limit=100", headers=reader.headers)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def settled(*apps: FastAPI) -> None:
    """Wait for the records being written in the background."""
    for application in apps:
        await application.state.runtime.refusals.drain()


async def test_a_use_from_outside_the_allowlist_is_recorded_once_per_ten_minutes(
        app: FastAPI, client: httpx.AsyncClient, factory: Factory, from_address: Connect):
    admin = await factory.admin()
    tenant = await auditor(factory)
    made = await make(client, tenant, ipAllowlist=[ALLOWED])
    headers = bearer(made["token"])
    path = f"{TOKENS}/{made['id']}"
    async with from_address(OUTSIDE) as outside, from_address(INSIDE) as inside:
        for _ in range(5):  # the credential's first use, then from memory
            problem(await outside.get(path, headers=headers), 403)
        await settled(app)
        records = await refused(client, admin, made["id"])
        assert len(records) == 1
        record = records[0]
        assert record["type"] == "Private"
        assert record["summary"] == "API token use refused"
        assert record["documents"]["refusal"] == {"reason": "address outside the allowlist",
                                                  "ip": OUTSIDE}
        assert record["documents"]["apiToken"]["id"] == made["id"]
        assert "token" not in record["documents"]["apiToken"]  # never the secret
        assert record["actor"]["id"] == made["id"]  # the token that tried
        assert record["actor"]["account"]["id"] == tenant.account_id
        assert record["request"]["api"] == {"ip": OUTSIDE, "userAgent": "refused/1.0"}
        assert record["request"]["log"]["correlationId"].startswith("00-")
        rendered = await client.get(f"{RECORDS}/{record['id']}?render()",
                                    headers=admin.headers)
        assert rendered.json()["details"] == (
            f"A request with the API token {made['id']} was refused: address outside the "
            "allowlist.")

        # Private: the token's own account does not see it, even by id.
        assert await refused(client, tenant, made["id"]) == []
        problem(await client.get(f"{RECORDS}/{record['id']}", headers=tenant.headers), 404)

        # Admitted uses are never recorded; after ten minutes a refusal is recorded again
        # (the credential is in memory now: the cached path records too).
        assert (await inside.get(path, headers=headers)).status_code == 200
        with time_machine.travel(datetime.now(UTC) + timedelta(minutes=9), tick=False):
            problem(await outside.get(path, headers=headers), 403)
            await settled(app)
        assert len(await refused(client, admin, made["id"])) == 1
        with time_machine.travel(datetime.now(UTC) + timedelta(minutes=11), tick=False):
            problem(await outside.get(path, headers=headers), 403)
            await settled(app)
    assert len(await refused(client, admin, made["id"])) == 2


async def test_a_use_of_an_expired_token_is_recorded(
        app: FastAPI, client: httpx.AsyncClient, factory: Factory):
    admin = await factory.admin()
    tenant = await auditor(factory)
    made = await make(client, tenant,
                      expiresAt=render(datetime.now(UTC) + timedelta(hours=1)))
    path = f"{TOKENS}/{made['id']}"
    assert (await client.get(path, headers=bearer(made["token"]))).status_code == 200
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=2), tick=False):
        for _ in range(3):
            problem(await client.get(path, headers=bearer(made["token"])), 401)
        await settled(app)
    records = await refused(client, admin, made["id"])
    assert [r["documents"]["refusal"] for r in records] == [
        {"reason": "expired", "ip": "127.0.0.1"}]
    assert records[0]["type"] == "Private"
    assert records[0]["documents"]["apiToken"]["status"] == "Expired"


async def test_wrong_secrets_and_other_refusals_are_not_recorded(
        app: FastAPI, client: httpx.AsyncClient, factory: Factory):
    admin = await factory.admin()
    tenant = await auditor(factory)
    made = await make(client, tenant)
    path = f"{TOKENS}/{made['id']}"
    # The token's id with a secret that is not its own: no token to attach a record to.
    prefix, _, rest = made["token"].rpartition(":")
    wrong = f"{prefix}:{rest[::-1]}"
    problem(await client.get(path, headers=bearer(wrong)), 401)
    # Disabled is a refusal of another kind (the token's owner stopped it).
    assert (await client.post(f"{path}/disable", headers=tenant.headers)).status_code == 200
    problem(await client.get(path, headers=bearer(made["token"])), 401)
    await settled(app)
    assert await refused(client, admin, made["id"]) == []


async def test_two_app_instances_record_a_refusal_once(
        app: FastAPI, settings: Settings, client: httpx.AsyncClient, factory: Factory,
        from_address: Connect):
    """Each instance remembers only its own records: the database keeps them to one."""
    admin = await factory.admin()
    tenant = await auditor(factory)
    made = await make(client, tenant, ipAllowlist=[ALLOWED])
    headers = bearer(made["token"])
    other = create_app(settings)
    async with LifespanManager(other):
        async with from_address(OUTSIDE) as here, from_address(OUTSIDE, other) as there:
            answers = await asyncio.gather(*(
                each.get(f"{TOKENS}/{made['id']}", headers=headers)
                for each in (here, there, here, there)))
            assert [answer.status_code for answer in answers] == [403] * 4
            await settled(app, other)
    assert len(await refused(client, admin, made["id"])) == 1


async def test_a_slow_or_failing_database_never_holds_or_changes_the_answer(
        app: FastAPI, client: httpx.AsyncClient, factory: Factory, from_address: Connect,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    admin = await factory.admin()
    tenant = await auditor(factory)
    made = await make(client, tenant, ipAllowlist=[ALLOWED])
    headers = bearer(made["token"])
    path = f"{TOKENS}/{made['id']}"
    real = refusals.record

    async def stuck(*args: Any) -> bool:
        await asyncio.sleep(30)  # a database that does not answer
        return await real(*args)

    monkeypatch.setattr(refusals, "WRITE_SECONDS", 0.3)
    monkeypatch.setattr(refusals, "record", stuck)
    caplog.set_level(logging.WARNING, "tokenhouse.refusals")
    async with from_address(OUTSIDE) as outside:
        started = time.monotonic()
        problem(await outside.get(path, headers=headers), 403)
        assert time.monotonic() - started < 0.25  # answered without waiting for the write
        await settled(app)  # the write gave up after WRITE_SECONDS
        assert "could not record a refused use" in caplog.text
        assert made["token"] not in caplog.text

        async def broken(*_args: Any) -> bool:
            raise RuntimeError("the database broke")

        monkeypatch.setattr(refusals, "record", broken)
        with time_machine.travel(datetime.now(UTC) + refusals.RETRY + timedelta(seconds=1),
                                 tick=False):
            problem(await outside.get(path, headers=headers), 403)
            await settled(app)
        assert await refused(client, admin, made["id"]) == []

        # Once the database answers again, the next refusal (after the retry's pause)
        # is recorded.
        monkeypatch.setattr(refusals, "record", real)
        with time_machine.travel(datetime.now(UTC) + 2 * refusals.RETRY + timedelta(seconds=2),
                                 tick=False):
            problem(await outside.get(path, headers=headers), 403)
            await settled(app)
    assert len(await refused(client, admin, made["id"])) == 1


async def test_an_introspected_use_from_outside_the_allowlist_is_recorded(
        app: FastAPI, client: httpx.AsyncClient, factory: Factory) -> None:
    """A service asking about a secret presented from `clientIp` is told it is inactive;
    the refusal is the token's, from the address the service names."""
    admin = await factory.admin()
    tenant = await auditor(factory)
    made = await make(client, tenant, ipAllowlist=[ALLOWED])
    for _ in range(2):
        response = await client.post(f"{TOKENS}/introspect", headers=admin.headers,
                                     json={"token": made["token"], "clientIp": OUTSIDE})
        assert response.json() == {"active": False}
    answered = await client.post(f"{TOKENS}/introspect", headers=admin.headers,
                                 json={"token": made["token"], "clientIp": INSIDE})
    assert answered.json()["active"] is True
    await settled(app)
    records = await refused(client, admin, made["id"])
    assert [r["documents"]["refusal"] for r in records] == [
        {"reason": "address outside the allowlist", "ip": OUTSIDE}]
    assert records[0]["request"]["api"]["ip"] == "127.0.0.1"  # the service that asked
