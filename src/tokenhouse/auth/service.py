"""Turning a Bearer secret into an actor."""

from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncEngine

from tokenhouse.auth.actor import Actor
from tokenhouse.auth.cache import CredentialCache
from tokenhouse.kit import crypto
from tokenhouse.kit.problems import Unauthorized
from tokenhouse.tokens import repository as tokens
from tokenhouse.tokens.models import ApiToken, TokenStatus
from tokenhouse.tokens.views import TokenViews, view_of

INVALID = "The credential is not a valid API token."


async def authenticate(*, engine: AsyncEngine, secret: str, key: bytes,
                       cache: CredentialCache | None = None,
                       views: TokenViews | None = None) -> Actor:
    """The actor behind an API token secret, or 401.

    A verified credential is served from `cache` (keyed by the hash) while no change has
    invalidated it (see auth/cache.py). Otherwise the secret is looked up by its keyed hash
    and the token id it names (both indexed), so the stored value is never compared byte by
    byte in Python; the constant-time check of the token id guards against a secret pasted
    onto another id. That one query also brings back the token's representation: the actor
    returned carries it (`own_view`, for this request only), and `views` keeps it, so that a
    first-seen token reading itself costs one round trip.
    Disabled and Deleted tokens, and every token of a Disabled account, authenticate nothing.
    The database (`engine`) is asked only when the credential is not cached.
    """
    token_id = crypto.token_id_of(secret)
    if token_id is None:
        raise Unauthorized(INVALID)
    secret_hash = crypto.hash_secret(key, secret)
    if cache is not None:
        # The hit alone first: on the hot path nothing is allocated or awaited.
        cached = cache.get(secret_hash)
        if cached is not None:
            return cached
    # Marks taken before the read: a change committed while it runs keeps it out of both.
    credential_mark = cache.mark() if cache is not None else None
    view_mark = views.mark() if views is not None else None
    token = await _verify(engine, secret_hash, token_id)
    actor = Actor(account_id=token.account_id, account_type=token.account.type,
                  modules=frozenset(module.name for module in token.modules),
                  module_ids=frozenset(module.id for module in token.modules),
                  token_id=token.id, token_name=token.name)
    view = view_of(token)
    if credential_mark is not None:
        credential_mark.keep(secret_hash, actor)
    if view_mark is not None:
        view_mark.keep(token.id, view)
    # The view rides with this request's actor only: a cached credential never holds one.
    return replace(actor, own_view=view)


async def _verify(engine: AsyncEngine, secret_hash: str, token_id: str) -> ApiToken:
    """The token of a secret, read from the database (see `authenticate`), or 401."""
    token = await tokens.find_credential(engine, secret_hash, token_id)
    if token is None or not crypto.same(token.id, token_id):
        raise Unauthorized(INVALID)
    if token.status != TokenStatus.ACTIVE:
        raise Unauthorized(f"The API token is {token.status}.")
    if token.account.is_disabled:
        raise Unauthorized("The account of this API token is Disabled.")
    return token
