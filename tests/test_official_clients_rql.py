"""Acceptance: filtering, select and order through the official `mpt-api-client` (7.x),
unmodified, against a live `tokenhouse serve` (shared/spec/rql.md).

One real server process per backend (SQLite, PostgreSQL) is shared by the whole module. A
module-scoped fixture makes, over HTTP as the admin, three accounts and sixteen tokens with
tricky names (`&`, `%`, `_`, parentheses, double spaces, mixed case), null, empty and
punctuated descriptions, Active, Disabled and Deleted statuses, and modules valid for each
account type. It keeps a local model of every token the server holds (the bootstrap token
included), and every test compares the ids the client returns with the ids the model says
the query means: exact sets, or exact lists where order is asked for. No test changes data.

A hook on the client's httpx client records the query string of each request, so that
paging can be checked and a failure names exactly what the client sent.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from mpt_api_client import MPTClient
from mpt_api_client.exceptions import MPTAPIError
from mpt_api_client.rql import RQLQuery

from tests.databases import BACKENDS
from tests.helpers import ACCOUNTS, MODULES, TOKENS
from tests.live_server import LiveServer, serving
from tests.mpt import clients

pytestmark = pytest.mark.slow


TRICKY = "R&D (50%)"


# -- the data set ------------------------------------------------------------------------

# Account key -> (name, type). Their names sort around the bootstrap account "Operations".
ACCOUNT_SPECS = {
    "A": ("Acme Client", "Client"),
    "B": ("Blue Client", "Client"),
    "V": ("Vertex Vendor", "Vendor"),
}

# Tokens in creation order: (account key, name, description, module names, final status).
# `description=None` sends none (null); "" is an empty string, distinct from null.
TOKEN_SPECS: list[tuple[str, str, str | None, list[str], str]] = [
    ("A", "CI pipeline", "Builds and deploys", ["Access Management", "Commerce"], "Active"),
    ("A", "ci nightly", None, ["Billing"], "Active"),
    ("A", TRICKY, "Research & development, 50% share", ["Billing", "Marketplace"], "Active"),
    ("A", "Reporting", "", ["Spotlight"], "Active"),
    ("A", "Billing", "Pays the invoices", ["Billing"], "Disabled"),
    ("B", "Deploy CI", "Deploys to production", ["Commerce"], "Active"),
    ("B", "Percent 100%", None, ["Helpdesk", "Billing"], "Active"),
    # -- the datetime threshold falls here (between the 7th and the 8th token) --
    ("B", "snake_case token", "underscored", ["Notifications"], "Active"),
    ("B", "(parenthesised) name", None, ["Access Management"], "Disabled"),
    ("B", "Retired", "gone", ["Commerce"], "Deleted"),
    ("V", "Catalog sync", "Catalog & price lists", ["Catalog Management", "Billing"], "Active"),
    ("V", "Vendor CI", None, ["Integration"], "Disabled"),
    ("V", "zeta", "last alphabetically", ["Notifications"], "Active"),
    ("V", "Alpha", None, ["Access Management", "Billing"], "Active"),
    ("V", "Two  spaces", "double spaced", ["Program Management"], "Active"),
    # The Client B token that lists its own account's tokens (tenant scope).
    ("B", "Blue manager", "tenant view", ["Access Management"], "Active"),
]
THRESHOLD_INDEX = 7  # tokens TOKEN_SPECS[7:] are created after the threshold
MANAGER_NAME = "Blue manager"


@dataclass(frozen=True)
class Tok:
    """What the model knows of one token, as the server should see it."""

    id: str
    name: str
    description: str | None
    status: str
    account_id: str
    account_name: str
    account_type: str
    modules: frozenset[str]
    created_at: datetime


@dataclass
class World:
    accounts: dict[str, dict[str, Any]]  # key -> account JSON (bootstrap as "OPS")
    tokens: list[Tok]  # every token on the server, in creation order
    by_name: dict[str, Tok]
    threshold: datetime  # between the creation of tokens 7 and 8 (aware, UTC)
    manager_secret: str

    def ids(self, where: Callable[[Tok], bool]) -> set[str]:
        return {t.id for t in self.tokens if where(t)}

    def account(self, key: str) -> str:
        return self.accounts[key]["id"]


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`tokenhouse migrate`, `bootstrap --json` and `serve`, as real processes."""
    with serving(request.param, tmp_path_factory.mktemp(f"rql-{request.param}")) as live:
        yield live


