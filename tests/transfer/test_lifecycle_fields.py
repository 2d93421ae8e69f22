"""Export and import carry the token lifecycle of issue 11 losslessly, on SQLite and PostgreSQL:
expiry (and the computed Expired status), the IP allowlist, the last client addresses, and
the secret a rotation replaced while its grace window lasts (its hash, the window's end, its
last use, and whether the new secret's first use ends it).

- a file with every such state imports (row by row, then its export again in bulk into an
  empty store), exports byte for byte the same twice, and reads back over HTTP as exported;
  the secrets behave after the move as before it (the old secret of a rotation works until
  its window ends, an expired token and a token used from outside its allowlist do not);
- bad values are refused by line number and property, nothing written, alike in the fast
  and the checked reading of a line;
- a file of the format before (none of these properties) imports as tokens without expiry,
  usable from any address.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text

from tests.factories import Factory
from tests.helpers import TOKENS, empty_store
from tokenhouse.kit.crypto import hash_secret, new_secret
from tokenhouse.kit.timeutil import render, utcnow
from tokenhouse.models import ApiToken
from tokenhouse.transfer import service
from tokenhouse.transfer.service import ImportFailed, export_lines, import_lines, read_chunks

ACCOUNT_ID = "ACC-7300-0001"
NOW = utcnow()
LATER = NOW + timedelta(days=30)
SOON = NOW + timedelta(hours=2)
PAST = NOW - timedelta(days=3)
STORED_EXTRAS = ("secretHash", "previousSecretHash", "retirePreviousOnFirstUse", "rotatedAt")


def at(moment: Any) -> str:
    text_ = render(moment)
    assert text_ is not None
    return text_


def account_line() -> dict[str, Any]:
    return {"id": ACCOUNT_ID, "name": "Lifecycle account", "type": "Client",
            "groups": [{"id": "UGR-7300-0001", "name": "Default", "isDefault": True}]}


def token_line(n: int, module_id: str, **fields: Any) -> dict[str, Any]:
    """A token line in the format before issue 11, with `fields` added."""
    return {"id": f"TKN-7300-{n:04d}", "name": f"lifecycle token {n}", "status": "Active",
            "account": {"id": ACCOUNT_ID}, "modules": [{"id": module_id}],
            "lastAccessAt": None,
            "audit": {"created": {"at": "2025-01-02T03:04:05.678Z", "by": None}},
            "revision": 2, **fields}


class Secrets:
    """Secrets of the platform's form for the file's tokens, hashed with the app's key."""

    def __init__(self, app: FastAPI):
        self.key: bytes = app.state.runtime.hmac_key
        self.made: dict[str, str] = {}

    def __call__(self, label: str, token_id: str) -> str:
        self.made[label] = new_secret(token_id)
        return hash_secret(self.key, self.made[label])


async def wipe(app: FastAPI) -> None:
    """Empty the store (the module catalog stays), through the app: its caches hear it."""
    async with app.state.runtime.sessions() as session:
        await empty_store(session)
        await session.commit()


async def load(app: FastAPI, lines: list[str], **options: Any) -> Any:
    async with app.state.runtime.sessions() as session:
        result = await import_lines(session=session, lines=lines, **options)
        await session.commit()
        return result


async def export(app: FastAPI) -> list[str]:
    async with app.state.runtime.sessions() as session:
        return [line async for line in export_lines(session=session)]


async def counts(app: FastAPI) -> dict[str, int]:
    async with app.state.runtime.sessions() as session:
        return {table: await session.scalar(text(f"SELECT count(*) FROM {table}")) or 0
                for table in ("accounts", "user_groups", "api_tokens", "api_token_modules")}


async def refused(app: FastAPI, lines: list[str]) -> list[tuple[int, str]]:
    before = await counts(app)
    with pytest.raises(ImportFailed) as failed:
        await load(app, lines)
    assert await counts(app) == before
    return failed.value.problems


def tokens_of(lines: list[str]) -> dict[str, dict[str, Any]]:
    return {o["id"]: o for o in map(json.loads, lines) if o["id"].startswith("TKN-")}


@pytest.fixture
async def module_id(factory: Factory) -> str:
    return (await factory.modules())["Access Management"]


# -- the round trip -----------------------------------------------------------------------------

