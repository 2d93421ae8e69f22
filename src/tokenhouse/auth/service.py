"""Turning a Bearer secret into an actor."""

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tokenhouse.auth.actor import Actor
from tokenhouse.auth.cache import CredentialCache
from tokenhouse.kit import crypto
from tokenhouse.kit.addresses import Allowlist
from tokenhouse.kit.metrics import count_auth
from tokenhouse.kit.problems import Forbidden, Unauthorized
from tokenhouse.kit.timeutil import as_utc, render, utcnow
from tokenhouse.tokens import repository as tokens
from tokenhouse.tokens.lifecycle import end_grace, grace_end, is_expired, previous_until
from tokenhouse.tokens.models import ApiToken, TokenStatus
from tokenhouse.tokens.views import TokenViews, view_of

if TYPE_CHECKING:
    from tokenhouse.auth.refusals import Refusals

INVALID = "The credential is not a valid API token."


async def authenticate(*, engine: AsyncEngine, secret: str, key: bytes,
                       cache: CredentialCache | None = None,
                       views: TokenViews | None = None,
                       sessions: async_sessionmaker[AsyncSession] | None = None,
                       address: str | None = None,
                       refusals: "Refusals | None" = None,
                       limit: Callable[[Actor], Awaitable[None]] | None = None) -> Actor:
    """The actor behind an API token secret used from `address` (the client's, see
    kit/addresses.TrustedProxies; None: unknown, which no IP allowlist admits), or 401, or
    403 from outside the token's allowlist.

    A verified credential is served from `cache` (keyed by the hash) while no change has
    invalidated it and its time is not up (see auth/cache.py). Otherwise the secret is looked
    up by its keyed hash and the token id it names (both indexed), so the stored value is
    never compared byte by byte in Python; the constant-time check of the token id guards
    against a secret pasted onto another id. That one query also brings back the token's
    representation: the actor returned carries it (`own_view`, for this request only), and
    `views` keeps it, so that a first-seen token reading itself costs one round trip.
    Disabled, Deleted and Expired tokens, every token of a Disabled account, and a replaced
    secret past its grace window authenticate nothing.
    The first use of the current secret of a token rotated with `retirePreviousOnFirstUse`
    ends the replaced secret's grace window (a write, in a unit of work of its own, through
    `sessions`; once per rotation), once the request is admitted: a refused one changes
    nothing.
    The database (`engine`) is asked only when the credential is not cached.
    A valid secret refused for its address or its token's expiry is told to `refusals`
    (the audit trail's Private records, see auth/refusals.py).
    `limit` counts an admitted request of a rate-limited token (it raises 429 past the
    limit) before anything is written or counted as valid: a refused request changes
    nothing.
    """
    token_id = crypto.token_id_of(secret)
    if token_id is None:
        count_auth("invalid")
        raise Unauthorized(INVALID)
    secret_hash = crypto.hash_secret(key, secret)
    if cache is not None:
        # The hit alone first: on the hot path nothing is allocated or awaited.
        cached = cache.get(secret_hash)
        if cached is not None:
            if cached.allowlist is not None:
                admit(cached, address, refusals)
            if limit is not None and cached.rate_limit is not None:
                await limit(cached)
            count_auth("valid")
            return cached
    # Marks taken before the read: a change committed while it runs keeps it out of both.
    credential_mark = cache.mark() if cache is not None else None
    view_mark = views.mark() if views is not None else None
    now = utcnow()
    token, current = await _verify(engine, secret_hash, token_id, now, refusals, address)
    actor = _actor_of(token, current, now)
    admit(actor, address, refusals)
    if limit is not None and actor.rate_limit is not None:
        await limit(actor)
    if current and token.retire_previous_on_first_use and sessions is not None \
            and previous_until(grace_end(token), token.expires_at, now) is not None:
        async with sessions() as session:
            await _retire_previous_secret(session, token.id, secret_hash)
            await session.commit()
        # Read again: the token changed (its commit also moved both marks past this read).
        token, current = await _verify(engine, secret_hash, token_id, now)
        actor = _actor_of(token, current, now)
    view = view_of(token, now)
    if credential_mark is not None:
        credential_mark.keep(secret_hash, actor)
    if view_mark is not None:
        view_mark.keep(token.id, view)
    count_auth("valid")
    # The view rides with this request's actor only: a cached credential never holds one.
    return replace(actor, own_view=view)


