"""POST /api-tokens/revoke-leaked over HTTP, on SQLite and PostgreSQL: always 202, a reported
secret stops at once, the token waits for a rotation, the per-address limit."""

import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from tests.helpers import TOKENS, app_with, database_use, problem
from tokenhouse.kit import crypto
from tokenhouse.leaks.router import ANSWER_FLOOR, MAX_REPORT_BYTES

LEAKS = f"{TOKENS}/revoke-leaked"
SOURCE = "https://github.com/example/repo/blob/main/.env"


def fresh_address() -> str:
    """An address of its own for each test: the limit counts per address, and the tests
    share one app (and one counter) per database."""
    return f"198.51.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


def fresh_v6(host: str = "1") -> str:
    """An IPv6 address in a /64 of its own (new to Redis on every run, too)."""
    return f"2001:db8:{secrets.randbelow(65536):x}:{secrets.randbelow(65536):x}::{host}"


@asynccontextmanager
async def reporter(app: FastAPI, address: str | None = None
                   ) -> AsyncIterator[httpx.AsyncClient]:
    """An unauthenticated client of `app` whose requests come from `address`."""
    transport = httpx.ASGITransport(app=app, client=(address or fresh_address(), 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://leaks.test") as c:
        yield c


async def report(client: httpx.AsyncClient, *tokens: str, source: str | None = SOURCE,
                 **extra: Any) -> httpx.Response:
    body: dict[str, Any] = {"tokens": list(tokens), **extra}
    if source is not None:
        body["source"] = source
    return await client.post(LEAKS, json=body)


def accepted(response: httpx.Response, count: int) -> None:
    assert response.status_code == 202, response.text
    assert response.json() == {"received": count}


async def read(client: httpx.AsyncClient, admin: Any, token_id: str) -> dict[str, Any]:
    response = await client.get(f"{TOKENS}/{token_id}", headers=admin.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def works(client: httpx.AsyncClient, secret: str) -> bool:
    response = await client.get(TOKENS, headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


GARBAGE = ["", "garbage", "idt:", "idt:TKN-0000-0000:" + "x" * 43,  # old shape, unknown
           crypto.new_secret("TKN-0000-0001"),  # new shape, valid checksum, unknown
           crypto.new_secret("TKN-0000-0002")[:-1] + "0",  # a checksum that does not hold
           "a" * 1024, "Bearer idt:TKN-1234-5678:abc", "\u00e9\u00e8"]


async def test_garbage_is_202_and_changes_nothing(app, client, factory):
    admin = await factory.admin()
    before = await read(client, admin, admin.id)
    async with reporter(app) as anyone:
        accepted(await report(anyone, *GARBAGE), len(GARBAGE))
        accepted(await report(anyone, "x", source=None), 1)
        # This token's random part under another id (with its checksum made good): another
        # secret, whose hash is not this token's.
        body = f"idt:TKN-0000-0003:{admin.secret.split(':', 2)[2][:-6]}"
        accepted(await report(anyone, body + crypto.checksum(body)), 1)
    assert await works(client, admin.secret)
    after = await read(client, admin, admin.id)
    for field in ("status", "statusReason", "revision", "previousSecret"):
        assert after[field] == before[field]


async def test_a_reported_secret_disables_its_token_at_once(app, client, factory, caplog):
    admin = await factory.admin()
    tenant = await factory.tenant()
    assert await works(client, tenant.secret)  # verified and cached
    with caplog.at_level(logging.INFO, "tokenhouse"):
        async with reporter(app) as anyone:
            # The same answer as for garbage, the secret among garbage.
            accepted(await report(anyone, "garbage", tenant.secret,
                                  source=f"{SOURCE}?q={tenant.secret}&r="
                                         f"{quote(tenant.secret)}\nforged line"), 2)
    assert not await works(client, tenant.secret)
    token = await read(client, admin, tenant.id)
    assert token["status"] == "Disabled"
    assert token["statusReason"] == "Leaked"
    assert token["audit"]["updated"]["by"] is None  # a system change
    # One line, with the token and the source; never the secret, nor a forged line.
    lines = [r.getMessage() for r in caplog.records if r.name == "tokenhouse.leaks"]
    assert len(lines) == 1, lines
    assert tenant.id in lines[0] and "github.com/example/repo" in lines[0]
    assert "\n" not in lines[0]
    random_part = tenant.secret.split(":", 2)[2]
    assert all(random_part not in r.getMessage() for r in caplog.records)
    assert random_part not in caplog.text
    # Reported again: nothing more changes (no new revision, no line).
    caplog.clear()
    async with reporter(app) as anyone:
        accepted(await report(anyone, tenant.secret), 1)
    assert (await read(client, admin, tenant.id))["revision"] == token["revision"]
    assert not [r for r in caplog.records if r.name == "tokenhouse.leaks"]


async def test_enable_is_409_until_the_token_is_rotated(app, client, factory):
    admin = await factory.admin()
    tenant = await factory.tenant()
    async with reporter(app) as anyone:
        accepted(await report(anyone, tenant.secret), 1)
    url = f"{TOKENS}/{tenant.id}"
    problem(await client.post(f"{url}/enable", headers=admin.headers), 409)
    # A Disabled token's old secret gets no grace window.
    problem(await client.post(f"{url}/rotate", headers=admin.headers,
                              json={"gracePeriodSeconds": 60}), 409)
    rotated = await client.post(f"{url}/rotate", headers=admin.headers, json={})
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["status"] == "Disabled"
    assert rotated.json()["statusReason"] is None
    new_secret = rotated.json()["token"]
    enabled = await client.post(f"{url}/enable", headers=admin.headers)
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["status"] == "Active"
    assert await works(client, new_secret)
    assert not await works(client, tenant.secret)


async def test_a_disabled_token_reported_waits_for_a_rotation_too(app, client, factory):
    admin = await factory.admin()
    tenant = await factory.tenant()
    url = f"{TOKENS}/{tenant.id}"
    assert (await client.post(f"{url}/disable", headers=admin.headers)).status_code == 200
    async with reporter(app) as anyone:
        accepted(await report(anyone, tenant.secret), 1)
    assert (await read(client, admin, tenant.id))["statusReason"] == "Leaked"
    problem(await client.post(f"{url}/enable", headers=admin.headers), 409)


async def test_a_reported_previous_secret_stops_alone(app, client, factory):
    admin = await factory.admin()
    tenant = await factory.tenant()
    rotated = await client.post(f"{TOKENS}/{tenant.id}/rotate", headers=admin.headers,
                                json={"gracePeriodSeconds": 3600})
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["token"]
    assert await works(client, tenant.secret)  # in its grace window
    assert await works(client, new_secret)
    async with reporter(app) as anyone:
        accepted(await report(anyone, tenant.secret), 1)
    assert not await works(client, tenant.secret)
    assert await works(client, new_secret)
    token = await read(client, admin, tenant.id)
    assert token["status"] == "Active"
    assert token["statusReason"] is None
    assert token["previousSecret"] is None


async def test_a_report_of_both_secrets_stops_both(app, client, factory):
    admin = await factory.admin()
    tenant = await factory.tenant()
    rotated = await client.post(f"{TOKENS}/{tenant.id}/rotate", headers=admin.headers,
                                json={"gracePeriodSeconds": 3600})
    new_secret = rotated.json()["token"]
    async with reporter(app) as anyone:
        accepted(await report(anyone, new_secret, tenant.secret, new_secret), 3)
    assert not await works(client, tenant.secret)
    assert not await works(client, new_secret)
    token = await read(client, admin, tenant.id)
    assert (token["status"], token["statusReason"], token["previousSecret"]) == (
        "Disabled", "Leaked", None)


async def test_several_tokens_in_one_report(app, client, factory):
    admin = await factory.admin()
    tenants = [await factory.tenant() for _ in range(3)]
    async with reporter(app) as anyone:
        accepted(await report(anyone, *(t.secret for t in tenants), *GARBAGE),
                 3 + len(GARBAGE))
    for tenant in tenants:
        assert not await works(client, tenant.secret)
        assert (await read(client, admin, tenant.id))["statusReason"] == "Leaked"
    assert await works(client, admin.secret)


async def test_the_answer_tells_nothing(app, client, factory):
    """The same status, body and headers whether the secret was real or not, no sooner than
    the floor either way; and the same reads of the database."""
    tenant = await factory.tenant()
    unknown = crypto.new_secret(tenant.id[:-1] + ("0" if tenant.id[-1] != "0" else "1"))
    answers, timings, reads = [], [], []
    async with reporter(app) as anyone:
        for secret in (unknown, tenant.secret):
            with database_use(app) as seen:
                started = time.monotonic()
                response = await report(anyone, secret)
                timings.append(time.monotonic() - started)
            answers.append(response)
            reads.append([s for s in seen if "api_tokens" in s
                          and s.lstrip().upper().startswith("SELECT")])
    assert not await works(client, tenant.secret)
    unknown_answer, real_answer = answers
    assert unknown_answer.status_code == real_answer.status_code == 202
    assert unknown_answer.content == real_answer.content
    volatile = {"date", "traceparent", "ratelimit"}
    assert ({k: v for k, v in unknown_answer.headers.items() if k not in volatile}
            == {k: v for k, v in real_answer.headers.items() if k not in volatile})
    assert min(timings) >= ANSWER_FLOOR
    assert reads[0] == reads[1] and len(reads[0]) == 1, reads


async def test_malformed_shapes_never_reach_the_database(app, client, factory):
    tenant = await factory.tenant()
    wrong_sum = tenant.secret[:-1] + ("0" if tenant.secret[-1] != "0" else "1")
    async with reporter(app) as anyone:
        with database_use(app) as seen:
            accepted(await report(anyone, "garbage", wrong_sum, "idt:TKN-1:x"), 3)
    assert seen == []
    assert await works(client, tenant.secret)


@pytest.mark.parametrize("body", [
    {"tokens": ["x"] * 101}, {"tokens": []}, {"tokens": "idt:TKN-0000-0000:x"},
    {"tokens": [7]}, {"tokens": [None]}, {"source": SOURCE}, {"tokens": ["x"], "extra": 1},
    {"tokens": ["x" * 1025]}, {"tokens": ["x"], "source": "s" * 4097}, [],
])
async def test_a_malformed_report_is_400(app, client, body):
    async with reporter(app) as anyone:
        problem(await anyone.post(LEAKS, json=body), 400)


async def test_101_secrets_are_400_and_revoke_nothing(app, client, factory):
    tenant = await factory.tenant()
    async with reporter(app) as anyone:
        body = problem(await report(anyone, tenant.secret, *["x"] * 100), 400, "tokens")
    assert tenant.secret not in str(body)
    assert await works(client, tenant.secret)


async def test_not_json_is_400_or_415(app, client):
    async with reporter(app) as anyone:
        problem(await anyone.post(LEAKS, content=b"{tokens", headers={
            "Content-Type": "application/json"}), 400)
        problem(await anyone.post(LEAKS, content=b"tokens=x", headers={
            "Content-Type": "application/x-www-form-urlencoded"}), 415)
        problem(await anyone.post(LEAKS), 400)


async def test_a_huge_body_is_413(app, client, factory):
    tenant = await factory.tenant()
    async with reporter(app) as anyone:
        huge = {"tokens": [tenant.secret], "source": "s" * MAX_REPORT_BYTES}
        problem(await anyone.post(LEAKS, json=huge), 413)

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: read until the limit
            yield b'{"tokens": ["' + tenant.secret.encode() + b'"], "source": "'
            for _ in range(100):
                yield b"s" * 1024
            yield b'"}'

        problem(await anyone.post(LEAKS, content=chunks(), headers={
            "Content-Type": "application/json"}), 413)
    assert await works(client, tenant.secret)


@asynccontextmanager
async def limited_app(settings: Any, per_hour: int, **more: Any) -> AsyncIterator[FastAPI]:
    async with app_with(settings, leak_reports_per_hour=per_hour, **more) as application:
        yield application


async def test_the_limit_per_address_is_429_past_it(settings, client, factory):
    tenant = await factory.tenant()
    async with limited_app(settings, 3) as app:
        address = fresh_address()
        async with reporter(app, address) as anyone:
            for _ in range(3):
                response = await report(anyone, "garbage")
                accepted(response, 1)
                assert response.headers["ratelimit-policy"] == '"default";q=3;w=3600'
            refused = problem(await report(anyone, tenant.secret), 429)
            assert "3 an hour" in refused["detail"]
            retry = (await report(anyone, "garbage")).headers["retry-after"]
            assert 1 <= int(retry) <= 1200  # one report earned back every 20 minutes
            # Refused before the body is read: a malformed or huge one too.
            problem(await anyone.post(LEAKS, json={"tokens": []}), 429)
            problem(await anyone.post(LEAKS, content=b"x" * (MAX_REPORT_BYTES + 1)), 429)
            # X-Forwarded-For from a peer that is no trusted proxy changes nothing.
            problem(await anyone.post(LEAKS, json={"tokens": ["x"]}, headers={
                "X-Forwarded-For": fresh_address()}), 429)
        async with reporter(app) as other:
            # The refused report revoked nothing (asked of this app: the test's app may hold
            # the credential for up to a second after this app's change).
            assert await works(other, tenant.secret)
            # Another address has its own count.
            accepted(await report(other, tenant.secret), 1)
            assert not await works(other, tenant.secret)


async def test_behind_a_trusted_proxy_the_forwarded_address_counts(settings, client):
    async with limited_app(settings, 2, trusted_proxies="10.0.0.0/8") as app:
        async with reporter(app, "10.1.2.3") as proxy:
            first, second = fresh_address(), fresh_address()
            for _ in range(2):
                accepted(await proxy.post(LEAKS, json={"tokens": ["x"]},
                                          headers={"X-Forwarded-For": first}), 1)
            problem(await proxy.post(LEAKS, json={"tokens": ["x"]},
                                     headers={"X-Forwarded-For": first}), 429)
            accepted(await proxy.post(LEAKS, json={"tokens": ["x"]},
                                      headers={"X-Forwarded-For": second}), 1)


async def test_with_redis_the_limit_holds_across_processes(settings, client):
    """Two apps (as two processes would) on one Redis share each address's count."""
    redis = {"redis_url": SecretStr("redis://127.0.0.1:6379/0")}
    # An address new to Redis on every run (its counts outlive the test).
    address = fresh_v6()
    async with limited_app(settings, 3, **redis) as one, limited_app(settings, 3, **redis) as two:
        async with reporter(one, address) as via_one, reporter(two, address) as via_two:
            accepted(await report(via_one, "x"), 1)
            accepted(await report(via_two, "x"), 1)
            accepted(await report(via_one, "x"), 1)
            problem(await report(via_two, "x"), 429)
            problem(await report(via_one, "x"), 429)


async def test_an_ipv6_client_is_counted_by_its_64(settings, client):
    """Whoever holds one address of a /64 holds them all: a new address is no new count."""
    async with limited_app(settings, 2) as app:
        one = fresh_v6("1")
        prefix = one.rsplit("::", 1)[0]
        for address in (one, f"{prefix}:abcd:ef01:2345:6789"):
            async with reporter(app, address) as c:
                accepted(await report(c, "x"), 1)
        async with reporter(app, f"{prefix}:ffff:ffff:ffff:fffe") as same_64:
            problem(await report(same_64, "x"), 429)
        async with reporter(app, fresh_v6()) as other_64:
            accepted(await report(other_64, "x"), 1)


def test_a_secret_in_the_source_is_cut_however_it_is_written():
    """Found by review: only a literal `idt:` or `idt%3A` was cut; the random part reached
    the log (and the audit record, and its webhooks) behind `idt%253A`, `idt&#58;`, a `#`."""
    from tokenhouse.kit.crypto import new_secret
    from tokenhouse.leaks.service import loggable

    secret = new_secret("TKN-1234-5678")
    random_part = secret.rsplit(":", 1)[1]
    for written in (secret, secret.replace(":", "%253A"), secret.replace(":", "&#58;"),
                    secret.replace(":", "\\x3a"), "idt\u200b" + secret[3:],
                    f"https://x.test/#{random_part}"):
        shown = loggable(f"https://example.test/leak?q={written}")
        assert random_part not in shown and random_part[:20] not in shown, written
    commit = "0123456789abcdef0123456789abcdef01234567"  # 40 characters: kept
    assert commit in loggable(f"https://git.test/blob/{commit}/.env")
