"""Audit webhooks over HTTP on both databases (issue 13): create, read, change, enable,
disable, delete; who may; what a webhook may name and call; the secret shown once and
stored nowhere; every change in the audit trail."""

import asyncio
import json
import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from tests.factories import Factory, Issued
from tests.helpers import problem
from tokenhouse.webhooks import signing
from tokenhouse.webhooks.models import Webhook
from tokenhouse.webhooks.service import MAX_PER_ACCOUNT

WEBHOOKS = "/public/v1/audit/webhooks"
RECORDS = "/public/v1/audit/records"
# A name that never resolves (RFC 2606): the app's worker may try it, and fails.
TARGET = "https://hooks.example.invalid/tokenhouse"
ID = re.compile(r"^WHK-\d{4}-\d{4}$")


async def auditor(factory: Factory, type: str = "Client") -> Issued:
    account = await factory.account(type)
    return await factory.token(account["id"], ("Access Management", "Audit"))


async def create(client: httpx.AsyncClient, actor: Issued, **fields: Any) -> dict[str, Any]:
    body = {"url": TARGET, "events": ["platform.accounts.apiToken.*"], **fields}
    response = await client.post(WEBHOOKS, headers=actor.headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_webhooks_life_with_its_secret_shown_once(
        client: httpx.AsyncClient, factory: Factory, app: FastAPI):
    tenant = await auditor(factory)
    response = await client.post(WEBHOOKS, headers=tenant.headers, json={
        "url": TARGET, "description": "To the SIEM",
        "events": ["platform.accounts.apiToken.*", "platform.accounts.apiToken.*",
                   "platform.*.account.created"]})
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    made = response.json()
    assert ID.match(made["id"])
    assert made["href"] == f"{WEBHOOKS}/{made['id']}"
    assert made["account"]["id"] == tenant.account_id and made["account"]["name"]
    assert made["events"] == ["platform.accounts.apiToken.*", "platform.*.account.created"]
    assert made["status"] == "Enabled" and made["revision"] == 1
    assert made["audit"]["created"]["by"]["id"] == tenant.id
    secret = made["secret"]
    assert secret.startswith("whsec_") and len(secret) >= 40
    path = f"{WEBHOOKS}/{made['id']}"

    # Never again: not in a read, a list, a change, nor the audit trail.
    seen = [(await client.get(path, headers=tenant.headers)).json(),
            (await client.get(f"{WEBHOOKS}?select=+audit", headers=tenant.headers)).json()]
    changed = await client.put(path, headers=tenant.headers, json={
        "description": "To the new SIEM", "revision": 1})
    assert changed.status_code == 200, changed.text
    assert changed.json()["revision"] == 2
    seen.append(changed.json())
    problem(await client.put(path, headers=tenant.headers,
                             json={"description": "stale", "revision": 1}), 409)
    disabled = await client.post(f"{path}/disable", headers=tenant.headers)
    assert disabled.json()["status"] == "Disabled"
    problem(await client.post(f"{path}/disable", headers=tenant.headers), 409)
    enabled = await client.post(f"{path}/enable", headers=tenant.headers, json={})
    assert enabled.json()["status"] == "Enabled"
    problem(await client.post(f"{path}/enable", headers=tenant.headers), 409)
    listed = seen[1]
    assert listed["$meta"]["pagination"]["total"] == 1
    assert listed["data"][0]["id"] == made["id"]
    deliveries = await client.get(f"{path}/deliveries", headers=tenant.headers)
    assert deliveries.status_code == 200, deliveries.text
    assert deliveries.json()["$meta"]["pagination"]["total"] == 0
    records = (await client.get(f"{RECORDS}?eq(object.id,{made['id']})&order=timestamp",
                                headers=tenant.headers)).json()["data"]
    assert [r["event"] for r in records] == [f"platform.audit.webhook.{action}" for action in (
        "created", "updated", "disabled", "enabled")]
    assert records[0]["object"]["objectType"] == "Webhook"
    assert records[1]["documents"]["changes"] == {
        "description": {"from": "To the SIEM", "to": "To the new SIEM"}}
    seen.extend(records)
    for body in seen:
        assert "secret" not in json.dumps(body) and secret not in json.dumps(body)

    # Stored nowhere: derived from the server's key and the row's salt.
    async with app.state.runtime.sessions() as session:
        row = await session.scalar(select(Webhook).where(Webhook.id == made["id"]))
        assert row is not None
        stored = {column.key: getattr(row, column.key) for column in Webhook.__table__.columns}
    assert secret not in json.dumps(stored, default=str)
    assert signing.secret_of(app.state.runtime.hmac_key, row.id, row.salt) == secret

    assert (await client.delete(path, headers=tenant.headers)).status_code == 204
    problem(await client.get(path, headers=tenant.headers), 404)
    problem(await client.get(f"{path}/deliveries", headers=tenant.headers), 404)
    last = (await client.get(f"{RECORDS}?eq(object.id,{made['id']})",
                             headers=tenant.headers)).json()["data"][0]
    assert last["event"] == "platform.audit.webhook.deleted"


async def test_each_tenant_its_own_and_operations_all(client: httpx.AsyncClient,
                                                      factory: Factory):
    one = await auditor(factory)
    other = await auditor(factory, "Vendor")
    admin = await factory.admin()
    made = await create(client, one)
    path = f"{WEBHOOKS}/{made['id']}"
    # Another tenant: as if it did not exist, whatever the route.
    for call in (client.get(path, headers=other.headers),
                 client.put(path, headers=other.headers, json={"description": "mine"}),
                 client.delete(path, headers=other.headers),
                 client.post(f"{path}/disable", headers=other.headers),
                 client.post(f"{path}/enable", headers=other.headers),
                 client.get(f"{path}/deliveries", headers=other.headers)):
        problem(await call, 404)
    assert (await client.get(WEBHOOKS, headers=other.headers)).json()["data"] == []
    # Nor can it make one for another account (a property of the body).
    problem(await client.post(WEBHOOKS, headers=other.headers, json={
        "url": TARGET, "events": ["*"], "account": {"id": one.account_id}}), 400, "account")
    # Operations sees every webhook, and makes one for any account.
    assert (await client.get(path, headers=admin.headers)).status_code == 200
    for_one = await create(client, admin, account={"id": one.account_id})
    assert for_one["account"]["id"] == one.account_id
    ids = {w["id"] for w in (await client.get(WEBHOOKS, headers=one.headers)).json()["data"]}
    assert ids == {made["id"], for_one["id"]}
    problem(await client.put(path, headers=admin.headers,
                             json={"account": {"id": other.account_id}}), 400, "account")
    # Without the Audit module: 403; without a credential: 401.
    plain = await factory.tenant()
    for call in (client.get(WEBHOOKS, headers=plain.headers),
                 client.post(WEBHOOKS, headers=plain.headers, json={}),
                 client.get(path, headers=plain.headers)):
        problem(await call, 403)
    problem(await client.get(WEBHOOKS), 401)


@pytest.mark.parametrize("url", [
    "ftp://hooks.example.com/x", "hooks.example.com/x", "https://user:pw@hooks.example.com/",
    "https://hooks.example.com/#part", "http://127.0.0.1:8080/hook", "http://10.1.2.3/",
    "http://169.254.169.254/latest/meta-data", "http://[::1]/", "http://[fd00::1]/",
    "http://100.64.0.1/", "http://0.0.0.0/", "http://[::ffff:127.0.0.1]/",
    "https://hooks.example.com/" + "x" * 2048,
    # Hosts no resolver takes (IDNAError was a 500; the others failed at each delivery).
    "http://xn--/", "https://" + "a" * 300 + ".example.com/", "http://hooks example.com/",
    "https://" + "a." * 130 + "com/"])
async def test_a_url_must_be_http_and_a_literal_address_public(
        client: httpx.AsyncClient, factory: Factory, url: str):
    tenant = await auditor(factory)
    problem(await client.post(WEBHOOKS, headers=tenant.headers,
                              json={"url": url, "events": ["*"]}), 400, "url")
    made = await create(client, tenant)
    problem(await client.put(f"{WEBHOOKS}/{made['id']}", headers=tenant.headers,
                             json={"url": url}), 400, "url")


async def test_events_are_keys_or_patterns(client: httpx.AsyncClient, factory: Factory):
    tenant = await auditor(factory)
    for events in ([], [""], ["a..b"], ["has space"], ["platform.api*"], [7],
                   [".".join(["x"] * 9)], ["x" * 300], ["*"] * 51):
        body = problem(await client.post(WEBHOOKS, headers=tenant.headers,
                                         json={"url": TARGET, "events": events}), 400)
        assert all(key.startswith("events") for key in body["errors"]), body
    for events in (["*"], ["platform.*.apiToken.created", "extensions.e2e.test"]):
        assert (await create(client, tenant, events=events))["events"] == events


async def test_an_account_has_a_bounded_number_of_webhooks(client: httpx.AsyncClient,
                                                           factory: Factory):
    tenant = await auditor(factory)
    for _ in range(MAX_PER_ACCOUNT):
        await create(client, tenant)
    problem(await client.post(WEBHOOKS, headers=tenant.headers,
                              json={"url": TARGET, "events": ["*"]}), 400, "account")


async def test_concurrent_creates_do_not_pass_the_limit(client: httpx.AsyncClient,
                                                        factory: Factory):
    """The count is taken under the account's lock: 30 creates at once make exactly 20."""
    tenant = await auditor(factory)
    answers = await asyncio.gather(*(client.post(WEBHOOKS, headers=tenant.headers, json={
        "url": TARGET, "events": ["*"]}) for _ in range(MAX_PER_ACCOUNT + 10)))
    assert sorted(a.status_code for a in answers) == [201] * MAX_PER_ACCOUNT + [400] * 10
    listed = await client.get(f"{WEBHOOKS}?limit=100", headers=tenant.headers)
    assert listed.json()["$meta"]["pagination"]["total"] == MAX_PER_ACCOUNT


async def test_the_audit_trail_keeps_the_url_without_its_path_and_query(
        client: httpx.AsyncClient, factory: Factory):
    tenant = await auditor(factory)
    secret_url = "https://hooks.example.invalid:8443/in/s3cr3t-path?token=s3cr3t-query"
    made = await create(client, tenant, url=secret_url)
    path = f"{WEBHOOKS}/{made['id']}"
    assert made["url"] == secret_url  # its readers see it whole
    assert (await client.get(path, headers=tenant.headers)).json()["url"] == secret_url
    # Only the secret part changes: still recorded as a change of the URL.
    changed = await client.put(path, headers=tenant.headers,
                               json={"url": secret_url.replace("s3cr3t-path", "s3cr3t-new")})
    assert changed.status_code == 200, changed.text
    assert (await client.put(path, headers=tenant.headers,
                             json={"url": "https://hooks.example.invalid/"})).is_success
    records = (await client.get(f"{RECORDS}?eq(object.id,{made['id']})&order=timestamp",
                                headers=tenant.headers)).json()["data"]
    assert [r["event"].rsplit(".", 1)[1] for r in records] == ["created", "updated", "updated"]
    assert "s3cr3t" not in json.dumps(records)
    shown = "https://hooks.example.invalid:8443/…"
    assert records[0]["documents"]["webhook"]["url"] == shown
    assert records[1]["documents"]["changes"] == {"url": {"from": shown, "to": shown}}
    assert records[2]["documents"]["changes"] == {
        "url": {"from": shown, "to": "https://hooks.example.invalid/"}}
    assert records[2]["documents"]["webhook"]["url"] == "https://hooks.example.invalid/"
