"""Hostile input is a 4xx problem, never a 500 and never a hang, the same on SQLite and
PostgreSQL (issue 9, defects 3, 4, 5 and 11): the explicit limits on queries, paths and bodies,
and log lines that request data cannot forge."""

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.factories import Factory
from tests.helpers import ACCOUNTS, MODULES, TOKENS, problem
from tokenhouse.kit import paging, problems
from tokenhouse.kit.limits import MAX_QUERY_BYTES
from tokenhouse.kit.rql.parser import MAX_DEPTH, MAX_TERMS, MAX_VALUE_LENGTH
from tokenhouse.kit.wire import MAX_JSON_DEPTH

MIB = 1024 * 1024
JSON = {"Content-Type": "application/json"}


def bad(response: httpx.Response, *parts: str, status: int = 400) -> dict[str, Any]:
    """A problem with this status whose `errors` names each of `parts`."""
    body = problem(response, status)
    for part in parts:
        assert part in (body.get("errors") or {}), body
    return body


def listed(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


@pytest.fixture
async def admin(factory: Factory) -> dict[str, str]:
    return (await factory.admin()).headers


# --- filters: depth and number of terms ----------------------------------------------------

NESTINGS = {
    "parentheses": ("(", "eq(name,a)", ")"),
    "and-or": ("and(or(", "eq(name,a)", "))"),
    "not": ("not(", "eq(name,a)", ")"),
}


def nested(kind: str, levels: int) -> str:
    """A filter `levels` parentheses deep (an and(or( pair is two levels)."""
    opening, leaf, closing = NESTINGS[kind]
    pairs = levels // opening.count("(")
    return opening * pairs + leaf + closing * pairs


@pytest.mark.parametrize("kind", NESTINGS)
async def test_filters_nested_beyond_the_limit_are_400_naming_it(client, admin, kind):
    # Within the limit (eq( is one level more): an answer.
    listed(await client.get(f"{MODULES}?{nested(kind, MAX_DEPTH - 2)}", headers=admin))
    # Beyond it, up to what fits in a query string (a RecursionError and SQLite's "parser
    # stack overflow" before the limit).
    opening, leaf, closing = NESTINGS[kind]
    deepest = (MAX_QUERY_BYTES - len(leaf)) // len(opening + closing) * opening.count("(")
    for levels in (MAX_DEPTH + 2, 1000, deepest):
        text = nested(kind, levels)
        assert len(text) <= MAX_QUERY_BYTES
        body = bad(await client.get(f"{MODULES}?{text}", headers=admin), "query")
        assert f"{MAX_DEPTH} levels" in body["detail"]


async def test_filters_with_more_terms_than_the_limit_are_400_naming_it(client, admin):
    within = "|".join(["eq(name,a)"] * (MAX_TERMS - 1)) + "|not(eq(id,x))"
    assert len(listed(await client.get(f"{TOKENS}?{within}", headers=admin))) == 1
    body = bad(await client.get(f"{TOKENS}?{within}|eq(name,b)", headers=admin), "query")
    assert str(MAX_TERMS) in body["detail"]
    values = ",".join(f"v{i}" for i in range(MAX_TERMS + 1))
    bad(await client.get(f"{TOKENS}?in(name,({values}))", headers=admin), "query")


async def test_too_many_order_keys_or_select_items_are_400(client, admin):
    # 3,000 ORDER BY terms were SQLite's "too many terms in ORDER BY clause", a 500.
    bad(await client.get(f"{TOKENS}?order={','.join(['name'] * 400)}", headers=admin), "order")
    bad(await client.get(f"{TOKENS}?select={','.join(['-name'] * 400)}", headers=admin),
        "select")


# --- numbers, timestamps, long values ------------------------------------------------------

@pytest.mark.parametrize("part", ["limit", "offset"])
async def test_limit_and_offset_of_thousands_of_digits_are_400_naming_them(client, admin,
                                                                            part):
    bad(await client.get(f"{MODULES}?{part}={'9' * 5000}", headers=admin), part)
    # Leading zeros are no size: still the number 5.
    response = await client.get(f"{MODULES}?{part}={'0' * 100}5", headers=admin)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("value", ["9" * 4000, "9223372036854775808", "2147483648",
                                   "-2147483649", "2147483647.5", "-" + "9" * 30])
async def test_numbers_outside_the_columns_range_are_400_naming_the_field(client, admin, value):
    # `revision` is an INTEGER column: 32 bits on PostgreSQL, 64 on SQLite.
    for resource in (TOKENS, MODULES, ACCOUNTS):
        body = bad(await client.get(f"{resource}?gt(revision,{value})", headers=admin),
                   "revision")
        assert "range" in body["detail"]


async def test_numbers_at_the_edges_of_the_range_are_answered(client, admin):
    for value in ("2147483647", "-2147483648", "0.5", "-0"):
        listed(await client.get(f"{TOKENS}?lt(revision,{value})", headers=admin))


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-23:00", "9999-12-31T23:00:00-01:00",
                                   "0001-01-01T00:00:00%2B00:01", "0001-01-01T05:00:00%2B23:59"])
