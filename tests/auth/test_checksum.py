"""Checksummed secrets over HTTP: new ones work, a wrong checksum never reaches the database,
and secrets made before checksums keep working."""

import re
import secrets

import pytest
from sqlalchemy import update

from tests.helpers import TOKENS, database_use, problem
from tokenhouse.kit import crypto
from tokenhouse.tokens.models import ApiToken

NEW_SHAPE = r"^idt:TKN-\d{4}-\d{4}:[0-9A-Za-z]{49}$"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def corrupted(secret: str) -> list[str]:
    """The secret with one character of its random part or its checksum changed, and with
    its checksum replaced by another's: every one a valid shape, none a valid checksum."""
    alphabet = crypto.BASE62
    out = []
    for position in (18, 40, len(secret) - 7, len(secret) - 1):
        replacement = alphabet[(alphabet.index(secret[position]) + 1) % 62]
        out.append(secret[:position] + replacement + secret[position + 1:])
    other = crypto.new_secret("TKN-0000-0000")
    out.append(secret[:-6] + other[-6:] if other[-6:] != secret[-6:] else secret[:-6] + "000000")
    return out


async def test_a_new_secret_has_a_checksum_and_authenticates(client, factory):
    admin = await factory.admin()
    assert crypto.token_id_of(admin.secret) == admin.id
    created = await client.post(TOKENS, headers=admin.headers, json={
        "name": "checked", "account": {"id": admin.account_id},
        "modules": [{"id": (await factory.modules())["Access Management"]}]})
    assert created.status_code == 201, created.text
    secret = created.json()["token"]
    assert re.match(NEW_SHAPE, secret), secret
    assert secret[-6:] == crypto.checksum(secret[:-6])
    own = await client.get(f"{TOKENS}/{created.json()['id']}", headers=bearer(secret))
    assert own.status_code == 200, own.text


async def test_a_wrong_checksum_is_401_without_a_statement(app, client, factory):
    admin = await factory.admin()
    runtime = app.state.runtime
    forged = corrupted(admin.secret)
    runtime.credentials.clear()
    runtime.token_views.clear()
    with database_use(app) as seen:
        for secret in forged:
            assert crypto.token_id_of(secret) is None  # the shape is right, the sum is not
            body = problem(await client.get(TOKENS, headers=bearer(secret)), 401)
            assert secret not in str(body)
    assert seen == []
    # The control: with nothing in memory, the real secret is read from the database, and
    # the recorder sees it.
    runtime.credentials.clear()
    runtime.token_views.clear()
    with database_use(app) as seen:
        assert (await client.get(f"{TOKENS}/{admin.id}", headers=admin.headers)).status_code \
            == 200
    assert seen


async def test_a_cut_secret_looks_imported_and_is_refused_by_the_database(client, factory):
    """Below 49 characters nothing tells a cut new secret from an imported one: it is looked
    up, and no token has its hash."""
    admin = await factory.admin()
    for secret in (admin.secret[:-1], admin.secret[:-6]):
        problem(await client.get(TOKENS, headers=bearer(secret)), 401)


@pytest.mark.parametrize("random_part", [
    None,  # secrets.token_urlsafe(32), as every secret was made before checksums
    "Aa0" * 14 + "z",  # 43 characters, all base62: never read as the new format
    "-_" + "q" * 41,
    "i" * 60 + "-" + "j" * 60,  # another issuer's, imported as a hash
])
async def test_a_secret_of_before_keeps_working(app, client, factory, random_part):
    admin = await factory.admin()
    tenant = await factory.tenant()
    old = f"idt:{tenant.id}:{random_part or secrets.token_urlsafe(32)}"
    runtime = app.state.runtime
    async with runtime.sessions() as session:
        await session.execute(update(ApiToken).where(ApiToken.id == tenant.id).values(
            secret_hash=crypto.hash_secret(runtime.hmac_key, old)))
        await session.commit()
    own = await client.get(f"{TOKENS}/{tenant.id}", headers=bearer(old))
    assert own.status_code == 200, own.text
    assert own.json()["token"] == old
    # The token's new-format secret was replaced by the old one's hash: it is refused now.
    problem(await client.get(f"{TOKENS}/{tenant.id}", headers=tenant.headers), 401)
    # And the old secret is one the API manages like any other: rotated, it gets a checksum.
    rotated = await client.post(f"{TOKENS}/{tenant.id}/rotate", headers=admin.headers, json={})
    assert rotated.status_code == 200, rotated.text
    assert crypto.token_id_of(rotated.json()["token"]) == tenant.id
    assert rotated.json()["token"][-6:] == crypto.checksum(rotated.json()["token"][:-6])
    problem(await client.get(f"{TOKENS}/{tenant.id}", headers=bearer(old)), 401)