@pytest.fixture(scope="module")
def wire() -> list[str]:
    """The query strings (as sent, undecoded) of every request of every client made here."""
    return []


@pytest.fixture(scope="module")
def connect(server: LiveServer, wire: list[str]) -> Iterator[Callable[[str], MPTClient]]:
    """Make an `MPTClient` on the live server for a secret; all are closed at the end."""
    def record(request: httpx.Request) -> None:
        wire.append(request.url.query.decode("ascii"))

    with clients(server.url, record) as make:
        yield make


@pytest.fixture(scope="module")
def admin(server: LiveServer, connect: Callable[[str], MPTClient]) -> MPTClient:
    """The bootstrap token of the Operations account."""
    return connect(server.admin_secret)


@pytest.fixture(scope="module")
def world(server: LiveServer, admin: MPTClient) -> World:
    """The accounts and tokens of the module, made once per server over HTTP as the admin."""
    tokens_api = admin.accounts.api_tokens
    with server.client(server.admin_secret) as http:
        catalog = _get_all(http, MODULES)
        accounts: dict[str, dict[str, Any]] = {}
        for key, (name, account_type) in ACCOUNT_SPECS.items():
            response = http.post(ACCOUNTS, json={"name": name, "type": account_type})
            assert response.status_code == 201, response.text
            accounts[key] = response.json()
        bootstrap = http.get(f"{TOKENS}/{server.token['id']}").json()
    accounts["OPS"] = bootstrap["account"]

    module_ids: dict[str, dict[str, str]] = {}  # account type -> module name -> id
    for module in catalog:
        for account_type in module["accountTypes"]:
            module_ids.setdefault(account_type, {})[module["name"]] = module["id"]

    made: list[tuple[Any, str, str]] = []  # (created token, spec status, account key)
    for key, name, description, module_names, status in TOKEN_SPECS:
        account = accounts[key]
        valid = module_ids[account["type"]]
        body: dict[str, Any] = {"account": {"id": account["id"]}, "name": name,
                                "modules": [{"id": valid[m]} for m in module_names]}
        if description is not None:
            body["description"] = description
        created = tokens_api.create(body)
        assert created.name == name and created.description == description, created.to_dict()
        made.append((created, status, key))
        time.sleep(0.012)  # distinct creation instants, several milliseconds apart

    for created, status, _ in made:
        if status == "Disabled":
            assert tokens_api.disable(created.id).status == "Disabled"
        elif status == "Deleted":
            tokens_api.delete(created.id)

    def tok(data: dict[str, Any], status: str) -> Tok:
        return Tok(id=data["id"], name=data["name"], description=data.get("description"),
                   status=status, account_id=data["account"]["id"],
                   account_name=data["account"]["name"], account_type=data["account"]["type"],
                   modules=frozenset(m["name"] for m in data["modules"]),
                   created_at=_instant(data["audit"]["created"]["at"]))

    tokens = [tok(bootstrap, "Active")]
    tokens += [tok(created.to_dict(), status) for created, status, _ in made]
    by_name = {t.name: t for t in tokens}
    assert len(by_name) == len(tokens) == len(TOKEN_SPECS) + 1
    created_ats = [t.created_at for t in tokens]
    assert created_ats == sorted(created_ats) and len(set(created_ats)) == len(created_ats)

    before, after = tokens[THRESHOLD_INDEX].created_at, tokens[THRESHOLD_INDEX + 1].created_at
    assert after - before >= timedelta(milliseconds=6), (before, after)
    threshold = before + (after - before) / 2
    manager = next(created for created, _, _ in made if created.name == MANAGER_NAME)
    return World(accounts=accounts, tokens=tokens, by_name=by_name, threshold=threshold,
                 manager_secret=manager.token)


@pytest.fixture(scope="module")
def manager(world: World, connect: Callable[[str], MPTClient]) -> MPTClient:
    """The Client B token with Access Management."""
    return connect(world.manager_secret)


# -- helpers -----------------------------------------------------------------------------


def _get_all(http: httpx.Client, path: str) -> list[dict[str, Any]]:
    response = http.get(path, params={"limit": 100})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["$meta"]["pagination"]["total"] == len(body["data"])
    return body["data"]