@pytest.fixture
async def moved(app: FastAPI, client: httpx.AsyncClient, module_id: str
                ) -> AsyncIterator[tuple[list[str], list[str], Secrets]]:
    """A file with every lifecycle state, imported row by row and exported (first), then
    that export imported in bulk into the emptied store and exported again (second)."""
    secret = Secrets(app)
    ids = {label: f"TKN-7300-{n:04d}" for n, label in enumerate(
        ("old", "expiring", "expired", "rotated", "retiring", "window over", "elsewhere"), 1)}
    lines = [account_line(),
             token_line(1, module_id, secretHash=secret("old", ids["old"])),
             token_line(2, module_id, secretHash=secret("expiring", ids["expiring"]),
                        expiresAt=at(LATER),
                        ipAllowlist=["127.0.0.1", "2001:DB8::/32", "::ffff:10.0.0.0/104",
                                     "127.0.0.1/32"],
                        lastAccessAt=at(NOW - timedelta(hours=1)),
                        lastAccessIps=[{"ip": "2001:db8::1e", "at": at(PAST)},
                                       {"ip": "::ffff:192.0.2.7",
                                        "at": at(NOW - timedelta(hours=1))}]),
             token_line(3, module_id, secretHash=secret("expired", ids["expired"]),
                        status="Expired", expiresAt=at(PAST)),
             token_line(4, module_id, secretHash=secret("rotated", ids["rotated"]),
                        expiresAt=at(SOON),
                        previousSecret={"expiresAt": at(NOW + timedelta(days=1)),
                                        "lastAccessAt": at(PAST)},
                        previousSecretHash=secret("rotated old", ids["rotated"]),
                        rotatedAt=at(NOW - timedelta(minutes=1))),
             token_line(5, module_id, secretHash=secret("retiring", ids["retiring"]),
                        previousSecret={"expiresAt": at(SOON), "lastAccessAt": None},
                        previousSecretHash=secret("retiring old", ids["retiring"]),
                        retirePreviousOnFirstUse=True),
             token_line(6, module_id, secretHash=secret("window over", ids["window over"]),
                        previousSecret={"expiresAt": at(NOW - timedelta(minutes=5))},
                        previousSecretHash=secret("window over old", ids["window over"])),
             token_line(7, module_id, secretHash=secret("elsewhere", ids["elsewhere"]),
                        ipAllowlist=["10.0.0.0/8"])]
    # Written as a person would (`"id": "`): read the checked way.
    await load(app, [json.dumps(line) for line in lines], bulk_tokens=10**9)
    first = await export(app)
    await wipe(app)
    # Export's own lines: read the fast way, into an empty store (PostgreSQL: in bulk).
    await load(app, first, bulk_tokens=1)
    second = await export(app)
    yield first, second, secret


async def test_every_lifecycle_field_survives_export_and_import(
        moved: tuple[list[str], list[str], Secrets]) -> None:
    first, second, _ = moved
    assert second == first
    tokens = tokens_of(first)
    old, expiring, expired, rotated, retiring, over, elsewhere = (
        tokens[f"TKN-7300-{n:04d}"] for n in range(1, 8))
    # The format before: no expiry, any address, nothing used, no previous secret.
    assert [old[key] for key in ("status", "expiresAt", "ipAllowlist", "lastAccessIps",
                                 "previousSecret")] == ["Active", None, None, [], None]
    assert list(old)[-1] == "secretHash"
    # The allowlist canonical (bare address /32, upper case, IPv4-mapped, a repeat dropped).
    assert expiring["expiresAt"] == at(LATER) and expiring["status"] == "Active"
    assert expiring["ipAllowlist"] == ["127.0.0.1/32", "2001:db8::/32", "10.0.0.0/8"]
    assert expiring["lastAccessIps"] == [
        {"ip": "192.0.2.7", "at": at(NOW - timedelta(hours=1))},
        {"ip": "2001:db8::1e", "at": at(PAST)}]
    # Expired is computed from the expiry (stored Active, see below).
    assert (expired["status"], expired["expiresAt"]) == ("Expired", at(PAST))
    # The old secret works until its window ends, never past the token's own expiry.
    assert rotated["previousSecret"] == {"expiresAt": at(SOON), "lastAccessAt": at(PAST)}
    assert rotated["retirePreviousOnFirstUse"] is False
    assert retiring["previousSecret"] == {"expiresAt": at(SOON), "lastAccessAt": None}
    assert retiring["retirePreviousOnFirstUse"] is True
    # After the hash, what the API does not show, in this order, each only when set.
    assert list(rotated)[-4:] == list(STORED_EXTRAS), list(rotated)
    assert rotated["rotatedAt"] == at(NOW - timedelta(minutes=1))
    assert list(retiring)[-3:] == list(STORED_EXTRAS[:3]), list(retiring)
    # A window that has ended is shown as none, and its hash is not written.
    assert over["previousSecret"] is None and "previousSecretHash" not in over
    assert elsewhere["ipAllowlist"] == ["10.0.0.0/8"]
    # The API's order of properties.
    assert list(expiring)[:14] == ["id", "href", "name", "description", "icon", "status",
                                   "statusReason", "expiresAt", "ipAllowlist", "rateLimit",
                                   "lastAccessAt", "lastAccessIps", "previousSecret",
                                   "account"]
    # Export's own lines take the fast way, IPv6 hex and hashes looking like exponents too.
    for line in first:
        if line.startswith('{"id":"TKN-'):
            assert service._read_plain(line) is not None, line


