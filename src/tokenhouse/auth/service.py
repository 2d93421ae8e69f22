"""Turning a Bearer secret into an actor."""

from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenhouse.accounts.models import AccountStatus
from tokenhouse.auth.actor import Actor
from tokenhouse.auth.cache import CredentialCache
from tokenhouse.kit import crypto
from tokenhouse.kit.db import read_only
from tokenhouse.kit.problems import Unauthorized
from tokenhouse.tokens import repository as tokens
from tokenhouse.tokens.models import TokenStatus

INVALID = "The credential is not a valid API token."


async def authenticate(*, sessions: async_sessionmaker[AsyncSession], secret: str, key: bytes,
                       cache: CredentialCache | None = None) -> Actor:
    """The actor behind an API token secret, or 401.

    A verified credential is served from `cache` (keyed by the hash) while no change has
    invalidated it (see auth/cache.py). Otherwise the secret is looked up by its keyed hash
    and the token id it names (both indexed), so the stored value is never compared byte by
    byte in Python; the constant-time check of the token id guards against a secret pasted
    onto another id.
    Disabled and Deleted tokens, and every token of a Disabled account, authenticate nothing.
    A session (from `sessions`) is opened only when the credential is not cached.
    """
    token_id = crypto.token_id_of(secret)
    if token_id is None:
        raise Unauthorized(INVALID)
    secret_hash = crypto.hash_secret(key, secret)
    if cache is None:
        return await _verify(sessions, secret_hash, token_id)
    # The hit alone first, and no closure here (its cells would be made on every call): on
    # the hot path nothing is allocated or awaited.
    cached = cache.get(secret_hash)
    if cached is not None:
        return cached
    return await cache.load(secret_hash, partial(_verify, sessions, secret_hash, token_id))


async def _verify(sessions: async_sessionmaker[AsyncSession], secret_hash: str,
                  token_id: str) -> Actor:
    """The actor of a secret, read from the database (see `authenticate`), or 401."""
    async with read_only(sessions) as session:
        found = await tokens.find_credential(session, secret_hash, token_id)
    if found is None or not crypto.same(found.token_id, token_id):
        raise Unauthorized(INVALID)
    if found.status != TokenStatus.ACTIVE:
        raise Unauthorized(f"The API token is {found.status}.")
    if found.account_status == AccountStatus.DISABLED:
        raise Unauthorized("The account of this API token is Disabled.")
    return Actor(account_id=found.account_id, account_type=found.account_type,
                 modules=frozenset(name for _, name in found.modules),
                 module_ids=frozenset(module_id for module_id, _ in found.modules),
                 token_id=found.token_id, token_name=found.token_name)