def admit(actor: Actor, address: str | None, refusals: "Refusals | None" = None) -> None:
    """403 unless the actor's token may be used from `address` (the client's, see
    kit/addresses.TrustedProxies; None: unknown, which no allowlist admits)."""
    if actor.allowlist is not None and not actor.allowlist.allows(address):
        count_auth("refused_network")
        if refusals is not None and actor.token_id is not None:
            refusals.outside_allowlist(actor.token_id, address)
        raise Forbidden(f"Token {actor.token_id} cannot be used from "
                        f"{address or 'an unknown address'}.")


async def _retire_previous_secret(session: AsyncSession, token_id: str,
                                  secret_hash: str) -> None:
    """The current secret (`secret_hash`) of a token rotated with `retirePreviousOnFirstUse`
    authenticated a request: the replaced secret stops now (its commit tells every process,
    as any change of the token does). On behalf of no actor; a first use at the same time
    in another process finds it done and changes nothing."""
    token = await tokens.get_for_update(session, token_id)
    if (token is None or token.secret_hash is None
            or not crypto.same(token.secret_hash, secret_hash)
            or not token.retire_previous_on_first_use):
        return
    end_grace(token)
    await session.flush()


def _actor_of(token: ApiToken, current: bool, now: datetime) -> Actor:
    ends = [as_utc(token.expires_at)] if token.expires_at is not None else []
    window = None
    if not current:
        window = grace_end(token)
        if window is not None:
            ends.append(as_utc(window))
    # When this credential stops: a replaced secret is told the end of its own window.
    until = min(ends) if ends else None
    return Actor(account_id=token.account_id, account_type=token.account.type,
                 modules=frozenset(module.name for module in token.modules),
                 module_ids=frozenset(module.id for module in token.modules),
                 token_id=token.id, token_name=token.name,
                 account_name=token.account.name,
                 valid_until=until.timestamp() if until is not None else None,
                 expiration=render(until),
                 allowlist=Allowlist.of(token.ip_allowlist),
                 window=as_utc(window) if window is not None else None,
                 rate_limit=token.quota)


async def _verify(engine: AsyncEngine, secret_hash: str, token_id: str, now: datetime,
                  refusals: "Refusals | None" = None,
                  address: str | None = None) -> tuple[ApiToken, bool]:
    """The token of a secret read from the database (see `authenticate`), and whether the
    secret is its current one; or 401."""
    credential = await tokens.find_credential(engine, secret_hash, token_id)
    if credential is None or not crypto.same(credential.token.id, token_id):
        count_auth("invalid")
        raise Unauthorized(INVALID)
    token = credential.token
    if token.status != TokenStatus.ACTIVE:
        # A Deleted token's secret is counted as no credential at all: invalid.
        count_auth("disabled" if token.status == TokenStatus.DISABLED else "invalid")
        raise Unauthorized(f"The API token is {token.status}.")
    if token.account.is_disabled:
        count_auth("disabled")
        raise Unauthorized("The account of this API token is Disabled.")
    if is_expired(token.expires_at, now):
        count_auth("expired")
        if refusals is not None:
            refusals.expired(token.id, address)
        raise Unauthorized(f"The API token {token.id} expired at {render(token.expires_at)}.")
    if not credential.current and previous_until(grace_end(token), token.expires_at,
                                                 now) is None:
        count_auth("expired")  # the replaced secret's grace window is over
        raise Unauthorized("This secret was replaced by a rotation of the API token, and its "
                           "grace window has ended.")
    return token, credential.current
