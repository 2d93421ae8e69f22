"""Who may call what: every operation of the app's route table against every kind of caller,
on SQLite and PostgreSQL.

The order of answers is fixed everywhere: 401 (no valid credential) -> 403 (the token lacks
what the operation needs) -> 404 (not visible to this tenant) -> 400 (query or body) -> 409
(state or revision). Each cell is asked twice where the operation takes a body or a query:
with a valid one (the status in the matrix) and with a bad one, which must not change a 401,
403 or 404 (neither is looked at before those are decided) and is a 400 otherwise.

A route added to the app without a row here fails `test_every_route_has_a_row`.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from sqlalchemy import select

from tests.factories import ALL_OF_TYPE, Factory, Issued
from tests.helpers import V1, problem
from tokenhouse.accounts import service as accounts
from tokenhouse.accounts.schemas import AccountUpdate
from tokenhouse.audit.models import AuditRecord
from tokenhouse.auth.actor import Actor, system_actor
from tokenhouse.auth.service import authenticate
from tokenhouse.kit.problems import Forbidden
from tokenhouse.kit.wire import Ref
from tokenhouse.modules.repository import all_modules
from tokenhouse.tokens import service as tokens
from tokenhouse.webhooks import service as webhooks
from tokenhouse.webhooks.schemas import WebhookCreate

AUDIT = "/public/v1/audit"
EVENT_TYPE = "AET-1000-0001"  # a platform event type (migration 0010)
MARKETPLACE = "MOD-3419"  # for Client and Operations accounts, not Vendor ones
HELPDESK = "MOD-5907"  # for every account type
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
# Never resolves (RFC 2606): the app's delivery worker may try it, and fails.
WEBHOOK_URL = "https://hooks.example.invalid/matrix"

# The callers. The object an operation addresses belongs to tenant A (a Client account).
CALLERS = (
    "none",              # no Authorization header
    "malformed",         # a Bearer value that is no token
    "disabled",          # tenant A's Disabled token (every module of its type)
    "disabled_account",  # a token (every module) of a Disabled account
    "no_module",         # tenant A's token without Access Management / Account Management
    "itself",            # the addressed token itself (Marketplace only)
    "owner",             # tenant A's token with every module of its type
    "other_tenant",      # tenant B's (Vendor) token with every module of its type
    "operations",        # an Operations token with every module
)
UNAUTHENTICATED = {caller: 401 for caller in CALLERS[:4]}


def row(**statuses: int) -> dict[str, int]:
    """The expected statuses of one operation, for every caller (401 for those without a
    valid credential)."""
    expected = {**UNAUTHENTICATED, **statuses}
    assert set(expected) == set(CALLERS), sorted(set(CALLERS) - set(expected))
    return expected


def anyone(status: int) -> dict[str, int]:
    """An operation that any valid token may call."""
    return row(**{caller: status for caller in CALLERS[4:]})


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # FastAPI's route path; {token_id}, {account_id}, {module_id} are filled in
    expected: dict[str, int]
    body: Callable[["World"], Any] | None = None  # a valid JSON body
    bad_body: Any = None  # a body that is a 400 wherever the body is read
    bad_query: str | None = None  # a query string that is a 400 wherever it is read


def token_body(world: "World") -> dict[str, Any]:
    return {"name": "Made in the matrix", "account": {"id": world.account_a},
            "modules": [{"id": HELPDESK}]}


LIST_QUERY = "eq(no.such.field,1)"
ITEM_QUERY = "select=-no.such.field"

MATRIX = (
    Operation("GET", f"{V1}/api-tokens",
              row(no_module=403, itself=403, owner=200, other_tenant=200, operations=200),
              bad_query=LIST_QUERY),
    Operation("POST", f"{V1}/api-tokens",
              # Tenant B names an account it cannot see: a property of the body, so 400.
              row(no_module=403, itself=403, owner=201, other_tenant=400, operations=201),
              body=token_body, bad_body={"name": ""}),
    Operation("GET", f"{V1}/api-tokens/{{token_id}}",
              row(no_module=403, itself=200, owner=200, other_tenant=404, operations=200),
              bad_query=ITEM_QUERY),
    Operation("PUT", f"{V1}/api-tokens/{{token_id}}",
              row(no_module=403, itself=403, owner=200, other_tenant=404, operations=200),
              body=lambda world: {"name": "Renamed"}, bad_body={"name": None}),
    Operation("DELETE", f"{V1}/api-tokens/{{token_id}}",
              row(no_module=403, itself=403, owner=204, other_tenant=404, operations=204)),
    Operation("POST", f"{V1}/api-tokens/{{token_id}}/disable",
              row(no_module=403, itself=403, owner=200, other_tenant=404, operations=200),
              body=lambda world: {}, bad_body={"unexpected": True}),
    # The token is Active: enabling it is a 409, which comes after 403 and 404.
    Operation("POST", f"{V1}/api-tokens/{{token_id}}/enable",
              row(no_module=403, itself=403, owner=409, other_tenant=404, operations=409),
              body=lambda world: {}, bad_body={"unexpected": True}),
    Operation("POST", f"{V1}/api-tokens/{{token_id}}/rotate",
              row(no_module=403, itself=403, owner=200, other_tenant=404, operations=200),
              body=lambda world: {"gracePeriodSeconds": 60},
              bad_body={"gracePeriodSeconds": -1}),
    # No rotation gave the token a previous secret: revoking it is a 409.
    Operation("POST", f"{V1}/api-tokens/{{token_id}}/revoke-previous-secret",
              row(no_module=403, itself=403, owner=409, other_tenant=404, operations=409),
              body=lambda world: {}, bad_body={"unexpected": True}),
    # The platform's services only: an Operations token with Access Management.
    Operation("POST", f"{V1}/api-tokens/introspect",
              row(no_module=403, itself=403, owner=403, other_tenant=403, operations=200),
              body=lambda world: {"token": world.tokens["owner"].secret},
              bad_body={"token": 7}),
    # The self-service routes address the caller's own token: any valid token, no module.
    Operation("GET", f"{V1}/api-tokens/self", anyone(200), bad_query=ITEM_QUERY),
    Operation("POST", f"{V1}/api-tokens/self/rotate", anyone(200),
              body=lambda world: {}, bad_body={"retirePreviousOnFirstUse": "yes"}),
    Operation("DELETE", f"{V1}/api-tokens/self", anyone(204)),
    Operation("GET", f"{V1}/modules", anyone(200), bad_query=LIST_QUERY),
    Operation("GET", f"{V1}/modules/{{module_id}}",
              row(no_module=200, itself=200, owner=200, other_tenant=404, operations=200),
              bad_query=ITEM_QUERY),
    Operation("GET", f"{V1}/accounts", anyone(200), bad_query=LIST_QUERY),
    Operation("POST", f"{V1}/accounts",
              row(no_module=403, itself=403, owner=403, other_tenant=403, operations=201),
              body=lambda world: {"name": "Made in the matrix", "type": "Client"},
              bad_body={"name": "No type"}),
    Operation("GET", f"{V1}/accounts/{{account_id}}",
              row(no_module=200, itself=200, owner=200, other_tenant=404, operations=200),
              bad_query=ITEM_QUERY),
    Operation("PUT", f"{V1}/accounts/{{account_id}}",
              row(no_module=403, itself=403, owner=403, other_tenant=403, operations=200),
              body=lambda world: {"name": "Renamed"}, bad_body={"type": "Vendor"}),
    Operation("POST", f"{V1}/accounts/{{account_id}}/disable",
              row(no_module=403, itself=403, owner=403, other_tenant=403, operations=200),
              body=lambda world: {}, bad_body={"unexpected": True}),
    # The account is Active: enabling it is a 409.
    Operation("POST", f"{V1}/accounts/{{account_id}}/enable",
              row(no_module=403, itself=403, owner=403, other_tenant=403, operations=409),
              body=lambda world: {}, bad_body={"unexpected": True}),
    Operation("GET", f"{V1}/accounts/{{account_id}}/icon",
              row(no_module=200, itself=200, owner=200, other_tenant=404, operations=200)),
    # The audit trail: the Audit module (any account type), each tenant its own records.
    Operation("GET", f"{AUDIT}/records",
              row(no_module=403, itself=403, owner=200, other_tenant=200, operations=200),
              bad_query=LIST_QUERY),
    # Tenant B names tenant A's account as the object: a property of the body, so 400.
    Operation("POST", f"{AUDIT}/records",
              row(no_module=403, itself=403, owner=201, other_tenant=400, operations=201),
              body=lambda world: {"event": "extension.matrix.test", "summary": "Matrix",
                                  "object": {"id": world.account_a}},
              bad_body={"event": 7}),
    Operation("GET", f"{AUDIT}/records/{{record_id}}",
              row(no_module=403, itself=403, owner=200, other_tenant=404, operations=200),
              bad_query=ITEM_QUERY),
    Operation("GET", f"{AUDIT}/event-types",
              row(no_module=403, itself=403, owner=200, other_tenant=200, operations=200),
              bad_query=LIST_QUERY),
    Operation("GET", f"{AUDIT}/event-types/{{type_id}}",
              row(no_module=403, itself=403, owner=200, other_tenant=200, operations=200),
              bad_query=ITEM_QUERY),
    Operation("PUT", f"{AUDIT}/event-types/{{type_id}}",
              row(no_module=403, itself=403, owner=403, other_tenant=403, operations=200),
              body=lambda world: {"description": "Changed in the matrix"},
              bad_body={"description": 7}),
    # Audit webhooks: the Audit module, each tenant its own (tenant A's webhook addressed).
    Operation("GET", f"{AUDIT}/webhooks",
              row(no_module=403, itself=403, owner=200, other_tenant=200, operations=200),
              bad_query=LIST_QUERY),
    # Tenant B names tenant A's account: a property of the body, so 400.
    Operation("POST", f"{AUDIT}/webhooks",
              row(no_module=403, itself=403, owner=201, other_tenant=400, operations=201),
              body=lambda world: {"url": WEBHOOK_URL, "events": ["*"],
                                  "account": {"id": world.account_a}},
              bad_body={"url": 7}),
    Operation("GET", f"{AUDIT}/webhooks/{{webhook_id}}",
              row(no_module=403, itself=403, owner=200, other_tenant=404, operations=200),
              bad_query=ITEM_QUERY),
    Operation("PUT", f"{AUDIT}/webhooks/{{webhook_id}}",
              row(no_module=403, itself=403, owner=200, other_tenant=404, operations=200),
              body=lambda world: {"description": "Changed in the matrix"},
              bad_body={"events": []}),
    Operation("DELETE", f"{AUDIT}/webhooks/{{webhook_id}}",
              row(no_module=403, itself=403, owner=204, other_tenant=404, operations=204)),
    Operation("POST", f"{AUDIT}/webhooks/{{webhook_id}}/disable",
              row(no_module=403, itself=403, owner=200, other_tenant=404, operations=200),
              body=lambda world: {}, bad_body={"unexpected": True}),
    # The webhook is Enabled: enabling it is a 409.
    Operation("POST", f"{AUDIT}/webhooks/{{webhook_id}}/enable",
              row(no_module=403, itself=403, owner=409, other_tenant=404, operations=409),
              body=lambda world: {}, bad_body={"unexpected": True}),
    Operation("GET", f"{AUDIT}/webhooks/{{webhook_id}}/deliveries",
              row(no_module=403, itself=403, owner=200, other_tenant=404, operations=200),
              bad_query=LIST_QUERY),
)

# Routes that need no credential at all, and why.
PUBLIC = {
    ("GET", "/healthz"),  # liveness, no I/O
    ("GET", "/readyz"),  # readiness
    ("GET", "/metrics"),  # Prometheus scrapes: counts by route template, no ids (README)
    ("GET", "/"),  # redirect to the web page, which signs in with a token itself
    ("GET", "/portal"),  # the same
    ("GET", f"{V1}/openapi.json"),  # the API's description
    ("POST", f"{V1}/api-tokens/revoke-leaked"),  # leak reports, from anyone (tests/leaks)
}


def route_table(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route of the app, HEAD left out (it mirrors GET)."""
    return {(method, re.sub(r":\w+}", "}", context.path))  # `{token_id:token_id}`
            for context in iter_route_contexts(app.routes)
            for method in (context.methods or ()) if method != "HEAD"}


