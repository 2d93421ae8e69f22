"""Fuzzing raw query strings (hypothesis) on every list endpoint and single read: never a 5xx,
and every 4xx an `application/problem+json` document with its status and traceId, on SQLite
and PostgreSQL (issue 9, "What to build" 3).

The strategies aim at the parser's and the compiler's corners rather than at random bytes:
filter trees of every operator (also unknown and mis-cased ones) over the resource's real
fields, nested objects and collections, junk paths, and values that are huge or odd numbers,
date-times at and beyond the edges of their range, like patterns with `*` and `\\`, quotes,
null()/empty(), field references, any Unicode, NUL and other control characters; deep nesting
and long in() lists; limit/offset/select/order with junk; the whole then mangled (a slice cut
out, delimiters thrown in) and percent-encoded in part, in whole or wrongly (invalid UTF-8).
Each example is one request with an Operations token or a Client token (a small dataset of
both exists). What the fuzzer found is kept as regression tests in test_hostile_input.py.

Hypothesis runs async tests on the session loop (see test_rql_properties.py for how); the
`world` fixture is set up once per test function.
"""

import random
import string
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import Factory
from tests.helpers import ACCOUNTS, MODULES, TOKENS, TRACE_ID
from tokenhouse.kit.rql.parser import MAX_DEPTH, MAX_TERMS

COMMON = ["id", "name", "description", "revision", "href", "audit", "audit.created.at",
          "audit.updated.at", "audit.created.by.id", "audit.created.by.name",
          "audit.updated.by.name", "audit.updated", "audit.updated.by"]
FIELDS = {
    TOKENS: [*COMMON, "icon", "status", "lastAccessAt", "token", "account", "account.id",
             "account.name", "account.type", "account.status", "account.address.city",
             "account.externalIds.pyraTenantId", "modules", "modules.id", "modules.name",
             "modules.paid", "modules.settings.x", "modules.accountTypes"],
    MODULES: [*COMMON, "isEnabledByDefault", "isConfigurable", "paid", "settings",
              "settings.type", "accountTypes", "filters"],
    ACCOUNTS: [*COMMON, "type", "status", "icon", "externalId", "externalIds.pyraTenantId",
               "address", "address.city", "address.country", "serviceLevel", "website",
               "technicalSupportEmail", "groups", "groups.name", "groups.isDefault",
               "groups.modules"],
}
COLLECTIONS = {TOKENS: ["modules"], MODULES: [], ACCOUNTS: ["groups"]}
OPERATORS = ["eq", "ne", "gt", "ge", "lt", "le", "like", "ilike", "in", "out", "and", "or",
             "not", "any", "all", "EQ", "Ilike", "nOt", "between", "eq.x", "", "select"]
DELIMITERS = list("(),&|;='\"*\\.+-%# ")

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)
junk_paths = st.one_of(
    names, st.lists(names, min_size=2, max_size=6).map(".".join),
    st.sampled_from(["", "NAME", "Audit.Created.At", "account..id", ".name", "name.", "1abc",
                     "a" * 300, "__class__", "*", "id.id.id"]))

numbers = st.one_of(
    st.sampled_from(["2147483647", "2147483648", "-2147483648", "-2147483649",
                     "9223372036854775808", "-9223372036854775809", "1e5", "0x10", "1_000",
                     "-0", "00001", ".5", "5.", "+1", "1.5", "∞", "١٢", "9" * 5000,
                     "0." + "9" * 3000]),
    st.integers(-(2**70), 2**70).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str))
timestamps = st.one_of(
    st.sampled_from(["9999-12-31T23:59:59-23:00", "0001-01-01T00:00:00+23:00",
                     "9999-12-31T23:59:59.999999999Z", "0000-01-01", "2024-02-30",
                     "2024-01-01T24:00:00Z", "2024-1-1", "2024-01-01T00:00Z", "10000-01-01"]),
    st.builds(lambda d, offset: d.isoformat(timespec="microseconds")[:26] + offset,
              st.datetimes(), st.sampled_from(["", "Z", "+23:59", "-23:59", "+00:00", "-01:00",
                                               "+24:00", "+05:60", "z"])),
    st.dates().map(str))
odd_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
texts = st.one_of(
    odd_text,
    st.text(st.characters(max_codepoint=0x7f), max_size=12),
    st.sampled_from(["*", "\\*", "\\", "\\\\", "**", "*\\", "a*b*c", "%", "_", "[", "?",
                     "'q'", '"q"', "a'b", "null()", "NULL()", "empty()", "empty", "null",
                     "Active", "ACTIVE", "deleted", "Operations", "İ", "ǅ", "ß", "ſ", "\x00",
                     "a\x00b", "\x1b[31m", "\t", "\r\n", "\u2028", "\ufeff", "\U0010ffff",
                     "x" * 5000, "*a" * 800 + "b", "true", "FALSE"]))