async def test_timestamps_moved_out_of_range_by_their_offset_are_400(client, admin, value):
    body = bad(await client.get(f"{TOKENS}?gt(audit.created.at,{value})", headers=admin),
               "audit.created.at")
    assert "range" in body["detail"]


async def test_timestamps_at_the_edges_are_answered(client, admin):
    for value in ("9999-12-31T23:59:59Z", "0001-01-01", "9999-12-31T22:00:00-01:00"):
        listed(await client.get(f"{TOKENS}?gt(audit.created.at,{value})", headers=admin))


@pytest.mark.parametrize("operator", ["ilike", "like", "eq", "gt"])
async def test_values_longer_than_any_column_are_400_naming_the_field(client, admin, operator):
    # A 50 KB pattern was SQLite's "LIKE or GLOB pattern too complex"; the query-string limit
    # now stops that one, and values over MAX_VALUE_LENGTH within it are a 400.
    long = "?" * (MAX_VALUE_LENGTH + 1)
    bad(await client.get(f"{TOKENS}?{operator}(description,{long})", headers=admin),
        "description")
    listed(await client.get(f"{TOKENS}?{operator}(description,{long[1:]})", headers=admin))


async def test_many_wildcards_against_long_text_answer_quickly(client, factory: Factory):
    """Backtracking patterns (`*a*a*...b`) against the longest stored text: an answer, not a
    hang, on both databases."""
    admin = await factory.admin()
    token = await client.get(f"{TOKENS}/{admin.id}", headers=admin.headers)
    response = await client.put(f"{TOKENS}/{admin.id}", headers=admin.headers,
                                json={"name": token.json()["name"], "description": "a" * 2000})
    assert response.status_code == 200, response.text
    pattern = "*a" * 1500 + "*b"
    for operator in ("like", "ilike"):
        assert listed(await client.get(f"{TOKENS}?{operator}(description,{pattern})",
                                       headers=admin.headers)) == []


# --- enumerations, NUL and control characters ----------------------------------------------

async def test_odd_values_compared_with_an_enum_are_answered_alike(client, admin):
    bad(await client.get(f"{TOKENS}?status={'A' * (MAX_VALUE_LENGTH + 1)}", headers=admin),
        "status")
    assert listed(await client.get(f"{TOKENS}?status={'A' * 4000}", headers=admin)) == []
    for value in ("%C7%85%E2%84%AA", "%F0%9F%98%80", "%E2%80%AE", "ACTİVE", "%EF%BF%BF"):
        assert len(listed(await client.get(f"{TOKENS}?ne(status,{value})",
                                           headers=admin))) == 1
        assert listed(await client.get(f"{TOKENS}?account.type={value}", headers=admin)) == []


@pytest.mark.parametrize("value", ["a%00b", "%00", "x%01", "%1B[31m", "%7F"])
async def test_control_characters_in_filter_values_are_400_naming_the_field(client, admin,
                                                                            value):
    response = await client.get(f"{TOKENS}?eq(name,{value})", headers=admin)
    if value == "%7F":  # DEL is ordinary text for both databases
        assert listed(response) == []
        return
    bad(response, "name")
    bad(await client.get(f"{MODULES}?in(description,(x,{value}))", headers=admin), "description")
    bad(await client.get(f"{ACCOUNTS}?address.city={value}", headers=admin), "address.city")