def test_every_route_has_a_row(app: FastAPI) -> None:
    known = {(operation.method, operation.path) for operation in MATRIX} | PUBLIC
    table = route_table(app)
    # The API's documentation pages (Swagger UI) carry no data.
    table = {(method, path) for method, path in table
             if not path.startswith((f"{V1}/docs", "/docs"))}
    assert table - known == set(), "routes without a row in the permission matrix"
    assert known - table == set(), "rows of the matrix without a route"


@dataclass
class World:
    account_a: str
    tokens: dict[str, Issued]
    record_id: str  # the record of the addressed token's creation, in tenant A's trail
    webhook_id: str  # tenant A's audit webhook (Enabled)


async def make_world(app: FastAPI, factory: Factory) -> World:
    """Tenant A with its tokens, tenant B, a Disabled account's token and an Operations
    token, all made through the services."""
    operations = await factory.admin()
    account_a = (await factory.account("Client"))["id"]
    tokens = {
        "itself": await factory.token(account_a, ("Marketplace",)),
        "owner": await factory.token(account_a, ALL_OF_TYPE),
        "no_module": await factory.token(account_a, ("Helpdesk",)),
        "disabled": await factory.token(account_a, ALL_OF_TYPE, status="Disabled"),
        "other_tenant": await factory.tenant("Vendor", ALL_OF_TYPE),
        "operations": operations,
    }
    account_d = (await factory.account("Client"))["id"]
    tokens["disabled_account"] = await factory.token(account_d, ALL_OF_TYPE)
    async with app.state.runtime.sessions() as session:
        catalog = await all_modules(session)
        actor = system_actor(frozenset(m.name for m in catalog), frozenset(m.id for m in catalog))
        account = await accounts.get_account(session=session, actor=actor, account_id=account_d)
        await accounts.disable_account(session=session, actor=actor, account=account)
        account = await accounts.get_account(session=session, actor=actor, account_id=account_a)
        await accounts.update_account(session=session, actor=actor, account=account,
                                      data=AccountUpdate(),
                                      icon=accounts.Icon("image/png", PNG))
        await session.commit()
        record_id = await session.scalar(select(AuditRecord.id).where(
            AuditRecord.object_id == tokens["itself"].id))
        webhook, _, _ = await webhooks.create_webhook(
            session=session, actor=actor, key=app.state.runtime.hmac_key, allow_private=False,
            data=WebhookCreate(url=WEBHOOK_URL, events=["*"], account=Ref(id=account_a)))
        await session.commit()
    assert record_id is not None
    return World(account_a, tokens, record_id, webhook.id)