def _instant(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None, text
    return value


def ids_of(items: Iterable[Any]) -> list[str]:
    return [item.id for item in items]


def names_of(world: World, ids: Iterable[str]) -> list[str]:
    names = {t.id: t.name for t in world.tokens}
    return [names.get(i, i) for i in ids]


def sent(wire: list[str], since: int) -> str:
    """The query strings sent since `since`, percent-decoded, for failure messages."""
    return " | ".join(urllib.parse.unquote(q) for q in wire[since:])


def ordered(tokens: Iterable[Tok], *keys: tuple[Callable[[Tok], Any], bool]) -> list[str]:
    """Ids in the order rql.md §9 prescribes: keys (value, descending) left to right, ties
    by id ascending (Python compares str by code point, as the spec asks)."""
    result = sorted(tokens, key=lambda t: t.id)
    for key, descending in reversed(keys):
        result.sort(key=key, reverse=descending)  # stable, also with reverse=True
    return [t.id for t in result]


def api_error(call: Callable[[], Any]) -> MPTAPIError:
    with pytest.raises(MPTAPIError) as caught:
        call()
    return caught.value


# -- filters -----------------------------------------------------------------------------


def test_filter_by_status(admin: MPTClient, world: World, wire: list[str]) -> None:
    start = len(wire)
    tokens = admin.accounts.api_tokens
    got = ids_of(tokens.filter(RQLQuery(status="Active")).iterate())
    assert len(got) == len(set(got))
    assert set(got) == world.ids(lambda t: t.status == "Active"), sent(wire, start)
    assert "eq(status,'Active')" in urllib.parse.unquote(wire[start])
    disabled = ids_of(tokens.filter(RQLQuery(status="Disabled")).iterate())
    assert set(disabled) == world.ids(lambda t: t.status == "Disabled"), sent(wire, start)
    # Operations sees the Deleted token; enumerations compare ignoring ASCII case (§4).
    deleted = ids_of(tokens.filter(RQLQuery(status="deleted")).iterate())
    assert deleted == [world.by_name["Retired"].id], sent(wire, start)


def test_chained_filters_are_anded(admin: MPTClient, world: World, wire: list[str]) -> None:
    start = len(wire)
    query = (admin.accounts.api_tokens.filter(RQLQuery(status="Active"))
             .filter(RQLQuery(name__ilike="*ci*")))
    got = ids_of(query.iterate())
    assert "and(eq(status,'Active'),ilike(name,'*ci*'))" in urllib.parse.unquote(wire[start])
    expected = world.ids(lambda t: t.status == "Active" and "ci" in t.name.lower())
    assert {world.by_name[n].id for n in ("CI pipeline", "ci nightly", "Deploy CI")} == expected
    assert set(got) == expected, sent(wire, start)


def test_ilike_and_like(admin: MPTClient, world: World, wire: list[str]) -> None:
    tokens = admin.accounts.api_tokens
    start = len(wire)
    ilike = ids_of(tokens.filter(RQLQuery(name__ilike="*ci*")).iterate())
    assert set(ilike) == world.ids(lambda t: "ci" in t.name.lower()) == {
        world.by_name[n].id for n in ("CI pipeline", "ci nightly", "Deploy CI", "Vendor CI")
    }, sent(wire, start)
    # The client's method form says the same.
    assert set(ids_of(tokens.filter(RQLQuery("name").ilike("*CI*")).iterate())) == set(ilike)

    # like is case-sensitive (§5), also on SQLite.
    start = len(wire)
    like = ids_of(tokens.filter(RQLQuery(name__like="*CI*")).iterate())
    assert set(like) == world.ids(lambda t: "CI" in t.name), sent(wire, start)

    # The pattern matches the whole value: no `*`, no substring.
    start = len(wire)
    whole = ids_of(tokens.filter(RQLQuery(name__ilike="ci")).iterate())
    assert whole == [], sent(wire, start)
    start = len(wire)
    prefix = ids_of(tokens.filter(RQLQuery(name__ilike="ci*")).iterate())
    assert set(prefix) == world.ids(lambda t: t.name.lower().startswith("ci")), sent(wire, start)

    # `%` and `_` are ordinary characters in a pattern (the SQL backends must escape them).
    start = len(wire)
    percent = ids_of(tokens.filter(RQLQuery(name__like="*%*")).iterate())
    assert set(percent) == world.ids(lambda t: "%" in t.name) == {
        world.by_name[TRICKY].id, world.by_name["Percent 100%"].id}, sent(wire, start)
    start = len(wire)
    underscore = ids_of(tokens.filter(RQLQuery(name__like="*_*")).iterate())
    assert underscore == [world.by_name["snake_case token"].id], sent(wire, start)
    start = len(wire)
    anything = ids_of(tokens.filter(RQLQuery(name__like="R_tired")).iterate())
    assert anything == [], sent(wire, start)


def test_account_id_in(admin: MPTClient, world: World, wire: list[str]) -> None:
    start = len(wire)
    wanted = [world.account("A"), world.account("V")]
    got = ids_of(admin.accounts.api_tokens.filter(RQLQuery(account__id__in=wanted)).iterate())
    assert f"in(account.id,('{wanted[0]}','{wanted[1]}'))" in urllib.parse.unquote(wire[start])
    assert set(got) == world.ids(lambda t: t.account_id in wanted), sent(wire, start)
    assert len(got) == 10  # A: 5, V: 5


def test_in_and_out_with_tricky_values(admin: MPTClient, world: World,
                                       wire: list[str]) -> None:
    tokens = admin.accounts.api_tokens
    names = [TRICKY, "Percent 100%", "(parenthesised) name", "Two  spaces", "absent"]
    start = len(wire)
    got = ids_of(tokens.filter(RQLQuery(name__in=names)).iterate())
    assert set(got) == world.ids(lambda t: t.name in names), sent(wire, start)
    start = len(wire)
    out = ids_of(tokens.filter(RQLQuery("name").out(names)).iterate())
    assert set(out) == world.ids(lambda t: t.name not in names), sent(wire, start)


def test_null_and_empty(admin: MPTClient, world: World, wire: list[str]) -> None:
    tokens = admin.accounts.api_tokens
    start = len(wire)
    null = ids_of(tokens.filter(RQLQuery(description__null=True)).iterate())
    assert "eq(description,null())" in urllib.parse.unquote(wire[start])
    assert set(null) == world.ids(lambda t: t.description is None) == {
        world.by_name[n].id for n in ("ci nightly", "Percent 100%", "(parenthesised) name",
                                      "Vendor CI", "Alpha")}, sent(wire, start)
    start = len(wire)
    not_null = ids_of(tokens.filter(RQLQuery("description").not_null()).iterate()
                      if hasattr(RQLQuery, "not_null")
                      else tokens.filter(RQLQuery(description__null=False)).iterate())
    assert set(not_null) == world.ids(lambda t: t.description is not None), sent(wire, start)

    # empty() is the empty string, not null.
    start = len(wire)
    empty = ids_of(tokens.filter(RQLQuery("description").empty()).iterate())
    assert "eq(description,empty())" in urllib.parse.unquote(wire[start])
    assert empty == [world.by_name["Reporting"].id], sent(wire, start)
    # ne(description,empty()) is true on null too (two-valued logic, §3).
    start = len(wire)
    not_empty = ids_of(tokens.filter(RQLQuery("description").not_empty()).iterate())
    assert "ne(description,empty())" in urllib.parse.unquote(wire[start])
    assert set(not_empty) == world.ids(lambda t: t.description != ""), sent(wire, start)


def test_negation(admin: MPTClient, world: World, wire: list[str]) -> None:
    tokens = admin.accounts.api_tokens
    start = len(wire)
    neither = ~(RQLQuery(status="Active") | RQLQuery(status="Disabled"))
    got = ids_of(tokens.filter(neither).iterate())
    assert ("not(and(or(eq(status,'Active'),eq(status,'Disabled'))))"
            in urllib.parse.unquote(wire[start]))
    assert got == [world.by_name["Retired"].id], sent(wire, start)

    start = len(wire)
    other = ~(RQLQuery(name__ilike="*ci*") | RQLQuery(account__type="Vendor"))
    got = ids_of(tokens.filter(other).iterate())
    assert set(got) == world.ids(
        lambda t: not ("ci" in t.name.lower() or t.account_type == "Vendor")), sent(wire, start)
    # ne on a null field is true; not(eq) likewise (§3).
    start = len(wire)
    got = ids_of(tokens.filter(~RQLQuery(description="gone")).iterate())
    assert set(got) == world.ids(lambda t: t.description != "gone"), sent(wire, start)


def test_any_and_all_over_modules(admin: MPTClient, world: World, wire: list[str]) -> None:
    tokens = admin.accounts.api_tokens
    start = len(wire)
    any_billing = ids_of(tokens.filter(RQLQuery(name="Billing").any("modules")).iterate())
    assert "any(modules,eq(name,'Billing'))" in urllib.parse.unquote(wire[start])
    expected = world.ids(lambda t: "Billing" in t.modules)
    # Inside any(), `name` is the module's: the token named "Billing" counts as its module.
    assert len(expected) == 7
    assert set(any_billing) == expected, sent(wire, start)

    start = len(wire)
    both = (RQLQuery(name="Billing") | RQLQuery(name="Commerce")).all("modules")
    got = ids_of(tokens.filter(both).iterate())
    assert ("all(modules,or(eq(name,'Billing'),eq(name,'Commerce')))"
            in urllib.parse.unquote(wire[start]))
    assert set(got) == world.ids(lambda t: t.modules <= {"Billing", "Commerce"}), \
        sent(wire, start)

    # any() combined with an outer condition on the token's own fields.
    start = len(wire)
    combined = RQLQuery(status="Active") & RQLQuery(name__in=["Access Management"]).any(
        "modules")
    got = ids_of(tokens.filter(combined).iterate())
    assert set(got) == world.ids(
        lambda t: t.status == "Active" and "Access Management" in t.modules), sent(wire, start)


def test_datetime_comparisons(admin: MPTClient, world: World, wire: list[str]) -> None:
    tokens = admin.accounts.api_tokens
    after = world.ids(lambda t: t.created_at >= world.threshold)
    assert after == {t.id for t in world.tokens[THRESHOLD_INDEX + 1:]}
    before = world.ids(lambda t: t.created_at < world.threshold)

    start = len(wire)
    got = ids_of(tokens.filter(RQLQuery(audit__created__at__ge=world.threshold)).iterate())
    assert set(got) == after, sent(wire, start)

    # The same instant written with another offset, and as a naive (UTC) datetime.
    india = world.threshold.astimezone(timezone(timedelta(hours=5, minutes=30)))
    start = len(wire)
    got = ids_of(tokens.filter(RQLQuery(audit__created__at__ge=india)).iterate())
    assert set(got) == after, sent(wire, start)
    naive = world.threshold.astimezone(UTC).replace(tzinfo=None)
    start = len(wire)
    got = ids_of(tokens.filter(RQLQuery("audit.created.at").lt(naive)).iterate())
    assert set(got) == before, sent(wire, start)

    # Combined with the account: Client B's tokens created after the threshold.
    start = len(wire)
    query = (RQLQuery(account__id=world.account("B"))
             & RQLQuery(audit__created__at__gt=world.threshold))
    got = ids_of(tokens.filter(query).iterate())
    assert set(got) == world.ids(lambda t: t.account_id == world.account("B")
                                 and t.created_at > world.threshold), sent(wire, start)


def test_value_with_ampersand_percent_space_and_parentheses(
        admin: MPTClient, world: World, wire: list[str]) -> None:
    tokens = admin.accounts.api_tokens
    start = len(wire)
    got = ids_of(tokens.filter(RQLQuery(name=TRICKY)).iterate())
    assert f"eq(name,'{TRICKY}')" in urllib.parse.unquote(wire[start]), wire[start]
    assert got == [world.by_name[TRICKY].id], sent(wire, start)
    # A comma and an `&` inside a quoted value are data too.
    start = len(wire)
    got = ids_of(tokens.filter(
        RQLQuery(description="Research & development, 50% share")).iterate())
    assert got == [world.by_name[TRICKY].id], sent(wire, start)
    # ... and so are the parentheses and double spaces of other names.
    for name in ("(parenthesised) name", "Two  spaces", "Percent 100%"):
        start = len(wire)
        assert ids_of(tokens.filter(RQLQuery(name=name)).iterate()) == [
            world.by_name[name].id], sent(wire, start)


# -- select and order --------------------------------------------------------------------


def test_select_excludes_and_includes(admin: MPTClient, world: World, wire: list[str]) -> None:
    tokens = admin.accounts.api_tokens
    start = len(wire)
    items = list(tokens.select("-description", "audit").iterate())
    assert "select=-description,audit" in urllib.parse.unquote(wire[start])
    assert set(ids_of(items)) == {t.id for t in world.tokens}
    for item in items:
        data = item.to_dict()
        assert "description" not in data, data
        assert {"id", "name", "status", "account", "modules"} <= set(data), data
        expected = world.by_name[data["name"]]
        assert _instant(data["audit"]["created"]["at"]) == expected.created_at

    # By default a list item carries no audit (§8); "+audit" adds it.
    default = tokens.filter(RQLQuery(name=TRICKY)).fetch_one().to_dict()
    assert "audit" not in default and default["description"] is not None, default
    start = len(wire)
    plus = tokens.filter(RQLQuery(name=TRICKY)).select("+audit").fetch_one().to_dict()
    assert "select=+audit" in urllib.parse.unquote(wire[start])
    assert _instant(plus["audit"]["created"]["at"]) == world.by_name[TRICKY].created_at
    assert plus["description"] == "Research & development, 50% share"


def test_order_by_name_descending(admin: MPTClient, world: World, wire: list[str]) -> None:
    start = len(wire)
    got = ids_of(admin.accounts.api_tokens.order_by("-name").iterate())
    assert "order=-name" in urllib.parse.unquote(wire[start])
    expected = ordered(world.tokens, (lambda t: t.name, True))
    assert got == expected, (sent(wire, start), names_of(world, got))


def test_order_by_two_keys(admin: MPTClient, world: World, wire: list[str]) -> None:
    start = len(wire)
    got = ids_of(admin.accounts.api_tokens.order_by("account.name", "-audit.created.at")
                 .iterate())
    assert "order=account.name,-audit.created.at" in urllib.parse.unquote(wire[start])
    expected = ordered(world.tokens, (lambda t: t.account_name, False),
                       (lambda t: t.created_at, True))
    assert got == expected, (sent(wire, start), names_of(world, got))


def test_filter_select_order_over_several_pages(admin: MPTClient, world: World,
                                                wire: list[str]) -> None:
    start = len(wire)
    query = (admin.accounts.api_tokens
             .filter(RQLQuery(status="Active") | RQLQuery(status="Disabled"))
             .select("-modules", "+audit")
             .order_by("account.type", "-name"))
    items = list(query.iterate(batch_size=3))
    requests = wire[start:]
    expected = ordered([t for t in world.tokens if t.status in ("Active", "Disabled")],
                       (lambda t: t.account_type, False), (lambda t: t.name, True))
    assert len(expected) == 16
    assert ids_of(items) == expected, (sent(wire, start), names_of(world, ids_of(items)))
    # Paged by 3: offsets 0, 3, ..., 15, each request with the same order, select, filter.
    assert len(requests) == 6, requests
    for n, query_string in enumerate(requests):
        decoded = urllib.parse.unquote(query_string)
        assert decoded.startswith(f"limit=3&offset={3 * n}&order=account.type,-name"
                                  "&select=-modules,+audit&"), decoded
    for item in items:
        data = item.to_dict()
        assert "modules" not in data and "audit" in data, data


def test_count_with_limit_zero_and_fetch_one(admin: MPTClient, world: World,
                                             wire: list[str]) -> None:
    tokens = admin.accounts.api_tokens
    start = len(wire)
    page = tokens.filter(RQLQuery(status="Active")).fetch_page(limit=0)
    assert urllib.parse.unquote(wire[start]).startswith("limit=0&offset=0&")
    assert len(page) == 0
    assert page.meta.pagination.total == len(world.ids(lambda t: t.status == "Active"))
    everything = tokens.fetch_page(limit=0)
    assert len(everything) == 0 and everything.meta.pagination.total == len(world.tokens)

    start = len(wire)
    one = tokens.filter(RQLQuery(name=TRICKY)).fetch_one()
    assert one.id == world.by_name[TRICKY].id, sent(wire, start)
    assert one.account.id == world.account("A")
    # fetch_one refuses several matches and none (client-side, from the server's total).
    with pytest.raises(ValueError, match="got 4 results"):
        tokens.filter(RQLQuery(name__ilike="*ci*")).fetch_one()
    with pytest.raises(ValueError, match="zero results"):
        tokens.filter(RQLQuery(name="nobody")).fetch_one()


# -- errors and tenant scope -------------------------------------------------------------


@pytest.mark.parametrize("build", [
    pytest.param(lambda t: t.filter(RQLQuery(secret="x")), id="unknown-field"),
    pytest.param(lambda t: t.filter(RQLQuery(token="x")), id="unfilterable-field"),
    pytest.param(lambda t: t.filter(RQLQuery(status__gt="Active")), id="gt-on-enum"),
    pytest.param(lambda t: t.filter(RQLQuery(audit__created__at__ge="yesterday")),
                 id="bad-datetime"),
    pytest.param(lambda t: t.filter(RQLQuery(modules__name="Billing")),
                 id="path-through-collection"),
    pytest.param(lambda t: t.order_by("nonexistent"), id="unknown-order-key"),
    pytest.param(lambda t: t.order_by("modules"), id="order-by-collection"),
    pytest.param(lambda t: t.select("-nonexistent"), id="unknown-select"),
])
def test_bad_query_is_400(admin: MPTClient, world: World, wire: list[str],
                          build: Callable[[Any], Any]) -> None:
    start = len(wire)
    query = build(admin.accounts.api_tokens)
    error = api_error(lambda: list(query.iterate()))
    assert error.status_code == 400, (sent(wire, start), str(error))
    assert "400 Bad Request" in str(error), str(error)
    assert error.errors, str(error)


def test_tenant_scope_holds_under_or(manager: MPTClient, world: World,
                                     wire: list[str]) -> None:
    tokens = manager.accounts.api_tokens
    own = world.ids(lambda t: t.account_id == world.account("B") and t.status != "Deleted")
    assert len(own) == 5
    assert set(ids_of(tokens.iterate())) == own

    start = len(wire)
    others = (RQLQuery(account__id=world.account("A")) | RQLQuery(account__id=world.account("B"))
              | RQLQuery(id=world.tokens[0].id) | RQLQuery(name="CI pipeline"))
    got = ids_of(tokens.filter(others).iterate())
    assert urllib.parse.unquote(wire[start]).split("&", 2)[2].startswith("or(")
    assert set(got) == own, sent(wire, start)

    # Naming only another account's tokens gives nothing; a Deleted token stays hidden.
    start = len(wire)
    got = ids_of(tokens.filter(RQLQuery(account__id=world.account("A"))
                               | RQLQuery(name__in=["CI pipeline", "Administrator", "Retired"])
                               ).iterate())
    assert got == [], sent(wire, start)
    page = tokens.filter(RQLQuery(account__type="Operations")
                         | RQLQuery(status="Deleted")).fetch_page(limit=0)
    assert page.meta.pagination.total == 0
    # Negation does not escape the scope either.
    start = len(wire)
    got = ids_of(tokens.filter(~RQLQuery(account__id=world.account("B"))).iterate())
    assert got == [], sent(wire, start)


# -- the wire forms of rql.md §11 (older clients), sent raw ----------------------------


def test_spec_wire_forms_sent_raw(server: LiveServer, world: World) -> None:
    """mpt-api-client 7.0 percent-encodes every value (`'R%26D%20%2850%25%29'`); rql.md §11
    describes the earlier form, with `&`, `(`, `%` and `+` raw. Both must mean the same."""
    at = world.threshold.astimezone(UTC).isoformat()  # '...+00:00', the `+` left raw
    cases = {
        f"eq(name,'{TRICKY.replace(' ', '%20')}')": {world.by_name[TRICKY].id},
        f"ge(audit.created.at,'{at}')": world.ids(lambda t: t.created_at >= world.threshold),
        "and(eq(status,'Active'),ilike(name,'*ci*'))": world.ids(
            lambda t: t.status == "Active" and "ci" in t.name.lower()),
        "like(name,'*%*')": world.ids(lambda t: "%" in t.name),
    }
    with server.client(server.admin_secret) as http:
        for rql, expected in cases.items():
            request = http.build_request("GET", f"{TOKENS}?limit=100&offset=0&select=+audit&{rql}")
            assert request.url.query.decode().endswith(rql)  # httpx leaves it as written
            response = http.send(request)
            assert response.status_code == 200, (rql, response.text)
            body = response.json()
            assert {item["id"] for item in body["data"]} == expected, rql
            assert all("audit" in item for item in body["data"]), rql
