"""Every case of shared/spec/rql-cases.json, on SQLite and PostgreSQL, with the fixture
loaded by `tokenhouse import`: through `tokenhouse tokens list --query` (the operator's view,
exactly the fixture's rows) and through HTTP with an Operations token.

The HTTP caller's own token is imported with the fixture (TKN-9999-9999, so that it sorts
last by id); it is visible to itself, so the HTTP checks take its row out of the answer and
out of the total, as the cases' conventions say.
"""

import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from typer.testing import CliRunner

from tests.databases import BACKENDS, create_pg_database, drop_pg_database, pg_url
from tests.helpers import TOKENS
from tests.processes import clean_env, describe, run_cli
from tokenhouse.app import create_app
from tokenhouse.cli import app as cli
from tokenhouse.kit.settings import Settings, get_settings

SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec" / "rql-cases.json"
CASES = json.loads(SPEC.read_text())
KEY = "conformance-key-" + "c" * 40
CALLER_ID = "TKN-9999-9999"
CALLER_SECRET = f"idt:{CALLER_ID}:{secrets.token_urlsafe(32)}"


def fixture_lines(*, with_caller: bool) -> list[dict[str, Any]]:
    """The cases' fixture as an export file: accounts, modules, then tokens; and, for HTTP,
    the caller (an Operations token with a known secret hash)."""
    tokens = CASES["fixture"]
    accounts = [*{t["account"]["id"]: t["account"] for t in tokens}.values()]
    modules = [*{m["id"]: m for t in tokens for m in t["modules"]}.values()]
    if not with_caller:
        return [*accounts, *modules, *tokens]
    caller_account = {"id": "ACC-9999-9999", "name": "zzz operator", "type": "Operations"}
    caller = {
        "id": CALLER_ID, "name": "zzz caller", "status": "Active", "account": caller_account,
        "modules": [{"id": "MOD-1732"}],
        "secretHash": hmac.new(KEY.encode(), CALLER_SECRET.encode(), hashlib.sha256).hexdigest(),
    }
    return [*accounts, caller_account, *modules, *tokens, caller]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


async def loaded_store(backend: str, workdir: Path, with_caller: bool
                       ) -> AsyncIterator[dict[str, Any]]:
    """A fresh database holding the fixture, loaded by the real `tokenhouse import`."""
    database = None
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'rql.db'}"
    else:
        database = await create_pg_database("tokenhouse_rql")
        url = pg_url(database)
    env = clean_env(TOKENHOUSE_DATABASE_URL=url, TOKENHOUSE_SECRET_KEY=KEY)
    fixture = workdir / "fixture.jsonl"
    lines = fixture_lines(with_caller=with_caller)
    fixture.write_text("".join(json.dumps(line) + "\n" for line in lines))
    try:
        for args in (("migrate",), ("import", str(fixture))):
            result = run_cli(*args, cwd=workdir, env=env)
            assert result.returncode == 0, describe(result)
        tokens = sum(1 for line in lines if line["id"].startswith("TKN-"))
        assert f"{tokens} tokens" in result.stderr, describe(result)
        yield {"url": url, "env": env}
    finally:
        if database:
            await drop_pg_database(database)


@pytest.fixture(scope="module")
async def operator_store(backend: str, tmp_path_factory: pytest.TempPathFactory
                         ) -> AsyncIterator[dict[str, Any]]:
    """Exactly the fixture's rows, as the cases assume for the operator's view."""
    async for store in loaded_store(backend, tmp_path_factory.mktemp("rql-operator"), False):
        yield store


@pytest.fixture(scope="module")
async def http_store(backend: str, tmp_path_factory: pytest.TempPathFactory
                     ) -> AsyncIterator[dict[str, Any]]:
    async for store in loaded_store(backend, tmp_path_factory.mktemp("rql-http"), True):
        yield store


@pytest.fixture(scope="module")
async def http(http_store: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    store = http_store
    settings = Settings(database_url=store["url"], secret_key=SecretStr(KEY))
    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://rql.test",
                                     headers={"Authorization": f"Bearer {CALLER_SECRET}"}) as c:
            yield c


@pytest.fixture
def operator(operator_store: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """`tokenhouse tokens list --query Q`, run in-process (the same command function the
    script runs), against the store."""
    store = operator_store
    for key in ("TOKENHOUSE_DATABASE_URL", "TOKENHOUSE_SECRET_KEY"):
        monkeypatch.setenv(key, store["env"][key])
    get_settings.cache_clear()
    runner = CliRunner()

    def run(query: str) -> tuple[int, dict[str, Any]]:
        result = runner.invoke(cli, ["tokens", "list", "--query", query])
        return result.exit_code, json.loads(result.stdout)

    yield run
    get_settings.cache_clear()


def case_id(case: dict[str, Any]) -> str:
    return case["query"] or "(empty)"


def check_shape(items: list[dict[str, Any]], case: dict[str, Any]) -> None:
    for item in items:
        for path in case.get("expect_fields_present", []):
            assert has(item, path.split(".")), (path, item)
        for path in case.get("expect_fields_absent", []):
            assert not has(item, path.split(".")), (path, item)


def has(value: Any, path: list[str]) -> bool:
    """Whether the key path exists; through a list, in every element."""
    if not path:
        return True
    if isinstance(value, list):
        return all(has(element, path) for element in value)
    return isinstance(value, dict) and path[0] in value and has(value[path[0]], path[1:])


@pytest.mark.parametrize("case", CASES["cases"], ids=case_id)
def test_case_through_the_operator_command(operator: Any, case: dict[str, Any]) -> None:
    code, body = operator(case["query"])
    if "expect_error" in case:
        assert code != 0 and body["status"] == case["expect_error"], body
        assert body["errors"], body
        return
    assert code == 0, body
    assert [item["id"] for item in body["data"]] == case["expect_ids"]
    if "expect_total" in case:
        assert body["$meta"]["pagination"]["total"] == case["expect_total"]
    check_shape(body["data"], case)


@pytest.mark.parametrize("case", CASES["cases"], ids=case_id)
async def test_case_over_http(http: httpx.AsyncClient, case: dict[str, Any]) -> None:
    response = await http.get(f"{TOKENS}?{case['query']}" if case["query"] else TOKENS)
    if "expect_error" in case:
        assert response.status_code == case["expect_error"], response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["errors"]
        return
    assert response.status_code == 200, response.text
    body = response.json()
    ids = [item["id"] for item in body["data"]]
    assert [i for i in ids if i != CALLER_ID] == case["expect_ids"]
    if "expect_total" in case:
        # The caller's row counts when it matches: find out from the whole matching set.
        total = body["$meta"]["pagination"]["total"]
        assert total in (case["expect_total"], case["expect_total"] + 1)
        if total != case["expect_total"]:
            assert CALLER_ID in await every_id(http, case["query"])
    check_shape([item for item in body["data"] if item["id"] != CALLER_ID], case)


async def every_id(http: httpx.AsyncClient, query: str) -> list[str]:
    parts = [p for p in query.split("&") if not p.startswith(("limit=", "offset="))]
    response = await http.get(f"{TOKENS}?{'&'.join([*parts, 'limit=100'])}")
    return [item["id"] for item in response.json()["data"]]
