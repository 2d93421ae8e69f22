"""The lines of an import file are checked before anything is written, and a bad line is a
message naming its number and property: never a traceback, never a database error.

Fast, in this process: `read_chunks` alone (named cases, then hypothesis over mutated lines
of every kind), and `import_lines` on SQLite and PostgreSQL with each example's transaction
rolled back (whatever the checks accept, both databases store). The `tokenhouse import`
process itself is run on such files in test_import_export.py (PROBES).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from tokenhouse.kit.db import session_factory
from tokenhouse.transfer import service
from tokenhouse.transfer.service import MAX_DEPTH, ImportFailed, import_lines, read_chunks

ACCOUNT = {"id": "ACC-7000-0001", "name": "Fuzz account", "type": "Client",
           "groups": [{"id": "UGR-7000-0001", "name": "Default", "isDefault": True}],
           "audit": {"created": {"at": "2025-01-02T03:04:05.678Z",
                                 "by": {"id": "TKN-1000-0001", "name": "someone"}}}}
MODULE = {"id": "MOD-7001", "name": "Fuzz module", "description": "new",
          "accountTypes": ["Client"], "settings": {"a": [1, 2.5, "x"]},
          "filters": {"f": ["g"]}, "revision": 2}
TOKEN = {"id": "TKN-7000-0001", "name": "fuzz token", "description": "d", "status": "Active",
         "account": {"id": ACCOUNT["id"]}, "modules": [{"id": "MOD-1732"}],
         "lastAccessAt": "2025-02-03T04:05:06.789Z", "revision": 3,
         "audit": {"created": {"at": "2025-01-02T03:04:05.678Z", "by": None},
                   "updated": {"at": "2025-01-03T03:04:05.678Z",
                               "by": {"id": "TKN-1000-0001", "name": "x"}}},
         "secretHash": "a" * 64,
         # Issue 11: an IPv6 network and address and a second hash look like exponents too.
         "expiresAt": "2099-01-02T03:04:05.678Z", "ipAllowlist": ["10.0.0.0/8", "2001:db8:1e::/48"],
         "lastAccessIps": [{"ip": "2001:db8::1e", "at": "2025-02-03T04:05:06.789Z"}],
         "previousSecret": {"expiresAt": "2099-01-01T00:00:00.000Z", "lastAccessAt": None},
         "previousSecretHash": "2e" * 32, "retirePreviousOnFirstUse": True,
         "rotatedAt": "2025-01-03T03:04:05.678Z"}
BASES = {"account": ACCOUNT, "module": MODULE, "token": TOKEN}


def token(**changes: Any) -> str:
    return json.dumps({**TOKEN, **changes})


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def problems_of(*lines: str) -> list[tuple[int, str]]:
    """The problems of lines checked on their own, as an import reports them."""
    problems = [problem for chunk in read_chunks(lines) for problem in chunk.problems]
    assert problems, "no problem found"
    return ImportFailed(problems).problems


# Each case of issue 9 (defect 10), and its neighbours: (line, words the message must hold).
BAD_LINES = {
    "audit by.id over its column": (
        token(audit={"created": {"at": "2025-01-02T03:04:05Z", "by": {"id": "x" * 33}}}),
        ("TKN-7000-0001", "audit.created.by.id", "32")),
    "audit by.name over its column": (
        token(audit={"updated": {"at": "2025-01-02T03:04:05Z", "by": {"name": "x" * 256}}}),
        ("audit.updated.by.name", "255")),
    "revision of 2^40": (token(revision=2**40), ("revision", "2147483647")),
    "revision of 2^31": (token(revision=2**31), ("revision",)),
    "module revision of 2^63": (json.dumps({**MODULE, "revision": 2**63}), ("revision",)),
    "NUL in a name": (token(name="a\u0000b"), ("name", "NUL")),
    "NUL in a module setting": (json.dumps({**MODULE, "settings": {"k": ["\u0000"]}}),
                                ("settings.k.0", "NUL")),
    "NUL in a property name": (json.dumps({**MODULE, "settings": {"k\u0000": 1}}),
                               ("settings", "NUL")),
    "NUL in an ignored property": (token(href="/x\u0000"), ("href", "NUL")),
    "NUL in an account reference": (token(account={"id": "ACC-7000-0001\u0000"}),
                                    ("account.id", "NUL")),
    "a lone surrogate": ('{"id": "MOD-7001", "settings": {"k": "\\udc00"}}',
                         ("settings.k", "surrogate")),
    "a line nested 100,000 levels deep": ('{"id": "MOD-7001", "settings": ' + deep(100_000)
                                          + "}", ("nested",)),
    "a line nested 500 levels deep": ('{"id": "MOD-7001", "settings": {"k": ' + deep(500)
                                      + "}}", ("settings.k", "nested")),
    "a whole line nested deeply": (deep(100_000), ("nested",)),
    "an instant past year 9999 in UTC": (token(lastAccessAt="9999-12-31T23:59:59-23:00"),
                                         ("lastAccessAt", "range")),
    "an instant before year 1 in UTC": (
        token(audit={"created": {"at": "0001-01-01T00:00:00+01:00"}}),
        ("audit.created.at", "range")),
    "NaN": ('{"id": "MOD-7001", "settings": {"k": NaN}}', ("NaN",)),
    "Infinity": ('{"id": "MOD-7001", "settings": {"k": -Infinity}}', ("Infinity",)),
    "a float past the largest": ('{"id": "MOD-7001", "settings": {"k": 1e999}}', ("number",)),
    "an integer of 5,000 digits": ('{"id": "MOD-7001", "revision": ' + "9" * 5000 + "}",
                                   ("4,300 digits",)),
    "a module reference that is no module id": (token(modules=[{"id": "x" * 1000}]),
                                                ("modules.0.id",)),
    "an account reference that is no account id": (token(account={"id": "ACC-1"}),
                                                   ("account.id",)),
    "an id in non-ASCII digits": (token(id="TKN-\u0661\u0662\u0663\u0664-1234"), ("id",)),
}


@pytest.mark.parametrize("case", BAD_LINES)
def test_each_bad_line_is_named_with_its_property(case: str) -> None:
    line, words = BAD_LINES[case]
    good = json.dumps(ACCOUNT)
    [(number, message)] = problems_of(good, "", line, good.replace("7000-0001", "7000-0002"))
    assert number == 3, message
    for word in words:
        assert word in message, (word, message)


def test_a_forged_id_cannot_forge_an_output_line() -> None:
    """An id or a property name from the file is quoted escaped and bounded."""
    problems = problems_of(
        json.dumps({"id": "TKN-\nline 9: ok\u001b[2J" + "x" * 10_000, "name": "n"}),
        json.dumps({**TOKEN, "x\r\nline 7: fine": 1}),
        '{"id": "TKN-\\ud800", "name": "n"}')
    for _, message in problems:
        assert message.isprintable() and message.isascii(), message
        assert len(message) < 600, message
    assert "\\n" in problems[0][1]


@pytest.mark.parametrize("depth", [MAX_DEPTH - 2, MAX_DEPTH - 1])
def test_nesting_up_to_the_limit_is_accepted(depth: int) -> None:
    settings_value: Any = 1
    for _ in range(depth):
        settings_value = {"k": settings_value}
    [chunk] = read_chunks([json.dumps({**MODULE, "settings": settings_value})])
    assert not chunk.problems and len(chunk.modules) == 1


# -- hypothesis --------------------------------------------------------------------------------

NASTY_TEXT = st.one_of(
    st.text(max_size=20),
    st.text(st.characters(codec=None, categories=["Cc", "Cs", "Zl", "Co"]), max_size=5),
    st.sampled_from(["\u0000", "a\u0000", "\ud800", "x" * 33, "x" * 256, "y" * 3000,
                     "TKN-0000-0000", "ACC-0000-0000", "MOD-1732", "Active", "Deleted",
                     "Expired", "10.0.0.0/8", "10.0.0.1/8", "::ffff:10.0.0.0/104",
                     "fe80::1%eth0", "2001:db8::1e", "b" * 64,
                     "2025-01-01T00:00:00Z", "9999-12-31T23:59:59-23:00",
                     "0001-01-01T00:00:00+14:00", "2025-01-01T00:00:00", "a" * 64]),
)
NASTY_NUMBER = st.one_of(
    st.integers(), st.sampled_from([0, -1, 2**31 - 1, 2**31, 2**63, -(2**63) - 1, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True))
LEAF = st.one_of(NASTY_TEXT, NASTY_NUMBER, st.booleans(), st.none())
VALUE = st.recursive(LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(NASTY_TEXT, inner, max_size=3)), max_leaves=8)
PROPERTIES = sorted({*ACCOUNT, *MODULE, *TOKEN, "externalIds", "address", "website", "icon",
                     "serviceLevel", "accountTypes", "isEnabledByDefault", "paid", "$meta",
                     "expiresAt", "ipAllowlist", "lastAccessIps", "previousSecret",
                     "previousSecretHash", "retirePreviousOnFirstUse", "rotatedAt"})
NESTED_PATHS = [("audit", "created", "at"), ("audit", "created", "by", "id"),
                ("audit", "updated", "by", "name"), ("account", "id"), ("modules", 0, "id"),
                ("groups", 0, "id"), ("groups", 0, "name"), ("address", "city"),
                ("externalIds", "pyraTenantId"), ("settings", "k"), ("filters", "k"),
                ("ipAllowlist", 0), ("lastAccessIps", 0, "ip"), ("lastAccessIps", 0, "at"),
                ("previousSecret", "expiresAt"), ("previousSecret", "lastAccessAt")]


@st.composite
def mutated_lines(draw: st.DrawFn) -> str:
    """A good line of some kind with one to three properties given nasty values, as JSON
    (NaN and Infinity included); now and then the text itself is cut or gets a character."""
    line = json.loads(json.dumps(BASES[draw(st.sampled_from(sorted(BASES)))]))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.one_of(st.tuples(st.sampled_from(PROPERTIES)),
                              st.sampled_from(NESTED_PATHS)))
        value = draw(VALUE)
        for key in reversed(path[1:]):
            value = [value] if isinstance(key, int) else {key: value}
        line[path[0]] = value
    text = json.dumps(line, ensure_ascii=draw(st.booleans()))
    edit = draw(st.sampled_from(["none", "none", "cut", "insert"]))
    if edit != "none":
        at = draw(st.integers(0, len(text) - 1))
        text = text[:at] if edit == "cut" else text[:at] + draw(st.characters()) + text[at:]
    return text


HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
          HealthCheck.data_too_large, HealthCheck.filter_too_much]


@examples(max_examples=400, deadline=None, suppress_health_check=HEALTH)
@given(line=mutated_lines())
def test_line_checks_never_raise_anything_but_a_named_problem(line: str) -> None:
    problems = [p for chunk in read_chunks([json.dumps(ACCOUNT), line]) for p in chunk.problems]
    for number, message in ImportFailed(problems).problems:
        assert number == 2, problems
        assert message.isprintable() and message.isascii(), message


@examples(max_examples=40, deadline=None, suppress_health_check=HEALTH)
@given(line=mutated_lines())
async def test_what_the_checks_accept_both_databases_store(engine: AsyncEngine,
                                                           line: str) -> None:
    """Each example imports into the real database, then rolls back: a line is either
    refused by name or written; the database never refuses what the checks let through."""
    async with session_factory(engine)() as session:
        try:
            await import_lines(session=session, lines=[json.dumps(ACCOUNT), line])
            await session.flush()
        except ImportFailed:
            pass
        finally:
            await session.rollback()


# -- a plain line, read the fast way -------------------------------------------------------------

def compact(line: str) -> str:
    """The line with its id first as export writes it: the shape read the fast way."""
    return line.replace('{"id": "', '{"id":"', 1)


@pytest.mark.parametrize("case", BAD_LINES)
def test_a_bad_line_in_export_shape_is_named_alike(case: str) -> None:
    line, _ = BAD_LINES[case]
    assert problems_of(compact(line)) == problems_of(line)


EXPORTED = json.dumps({**TOKEN, "href": "/public/v1/accounts/api-tokens/TKN-7000-0001",
                       "account": {**ACCOUNT, "href": "/x", "revision": 7},
                       "modules": [{**MODULE, "href": "/y"}]}, separators=(",", ":"))


def test_a_plain_export_line_is_read_fast_and_as_the_checked_way_reads_it() -> None:
    line = service._read_plain(EXPORTED)
    assert line is not None
    assert line == service._read_checked(EXPORTED)[0]


@pytest.mark.parametrize("ignored", [
    "NaN", "-Infinity", "1e999", "1E400", "-2.5e+999", "9" * 309 + ".5", '"\\u0000"',
    '"\\udc00"', deep(40), "9" * 5000, '"\\u0000' + "a" * 64 + '"'])
def test_what_a_token_line_ignores_is_checked_as_the_rest(ignored: str) -> None:
    """A value in the nested account (which import ignores) of an export-shaped line: read
    the slow way, and refused with the same message as in any other line."""
    line = EXPORTED.replace('"revision":7', f'"revision":7,"x":{ignored}', 1)
    assert service._read_plain(line) is None
    [(_, message)] = problems_of(line)
    assert message == problems_of(line.replace('{"id":"', '{"id": "', 1))[0][1]


@pytest.mark.parametrize("value", ["2001:db8::1e", "2001:db8:1e::/48", "2e" * 32])
def test_an_address_or_a_previous_hash_looking_like_an_exponent_keeps_a_line_plain(
        value: str) -> None:
    assert service._read_plain(EXPORTED) is not None
    # The same value escaped is read the slow way, and is as good there.
    escaped = EXPORTED.replace(f'"{value}"', f'"\\u00{ord(value[0]):02x}{value[1:]}"', 1)
    assert escaped != EXPORTED
    assert service._read_plain(escaped) is None and not any(
        chunk.problems for chunk in read_chunks([escaped]))
    # A number made of the value's characters next to it is no such value.
    line = EXPORTED.replace('"revision":7', '"revision":7,"x":1e999')
    assert service._read_plain(line) is None


def test_a_hash_looking_like_an_exponent_keeps_a_line_plain() -> None:
    line = EXPORTED.replace("a" * 64, "1e99" * 16)
    assert service._read_plain(line) is not None
    escaped = line.replace('"1e99', '"\\u0031e99', 1)  # the same hash, not as such
    assert service._read_plain(escaped) is None and not any(
        chunk.problems for chunk in read_chunks([escaped]))
    # A number holding the hash's characters is no hash.
    huge = "1" * 60 + "e999"
    line = EXPORTED.replace("a" * 64, huge).replace('"revision":7', f'"revision":7,"x":{huge}')
    assert service._read_plain(line) is None
    [(_, message)] = problems_of(line)
    assert "a number too large for a float" in message
