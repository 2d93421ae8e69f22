"""schemathesis against the OpenAPI document, over the real app, on SQLite and PostgreSQL.

Every operation of `/public/v1/accounts/openapi.json` (read from the app: a new route is
tested without a line here) gets a bounded, derandomized run of generated requests, valid
and invalid ones, each checked for no 5xx, a documented status, a documented content type,
and a body that matches the documented schema. Path ids and the references of a new token
are mostly swapped for ids of seeded objects, so that success paths are reached and not only
404s. The document marks read-only properties `readOnly`, so valid bodies leave them out
(tests/test_openapi.py checks that sending them back changes nothing). Every documented
path is also sent the methods it does not serve: a 405 whose `Allow` names the others.

Invalid cases include requests without the credential (401s): schemathesis drops the
security header to negate it.

The app runs in schemathesis' own ASGI event loop (its lifespan started by `from_asgi`),
against a database of its own: nothing here shares a loop with the session's async fixtures.
What it found is kept as plain tests of the exact requests at the end of this file.
"""

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.databases import BACKENDS, create_pg_database_sync, drop_pg_database_sync, pg_url
from tests.helpers import ACCOUNTS, MODULES, TOKENS
from tokenhouse.app import OPENAPI_URL, create_app
from tokenhouse.bootstrap import bootstrap
from tokenhouse.kit.db import create_engine, session_factory
from tokenhouse.kit.migrate import upgrade
from tokenhouse.kit.settings import Settings

KEY = "schemathesis-key-" + "s" * 40
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
# Per operation and generation mode: ~34 runs of 15 take about half a minute per database.
# TOKENHOUSE_SCHEMATHESIS_EXAMPLES=500 explores deeper (a local run, not CI's).
EXAMPLES = int(os.environ.get("TOKENHOUSE_SCHEMATHESIS_EXAMPLES", "15"))


def _cases() -> list[Any]:
    """(method, path, mode) for every documented operation, read from the app without a
    database: invalid input only where the operation takes some (parameters or a body)."""
    app = create_app(Settings(database_url="sqlite+aiosqlite:///unused.db",
                              secret_key=SecretStr(KEY)))
    cases = []
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            modes = [GenerationMode.POSITIVE]
            if operation.get("parameters") or operation.get("requestBody"):
                modes.append(GenerationMode.NEGATIVE)
            cases += [pytest.param(method.upper(), path, mode,
                                   id=f"{method.upper()} {path} {mode.value}")
                      for mode in modes]
    return cases


CASES = _cases()


# The smallest GIF: an icon in a format the document must name too.
GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c000000000100"
                    "01000002024401003b")


