"""Deliveries of audit webhooks by the app's worker, on both databases, to a real HTTP
receiver started by the test: signed records, who receives what, retries with back-off on a
controllable clock, giving up, and targets that must not be called.

Each test serves its own app on a database of this module's own: the session's shared app
runs a worker too, and must not claim these deliveries."""

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import time_machine
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import update

from tests.conftest import TEST_KEY
from tests.databases import BACKENDS, create_pg_database, drop_pg_database, pg_url
from tests.factories import Factory, Issued
from tests.helpers import TOKENS, empty_store, problem
from tests.webhooks.receiver import Receiver, readme_verify
from tokenhouse.app import create_app
from tokenhouse.audit import events
from tokenhouse.audit import service as audit
from tokenhouse.audit.subjects import Party, Subject
from tokenhouse.auth.actor import system_actor
from tokenhouse.kit.migrate import upgrade
from tokenhouse.kit.settings import Settings
from tokenhouse.kit.timeutil import as_utc
from tokenhouse.webhooks.delivery import PER_WEBHOOK
from tokenhouse.webhooks.models import Webhook

WEBHOOKS = "/public/v1/audit/webhooks"
RECORDS = "/public/v1/audit/records"
CREATED = "platform.accounts.apiToken.created"


@pytest.fixture(scope="module", params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                   ) -> AsyncIterator[Settings]:
    """A migrated database of each kind for this module alone; the worker polls fast."""
    fast = {"webhook_poll_seconds": 0.05, "last_access_interval": 0.2,
            "secret_key": SecretStr(TEST_KEY)}
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("webhooks") / "tokenhouse.db"
        settings = Settings(database_url=f"sqlite+aiosqlite:///{path}", **fast)
        upgrade(settings)
        yield settings
        return
    name = await create_pg_database("tokenhouse_webhooks")
    try:
        settings = Settings(database_url=pg_url(name), **fast)
        upgrade(settings)
        yield settings
    finally:
        await drop_pg_database(name)


@dataclass
class Served:
    app: FastAPI
    client: httpx.AsyncClient
    factory: Factory


@asynccontextmanager
async def serving(settings: Settings, *, allow_private: bool = True) -> AsyncIterator[Served]:
    """The app on an emptied database (its worker alone on it)."""
    app = create_app(settings.model_copy(update={"webhook_allow_private": allow_private}))
    async with LifespanManager(app):
        async with app.state.runtime.sessions() as session:
            await empty_store(session)
            await session.commit()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport,
                                     base_url="http://tokenhouse.test") as client:
            yield Served(app, client, Factory(app, client))


@pytest.fixture
async def served(database: Settings) -> AsyncIterator[Served]:
    async with serving(database) as value:
        yield value


@pytest.fixture
def receiver() -> Any:
    with Receiver() as value:
        yield value