async def test_the_columns_hold_what_the_file_said(
        app: FastAPI, moved: tuple[list[str], list[str], Secrets]) -> None:
    _, _, secret = moved
    async with app.state.runtime.sessions() as session:
        rows = {row.id: row for row in await session.execute(select(
            ApiToken.id, ApiToken.status, ApiToken.ip_allowlist, ApiToken.last_access_ips,
            ApiToken.previous_secret_hash, ApiToken.retire_previous_on_first_use,
            ApiToken.rotated_at))}
    assert rows["TKN-7300-0003"].status == "Active"  # Expired is never stored
    assert rows["TKN-7300-0002"].ip_allowlist == "127.0.0.1/32,2001:db8::/32,10.0.0.0/8"
    assert json.loads(rows["TKN-7300-0002"].last_access_ips)[0]["ip"] == "192.0.2.7"
    assert rows["TKN-7300-0001"].ip_allowlist is None
    assert rows["TKN-7300-0001"].last_access_ips is None
    assert rows["TKN-7300-0004"].previous_secret_hash == hash_secret(
        secret.key, secret.made["rotated old"])
    assert rows["TKN-7300-0005"].retire_previous_on_first_use is True
    assert rows["TKN-7300-0004"].retire_previous_on_first_use is False
    assert render(rows["TKN-7300-0004"].rotated_at) == at(NOW - timedelta(minutes=1))
    assert rows["TKN-7300-0005"].rotated_at is None
    # The ended window's hash was not carried.
    assert rows["TKN-7300-0006"].previous_secret_hash is None


async def test_the_moved_tokens_read_over_http_as_exported(
        client: httpx.AsyncClient, factory: Factory,
        moved: tuple[list[str], list[str], Secrets]) -> None:
    first, _, _ = moved
    admin = await factory.admin()
    for token_id, line in tokens_of(first).items():
        response = await client.get(f"{TOKENS}/{token_id}", headers=admin.headers)
        assert response.status_code == 200, response.text
        exported = {k: v for k, v in line.items() if k not in STORED_EXTRAS}
        assert response.json() == exported, token_id


async def test_the_moved_secrets_work_as_before_the_move(
        client: httpx.AsyncClient, moved: tuple[list[str], list[str], Secrets]) -> None:
    _, _, secret = moved

    async def status_of(label: str) -> int:
        response = await client.get(f"{TOKENS}/self",
                                    headers={"Authorization": f"Bearer {secret.made[label]}"})
        return response.status_code

    for label in ("old", "expiring", "rotated", "rotated old", "window over"):
        assert await status_of(label) == 200, label
    # Expired; a window that had ended; an address outside the allowlist (the test client
    # is 127.0.0.1, which "expiring" allows and "elsewhere" does not).
    assert await status_of("expired") == 401
    assert await status_of("window over old") == 401
    assert await status_of("elsewhere") == 403
    # The flag moved too: the new secret's first use ends the old one (within a second, as
    # in every process).
    assert await status_of("retiring old") == 200
    assert await status_of("retiring") == 200
    for _ in range(40):
        if await status_of("retiring old") == 401:
            break
        await asyncio.sleep(0.05)
    assert await status_of("retiring old") == 401