async def test_tab_and_line_breaks_in_filter_values_are_text(client, admin):
    assert listed(await client.get(f"{TOKENS}?eq(name,a%09b%0A)", headers=admin)) == []


@pytest.mark.parametrize("path", [f"{TOKENS}/TKN%00", f"{MODULES}/MOD-%00", f"{ACCOUNTS}/A%0AB",
                                  f"{ACCOUNTS}/ACC%09/icon", f"{TOKENS}/%7F/enable"])
async def test_control_characters_in_the_path_are_400(client, admin, path):
    method = "POST" if path.endswith("enable") else "GET"
    bad(await client.request(method, path, headers=admin), "path")


async def test_nul_in_any_json_string_is_400_naming_the_property(client, factory: Factory):
    admin = await factory.admin()
    tenant = await factory.account("Client")
    modules = await factory.modules()
    token = {"name": "ok", "account": {"id": tenant["id"]},
             "modules": [{"id": modules["Access Management"]}]}
    for key, value, named in [("name", "a\x00b", "name"), ("description", "\x00", "description"),
                              ("account", {"id": "ACC\x00"}, "account.id"),
                              ("modules", [{"id": "MOD\x00"}], "modules[0].id"),
                              ("name", "a\ud800b", "name"),
                              ("description", "\x1b[2J", "description")]:
        response = await client.post(TOKENS, headers={**admin.headers, **JSON},
                                     content=json.dumps({**token, key: value}))
        bad(response, named)
    response = await client.post(ACCOUNTS, headers={**admin.headers, **JSON},
                                 content=json.dumps({"name": "n", "type": "Client",
                                                     "address": {"city": "x\x00"}}))
    bad(response, "address.city")
    # Keys too.
    bad(await client.post(TOKENS, headers={**admin.headers, **JSON},
                          content='{"na\\u0000me": 1}'),
        "na\x00me")
    # Tab and line breaks are text.
    response = await client.post(TOKENS, headers=admin.headers,
                                 json={**token, "description": "line 1\r\n\tline 2"})
    assert response.status_code == 201, response.text


# --- request-level limits ------------------------------------------------------------------

