"""A first-seen token reading itself: its authentication reads the credential and the token's
representation in one statement (auth/service.py). The answer must be the same bytes as
every other way of reading the token."""

import asyncio
import re

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from tests.databases import PG_ADMIN_DSN
from tests.factories import ALL_OF_TYPE
from tests.helpers import ACCOUNTS, TOKENS, problem
from tokenhouse.auth.service import authenticate
from tokenhouse.kit import crypto
from tokenhouse.kit.invalidation import TokenChanged
from tokenhouse.tokens.models import ApiToken

SERVER_DSN = PG_ADMIN_DSN.rsplit("/", 1)[0]
# `"lastAccessAt":...` and the `at` of each last-used address: the values that move between two
# reads (every read is an access).
LAST_ACCESS = re.compile(rb'"(lastAccessAt|at)":(null|"[^"]*")')


def without_last_access(body: bytes) -> bytes:
    return LAST_ACCESS.sub(rb'"\1":-', body)


async def rich_token(client, factory):
    """A token with every part of its representation filled: description, icon, several
    modules, an `audit.updated`, and an account with a description and a website."""
    admin = await factory.admin()
    tenant = await factory.tenant("Vendor", modules=ALL_OF_TYPE)
    changed = await client.put(f"{TOKENS}/{tenant.id}", headers=admin.headers, json={
        "name": "Ünïcode \u2028 name", "description": "a \"quoted\" description",
        "icon": "/static/icons/token.png"})
    assert changed.status_code == 200, changed.text
    account = await client.put(f"{ACCOUNTS}/{tenant.account_id}", headers=admin.headers,
                               json={"description": "Vendor & co", "website": "https://x.test"})
    assert account.status_code == 200, account.text
    return admin, tenant


async def test_the_cold_answer_is_the_warm_answer_byte_for_byte(client, factory, app):
    admin, tenant = await rich_token(client, factory)
    runtime = app.state.runtime
    url = f"{TOKENS}/{tenant.id}"
    runtime.credentials.clear()
    runtime.token_views.clear()
    # 1. Cold: neither the credential nor the view in memory; one read brings both.
    cold = await client.get(url, headers=tenant.headers)
    assert cold.status_code == 200, cold.text
    assert runtime.token_views.get(tenant.id) is not None  # kept for the next reads
    # 2. Warm: both from memory.
    warm = await client.get(url, headers=tenant.headers)
    # 3. Through the ORM: the view dropped, read by the operator (tokens/service.py).
    runtime.token_views.clear()
    by_admin = await client.get(url, headers=admin.headers)
    assert by_admin.status_code == 200
    assert without_last_access(cold.content) == without_last_access(warm.content)
    # The operator is not shown the secret (after previousSecret); everything else is
    # the same bytes as the ORM's rendering.
    secret = b',"token":"' + tenant.secret.encode() + b'"'
    orm = without_last_access(by_admin.content).replace(
            b'"previousSecret":null', b'"previousSecret":null' + secret, 1)
    assert without_last_access(cold.content) == orm
    assert cold.headers["cache-control"] == "no-store"


async def test_with_the_caches_off_the_answer_is_the_same(client, factory, app):
    _, tenant = await rich_token(client, factory)
    runtime = app.state.runtime
    url = f"{TOKENS}/{tenant.id}"
    warm = await client.get(url, headers=tenant.headers)
    warm = await client.get(url, headers=tenant.headers)
    for cache in (runtime.credentials, runtime.token_views):
        cache.disable()
    try:
        cold = await client.get(url, headers=tenant.headers)
        colder = await client.get(url, headers=tenant.headers)
    finally:
        for cache in (runtime.credentials, runtime.token_views):
            cache.enable()
    assert cold.status_code == colder.status_code == 200
    assert without_last_access(cold.content) == without_last_access(warm.content)
    assert without_last_access(colder.content) == without_last_access(warm.content)


async def test_the_one_statement_reads_what_the_orm_reads(client, factory, app):
    """The transient token of `find_credential` renders as the ORM's token does, field by
    field (a column left out of the statement would show as missing here)."""
    _, tenant = await rich_token(client, factory)
    runtime = app.state.runtime
    actor = await authenticate(engine=runtime.engine, secret=tenant.secret,
                               key=runtime.hmac_key)
    assert actor.own_view is not None
    from tokenhouse.tokens.views import view_of

    async with runtime.sessions() as session:
        loaded = await session.scalar(select(ApiToken).where(ApiToken.id == tenant.id))
        assert loaded is not None
        expected = view_of(loaded)
    assert actor.own_view.whole == expected.whole
    assert actor.own_view.item == expected.item
    assert (actor.own_view.revision, actor.own_view.status) == (expected.revision,
                                                                 expected.status)


async def test_a_cached_credential_carries_no_view(client, factory, app):
    tenant = await factory.tenant("Client")
    runtime = app.state.runtime
    assert (await client.get(f"{TOKENS}/{tenant.id}", headers=tenant.headers)).status_code == 200
    cached = runtime.credentials.get(crypto.hash_secret(runtime.hmac_key, tenant.secret))
    assert cached is not None and cached.own_view is None


async def test_the_view_read_with_a_credential_serves_only_that_token(client, factory, app):
    """The view that comes with the credential answers a self-read only: reading another
    token of the account goes through the rules (403 without the module, 404 for
    another tenant's)."""
    tenant = await factory.tenant("Client", modules=("Marketplace",))
    sibling = await factory.token(tenant.account_id, ("Marketplace",))
    other = await factory.tenant("Client")
    runtime = app.state.runtime
    runtime.credentials.clear()
    problem(await client.get(f"{TOKENS}/{sibling.id}", headers=tenant.headers), 403)
    runtime.credentials.clear()
    own = await client.get(f"{TOKENS}/{tenant.id}", headers=tenant.headers)
    assert own.status_code == 200 and own.json()["id"] == tenant.id
    manager = await factory.token(tenant.account_id)
    runtime.credentials.clear()
    problem(await client.get(f"{TOKENS}/{other.id}", headers=manager.headers), 404)


async def test_a_change_heard_during_the_read_keeps_nothing(client, factory, app, settings,
                                                            backend):
    """A change heard while a first-seen credential is being read (here: the read waits on a
    lock in PostgreSQL, and the change arrives as from another process): neither the
    credential nor the view read is kept, because the caches were marked before the read."""
    if backend != "postgresql":
        pytest.skip("a read made to wait on a lock: PostgreSQL")
    tenant = await factory.tenant("Client")
    runtime = app.state.runtime
    runtime.credentials.clear()
    runtime.token_views.clear()
    database = make_url(settings.database_url).database
    locker = await asyncpg.connect(f"{SERVER_DSN}/{database}")
    try:
        async with locker.transaction():
            await locker.execute("LOCK TABLE api_tokens IN ACCESS EXCLUSIVE MODE")
            read = asyncio.create_task(client.get(f"{TOKENS}/{tenant.id}",
                                                  headers=tenant.headers))
            while not await locker.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND "
                    "wait_event_type = 'Lock'", database):
                await asyncio.sleep(0.01)
            runtime.credentials.apply(TokenChanged(tenant.id))
            runtime.token_views.apply(TokenChanged(tenant.id))
    finally:
        await locker.close()
    assert (await read).status_code == 200  # what it read is answered, once
    assert runtime.credentials.get(crypto.hash_secret(runtime.hmac_key, tenant.secret)) is None
    assert runtime.token_views.get(tenant.id) is None