# -- bad values ---------------------------------------------------------------------------------

HASH_A, HASH_B = "a" * 64, "b" * 64
BAD = {
    "an allowlist entry with host bits": (
        {"ipAllowlist": ["10.0.0.0/8", "10.0.0.1/8"]},
        ("ipAllowlist", "ipAllowlist[1]", "host bits", "10.0.0.0/8")),
    "an allowlist that is not a list": ({"ipAllowlist": "10.0.0.0/8"}, ("ipAllowlist", "list")),
    "an allowlist entry that is no string": ({"ipAllowlist": [10]}, ("ipAllowlist.0", "string")),
    "an allowlist of 51 networks": (
        {"ipAllowlist": [f"10.0.{n}.0/24" for n in range(51)]}, ("ipAllowlist", "50")),
    "an allowlist entry that is no network": (
        {"ipAllowlist": ["example.com"]}, ("ipAllowlist[0]", "CIDR")),
    "six last addresses": (
        {"lastAccessIps": [{"ip": f"192.0.2.{n}", "at": "2025-01-01T00:00:00Z"}
                           for n in range(6)]}, ("lastAccessIps", "5")),
    "a last address that is no address": (
        {"lastAccessIps": [{"ip": "192.0.2.300", "at": "2025-01-01T00:00:00Z"}]},
        ("lastAccessIps.0.ip", "not an IP address")),
    "a last address with a zone id": (
        {"lastAccessIps": [{"ip": "fe80::1%eth0", "at": "2025-01-01T00:00:00Z"}]},
        ("lastAccessIps.0.ip", "zone")),
    "a last address without a time zone": (
        {"lastAccessIps": [{"ip": "192.0.2.1", "at": "2025-01-01T00:00:00"}]},
        ("lastAccessIps.0.at", "timezone")),
    "a last address with more": (
        {"lastAccessIps": [{"ip": "192.0.2.1", "at": "2025-01-01T00:00:00Z", "x": 1}]},
        ("lastAccessIps.0.x",)),
    "an expiry without a time zone": ({"expiresAt": "2030-01-01T00:00:00"},
                                      ("expiresAt", "timezone")),
    "an expiry past year 9999 in UTC": ({"expiresAt": "9999-12-31T23:59:59-23:00"},
                                        ("expiresAt", "range")),
    "Expired without an expiry": ({"status": "Expired"}, ("expiresAt", "Expired")),
    "a rotation time without a time zone": ({"rotatedAt": "2025-01-01T00:00:00"},
                                            ("rotatedAt", "timezone")),
    "a previous secret's hash alone": ({"previousSecretHash": HASH_B},
                                       ("previousSecretHash", "previousSecret")),
    "a previous secret's hash that is the current one": (
        {"previousSecret": {"expiresAt": "2030-01-01T00:00:00Z"},
         "previousSecretHash": HASH_A}, ("previousSecretHash", "secretHash")),
    "a previous secret without its end": (
        {"previousSecret": {"lastAccessAt": None}, "previousSecretHash": HASH_B},
        ("previousSecret.expiresAt",)),
    "a previous secret with more": (
        {"previousSecret": {"expiresAt": "2030-01-01T00:00:00Z", "x": 1}},
        ("previousSecret.x",)),
    "a bad previous secret hash": (
        {"previousSecret": {"expiresAt": "2030-01-01T00:00:00Z"},
         "previousSecretHash": "B" * 64}, ("previousSecretHash",)),
    "retirement without a previous secret": ({"retirePreviousOnFirstUse": True},
                                             ("retirePreviousOnFirstUse",)),
}


def bad_token(changes: dict[str, Any], *, compact: bool, n: int = 9) -> str:
    line = {**token_line(n, "MOD-1732"), "secretHash": HASH_A, **changes}
    if compact:
        return json.dumps(line, separators=(",", ":"))
    return json.dumps(line)


def problems_of(*lines: str) -> list[tuple[int, str]]:
    return ImportFailed([p for chunk in read_chunks(lines) for p in chunk.problems]).problems


