"""Turning a Bearer secret into an actor."""

from sqlalchemy.ext.asyncio import AsyncSession

from tokenhouse.auth.actor import Actor
from tokenhouse.kit import crypto
from tokenhouse.kit.problems import Unauthorized
from tokenhouse.tokens import repository as tokens
from tokenhouse.tokens.models import TokenStatus

INVALID = "The credential is not a valid API token."


async def authenticate(*, session: AsyncSession, secret: str, key: bytes) -> Actor:
    """The actor behind an API token secret, or 401.

    The secret is looked up by its keyed hash (a unique index), so the stored value is never
    compared byte by byte in Python; the constant-time check of the token id guards against a
    secret pasted onto another id. Disabled and Deleted tokens, and every token of a Disabled
    account, authenticate nothing.
    """
    token_id = crypto.token_id_of(secret)
    if token_id is None:
        raise Unauthorized(INVALID)
    token = await tokens.find_by_secret_hash(session, crypto.hash_secret(key, secret))
    if token is None or not crypto.same(token.id, token_id):
        raise Unauthorized(INVALID)
    if token.status != TokenStatus.ACTIVE:
        raise Unauthorized(f"The API token is {token.status}.")
    if token.account.is_disabled:
        raise Unauthorized("The account of this API token is Disabled.")
    return Actor(account_id=token.account_id, account_type=token.account.type,
                 modules=frozenset(m.name for m in token.modules),
                 module_ids=frozenset(m.id for m in token.modules),
                 token_id=token.id, token_name=token.name)