async def until(check: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0,
                what: str = "") -> None:
    """Wait (real time) until `check` is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert loop.time() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.02)


async def auditor(factory: Factory, type: str = "Client") -> Issued:
    account = await factory.account(type)
    return await factory.token(account["id"], ("Access Management", "Audit"))


async def subscribe(client: httpx.AsyncClient, actor: Issued, url: str,
                    events: list[str]) -> dict[str, Any]:
    response = await client.post(WEBHOOKS, headers=actor.headers,
                                 json={"url": url, "events": events})
    assert response.status_code == 201, response.text
    return response.json()


async def new_token(client: httpx.AsyncClient, actor: Issued, account_id: str) -> str:
    response = await client.post(TOKENS, headers=actor.headers, json={
        "name": "delivered", "account": {"id": account_id}, "modules": [{"id": "MOD-1732"}]})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def deliveries(client: httpx.AsyncClient, actor: Issued,
                     webhook_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"{WEBHOOKS}/{webhook_id}/deliveries", headers=actor.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def test_a_record_is_delivered_signed_as_the_api_shows_it(served: Served,
                                                                receiver: Receiver):
    client = served.client
    tenant = await auditor(served.factory)
    webhook = await subscribe(client, tenant, receiver.url(), ["platform.accounts.apiToken.*"])
    token_id = await new_token(client, tenant, tenant.account_id)
    await until(lambda: receiver.count() >= 1, what="the delivery")
    got = receiver.received[0]
    verify = readme_verify()
    signature = got.headers["tokenhouse-signature"]
    assert verify(webhook["secret"], signature, got.body)
    assert not verify(webhook["secret"] + "x", signature, got.body)
    assert not verify(webhook["secret"], signature, got.body.replace(b"}", b" }", 1))
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=6)):
        assert not verify(webhook["secret"], signature, got.body)  # too old: a replay
    assert got.headers["tokenhouse-event"] == CREATED
    assert got.headers["content-type"] == "application/json"
    record = got.record
    assert record["object"]["id"] == token_id and record["event"] == CREATED
    shown = await client.get(f"{RECORDS}/{record['id']}", headers=tenant.headers)
    assert shown.json() == record
    await until(lambda: _status(client, tenant, webhook["id"], "Delivered"), what="Delivered")
    [delivery] = await deliveries(client, tenant, webhook["id"])
    assert delivery["id"] == got.delivery and delivery["id"].startswith("WHD-")
    assert delivery["record"]["id"] == record["id"] and delivery["event"] == CREATED
    assert delivery["attempts"] == 1 and delivery["nextAttemptAt"] is None
    assert delivery["lastResponse"] == {"statusCode": 200, "error": None}
    assert delivery["deliveredAt"] == delivery["lastAttemptAt"]
    # The secret is in no delivery shown, nor in what was sent.
    assert webhook["secret"] not in json.dumps(delivery) + got.body.decode()
    await asyncio.sleep(0.3)
    assert receiver.count() == 1  # once


async def _status(client: httpx.AsyncClient, actor: Issued, webhook_id: str,
                  status: str) -> bool:
    found = await deliveries(client, actor, webhook_id)
    return bool(found) and all(d["status"] == status for d in found)


async def test_a_webhook_receives_what_its_account_may_see(served: Served,
                                                           receiver: Receiver):
    client, factory = served.client, served.factory
    one = await auditor(factory)
    other = await auditor(factory, "Vendor")
    admin = await factory.admin()
    mine = await subscribe(client, one, receiver.url("/one"), ["*"])
    created_only = await subscribe(client, one, receiver.url("/created"),
                                   ["platform.*.apiToken.created"])
    theirs = await subscribe(client, other, receiver.url("/other"),
                             ["platform.accounts.apiToken.*"])
    everything = await subscribe(client, admin, receiver.url("/ops"), ["platform.*"])
    first = await new_token(client, one, one.account_id)
    await new_token(client, other, other.account_id)
    assert (await client.post(f"{TOKENS}/{first}/disable", headers=one.headers)).is_success
    # A Private record of tenant one's token (a refused use): Operations' alone.
    async with served.app.state.runtime.sessions() as session:
        audit.record(session, actor=system_actor(frozenset(), frozenset()),
                     event=events.TOKEN_REFUSED, private=True,
                     subject=Subject(first, "delivered", "ApiToken",
                                     Party(one.account_id, "one", "Client")),
                     documents={"refusal": {"reason": "test"}})
        await session.commit()

    async def settled() -> bool:
        found = []
        for actor, hook in ((one, mine), (one, created_only), (other, theirs),
                            (admin, everything)):
            found += await deliveries(client, actor, hook["id"])
        return len(found) == 11 and all(d["status"] == "Delivered" for d in found)

    await until(settled, what="every delivery")
    await asyncio.sleep(0.3)
    by_webhook: dict[str, list[tuple[str, str]]] = {}
    for actor, hook in ((one, mine), (one, created_only), (other, theirs),
                        (admin, everything)):
        by_webhook[hook["id"]] = sorted(
            (d["event"], d["record"]["id"]) for d in await deliveries(client, actor,
                                                                      hook["id"]))
    keys = {hook_id: [event for event, _ in pairs] for hook_id, pairs in by_webhook.items()}
    token = "platform.accounts.apiToken."
    # Tenant one: its own Public records made since the webhook was (its own creation and
    # its second webhook's among them), not the Private one, nor tenant two's.
    hook = "platform.audit.webhook.created"
    assert keys[mine["id"]] == sorted([token + "created", token + "disabled", hook, hook])
    assert keys[created_only["id"]] == [token + "created"]
    assert keys[theirs["id"]] == [token + "created"]
    # Operations: every record made since, Private too (both tenants' tokens).
    assert keys[everything["id"]] == sorted(
        [token + "created", token + "created", token + "disabled", token + "refused", hook])
    assert receiver.count() == sum(len(pairs) for pairs in by_webhook.values())


async def test_a_failing_receiver_is_retried_with_back_off_until_it_answers(
        served: Served, receiver: Receiver):
    client = served.client
    tenant = await auditor(served.factory)
    webhook = await subscribe(client, tenant, receiver.url(), [CREATED])
    receiver.answer(500, 503, 302)
    with time_machine.travel(datetime.now(UTC), tick=True) as clock:
        await new_token(client, tenant, tenant.account_id)
        expected = [(500, "HTTP 500 Internal Server Error", 5),
                    (503, "HTTP 503 Service Unavailable", 10),
                    (302, "HTTP 302 Found (redirects are not followed)", 20)]
        for attempt, (status, error, delay) in enumerate(expected, start=1):
            await until(lambda n=attempt: receiver.count() >= n, what=f"attempt {attempt}")

            async def recorded(n: int = attempt) -> bool:
                return (await deliveries(client, tenant, webhook["id"]))[0]["attempts"] == n

            await until(recorded, what=f"attempt {attempt} written")
            [delivery] = await deliveries(client, tenant, webhook["id"])
            assert delivery["status"] == "Pending"
            assert delivery["lastResponse"] == {"statusCode": status, "error": error}
            last = datetime.fromisoformat(delivery["lastAttemptAt"])
            assert datetime.fromisoformat(delivery["nextAttemptAt"]) - last == timedelta(
                seconds=delay)
            # Not before its time.
            await asyncio.sleep(0.3)
            assert receiver.count() == attempt
            clock.shift(delay)
        await until(lambda: _status(client, tenant, webhook["id"], "Delivered"),
                    what="Delivered")
    [delivery] = await deliveries(client, tenant, webhook["id"])
    assert delivery["attempts"] == 4
    assert delivery["lastResponse"] == {"statusCode": 200, "error": None}
    # One delivery, one id, signed anew each time.
    assert {got.delivery for got in receiver.received} == {delivery["id"]}
    assert len({got.headers["tokenhouse-signature"] for got in receiver.received}) == 4
    assert len({got.body for got in receiver.received}) == 1


async def test_a_delivery_is_given_up_a_day_after_its_record(served: Served,
                                                             receiver: Receiver):
    client = served.client
    tenant = await auditor(served.factory)
    # Nothing listens there: the connection is refused, which is retried too.
    with Receiver() as closed:
        url = closed.url()
    webhook = await subscribe(client, tenant, url, [CREATED])
    with time_machine.travel(datetime.now(UTC), tick=True) as clock:
        await new_token(client, tenant, tenant.account_id)

        async def tried() -> bool:
            found = await deliveries(client, tenant, webhook["id"])
            return bool(found) and found[0]["attempts"] >= 1

        await until(tried, what="the first attempt")
        [delivery] = await deliveries(client, tenant, webhook["id"])
        assert delivery["status"] == "Pending"
        assert delivery["lastResponse"]["statusCode"] is None
        assert "ConnectError" in delivery["lastResponse"]["error"]
        clock.shift(timedelta(hours=24, minutes=1))
        await until(lambda: _status(client, tenant, webhook["id"], "Failed"), what="Failed")
    [delivery] = await deliveries(client, tenant, webhook["id"])
    assert delivery["attempts"] == 2 and delivery["nextAttemptAt"] is None


async def test_a_receiver_that_does_not_answer_in_5_seconds_fails_the_attempt(
        served: Served):
    client = served.client
    tenant = await auditor(served.factory)
    with Receiver(delay=6.0) as slow, Receiver() as fast:
        webhook = await subscribe(client, tenant, slow.url(), [CREATED])
        other = await subscribe(client, tenant, fast.url(), [CREATED])
        await new_token(client, tenant, tenant.account_id)
        # The hanging receiver holds its own attempt, not the other webhook's.
        await until(lambda: _status(client, tenant, other["id"], "Delivered"), timeout=2,
                    what="the other webhook's delivery")

        async def timed_out() -> bool:
            found = await deliveries(client, tenant, webhook["id"])
            return bool(found) and found[0]["attempts"] == 1

        await until(timed_out, timeout=15, what="the attempt to time out")
    [delivery] = await deliveries(client, tenant, webhook["id"])
    assert delivery["status"] == "Pending"
    assert delivery["lastResponse"] == {"statusCode": None, "error": "No answer within 5 s."}
    attempted = as_utc(datetime.fromisoformat(delivery["lastAttemptAt"]))
    created = as_utc(datetime.fromisoformat(delivery["createdAt"]))
    assert timedelta(seconds=4.5) < attempted - created < timedelta(seconds=7)


async def test_a_disabled_webhook_receives_nothing_until_enabled(served: Served,
                                                                 receiver: Receiver):
    client = served.client
    tenant = await auditor(served.factory)
    webhook = await subscribe(client, tenant, receiver.url(), [CREATED])
    path = f"{WEBHOOKS}/{webhook['id']}"
    assert (await client.post(f"{path}/disable", headers=tenant.headers)).is_success
    await new_token(client, tenant, tenant.account_id)
    await asyncio.sleep(0.5)
    assert receiver.count() == 0
    assert await deliveries(client, tenant, webhook["id"]) == []
    assert (await client.post(f"{path}/enable", headers=tenant.headers)).is_success
    made = await new_token(client, tenant, tenant.account_id)
    await until(lambda: receiver.count() == 1, what="the delivery after enable")
    assert receiver.received[0].record["object"]["id"] == made


async def test_a_private_target_is_refused_at_delivery_without_a_connection(
        database: Settings, receiver: Receiver):
    """`localhost` passes when saved (a name), and is refused when it resolves to a
    loopback address; a literal private address is refused on save."""
    async with serving(database, allow_private=False) as served:
        client = served.client
        tenant = await auditor(served.factory)
        problem(await client.post(WEBHOOKS, headers=tenant.headers, json={
            "url": receiver.url(), "events": ["*"]}), 400, "url")
        webhook = await subscribe(client, tenant, receiver.url(host="localhost"), [CREATED])
        await new_token(client, tenant, tenant.account_id)
        await until(lambda: _status(client, tenant, webhook["id"], "Failed"), what="Failed")
        [delivery] = await deliveries(client, tenant, webhook["id"])
        assert delivery["attempts"] == 1 and delivery["nextAttemptAt"] is None
        # What the name resolves to stays in the server's log: not the tenant's to learn.
        assert delivery["lastResponse"] == {
            "statusCode": None, "error": "Refused: the target is not a public address."}
        assert receiver.count() == 0


async def test_a_hanging_receiver_with_a_backlog_does_not_delay_other_webhooks(
        served: Served):
    """A webhook whose receiver never answers in time, with 60 deliveries due, holds a few
    of the worker's 50 slots: another tenant's delivery goes out at once."""
    client, factory = served.client, served.factory
    one, other = await auditor(factory), await auditor(factory, "Vendor")
    with Receiver(delay=6.0) as hanging, Receiver() as fast:
        await subscribe(client, one, hanging.url(), ["*"])
        async with served.app.state.runtime.sessions() as session:
            for n in range(60):
                audit.record(session, actor=system_actor(frozenset(), frozenset()),
                             event=events.TOKEN_CREATED,
                             subject=Subject(f"TKN-0000-{n:04d}", "backlog", "ApiToken",
                                             Party(one.account_id, "one", "Client")),
                             documents={})
            await session.commit()
        await until(lambda: hanging.waiting() > 0, timeout=5,
                    what="the hanging receiver's first attempts")
        webhook = await subscribe(client, other, fast.url(), [CREATED])
        await new_token(client, other, other.account_id)
        await until(lambda: _status(client, other, webhook["id"], "Delivered"), timeout=2,
                    what="the other tenant's delivery")
        assert hanging.waiting() <= PER_WEBHOOK


async def test_a_disabled_accounts_pending_deliveries_wait_until_it_is_enabled(
        served: Served, receiver: Receiver):
    client, factory = served.client, served.factory
    tenant = await auditor(factory)
    admin = await factory.admin()
    webhook = await subscribe(client, tenant, receiver.url(), [CREATED])
    account = f"/public/v1/accounts/accounts/{tenant.account_id}"
    receiver.answer(500)
    with time_machine.travel(datetime.now(UTC), tick=True) as clock:
        await new_token(client, tenant, tenant.account_id)
        await until(lambda: receiver.count() == 1, what="the first attempt")
        assert (await client.post(f"{account}/disable", headers=admin.headers)).is_success
        clock.shift(timedelta(seconds=30))  # the retry is due
        await asyncio.sleep(0.5)
        assert receiver.count() == 1
        [delivery] = await deliveries(client, admin, webhook["id"])
        assert delivery["status"] == "Pending" and delivery["attempts"] == 1
        assert (await client.post(f"{account}/enable", headers=admin.headers)).is_success
        await until(lambda: _status(client, admin, webhook["id"], "Delivered"),
                    what="Delivered once the account is enabled")
    assert receiver.count() == 2


@pytest.mark.parametrize("url", ["http://xn--/hook",
                                 "http://" + "a" * 70 + ".example.invalid/hook"])
async def test_every_attempt_settles_whatever_the_target(served: Served, url: str):
    """A URL saved before hosts were checked on save (a label the resolver's IDNA codec
    rejects, a malformed A-label): its attempt fails and is retried, never left in flight."""
    client = served.client
    tenant = await auditor(served.factory)
    webhook = await subscribe(client, tenant, "https://hooks.example.invalid/hook", [CREATED])
    async with served.app.state.runtime.sessions() as session:
        await session.execute(update(Webhook).where(Webhook.id == webhook["id"])
                              .values(url=url))
        await session.commit()
    await new_token(client, tenant, tenant.account_id)

    async def tried() -> bool:
        found = await deliveries(client, tenant, webhook["id"])
        return bool(found) and found[0]["attempts"] == 1

    await until(tried, timeout=5, what="the attempt settled")
    [delivery] = await deliveries(client, tenant, webhook["id"])
    assert delivery["status"] == "Pending" and delivery["nextAttemptAt"] is not None
    assert delivery["lastResponse"]["statusCode"] is None
    assert "xn--" not in delivery["lastResponse"]["error"]