def headers(world: World, caller: str) -> dict[str, str]:
    if caller == "none":
        return {}
    if caller == "malformed":
        return {"Authorization": "Bearer not-a-token"}
    return world.tokens[caller].headers


def url(operation: Operation, world: World) -> str:
    return operation.path.format(token_id=world.tokens["itself"].id,
                                 account_id=world.account_a, module_id=MARKETPLACE,
                                 record_id=world.record_id, type_id=EVENT_TYPE,
                                 webhook_id=world.webhook_id)


CELLS = [pytest.param(operation, caller, id=f"{operation.method} {operation.path} as {caller}")
         for operation in MATRIX for caller in CALLERS]


@pytest.mark.parametrize(("operation", "caller"), CELLS)
async def test_permission(operation: Operation, caller: str, app: FastAPI,
                          client: httpx.AsyncClient, factory: Factory) -> None:
    world = await make_world(app, factory)
    expected = operation.expected[caller]
    target = url(operation, world)
    if operation.body is not None:
        # First the bad body: it changes nothing, and must not be read before 401/403/404.
        bad = await client.request(operation.method, target, json=operation.bad_body,
                                   headers=headers(world, caller))
        problem(bad, expected if expected in (401, 403, 404) else 400)
    if operation.bad_query is not None:
        bad = await client.request(operation.method, f"{target}?{operation.bad_query}",
                                   headers=headers(world, caller))
        problem(bad, expected if expected in (401, 403, 404) else 400)
    response = await client.request(
        operation.method, target, headers=headers(world, caller),
        json=operation.body(world) if operation.body is not None else None)
    if expected >= 400:
        problem(response, expected)
    else:
        assert response.status_code == expected, response.text