@dataclass
class Seeded:
    """The running app, its schema, a caller of each kind, and objects that generated
    requests can point at."""

    app: FastAPI
    schema: Any
    admin: str
    tenant: str = ""
    readable: dict[str, list[str]] = field(default_factory=dict)
    victims: dict[str, list[str]] = field(default_factory=dict)
    client_modules: list[str] = field(default_factory=list)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        with asgi.get_client(self.app) as client:
            return client.request(method, path, headers=bearer(self.admin), **kwargs)

    def create(self, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.request("POST", path, **kwargs)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def _bootstrap(settings: Settings) -> tuple[str, str]:
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session:
            made = await bootstrap(session=session, key=settings.hmac_key(),
                                   account_name="Operations")
            assert made is not None
            await session.commit()
            return made.secret, made.account.id
    finally:
        await engine.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Settings]:
    """A migrated database of each kind for this module alone."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("schemathesis") / "tokenhouse.db"
        settings = Settings(database_url=f"sqlite+aiosqlite:///{path}",
                            secret_key=SecretStr(KEY), last_access_interval=0.2)
        upgrade(settings)
        yield settings
        return
    name = create_pg_database_sync("tokenhouse_schemathesis")
    try:
        settings = Settings(database_url=pg_url(name), secret_key=SecretStr(KEY),
                            last_access_interval=0.2)
        upgrade(settings)
        yield settings
    finally:
        drop_pg_database_sync(name)


# An event type of the platform's catalog (migration 0010).
PLATFORM_EVENT_TYPE = "AET-1000-0001"
WEBHOOKS = "/public/v1/audit/webhooks"
# An audit webhook to a name that never resolves (RFC 2606).
WEBHOOK = {"url": "https://hooks.example.invalid/schemathesis", "events": ["*"]}


@pytest.fixture(scope="module")
def seeded(database: Settings) -> Iterator[Seeded]:
    """The app, an admin (Operations) and a tenant (Client, Access Management) to call it
    with, and readable objects of each kind (an account with an icon among them)."""
    secret, account_id = asyncio.run(_bootstrap(database))
    app = create_app(database)
    # Loading the schema starts the app's lifespan in schemathesis' event loop thread.
    schema = schemathesis.openapi.from_asgi(OPENAPI_URL, app)
    seeded = Seeded(app=app, schema=schema, admin=secret)
    try:
        catalog = seeded.request("GET", f"{MODULES}?limit=100").json()["data"]
        seeded.client_modules = [module["id"] for module in catalog
                                 if "Client" in module["accountTypes"]]
        tenant_account = seeded.create(ACCOUNTS, data={"account": '{"name": "Tenant", '
                                                                  '"type": "Client"}'},
                                       files={"icon": ("icon.gif", GIF, "image/gif")})
        tenant = seeded.create(TOKENS, json={
            "name": "tenant", "account": {"id": tenant_account["id"]},
            "modules": [{"id": module} for module in seeded.client_modules]})
        seeded.tenant = tenant["token"]
        webhook = seeded.create(WEBHOOKS, json=WEBHOOK)
        records = seeded.request("GET", "/public/v1/audit/records?limit=2").json()["data"]
        seeded.readable = {"account_id": [account_id, tenant_account["id"]],
                           "token_id": [tenant["id"]],
                           "module_id": [module["id"] for module in catalog],
                           "record_id": [record["id"] for record in records],
                           "type_id": [PLATFORM_EVENT_TYPE],
                           "webhook_id": [webhook["id"]]}
        yield seeded
    finally:
        asgi.shutdown_lifespans()


@pytest.fixture
def victims(seeded: Seeded) -> Seeded:
    """Fresh objects that this test's generated requests may change, disable or delete (never
    the admin's or the tenant's: they must keep authenticating)."""
    accounts = [seeded.create(ACCOUNTS, json={"name": f"victim {kind}", "type": kind})["id"]
                for kind in ("Client", "Vendor")]
    tokens = [seeded.create(TOKENS, json={
        "name": "victim", "account": {"id": accounts[0]},
        "modules": [{"id": seeded.client_modules[0]}]})["id"] for _ in range(3)]
    response = seeded.request("POST", f"{TOKENS}/{tokens[0]}/disable")
    assert response.status_code == 200, response.text
    seeded.victims = {"account_id": accounts, "token_id": tokens,
                      "type_id": [PLATFORM_EVENT_TYPE],
                      "webhook_id": [seeded.create(WEBHOOKS, json={
                          **WEBHOOK, "account": {"id": accounts[0]}})["id"]]}
    return seeded


def _reach(case: Any, seeded: Seeded, data: st.DataObject) -> None:
    """Point a generated case at seeded objects, most of the time: path ids (objects that
    may be changed for a change, any readable one for a read), and the account and modules
    of a new token."""
    pool = seeded.readable if case.method == "GET" else seeded.victims
    for name in case.path_parameters or {}:
        # Mostly a seeded id; sometimes the generated one (None).
        seeded_id = data.draw(st.sampled_from([*pool.get(name, []), None]), label=name)
        if seeded_id is not None:
            case.path_parameters[name] = seeded_id
    body = case.body
    if isinstance(body, dict) and case.method == "POST" and case.path == TOKENS:
        if data.draw(st.sampled_from([True, True, False]), label="seeded references"):
            body["account"] = {"id": data.draw(st.sampled_from(seeded.victims["account_id"]))}
            body["modules"] = [{"id": module} for module in data.draw(
                st.lists(st.sampled_from(seeded.client_modules), min_size=1, max_size=3))]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_operation_conforms(victims: Seeded, method: str, path: str,
                            mode: GenerationMode) -> None:
    seeded = victims
    operation = seeded.schema[path][method]
    strategy = operation.as_strategy(generation_mode=mode)
    who = [seeded.admin, seeded.tenant]

    @hypothesis_settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
                         database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(strategy, label="case")
        _reach(case, seeded, data)
        secret = data.draw(st.sampled_from(who), label="caller")
        if "/self" in path:  # the caller rotates or deletes itself: a token of its own
            secret = seeded.create(TOKENS, json={
                "name": "itself", "account": {"id": seeded.victims["account_id"][0]},
                "modules": [{"id": seeded.client_modules[0]}]})["token"]
        headers = {**(case.headers or {}), **bearer(secret)}
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS, headers=headers)

    run()


def allow_names_every_method_of_the_path(ctx: Any, response: Any, case: Any) -> bool | None:
    """A check of ours: a 405 names in `Allow` exactly the methods the document gives the
    path (RFC 9110, 15.5.6)."""
    if response.status_code != 405:
        return None
    documented = {method.upper() for method in case.operation.schema[case.operation.path]}
    header = ",".join(response.headers.get("allow", []))
    allowed = {method.strip() for method in header.split(",") if method.strip()}
    assert allowed == documented, f"Allow: {header!r}; the document: {sorted(documented)}"
    return True


@pytest.mark.parametrize("path", sorted({case.values[1] for case in CASES}))
def test_an_undocumented_method_answers_405_naming_the_others(seeded: Seeded,
                                                             path: str) -> None:
    """Found: `Allow` named the methods of the first route that matched the path only
    (PATCH /api-tokens/{id} was told `Allow: GET`, though PUT and DELETE are served)."""
    operation = next(iter(seeded.schema[path].values()))
    ids = {name: pool[0] for name, pool in seeded.readable.items() if name in path}
    for other in sorted({"GET", "POST", "PUT", "PATCH", "DELETE"} - {
            name.upper() for name in seeded.schema[path]}):
        case = operation.Case(method=other, path_parameters=ids)
        response = case.call(headers=bearer(seeded.admin))
        assert response.status_code == 405, (other, response.text)
        assert response.headers["content-type"] == ["application/problem+json"]
        case.validate_response(response, checks=[not_a_server_error,
                                                 allow_names_every_method_of_the_path])


# -- what it found, as plain tests of the exact requests ---------------------------------


def _validate(seeded: Seeded, method: str, path: str, **case: Any) -> Any:
    """Send one exact request as the admin and run the conformance checks on the answer."""
    made = seeded.schema[path][method].Case(**case)
    headers = bearer(seeded.admin)
    response = made.call(headers=headers)
    made.validate_response(response, checks=CHECKS, headers=headers)
    return response


def test_a_gif_icon_is_served_as_documented(seeded: Seeded) -> None:
    """An icon uploaded as GIF (or WebP) is served as image/gif; the document named PNG and
    JPEG only (ST105 Undocumented Content-Type)."""
    response = _validate(seeded, "GET", f"{ACCOUNTS}/{{account_id}}/icon",
                         path_parameters={"account_id": seeded.readable["account_id"][1]})
    assert response.status_code == 200
    assert response.headers["content-type"] == ["image/gif"]


@pytest.mark.parametrize("select", ["-*", "-name", "-*,+audit.created.at", "-audit.created"])
@pytest.mark.parametrize("path", [TOKENS, f"{TOKENS}/{{token_id}}", ACCOUNTS,
                                  f"{ACCOUNTS}/{{account_id}}", MODULES,
                                  f"{MODULES}/{{module_id}}"])
def test_a_selected_shape_is_documented(seeded: Seeded, path: str, select: str) -> None:
    """`select` may leave out any field but `id`, at any depth (`-*` answers `{"id": ...}`);
    the document required every field of the default shape (ST103 Response violates
    schema)."""
    ids = {name: pool[0] for name, pool in seeded.readable.items() if name in path}
    response = _validate(seeded, "GET", path, path_parameters=ids, query={"select": select})
    assert response.status_code == 200, response.text


# Found on every list: `"" in "+- "` is true, so an empty item read item[0] (IndexError, 500).
FOUND_ORDER = ",./;'[]\\-=<>?:\"{}|_+!@#$%^&*()`~"


@pytest.mark.parametrize("query", [{"order": FOUND_ORDER}, {"order": "name,"},
                                   {"order": "a,,b"}, {"select": ","}, {"select": "-name,"}],
                         ids=["found", "order-trailing", "order-empty", "select-comma",
                              "select-trailing"])
@pytest.mark.parametrize("path", [TOKENS, f"{TOKENS}/{{token_id}}", ACCOUNTS,
                                  f"{ACCOUNTS}/{{account_id}}", MODULES,
                                  f"{MODULES}/{{module_id}}"])
def test_an_empty_select_or_order_item_is_a_400(seeded: Seeded, path: str,
                                                query: dict[str, str]) -> None:
    ids = {name: pool[0] for name, pool in seeded.readable.items() if name in path}
    response = _validate(seeded, "GET", path, path_parameters=ids, query=query)
    assert response.status_code == 400, response.text
    assert list(response.json()["errors"]) == list(query)