@pytest.mark.parametrize("case", BAD)
def test_a_bad_value_is_named_alike_both_ways(case: str) -> None:
    changes, words = BAD[case]
    account = json.dumps(account_line())
    [(number, message)] = problems_of(account, bad_token(changes, compact=False))
    assert number == 2
    for word in words:
        assert word in message, (word, message)
    assert message.startswith("TKN-7300-0009: "), message
    # Export's shape (the fast reading) finds the same problem.
    assert problems_of(account, bad_token(changes, compact=True)) == [(2, message)]


async def test_bad_lines_are_refused_by_number_and_nothing_is_written(
        app: FastAPI, client: httpx.AsyncClient, module_id: str) -> None:
    good = [json.dumps(token_line(n, module_id, secretHash=f"{n:064x}")) for n in range(1, 4)]
    cases = list(BAD.values())[:4]
    lines = [json.dumps(account_line()), good[0],
             *(bad_token(changes, compact=n % 2 == 0, n=10 + n)
               for n, (changes, _) in enumerate(cases)),
             good[1], good[2]]
    problems = await refused(app, lines)
    assert [number for number, _ in problems] == [3, 4, 5, 6]
    for (_, message), (_, words) in zip(problems, cases, strict=True):
        assert all(word in message for word in words), message
    assert await counts(app) == dict.fromkeys(
        ("accounts", "user_groups", "api_tokens", "api_token_modules"), 0)


async def test_a_previous_hash_is_no_other_tokens(app: FastAPI, client: httpx.AsyncClient,
                                                  module_id: str) -> None:
    """A hash, current or previous, belongs to one token: in the file and in the store."""

    def rotated(n: int, current: str, previous: str) -> str:
        return json.dumps(token_line(n, module_id, secretHash=current,
                                     previousSecret={"expiresAt": at(SOON)},
                                     previousSecretHash=previous))

    c1, c2, c3, p1, p2 = (f"{n:064x}" for n in (1, 2, 3, 11, 12))
    lines = [json.dumps(account_line()), rotated(1, c1, p1),
             rotated(2, c2, c1),  # the other's current secret
             rotated(3, p1, p2),  # the other's previous secret
             rotated(4, c3, p1)]
    assert await refused(app, lines) == [
        (3, "previousSecretHash the same value is already on line 2"),
        (4, "secretHash the same value is already on line 2"),
        (5, "previousSecretHash the same value is already on line 2")]

    await load(app, lines[:2])
    later = [rotated(5, p1, p2), rotated(6, c2, c1), rotated(7, c3, f"{13:064x}")]
    assert await refused(app, later) == [
        (1, "secretHash belongs to a token already in the store"),
        (2, "previousSecretHash belongs to a token already in the store")]
    assert await refused(app, [json.dumps(token_line(8, module_id, secretHash=p1))]) == [
        (1, "secretHash belongs to a token already in the store")]


# -- the format before --------------------------------------------------------------------------

async def test_a_file_of_the_format_before_imports_unchanged(
        app: FastAPI, client: httpx.AsyncClient, factory: Factory, module_id: str) -> None:
    secret = Secrets(app)
    # An id of its own: the app remembers accesses to the round trip's tokens.
    line = {**token_line(1, module_id, lastAccessAt="2025-02-03T04:05:06.789Z"),
            "id": "TKN-7301-0001", "secretHash": secret("old", "TKN-7301-0001")}
    assert not {"expiresAt", "ipAllowlist", "lastAccessIps", "previousSecret"} & set(line)
    result = await load(app, [json.dumps(account_line()), json.dumps(line)])
    assert result.tokens == 1
    admin = await factory.admin()
    body = (await client.get(f"{TOKENS}/TKN-7301-0001", headers=admin.headers)).json()
    assert {key: body[key] for key in ("status", "expiresAt", "ipAllowlist", "lastAccessAt",
                                       "lastAccessIps", "previousSecret")} == {
        "status": "Active", "expiresAt": None, "ipAllowlist": None,
        "lastAccessAt": "2025-02-03T04:05:06.789Z", "lastAccessIps": [],
        "previousSecret": None}
    response = await client.get(f"{TOKENS}/self",
                                headers={"Authorization": f"Bearer {secret.made['old']}"})
    assert response.status_code == 200, response.text