async def test_a_token_without_access_management_cannot_change_itself(
        client: httpx.AsyncClient, factory: Factory) -> None:
    """The defect the matrix was written for, step by step: a token holding another module
    reads itself, but cannot rename, disable or delete itself; it stays as it was."""
    tenant = await factory.tenant(modules=("Marketplace",))
    own = f"{V1}/api-tokens/{tenant.id}"
    assert (await client.get(own, headers=tenant.headers)).status_code == 200
    problem(await client.put(own, json={"name": "Mine now"}, headers=tenant.headers), 403)
    problem(await client.post(f"{own}/disable", headers=tenant.headers), 403)
    problem(await client.delete(own, headers=tenant.headers), 403)
    problem(await client.post(f"{V1}/api-tokens", json={}, headers=tenant.headers), 403)
    after = (await client.get(own, headers=tenant.headers)).json()
    assert after["status"] == "Active" and after["revision"] == 1


async def test_services_check_the_permission_themselves(app: FastAPI,
                                                        factory: Factory) -> None:
    """A caller that is not a route (the command line, the web page's future server side)
    is held to the same rules by the services."""
    tenant = await factory.tenant(modules=("Marketplace",))
    async with app.state.runtime.sessions() as session:
        actor = await _actor_of(app, tenant)
        token = await tokens.get_token(session=session, actor=actor, token_id=tenant.id,
                                       for_update=True)
        for change in (tokens.disable_token, tokens.delete_token):
            with pytest.raises(Forbidden):
                await change(session=session, actor=actor, token=token)
        account = await accounts.get_account(session=session, actor=actor,
                                             account_id=tenant.account_id)
        with pytest.raises(Forbidden):
            await accounts.update_account(session=session, actor=actor, account=account,
                                          data=AccountUpdate(name="x"))
        await session.rollback()