values = st.one_of(texts, numbers, timestamps, st.sampled_from(sum(FIELDS.values(), [])))
# Fields by type, for comparisons whose value has the field's type (and its corners).
TYPED = [(["revision"], numbers),
         (["audit.created.at", "audit.updated.at", "lastAccessAt"], timestamps),
         (["status", "type", "account.type", "account.status"],
          st.one_of(st.sampled_from(["Active", "aCTIVE", "Disabled", "Deleted", "Client",
                                     "Operations", "Enabled", "A" * 4000]), texts)),
         (["name", "description", "id", "address.city", "modules.name", "groups.name"], texts)]
sometimes = st.tuples(st.booleans(), st.booleans()).map(all)  # about one time in four


@st.composite
def typed(draw: Any) -> str:
    fields, kind = draw(st.sampled_from(TYPED))
    op = draw(st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le", "like", "ilike", "in"]))
    field = draw(st.sampled_from(fields))
    if field.startswith(("modules.", "groups.")):
        collection, _, field = field.partition(".")
        return f"any({collection},{op}({field},{draw(kind)}))"
    return f"{op}({field},{draw(kind)})"


@st.composite
def filters(draw: Any, resource: str) -> str:
    fields = st.one_of(st.sampled_from(FIELDS[resource]), junk_paths)
    leaf = st.one_of(
        typed(),
        st.builds(lambda op, f, v: f"{op}({f},{v})", st.sampled_from(OPERATORS), fields,
                  values),
        st.builds(lambda f, v: f"{f}={v}", fields, values),
        st.builds(lambda op, f, vs: f"{op}({f},({','.join(vs)}))",
                  st.sampled_from(["in", "out", "eq", "IN"]), fields,
                  st.lists(values, max_size=5)),
        st.builds(lambda op, f: f"{op}({f})", st.sampled_from(["any", "all", "not", "eq"]),
                  fields),
        st.sampled_from([f"in(name,({','.join(['v'] * (MAX_TERMS + 1))}))", "()", "(", ")",
                         "eq(name)", "eq(,)", "eq(name,a,b)", "and()", "=", "name==a"]),
    )
    collections = COLLECTIONS[resource] or ["modules"]

    def extend(children: Any) -> Any:
        return st.one_of(
            st.builds(lambda op, xs: f"{op}({','.join(xs)})", st.sampled_from(["and", "or"]),
                      st.lists(children, min_size=1, max_size=4)),
            st.builds(lambda x: f"not({x})", children),
            st.builds(lambda x: f"({x})", children),
            st.builds(lambda sep, xs: sep.join(xs), st.sampled_from(["&", ",", "|", ";"]),
                      st.lists(children, min_size=2, max_size=4)),
            st.builds(lambda op, c, x: f"{op}({c},{x})", st.sampled_from(["any", "all"]),
                      st.sampled_from(collections), children),
        )

    tree = draw(st.recursive(leaf, extend, max_leaves=8))
    if draw(sometimes):  # deep: around the limit, or far beyond it
        levels = draw(st.sampled_from([MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1,
                                       400, 1000, 1600]))
        opening = draw(st.sampled_from(["(", "not(", "and(", "or(", "any(modules,"]))
        tree = opening * levels + tree + ")" * levels
    return tree


@st.composite
def parameters(draw: Any, resource: str) -> list[str]:
    fields = st.one_of(st.sampled_from(FIELDS[resource]), junk_paths)
    signed = st.builds(lambda sign, f: sign + f, st.sampled_from(["", "+", "-", " ", "--"]),
                       st.one_of(fields, st.sampled_from(["*", "", ".", "*.x"])))
    whole = st.one_of(st.integers(-5, 300).map(str), numbers, texts)
    chosen = draw(st.lists(st.sampled_from(["limit", "offset", "select", "order", "render",
                                            "LIMIT", "filter"]), max_size=4))
    out = []
    for name in chosen:
        if name in ("limit", "offset", "LIMIT"):
            out.append(f"{name}={draw(whole)}")
        elif name in ("select", "order"):
            out.append(f"{name}={','.join(draw(st.lists(signed, max_size=4)))}")
        elif name == "render":
            out.append("render()")
        else:
            out.append(draw(filters(resource)))
    return out


@st.composite
def encoded(draw: Any, text: str) -> str:
    """`text` percent-encoded as a client might (or might not): each character kept as it is
    when printable ASCII, or escaped (UTF-8); sometimes with invalid escapes mixed in."""
    mode = draw(st.sampled_from(["few", "some", "all"]))
    chance = random.Random(draw(st.integers(0, 2**32)))  # one draw, not one per character
    out = []
    for char in text:
        plain = char in string.printable and char not in "#% \t\r\n\x0b\x0c"
        if plain and (mode == "few" or (mode == "some" and chance.random() < 0.5)):
            out.append(char)
        else:
            out.append("".join(f"%{byte:02X}" for byte in char.encode()))
    if draw(sometimes):
        position = draw(st.integers(0, len(out)))
        out.insert(position, draw(st.sampled_from(["%", "%G1", "%FF", "%C3%28", "%ED%A0%80",
                                                   "%00", "%2", "%E2%82"])))
    return "".join(out)


@st.composite
def query_strings(draw: Any, resource: str, *, single: bool = False) -> str:
    parts = draw(parameters(resource))
    if not single or draw(sometimes):
        parts.extend(draw(st.lists(filters(resource), min_size=1, max_size=2)))
    text = "&".join(draw(st.permutations(parts)))
    if text and draw(sometimes):  # mangled: a slice cut out, delimiters in
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 8)))
        text = text[:start] + "".join(draw(st.lists(st.sampled_from(DELIMITERS), max_size=3))) \
            + text[end:]
    # httpx refuses URLs over 64 KiB; the server answers 414 from 8 KiB on anyway.
    return draw(encoded(text))[:60_000]


