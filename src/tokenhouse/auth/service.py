"""Turning a Bearer secret into an actor."""

from sqlalchemy.ext.asyncio import AsyncSession

from tokenhouse.auth.actor import Actor
from tokenhouse.auth.cache import CredentialCache
from tokenhouse.kit import crypto
from tokenhouse.kit.problems import Unauthorized
from tokenhouse.tokens import repository as tokens
from tokenhouse.tokens.models import TokenStatus

INVALID = "The credential is not a valid API token."


async def authenticate(*, session: AsyncSession, secret: str, key: bytes,
                       cache: CredentialCache | None = None) -> Actor:
    """The actor behind an API token secret, or 401.

    A verified credential is served from `cache` (keyed by the hash) while no change has
    invalidated it (see auth/cache.py). Otherwise the secret is looked up by its keyed hash
    (a unique index), so the stored value is never compared byte by byte in Python; the
    constant-time check of the token id guards against a secret pasted onto another id.
    Disabled and Deleted tokens, and every token of a Disabled account, authenticate nothing.
    """
    token_id = crypto.token_id_of(secret)
    if token_id is None:
        raise Unauthorized(INVALID)
    secret_hash = crypto.hash_secret(key, secret)
    if cache is not None:
        cached = cache.get(secret_hash)
        if cached is not None:
            return cached
        generation = cache.generation
    token = await tokens.find_by_secret_hash(session, secret_hash)
    if token is None or not crypto.same(token.id, token_id):
        raise Unauthorized(INVALID)
    if token.status != TokenStatus.ACTIVE:
        raise Unauthorized(f"The API token is {token.status}.")
    if token.account.is_disabled:
        raise Unauthorized("The account of this API token is Disabled.")
    actor = Actor(account_id=token.account_id, account_type=token.account.type,
                  modules=frozenset(m.name for m in token.modules),
                  module_ids=frozenset(m.id for m in token.modules),
                  token_id=token.id, token_name=token.name)
    if cache is not None:
        cache.put(secret_hash, actor, generation)
    return actor