async def _actor_of(app: FastAPI, issued: Issued) -> Actor:
    return await authenticate(engine=app.state.runtime.engine, secret=issued.secret,
                              key=app.state.runtime.hmac_key)


async def test_a_bad_body_is_400_before_the_state_or_revision_is_409(
        client: httpx.AsyncClient, factory: Factory) -> None:
    """Checks the services make of a body (not only the wire model's) come before 409s."""
    admin = await factory.admin()
    tenant = await factory.tenant(modules=("Access Management",))
    other = await factory.account("Client")
    token = f"{V1}/api-tokens/{tenant.id}"
    for body in ({"revision": 999, "name": None}, {"revision": 999, "modules": None},
                 {"revision": 999, "account": {"id": other["id"]}},
                 {"revision": 999, "modules": [{"id": "MOD-0000"}]}):
        problem(await client.put(token, json=body, headers=admin.headers), 400)
    problem(await client.put(token, json={"revision": 999, "name": "x"},
                             headers=admin.headers), 409)
    deleted = await factory.token(tenant.account_id, status="Deleted")
    gone = f"{V1}/api-tokens/{deleted.id}"
    problem(await client.put(gone, json={"name": None}, headers=admin.headers), 400)
    problem(await client.put(gone, json={"name": "x"}, headers=admin.headers), 409)
    account = f"{V1}/accounts/{tenant.account_id}"
    for body in ({"revision": 999, "type": "Vendor"}, {"revision": 999, "name": None}):
        problem(await client.put(account, json=body, headers=admin.headers), 400)
    problem(await client.put(account, json={"revision": 999, "name": "x"},
                             headers=admin.headers), 409)
