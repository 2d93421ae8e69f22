"""The audit trail over HTTP on both databases (issue 13): the records tokenhouse writes
about its own changes (in the change's transaction, never a secret), who reads them, what an
integration may record, and the catalog of event types."""

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from tests.factories import ALL_OF_TYPE, Factory, Issued
from tests.helpers import ACCOUNTS, TOKENS, problem

RECORDS = "/public/v1/audit/records"
EVENT_TYPES = "/public/v1/audit/event-types"
EVENT = "platform.accounts.apiToken."


async def trail(client: httpx.AsyncClient, reader: Issued, object_id: str,
                query: str = "") -> list[dict[str, Any]]:
    response = await client.get(f"{RECORDS}?eq(object.id,{object_id}){query}",
                                headers=reader.headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def auditor(factory: Factory, type: str = "Client") -> Issued:
    """A tenant's token with Access Management and Audit."""
    account = await factory.account(type)
    return await factory.token(account["id"], ("Access Management", "Audit"))


async def new_token(client: httpx.AsyncClient, actor: Issued, account_id: str,
                    **fields: Any) -> dict[str, Any]:
    response = await client.post(TOKENS, headers={**actor.headers, "User-Agent": "tests/1.0"},
                                 json={"name": "audited", "account": {"id": account_id},
                                       "modules": [{"id": "MOD-1732"}], **fields})
    assert response.status_code == 201, response.text
    return response.json()


async def test_every_change_of_a_token_is_recorded_without_its_secret(
        client: httpx.AsyncClient, factory: Factory):
    tenant = await auditor(factory)
    made = await new_token(client, tenant, tenant.account_id)
    path = f"{TOKENS}/{made['id']}"
    headers = tenant.headers
    assert (await client.put(path, headers=headers, json={
        "name": "renamed", "rateLimit": {"limit": 10, "windowSeconds": 60}})).status_code == 200
    assert (await client.post(f"{path}/disable", headers=headers)).status_code == 200
    assert (await client.post(f"{path}/enable", headers=headers)).status_code == 200
    rotated = await client.post(f"{path}/rotate", headers=headers,
                                json={"gracePeriodSeconds": 60})
    assert rotated.status_code == 200, rotated.text
    assert (await client.post(f"{path}/revoke-previous-secret",
                              headers=headers)).status_code == 200
    assert (await client.delete(path, headers=headers)).status_code == 204

    records = await trail(client, tenant, made["id"])
    assert [r["event"] for r in records] == [EVENT + action for action in (
        "deleted", "previousSecretRevoked", "rotated", "enabled", "disabled", "updated",
        "created")]  # newest first
    created = records[-1]
    assert created["id"].startswith("AUD-") and len(created["id"]) == 23
    assert created["object"] == {"id": made["id"], "name": "audited", "icon": None,
                                 "objectType": "ApiToken"}
    assert created["type"] == "Public"
    assert created["actor"] == {"id": tenant.id, "name": created["actor"]["name"],
                                "icon": None, "account": {
                                    "id": tenant.account_id,
                                    "name": created["actor"]["account"]["name"],
                                    "icon": None, "accountType": "Client"}}
    assert created["request"]["api"] == {"ip": "127.0.0.1", "userAgent": "tests/1.0"}
    assert created["request"]["log"]["correlationId"].startswith("00-")
    assert [v["id"] for v in created["viewers"]] == [tenant.account_id]
    assert created["documents"]["apiToken"]["id"] == made["id"]
    assert created["documents"]["apiToken"]["status"] == "Active"
    updated = records[-2]
    assert updated["documents"]["changes"] == {
        "name": {"from": "audited", "to": "renamed"},
        "rateLimit": {"from": None, "to": {"limit": 10, "windowSeconds": 60}}}
    assert records[2]["documents"]["rotation"]["gracePeriodSeconds"] == 60
    assert records[0]["documents"]["apiToken"]["status"] == "Deleted"
    # No secret, no hash: not the first, not the rotated one, not any 64-hex digest.
    dumped = json.dumps(records)
    for secret in (made["token"], rotated.json()["token"]):
        assert secret not in dumped and secret.rsplit(":", 1)[1] not in dumped
    assert not any(len(word) == 64 and all(c in "0123456789abcdef" for c in word)
                   for word in dumped.replace('"', " ").split())


async def test_the_trail_is_the_tenants_own_and_operations_sees_all(
        client: httpx.AsyncClient, factory: Factory):
    admin = await factory.admin()
    one = await auditor(factory)
    other = await auditor(factory, "Vendor")
    made = await new_token(client, admin, one.account_id)  # made by Operations for `one`
    seen = await trail(client, one, made["id"])
    assert [r["event"] for r in seen] == [EVENT + "created"]
    record = seen[0]
    # Operations made it: its account is a viewer too.
    assert [v["type"] for v in record["viewers"]] == ["Client", "Operations"]
    assert await trail(client, other, made["id"]) == []
    problem(await client.get(f"{RECORDS}/{record['id']}", headers=other.headers), 404)
    assert (await client.get(f"{RECORDS}/{record['id']}",
                             headers=one.headers)).json()["id"] == record["id"]
    assert (await client.get(f"{RECORDS}/{record['id']}",
                             headers=admin.headers)).status_code == 200
    # Without the Audit module: 403 for every route.
    plain = await factory.tenant()
    for call in (client.get(RECORDS, headers=plain.headers),
                 client.get(f"{RECORDS}/{record['id']}", headers=plain.headers),
                 client.get(EVENT_TYPES, headers=plain.headers),
                 client.post(RECORDS, headers=plain.headers, json={})):
        problem(await call, 403)
    problem(await client.get(RECORDS), 401)


async def test_account_changes_are_recorded_in_the_accounts_trail(
        client: httpx.AsyncClient, factory: Factory):
    admin = await factory.admin()
    made = await client.post(ACCOUNTS, headers=admin.headers,
                             json={"name": "Audited Ltd", "type": "Client"})
    assert made.status_code == 201, made.text
    account_id = made.json()["id"]
    path = f"{ACCOUNTS}/{account_id}"
    await client.put(path, headers=admin.headers, json={"name": "Audited Inc"})
    await client.post(f"{path}/disable", headers=admin.headers)
    await client.post(f"{path}/enable", headers=admin.headers)
    records = await trail(client, admin, account_id)
    assert [r["event"] for r in records] == [f"platform.accounts.account.{a}" for a in (
        "enabled", "disabled", "updated", "created")]
    assert records[2]["documents"]["changes"]["name"] == {"from": "Audited Ltd",
                                                          "to": "Audited Inc"}
    reader = await factory.token(account_id, ("Audit",))
    assert len(await trail(client, reader, account_id)) == 4


async def test_lists_filter_order_select_and_render(client: httpx.AsyncClient,
                                                    factory: Factory):
    tenant = await auditor(factory)
    first = await new_token(client, tenant, tenant.account_id, name="first")
    second = await new_token(client, tenant, tenant.account_id, name="second")
    listed = (await client.get(
        f"{RECORDS}?and(eq(event,{EVENT}created),eq(actor.id,{tenant.id}))&order=timestamp",
        headers=tenant.headers)).json()
    assert listed["$meta"]["pagination"]["total"] == 2
    assert [r["object"]["id"] for r in listed["data"]] == [first["id"], second["id"]]
    template = listed["data"][0]["details"]
    assert "{{apiToken.id}}" in template
    rendered = (await client.get(f"{RECORDS}?eq(object.id,{first['id']})&render()",
                                 headers=tenant.headers)).json()["data"][0]["details"]
    assert rendered.startswith(f"The API token {first['id']} (first) was created by ")
    assert "{{" not in rendered and "}}" not in rendered
    record_id = listed["data"][0]["id"]
    single = (await client.get(f"{RECORDS}/{record_id}?select=object,actor&render%28%29=",
                               headers=tenant.headers)).json()
    assert set(single) >= {"id", "object", "actor"}
    assert single["details"] == rendered
    trimmed = (await client.get(f"{RECORDS}/{record_id}?select=-documents,-request",
                                headers=tenant.headers)).json()
    assert "documents" not in trimmed and "request" not in trimmed and trimmed["id"]
    one = (await client.get(f"{RECORDS}/{record_id}?render%28%29=",
                            headers=tenant.headers)).json()
    assert one["details"] == rendered
    problem(await client.get(f"{RECORDS}?eq(documents,x)", headers=tenant.headers), 400)
    problem(await client.get(f"{RECORDS}/REC-000-000-000", headers=tenant.headers), 404)


async def test_an_integration_records_its_own_events(client: httpx.AsyncClient,
                                                     factory: Factory):
    vendor = await auditor(factory, "Vendor")
    other = await auditor(factory, "Vendor")
    body = {"event": "extensions.e2e.test",
            "object": {"id": vendor.account_id, "name": "e2e test account"},
            "details": "e2e {{payload.key}} details", "summary": "e2e test summary",
            "actor": {"type": "system", "id": "system"}, "payload": {"key": "value"}}
    made = await client.post(RECORDS, headers=vendor.headers, json=body)
    assert made.status_code == 201, made.text
    record = made.json()
    assert record["event"] == "extensions.e2e.test"
    assert record["object"]["id"] == vendor.account_id
    assert record["object"]["objectType"] == "Account"
    assert record["actor"]["id"] == vendor.id  # the server's actor, not the body's
    assert record["documents"]["payload"] == {"key": "value"}
    rendered = (await client.get(f"{RECORDS}/{record['id']}?render%28%29=",
                                 headers=vendor.headers)).json()
    assert rendered["details"] == "e2e value details"
    # Its own object of a kind tokenhouse does not hold: in its own trail.
    product = await client.post(RECORDS, headers=vendor.headers, json={
        **body, "object": {"id": "PRD-7255-3950", "name": "A product"}})
    assert product.status_code == 201, product.text
    assert product.json()["object"]["objectType"] == "Object"
    assert len(await trail(client, vendor, "PRD-7255-3950")) == 1
    assert await trail(client, other, "PRD-7255-3950") == []
    # Another account's object: as one that does not exist (a property of the body).
    for foreign in (other.account_id, other.id, "ACC-0000-0000"):
        problem(await client.post(RECORDS, headers=vendor.headers, json={
            **body, "object": {"id": foreign}}), 400, "object.id")
    # The platform's events are the platform's.
    problem(await client.post(RECORDS, headers=vendor.headers, json={
        **body, "event": "platform.accounts.apiToken.deleted"}), 403)
    for bad in ("nodots", "a..b", "x" * 300, "has space.x"):
        problem(await client.post(RECORDS, headers=vendor.headers,
                                  json={**body, "event": bad}), 400)
    # The new key joined the catalog of the vendor's account only.
    keys = {t["key"] for t in (await client.get(f"{EVENT_TYPES}?limit=100",
                                                headers=vendor.headers)).json()["data"]}
    assert "extensions.e2e.test" in keys and f"{EVENT}created" in keys
    others = {t["key"] for t in (await client.get(f"{EVENT_TYPES}?limit=100",
                                                  headers=other.headers)).json()["data"]}
    assert "extensions.e2e.test" not in others and f"{EVENT}created" in others


async def test_event_types_read_filter_and_change(client: httpx.AsyncClient,
                                                  factory: Factory):
    admin = await factory.admin()
    vendor = await auditor(factory, "Vendor")
    first = (await client.get(EVENT_TYPES, headers=vendor.headers)).json()["data"][0]
    assert set(first) == {"id", "key", "name", "description"}
    assert first["id"].startswith("AET-")
    one = (await client.get(f"{EVENT_TYPES}/{first['id']}", headers=vendor.headers)).json()
    assert one == first
    filtered = (await client.get(f"{EVENT_TYPES}?eq(id,{first['id']})",
                                 headers=vendor.headers)).json()["data"]
    assert filtered == [first]
    problem(await client.get(f"{EVENT_TYPES}/EVT-000-000", headers=vendor.headers), 404)
    problem(await client.put(f"{EVENT_TYPES}/{first['id']}", headers=vendor.headers,
                             json={"description": "mine"}), 403)
    changed = await client.put(f"{EVENT_TYPES}/{first['id']}", headers=admin.headers,
                               json={"description": "Updated description"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["description"] == "Updated description"
    problem(await client.put(f"{EVENT_TYPES}/{first['id']}", headers=admin.headers,
                             json={"description": "x", "extra": 1}), 400)


SABOTAGE = {
    "sqlite": ["CREATE TRIGGER audit_sabotage BEFORE INSERT ON audit_records "
               "BEGIN SELECT RAISE(ABORT, 'sabotaged'); END"],
    "postgresql": ["CREATE FUNCTION audit_sabotage() RETURNS trigger AS $$ BEGIN "
                   "RAISE EXCEPTION 'sabotaged'; END $$ LANGUAGE plpgsql",
                   "CREATE TRIGGER audit_sabotage BEFORE INSERT ON audit_records "
                   "FOR EACH ROW EXECUTE FUNCTION audit_sabotage()"],
}
REPAIR = {"sqlite": ["DROP TRIGGER audit_sabotage"],
          "postgresql": ["DROP TRIGGER audit_sabotage ON audit_records",
                         "DROP FUNCTION audit_sabotage()"]}


@pytest.fixture
async def sabotage(app, backend: str):
    """Call it, and every insert of an audit record fails (a trigger) until the test ends."""
    started = []

    async def start() -> None:
        async with app.state.runtime.engine.begin() as connection:
            for statement in SABOTAGE[backend]:
                await connection.execute(text(statement))
        started.append(True)

    yield start
    if started:
        async with app.state.runtime.engine.begin() as connection:
            for statement in REPAIR[backend]:
                await connection.execute(text(statement))


async def test_no_change_commits_without_its_record(client: httpx.AsyncClient,
                                                    factory: Factory, sabotage: Any):
    admin = await factory.admin()
    tenant = await factory.tenant()
    before = (await client.get(TOKENS, headers=admin.headers)).json()["$meta"]
    await sabotage()
    failed = await client.post(TOKENS, headers=admin.headers, json={
        "name": "never", "account": {"id": tenant.account_id}, "modules": [{"id": "MOD-1732"}]})
    assert failed.status_code >= 400, failed.text
    after = (await client.get(TOKENS, headers=admin.headers)).json()["$meta"]
    assert after["pagination"]["total"] == before["pagination"]["total"]
    renamed = await client.put(f"{TOKENS}/{tenant.id}", headers=admin.headers,
                               json={"name": "never"})
    assert renamed.status_code >= 400, renamed.text
    read = (await client.get(f"{TOKENS}/{tenant.id}", headers=admin.headers)).json()
    assert read["name"] != "never" and read["revision"] == 1
    assert "sabotaged" not in failed.text + renamed.text  # no database text in an answer


async def test_the_audit_module_is_open_to_every_account_type(client: httpx.AsyncClient,
                                                              factory: Factory):
    for kind in ("Client", "Vendor"):
        account = await factory.account(kind)
        token = await factory.token(account["id"], ALL_OF_TYPE)
        names = {m["name"] for m in (await client.get(f"{TOKENS}/{token.id}",
                                                      headers=token.headers)).json()["modules"]}
        assert "Audit" in names, kind


async def test_a_leak_report_is_recorded_as_the_systems_change(client: httpx.AsyncClient,
                                                               factory: Factory):
    tenant = await auditor(factory)
    made = await new_token(client, tenant, tenant.account_id)
    source = f"https://example.test/repo?line={made['token']}"
    reported = await client.post(f"{TOKENS}/revoke-leaked",
                                 json={"tokens": [made["token"]], "source": source})
    assert reported.status_code == 202, reported.text
    records = await trail(client, tenant, made["id"], "&eq(event,"
                          "platform.accounts.apiToken.leaked)")
    assert len(records) == 1
    leaked = records[0]
    # The system acted, on a report: its request is the reporter's.
    assert leaked["actor"]["id"] == "system"
    assert leaked["request"]["api"]["ip"] == "127.0.0.1"
    assert leaked["documents"]["apiToken"]["statusReason"] == "Leaked"
    assert leaked["documents"]["report"]["secret"] == "current"
    assert made["token"] not in json.dumps(leaked)
    assert leaked["documents"]["report"]["source"].startswith("https://example.test/repo")
    # Reported again: nothing more to stop, nothing more recorded.
    await client.post(f"{TOKENS}/revoke-leaked", json={"tokens": [made["token"]]})
    assert len(await trail(client, tenant, made["id"],
                           "&eq(event,platform.accounts.apiToken.leaked)")) == 1


async def test_an_import_is_one_record_in_operations_trail(app, client: httpx.AsyncClient,
                                                           factory: Factory):
    from tests.helpers import empty_store
    from tokenhouse.audit.models import AuditRecord
    from tokenhouse.transfer.service import export_lines, import_lines

    tenant = await auditor(factory)
    await new_token(client, tenant, tenant.account_id)
    sessions = app.state.runtime.sessions
    async with sessions() as session:
        lines = [line async for line in export_lines(session=session)]
    async with sessions() as session:
        await empty_store(session)
        await session.commit()
    async with sessions() as session:
        imported = await import_lines(session=session, lines=lines)
        await session.commit()
    async with sessions() as session:
        records = list(await session.scalars(select(AuditRecord)))
    assert [r.event for r in records] == ["platform.accounts.import.completed"]
    record = records[0]
    assert record.actor["id"] == "system" and record.account_id is None
    assert record.documents == {"import": {"accounts": imported.accounts,
                                           "modules": imported.modules,
                                           "tokens": imported.tokens},
                                "actor": record.actor}
    assert record.object_id.startswith("IMP-") and record.object_type == "Import"


async def test_rendering_is_linear_and_total_whatever_a_template_holds(
        client: httpx.AsyncClient, factory: Factory):
    """Found by review: a template of 10,000 spaces after `{{` held the event loop for
    minutes (the placeholder pattern backtracked), and `{{payload.²}}` made every list with
    render() a 500, Operations' too."""
    import time

    from tokenhouse.audit.service import render_details

    started = time.perf_counter()
    assert render_details("{{" + " " * 9990 + "x", {}) == "{" + " " * 9990 + "x"
    assert render_details("{{" + "a." * 4000 + "}}", {}) == ""
    assert time.perf_counter() - started < 1.0  # was 300 s
    documents = {"payload": [1, 2, 3], "n": {"name": "named"}}
    for template, shown in (("{{payload.²}}", ""), ("{{payload." + "9" * 5000 + "}}", ""),
                            ("{{payload.1}}", "2"), ("{{ n }}", "named"), ("{{payload}}", ""),
                            ("}}{{", "}{"), ("{{{x}}}", "{}")):
        assert render_details(template, documents) == shown, template
    admin = await factory.admin()
    tenant = await auditor(factory)
    planted = await client.post(RECORDS, headers=tenant.headers, json={
        "event": "extension.render.attack", "summary": "x",
        "object": {"id": tenant.account_id}, "details": "{{payload.²}}",
        "payload": [1, 2, 3]})
    assert planted.status_code == 201, planted.text
    for reader in (tenant, admin):
        listed = await client.get(f"{RECORDS}?render()&limit=5", headers=reader.headers)
        assert listed.status_code == 200, listed.text


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_a_payload_no_document_can_hold_is_a_400(client: httpx.AsyncClient,
                                                       factory: Factory, number: str):
    """Found by review: NaN or 1e999 in a record's payload was a 500."""
    tenant = await auditor(factory)
    body = json.dumps({"event": "extension.x.y", "summary": "s",
                       "object": {"id": tenant.account_id}, "payload": {"n": "NUMBER"}}
                      ).replace('"NUMBER"', number)
    problem(await client.post(RECORDS, headers={**tenant.headers,
                                                "Content-Type": "application/json"},
                              content=body), 400)


async def test_an_accounts_own_event_keys_are_bounded_and_ids_never_clash(
        client: httpx.AsyncClient, factory: Factory, monkeypatch: pytest.MonkeyPatch):
    from tokenhouse.audit import service as audit_service
    from tokenhouse.kit import ids

    tenant = await auditor(factory, "Vendor")
    body = {"summary": "s", "object": {"id": tenant.account_id}}
    # A drawn id that is taken (a platform event type's): drawn again, no 500.
    real = ids.new_id
    draws = iter(["AET-1000-0001"])
    monkeypatch.setattr(ids, "new_id", lambda prefix, *rest: (
        next(draws, None) if prefix == "AET" else None) or real(prefix, *rest))
    made = await client.post(RECORDS, headers=tenant.headers,
                             json={**body, "event": "extension.clash.one"})
    assert made.status_code == 201, made.text
    assert next(draws, None) is None
    monkeypatch.setattr(audit_service, "MAX_OWN_EVENT_TYPES", 2)
    assert (await client.post(RECORDS, headers=tenant.headers,
                              json={**body, "event": "extension.clash.two"})).status_code == 201
    problem(await client.post(RECORDS, headers=tenant.headers,
                              json={**body, "event": "extension.clash.three"}), 400, "event")
    # A key it has already is recorded as ever.
    assert (await client.post(RECORDS, headers=tenant.headers,
                              json={**body, "event": "extension.clash.one"})).status_code == 201


async def test_a_record_is_at_most_64_kib(client: httpx.AsyncClient, factory: Factory):
    tenant = await auditor(factory)
    body = {"event": "extension.big.one", "summary": "s", "object": {"id": tenant.account_id}}
    problem(await client.post(RECORDS, headers=tenant.headers,
                              json={**body, "payload": "x" * (64 * 1024)}), 413)
    assert (await client.post(RECORDS, headers=tenant.headers,
                              json={**body, "payload": "x" * 60_000})).status_code == 201