def check(response: httpx.Response, context: str) -> None:
    """Never a 5xx; a 4xx is a problem document with its status and a trace id."""
    assert response.status_code < 500, f"{context}: {response.status_code} {response.text}"
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json"), context
        body = response.json()
        assert body["status"] == response.status_code, context
        assert TRACE_ID.match(body["traceId"]), context
        assert "Traceback" not in response.text, context
    else:
        assert response.status_code == 200, context
        response.json()


@dataclass(frozen=True)
class World:
    headers: dict[str, dict[str, str]]  # "admin", "tenant"
    ids: dict[str, list[str]]  # resource -> ids to read


@pytest.fixture
async def world(client: httpx.AsyncClient, factory: Factory) -> World:
    admin = await factory.admin()
    tenant = await factory.tenant("Client")
    vendor = await factory.tenant("Vendor", modules=("Access Management",))
    described = await factory.token(tenant.account_id, name="ß*\\ünïcode 'q'")
    response = await client.put(f"{TOKENS}/{described.id}", headers=admin.headers,
                                json={"name": "ß*\\ünïcode 'q'", "description": "x" * 2000})
    assert response.status_code == 200, response.text
    modules = sorted((await factory.modules()).values())[:3]
    return World(headers={"admin": admin.headers, "tenant": tenant.headers},
                 ids={TOKENS: [admin.id, tenant.id, described.id, vendor.id, "TKN-0000-0000"],
                      MODULES: [*modules, "MOD-0000"],
                      ACCOUNTS: [admin.account_id, tenant.account_id, vendor.account_id]})


HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
          HealthCheck.filter_too_much]
RESOURCES = [TOKENS, MODULES, ACCOUNTS]
ids_in_paths = st.one_of(st.none(), odd_text, st.sampled_from(["%2F", "..", "%00", "a%0Ab"]))


@settings(max_examples=120, deadline=None, suppress_health_check=HEALTH)
@given(data=st.data())
async def test_lists_never_answer_5xx(client, world, backend, data):
    resource = data.draw(st.sampled_from(RESOURCES), label="resource")
    who = data.draw(st.sampled_from(["admin", "tenant"]), label="who")
    query = data.draw(query_strings(resource), label="query")
    response = await client.get(f"{resource}?{query}", headers=world.headers[who])
    check(response, f"[{backend}] {who} GET {resource}?{query}")


@settings(max_examples=100, deadline=None, suppress_health_check=HEALTH)
@given(data=st.data())
async def test_single_reads_never_answer_5xx(client, world, backend, data):
    resource = data.draw(st.sampled_from(RESOURCES), label="resource")
    who = data.draw(st.sampled_from(["admin", "tenant"]), label="who")
    odd_id = data.draw(ids_in_paths, label="odd id")
    if odd_id is None:
        object_id = data.draw(st.sampled_from(world.ids[resource]), label="id")
    else:
        object_id = data.draw(encoded(odd_id), label="encoded id") or "x"
    query = data.draw(query_strings(resource, single=True), label="query")
    response = await client.get(f"{resource}/{object_id}?{query}", headers=world.headers[who])
    check(response, f"[{backend}] {who} GET {resource}/{object_id}?{query}")