async def test_query_strings_over_the_limit_are_414_problems(client, admin):
    filler = "eq(name,a)&"
    text = (filler * (MAX_QUERY_BYTES // len(filler) + 1))[:MAX_QUERY_BYTES + 1]
    body = problem(await client.get(f"{TOKENS}?{text}", headers=admin), 414)
    assert str(MAX_QUERY_BYTES) in body["detail"]
    # Before any work: not even the credential is looked at.
    problem(await client.get(f"{TOKENS}?{text}"), 414)
    # At the limit: read (and answered by the filter limits).
    response = await client.get(f"{TOKENS}?{text[:-1]}", headers=admin)
    assert response.status_code == 400, response.text


async def test_over_long_paths_are_414(client, admin):
    problem(await client.get(f"{TOKENS}/{'T' * 3000}", headers=admin), 414)


async def test_a_query_string_that_is_not_utf8_is_400(app: FastAPI, client):
    messages = await raw_request(app, b"/public/v1/accounts/modules", b"eq(name,\xff)")
    assert messages[0]["status"] == 400
    body = json.loads(b"".join(m.get("body", b"") for m in messages[1:]))
    assert body["errors"] == {"query": ["Not valid UTF-8."]} and body["traceId"]


async def raw_request(app: FastAPI, path: bytes, query: bytes) -> list[dict[str, Any]]:
    """Bytes no HTTP client would send, straight to the ASGI app."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path.decode(), "raw_path": path,
             "query_string": query, "headers": [(b"host", b"t")], "client": ("1.2.3.4", 1),
             "server": ("t", 80), "root_path": ""}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def test_trailing_slash_is_a_404_without_reflecting_the_host(client, admin):
    for path in (f"{TOKENS}/", f"{MODULES}/", f"{ACCOUNTS}/"):
        response = await client.get(path, headers={**admin, "Host": "evil.example"})
        problem(response, 404)
        assert "location" not in response.headers
        assert "evil.example" not in response.text


async def test_long_query_strings_are_not_kept_in_the_parsed_query_cache(client, admin):
    short = "eq(name,cache-me)"
    listed(await client.get(f"{MODULES}?{short}", headers=admin))
    long = "|".join(f"eq(name,n{i})" for i in range(120))
    assert len(long) > paging.CACHED_QUERY_CHARS
    before = paging._cached_parse.cache_info().currsize
    for i in range(5):
        listed(await client.get(f"{MODULES}?{long}|eq(name,x{i})", headers=admin))
    assert paging._cached_parse.cache_info().currsize == before
    assert paging._cached_parse.cache_info().maxsize * paging.CACHED_QUERY_CHARS <= MIB


# --- JSON bodies ---------------------------------------------------------------------------

async def test_deeply_nested_json_is_400(client, factory: Factory):
    admin = await factory.admin()
    for body in (b"[" * 100_000, b"[" * 500 + b"]" * 500,
                 json.dumps({"name": "x", "description": nested_json(MAX_JSON_DEPTH)})):
        response = await client.post(TOKENS, headers={**admin.headers, **JSON}, content=body)
        bad(response)
        assert "nested" in response.text.lower()
    account = await factory.account("Client")
    # Within the limit: read, and validated as usual.
    response = await client.put(f"{ACCOUNTS}/{account['id']}",
                                headers={**admin.headers, **JSON},
                                content=json.dumps({"x": nested_json(MAX_JSON_DEPTH - 2)}))
    bad(response, "x")


def nested_json(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": [value]} if isinstance(value, int) else [value]
    return value


async def test_json_over_one_mib_is_413(client, admin):
    problem(await client.post(TOKENS, headers=admin, content=b" " * (MIB + 1)), 413)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b" " * 65536

    problem(await client.post(TOKENS, headers=admin, content=chunks()), 413)


# --- log lines -----------------------------------------------------------------------------

async def test_request_data_cannot_forge_log_lines(caplog: pytest.LogCaptureFixture):
    """The "unexpected error" line escapes control characters of the path, and the traceback
    (whose last line holds the exception's message) is indented line by line."""
    app = FastAPI()
    problems.install(app)

    @app.get("/boom/{name}")
    async def boom(name: str) -> None:
        raise RuntimeError(f"no such thing: {name}")

    forged = "x%0AERROR:tokenhouse:admin token leaked%0D%E2%80%A8%1B[2J"
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="tokenhouse"):
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            problem(await c.get(f"/boom/{forged}"), 500)
    [record] = [r for r in caplog.records if r.name == "tokenhouse"]
    first, *rest = record.getMessage().split("\n")
    assert first.startswith("unexpected error on GET /boom/x\\x0aERROR:tokenhouse:")
    assert "\\x0d\\x2028\\x1b[2J" in first
    assert rest and all(line.startswith("  | ") for line in rest)
    assert "\r" not in record.getMessage() and "\u2028" not in record.getMessage()
    assert any("RuntimeError: no such thing" in line for line in rest)


async def test_a_500_logs_a_bounded_traceback(caplog: pytest.LogCaptureFixture):
    """A recursion error's traceback was ~140 KB per request; it is cut in the middle now."""
    app = FastAPI()
    problems.install(app)

    # Two functions in turn: Python folds repeated identical frames, not alternating ones.
    def ping(n: int) -> int:
        return pong(n + 1) + 1

    def pong(n: int) -> int:
        return ping(n + 1) - 1

    @app.get("/deep")
    async def deep() -> None:
        ping(0)

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="tokenhouse"):
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            problem(await c.get("/deep"), 500)
    [record] = [r for r in caplog.records if r.name == "tokenhouse"]
    message = record.getMessage()
    assert "lines left out" in message and "RecursionError" in message
    assert len(message) < 16_000 and not record.exc_info
