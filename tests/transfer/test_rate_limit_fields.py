"""Export and import carry issue 12's token fields losslessly, on SQLite and PostgreSQL: the
rate limit (`rateLimit`) and why the service disabled a token (`statusReason`, `Leaked`).

- a file with every such state imports (the checked reading, row by row), exports, imports
  again (export's own lines: the fast reading, in bulk into an empty store) and exports the
  same bytes; the tokens read over HTTP as exported, a moved limit is enforced, and a moved
  leaked token still answers 409 to enable until it is rotated;
- bad values are refused by line number and property, nothing written, alike both ways;
  `Leaked` only on a Disabled (or Deleted) token;
- a file of before (no such property) imports as tokens without a limit, even where the
  server gives new tokens a default one: an import restores tokens, it does not create them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from tests.factories import Factory
from tests.helpers import TOKENS, app_with, problem
from tests.transfer.test_lifecycle_fields import (
    STORED_EXTRAS,
    Secrets,
    account_line,
    bad_token,
    counts,
    export,
    load,
    problems_of,
    refused,
    tokens_of,
    wipe,
)
from tokenhouse.kit.settings import Settings
from tokenhouse.models import ApiToken
from tokenhouse.transfer import service

LIMITED, UNLIMITED, LEAKED, GONE, BEFORE = (f"TKN-7302-{n:04d}" for n in range(1, 6))


def token_line(token_id: str, module_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": token_id, "name": f"token {token_id}", "status": "Active",
            "account": {"id": "ACC-7300-0001"}, "modules": [{"id": module_id}],
            "audit": {"created": {"at": "2025-01-02T03:04:05.678Z", "by": None}},
            "revision": 3, **fields}


@pytest.fixture
async def module_id(factory: Factory) -> str:
    return (await factory.modules())["Access Management"]


@pytest.fixture
async def moved(app: FastAPI, client: httpx.AsyncClient, module_id: str
                ) -> AsyncIterator[tuple[list[str], list[str], Secrets]]:
    """A file with every state of the two fields, imported the checked way (first export),
    then that export imported in bulk into the emptied store (second export)."""
    secret = Secrets(app)
    lines = [account_line(),
             token_line(LIMITED, module_id, secretHash=secret("limited", LIMITED),
                        rateLimit={"limit": 2, "windowSeconds": 86_400}),
             token_line(UNLIMITED, module_id, secretHash=secret("unlimited", UNLIMITED),
                        rateLimit=None, statusReason=None),
             token_line(LEAKED, module_id, secretHash=secret("leaked", LEAKED),
                        status="Disabled", statusReason="Leaked",
                        rateLimit={"limit": 1_000_000, "windowSeconds": 1}),
             # Deleted after its leak: the service's delete keeps the reason (and drops the
             # hash), so a store's own export holds such a line.
             token_line(GONE, module_id, status="Deleted", statusReason="Leaked"),
             token_line(BEFORE, module_id, secretHash=secret("before", BEFORE))]
    await load(app, [json.dumps(line) for line in lines], bulk_tokens=10**9)
    first = await export(app)
    await wipe(app)
    await load(app, first, bulk_tokens=1)
    second = await export(app)
    yield first, second, secret


async def test_the_fields_survive_export_and_import(
        app: FastAPI, moved: tuple[list[str], list[str], Secrets]) -> None:
    first, second, _ = moved
    assert second == first
    tokens = tokens_of(first)
    assert tokens[LIMITED]["rateLimit"] == {"limit": 2, "windowSeconds": 86_400}
    assert tokens[LIMITED]["statusReason"] is None
    assert tokens[UNLIMITED]["rateLimit"] is None
    assert (tokens[LEAKED]["status"], tokens[LEAKED]["statusReason"]) == ("Disabled", "Leaked")
    assert tokens[LEAKED]["rateLimit"] == {"limit": 1_000_000, "windowSeconds": 1}
    assert (tokens[GONE]["status"], tokens[GONE]["statusReason"]) == ("Deleted", "Leaked")
    assert (tokens[BEFORE]["rateLimit"], tokens[BEFORE]["statusReason"]) == (None, None)
    # Where the API has them: the reason after the status, the limit after the allowlist.
    assert list(tokens[LIMITED])[:13] == [
        "id", "href", "name", "description", "icon", "status", "statusReason", "expiresAt",
        "ipAllowlist", "rateLimit", "lastAccessAt", "lastAccessIps", "previousSecret"]
    for line in first:
        if line.startswith('{"id":"TKN-'):
            assert service._read_plain(line) is not None, line
    async with app.state.runtime.sessions() as session:
        rows = {row.id: tuple(row)[1:] for row in await session.execute(select(
            ApiToken.id, ApiToken.rate_limit, ApiToken.rate_limit_window,
            ApiToken.status, ApiToken.status_reason))}
    assert rows == {LIMITED: (2, 86_400, "Active", None),
                    UNLIMITED: (None, None, "Active", None),
                    LEAKED: (1_000_000, 1, "Disabled", "Leaked"),
                    GONE: (None, None, "Deleted", "Leaked"),
                    BEFORE: (None, None, "Active", None)}


async def test_the_moved_tokens_read_over_http_as_exported(
        client: httpx.AsyncClient, factory: Factory,
        moved: tuple[list[str], list[str], Secrets]) -> None:
    first, _, _ = moved
    admin = await factory.admin()
    for token_id, line in tokens_of(first).items():
        response = await client.get(f"{TOKENS}/{token_id}", headers=admin.headers)
        assert response.status_code == 200, response.text
        assert response.json() == {k: v for k, v in line.items() if k not in STORED_EXTRAS}


async def test_a_moved_limit_is_enforced(
        client: httpx.AsyncClient, moved: tuple[list[str], list[str], Secrets]) -> None:
    _, _, secret = moved
    limited = {"Authorization": f"Bearer {secret.made['limited']}"}
    for _ in range(2):
        response = await client.get(f"{TOKENS}/self", headers=limited)
        assert response.status_code == 200, response.text
        assert response.headers["RateLimit-Policy"] == '"default";q=2;w=86400'
    problem(await client.get(f"{TOKENS}/self", headers=limited), 429)
    unlimited = {"Authorization": f"Bearer {secret.made['unlimited']}"}
    for _ in range(3):
        response = await client.get(f"{TOKENS}/self", headers=unlimited)
        assert response.status_code == 200 and "RateLimit" not in response.headers


async def test_a_moved_leaked_token_is_enabled_only_after_a_rotation(
        client: httpx.AsyncClient, factory: Factory,
        moved: tuple[list[str], list[str], Secrets]) -> None:
    _, _, secret = moved
    admin = await factory.admin()
    path = f"{TOKENS}/{LEAKED}"
    leaked = {"Authorization": f"Bearer {secret.made['leaked']}"}
    assert (await client.get(f"{TOKENS}/self", headers=leaked)).status_code == 401
    refusal = problem(await client.post(f"{path}/enable", headers=admin.headers), 409)
    assert "leaked" in refusal["detail"] and "rotate" in refusal["detail"]
    rotated = await client.post(f"{path}/rotate", headers=admin.headers, json={})
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["statusReason"] is None
    enabled = await client.post(f"{path}/enable", headers=admin.headers)
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["status"] == "Active"
    fresh = {"Authorization": f"Bearer {rotated.json()['token']}"}
    assert (await client.get(f"{TOKENS}/self", headers=fresh)).status_code == 200
    assert (await client.get(f"{TOKENS}/self", headers=leaked)).status_code == 401


# -- bad values ---------------------------------------------------------------------------------

BAD: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "a limit of 0": ({"rateLimit": {"limit": 0, "windowSeconds": 60}},
                     ("rateLimit.limit", "greater than or equal to 1")),
    "a limit past a million": ({"rateLimit": {"limit": 1_000_001, "windowSeconds": 60}},
                               ("rateLimit.limit", "1000000")),
    "a window of 0": ({"rateLimit": {"limit": 10, "windowSeconds": 0}},
                      ("rateLimit.windowSeconds", "greater than or equal to 1")),
    "a window past a day": ({"rateLimit": {"limit": 10, "windowSeconds": 86_401}},
                            ("rateLimit.windowSeconds", "86400")),
    "a limit as text": ({"rateLimit": {"limit": "10", "windowSeconds": 60}},
                        ("rateLimit.limit", "integer")),
    "a fractional limit": ({"rateLimit": {"limit": 10.5, "windowSeconds": 60}},
                           ("rateLimit.limit", "integer")),
    "a whole float as window": ({"rateLimit": {"limit": 10, "windowSeconds": 60.0}},
                                ("rateLimit.windowSeconds", "integer")),
    "a boolean limit": ({"rateLimit": {"limit": True, "windowSeconds": 60}},
                        ("rateLimit.limit", "integer")),
    "a limit without its window": ({"rateLimit": {"limit": 10}},
                                   ("rateLimit.windowSeconds", "Field required")),
    "a limit with more": ({"rateLimit": {"limit": 10, "windowSeconds": 60, "burst": 3}},
                          ("rateLimit.burst",)),
    "a limit written as the setting": ({"rateLimit": "600/60"}, ("rateLimit",)),
    "an unknown reason": ({"status": "Disabled", "statusReason": "Compromised"},
                          ("statusReason", "'Leaked'")),
    "a reason that is no string": ({"status": "Disabled", "statusReason": 1},
                                   ("statusReason", "'Leaked'")),
    "a leaked Active token": ({"statusReason": "Leaked"},
                              ("statusReason", "Disabled", "Active")),
    "a leaked Expired token": ({"status": "Expired", "expiresAt": "2020-01-01T00:00:00Z",
                                "statusReason": "Leaked"},
                               ("statusReason", "Disabled", "Expired")),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_value_is_named_alike_both_ways(case: str) -> None:
    changes, words = BAD[case]
    account = json.dumps(account_line())
    [(number, message)] = problems_of(account, bad_token(changes, compact=False))
    assert number == 2 and message.startswith("TKN-7300-0009: "), message
    for word in words:
        assert word in message, (word, message)
    assert problems_of(account, bad_token(changes, compact=True)) == [(2, message)]


async def test_bad_lines_are_refused_by_number_and_nothing_is_written(
        app: FastAPI, client: httpx.AsyncClient, module_id: str) -> None:
    good = [json.dumps(token_line(f"TKN-7302-{n:04d}", module_id, secretHash=f"{n:064x}",
                                  rateLimit={"limit": n, "windowSeconds": 60}))
            for n in range(11, 13)]
    cases = [BAD[name] for name in ("a limit past a million", "a window of 0",
                                    "a leaked Active token", "an unknown reason")]
    lines = [json.dumps(account_line()), good[0],
             *(bad_token(changes, compact=n % 2 == 0, n=20 + n)
               for n, (changes, _) in enumerate(cases)), good[1]]
    problems = await refused(app, lines)
    assert [number for number, _ in problems] == [3, 4, 5, 6]
    for (_, message), (_, words) in zip(problems, cases, strict=True):
        assert all(word in message for word in words), message
    assert set((await counts(app)).values()) == {0}


# -- the format before, and the server's default ------------------------------------------------

@pytest.fixture
async def defaulted(settings: Settings, client: httpx.AsyncClient
                    ) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The same database served with TOKENHOUSE_DEFAULT_RATE_LIMIT=600/60."""
    async with app_with(settings, default_rate_limit="600/60") as application:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://default.test") as c:
            yield application, c


async def test_an_import_gives_no_default_limit(
        defaulted: tuple[FastAPI, httpx.AsyncClient], factory: Factory, module_id: str
        ) -> None:
    application, client = defaulted
    admin = await factory.admin()
    made = await client.post(TOKENS, headers=admin.headers, json={
        "name": "made", "account": {"id": admin.account_id}, "modules": [{"id": module_id}]})
    assert made.json()["rateLimit"] == {"limit": 600, "windowSeconds": 60}
    line = token_line("TKN-7303-0001", module_id, secretHash="c" * 64)
    assert not {"rateLimit", "statusReason"} & set(line)
    await load(application, [json.dumps(account_line()), json.dumps(line)])
    body = (await client.get(f"{TOKENS}/TKN-7303-0001", headers=admin.headers)).json()
    assert (body["rateLimit"], body["statusReason"]) == (None, None)
