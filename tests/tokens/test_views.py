"""Tokens read from the in-process view cache: never more visible, never staler, than from
the database."""

import pytest
from sqlalchemy import select, update

from tests.factories import ALL_OF_TYPE
from tests.helpers import TOKENS, problem
from tokenhouse.auth.actor import Actor
from tokenhouse.tokens import repository
from tokenhouse.tokens.models import ApiToken


def forget_access_times(body):
    """The times of the last-used addresses: each request is a new access."""
    for address in body.get("lastAccessIps", ()):
        address.pop("at")


async def test_a_cached_view_never_widens_what_a_tenant_sees(client, factory, app):
    admin = await factory.admin()
    theirs = await factory.tenant("Client", modules=ALL_OF_TYPE)
    mine = await factory.tenant("Client", modules=ALL_OF_TYPE)
    narrow = await factory.token(mine.account_id, ("Marketplace",))
    # The operator's read puts their token's view in memory ...
    assert (await client.get(f"{TOKENS}/{theirs.id}", headers=admin.headers)).status_code == 200
    assert app.state.runtime.token_views.get(theirs.id) is not None
    # ... which changes nothing for anyone else.
    problem(await client.get(f"{TOKENS}/{theirs.id}", headers=mine.headers), 404)
    problem(await client.get(f"{TOKENS}/{theirs.id}", headers=narrow.headers), 403)
    own = await client.get(f"{TOKENS}/{theirs.id}", headers=theirs.headers)
    assert own.status_code == 200 and own.json()["token"] == theirs.secret
    by_admin = await client.get(f"{TOKENS}/{theirs.id}", headers=admin.headers)
    assert "token" not in by_admin.json()


async def test_changes_show_at_once_through_the_cache(client, factory, app):
    admin = await factory.admin()
    tenant = await factory.tenant("Client")
    url = f"{TOKENS}/{tenant.id}"
    assert (await client.get(url, headers=admin.headers)).json()["name"].startswith("Token")
    await client.put(url, json={"name": "renamed"}, headers=admin.headers)
    assert (await client.get(url, headers=admin.headers)).json()["name"] == "renamed"
    await client.put(f"/public/v1/accounts/accounts/{tenant.account_id}",
                     json={"name": "Renamed Co"}, headers=admin.headers)
    assert (await client.get(url, headers=admin.headers)).json()["account"]["name"] == (
        "Renamed Co")
    await client.delete(url, headers=admin.headers)
    assert (await client.get(url, headers=admin.headers)).json()["status"] == "Deleted"
    problem(await client.get(url, headers=tenant.headers), 401)


async def test_last_access_is_current_on_a_cached_view(client, factory):
    admin = await factory.admin()
    tenant = await factory.tenant("Client")
    url = f"{TOKENS}/{tenant.id}"
    assert (await client.get(url, headers=admin.headers)).json()["lastAccessAt"] is None
    await client.get(TOKENS, headers=tenant.headers)
    assert (await client.get(url, headers=admin.headers)).json()["lastAccessAt"] is not None


@pytest.mark.parametrize("kind", ["Client", "Vendor", "Operations"])
async def test_the_in_memory_rule_is_the_sql_rule(client, factory, app, kind):
    """`can_see` (views in memory) and `visible` (SQL) agree for every token state."""
    actor_account = await factory.account(kind)
    other = await factory.account("Client")
    for account in (actor_account, other):
        for status in ("Active", "Disabled", "Deleted"):
            await factory.token(account["id"], status=status)
    actor = Actor(account_id=actor_account["id"], account_type=kind,
                  modules=frozenset({"Access Management"}), module_ids=frozenset())
    async with app.state.runtime.sessions() as session:
        seen = set(await session.scalars(select(ApiToken.id).where(ApiToken.id.in_(
            repository.visible(actor).with_only_columns(ApiToken.id).scalar_subquery()))))
        rows = (await session.execute(
            select(ApiToken.id, ApiToken.account_id, ApiToken.status))).all()
    assert len(rows) == 6
    assert {r.id for r in rows if repository.can_see(actor, r.account_id, r.status)} == seen


async def test_the_stored_encoding_is_the_representation(client, factory):
    """The default GET answers from the view's stored JSON; any `select` renders the dict.
    Both must say the same thing (`select=id` keeps the default shape: id is always in)."""
    admin = await factory.admin()
    tenant = await factory.tenant("Client", modules=ALL_OF_TYPE)
    url = f"{TOKENS}/{tenant.id}"
    for headers, itself in ((admin.headers, False), (tenant.headers, True)):
        for _ in range(2):  # from the database, then from memory
            fast = await client.get(url, headers=headers)
            general = await client.get(f"{url}?select=id", headers=headers)
            assert fast.status_code == general.status_code == 200
            assert fast.headers["content-type"] == "application/json"
            fast_body, general_body = fast.json(), general.json()
            if itself:  # each self-read is an access of its own, and shows the secret
                assert fast_body.pop("lastAccessAt") <= general_body.pop("lastAccessAt")
                for body in (fast_body, general_body):
                    forget_access_times(body)
            assert fast_body == general_body
    assert "token" in fast.json() and fast.headers["cache-control"] == "no-store"


async def test_a_page_never_shows_an_older_revision_than_the_database(client, factory, app):
    """List items come from views only when the view is of the revision the page read: a
    change this process never heard of (made by another process, say) shows at once."""
    tenant = await factory.tenant("Client")
    assert (await client.get(TOKENS, headers=tenant.headers)).json()["data"][0]["name"] != (
        "changed elsewhere")
    assert app.state.runtime.token_views.get(tenant.id) is not None  # the page stored its view
    # On a connection outside any session, so no change is published: as if out of sight.
    async with app.state.runtime.engine.begin() as connection:
        await connection.execute(update(ApiToken).where(ApiToken.id == tenant.id).values(
            name="changed elsewhere", revision=ApiToken.revision + 1))
    page = (await client.get(TOKENS, headers=tenant.headers)).json()
    assert page["data"][0]["name"] == "changed elsewhere"
    assert page["data"][0]["revision"] == 2


async def test_a_page_from_stored_json_is_the_rendered_page(client, factory):
    """The default list page is spliced from the views' stored JSON; `select=id` (the same
    shape) is rendered from dicts. Both must say the same thing."""
    tenant = await factory.tenant("Client", modules=ALL_OF_TYPE)
    await factory.token(tenant.account_id, status="Disabled")
    await client.get(f"{TOKENS}/{tenant.id}", headers=tenant.headers)
    for _ in range(2):  # views made by the page, then used by it
        fast = await client.get(f"{TOKENS}?order=name", headers=tenant.headers)
        general = await client.get(f"{TOKENS}?order=name&select=id", headers=tenant.headers)
        assert fast.status_code == general.status_code == 200
        assert fast.headers["content-type"] == "application/json"
        fast_body, general_body = fast.json(), general.json()
        for page in (fast_body, general_body):  # the caller's own token: a new access each
            assert [item.pop("lastAccessAt") is not None for item in page["data"]] == [
                item["id"] == tenant.id for item in page["data"]]
            for item in page["data"]:
                forget_access_times(item)
        assert fast_body == general_body
        assert fast_body["$meta"] == {"pagination": {"offset": 0, "limit": 10, "total": 2},
                                      "omitted": ["audit"]}
