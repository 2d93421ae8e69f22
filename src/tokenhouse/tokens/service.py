"""The rules of API tokens: who may see and change what, and the token's lifecycle.

Services take keyword arguments and never a Request, so the HTTP routes, the command line and
the web page go through the same rules. They flush but never commit: the caller owns the unit
of work.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tokenhouse.accounts import repository as accounts
from tokenhouse.audit import events
from tokenhouse.audit import service as audit
from tokenhouse.auth.actor import Actor
from tokenhouse.auth.cache import CredentialCache
from tokenhouse.auth.refusals import Refusals
from tokenhouse.auth.service import authenticate
from tokenhouse.kit import crypto, ids
from tokenhouse.kit.addresses import canonical_allowlist, to_stored
from tokenhouse.kit.db import read_only
from tokenhouse.kit.paging import encode_json
from tokenhouse.kit.problems import (
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from tokenhouse.kit.ratelimit import Limiter, Quota, token_key
from tokenhouse.kit.repository import transient
from tokenhouse.kit.rql import Query
from tokenhouse.kit.timeutil import as_utc, render, to_millisecond, utcnow
from tokenhouse.modules.catalog import ModuleCatalog
from tokenhouse.modules.service import grantable
from tokenhouse.tokens import repository
from tokenhouse.tokens.auth import INTROSPECT, MANAGE
from tokenhouse.tokens.last_access import LastAccessRecorder
from tokenhouse.tokens.lifecycle import (
    Policy,
    end_grace,
    grace_end,
    is_expired,
    previous_until,
)
from tokenhouse.tokens.models import ApiToken, StatusReason, TokenStatus
from tokenhouse.tokens.repository import PageRow
from tokenhouse.tokens.schemas import (
    RateLimitIn,
    TokenCreate,
    TokenRotate,
    TokenUpdate,
    token_document,
    token_subject,
)
from tokenhouse.tokens.views import Accessed, TokenViews, View, introspection, view_of

ID_ATTEMPTS = 8
# The latest expiry a computed lifetime may reach (datetime's own limit, in UTC).
LAST_INSTANT = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
NO_POLICY = Policy()


@dataclass(frozen=True, slots=True)
class Listed:
    """A token on a page: its view, and its accesses as the page's query read them."""

    view: View
    accessed: Accessed

    @classmethod
    def of(cls, view: View, row: PageRow) -> "Listed":
        return cls(view, Accessed.of(row))


async def list_tokens(*, session: AsyncSession, actor: Actor, query: Query,
                      views: TokenViews | None = None) -> tuple[list[Listed], int]:
    """The tokens visible to the actor, one page, with the total.

    The page itself (which tokens, in which order, how many in all) always comes from the
    database. Each token's representation comes from `views` when the view there is of the
    revision the page read; the others are loaded in one query and kept."""
    MANAGE.check(actor)
    rows, total = await repository.list_visible(session, actor, query, utcnow())
    found: dict[str, View] = {}
    if views is not None:
        for row in rows:
            view = views.get(row.id)
            if view is not None and view.revision == row.revision:
                found[row.id] = view
    missing = [row.id for row in rows if row.id not in found]
    if missing:
        load = partial(_views_of, session, actor, missing)
        found.update(await views.load_many(load) if views is not None else await load())
    # A token changed out of sight between the two reads is left off this page.
    return [Listed.of(found[row.id], row) for row in rows if row.id in found], total


async def get_token(*, session: AsyncSession, actor: Actor, token_id: str,
                    for_update: bool = False) -> ApiToken:
    """A visible token, or 404 (also for another tenant's). A token may always read itself:
    that is how a client learns its own account (`mpt-cli accounts add`)."""
    if token_id != actor.token_id:
        MANAGE.check(actor)
    token = await repository.get_visible(session, actor, token_id, for_update=for_update)
    if token is None:
        raise _not_found(token_id)
    return token


async def read_token(*, sessions: async_sessionmaker[AsyncSession], actor: Actor,
                     token_id: str, views: TokenViews) -> View:
    """A visible token's view (GET of one token), under the rules of `get_token`.

    A token reading itself is served the view its authentication just read, if it was read;
    others are served from memory when there; otherwise read in a short read-only session of its own
    (opened only then) and kept."""
    if token_id != actor.token_id:
        MANAGE.check(actor)
    elif actor.own_view is not None:
        return actor.own_view  # read with the credential, by this very request
    view = views.get(token_id)
    if view is not None and repository.can_see(actor, view.account_id, view.status):
        return view
    # A view kept for a token this actor may not see is answered like a miss: by the same
    # database read, which finds nothing. A 404 served from memory would be faster than one
    # for an id that does not exist, and that difference tells another tenant which ids do.
    # No closure here (its cells would be made on every call, hits too).
    return await views.load(token_id, partial(_read_view, sessions, actor, token_id))


# Whatever the reason (unknown, malformed, Disabled, Deleted, expired, another network, a
# Disabled account): the answer never says why (RFC 7662).
INACTIVE = b'{"active":false}'


async def introspect(*, actor: Actor, secret: str, address: str | None, engine: AsyncEngine,
                     key: bytes, sessions: async_sessionmaker[AsyncSession],
                     credentials: CredentialCache, views: TokenViews,
                     accesses: LastAccessRecorder, limiter: Limiter,
                     consume: bool = True, refusals: Refusals | None = None) -> bytes:
    """RFC 7662 for the platform's services: the claims of the token behind `secret`, as
    presented from `address` (None: not said, and then no token with an IP allowlist is
    active), or INACTIVE. Answered from memory in the common case, by the same rules and
    caches as authentication; an active answer counts as a use of the token and, unless
    not `consume`, as a request against its rate limit, whose state it reports
    (`rateLimit`: the caller answers 429 when `allowed` is false). A valid secret refused
    for `address` or its expiry is told to `refusals` (the audit trail), as a request's."""
    INTROSPECT.check(actor)
    try:
        subject = await authenticate(engine=engine, secret=secret, key=key, cache=credentials,
                                     views=views, sessions=sessions, address=address,
                                     refusals=refusals)
    except (Unauthorized, Forbidden):
        return INACTIVE
    assert subject.token_id is not None  # a secret is always a token's
    view = subject.own_view or views.get(subject.token_id)
    if view is None:  # the credential was in memory, its view no longer
        view = await views.load(subject.token_id, partial(
            _read_view, sessions, actor, subject.token_id))
    accesses.touch(subject.token_id, address, subject.window)
    limited = b""
    if subject.rate_limit is not None:
        quota = subject.rate_limit
        decision = await limiter.hit(token_key(subject.token_id), quota.limit, quota.window,
                                     consume=consume)
        limited = b'"rateLimit":' + encode_json({
            "limit": quota.limit, "windowSeconds": quota.window,
            "remaining": decision.remaining, "reset": decision.reset,
            "allowed": decision.allowed})
    return introspection(view, subject.valid_until, limited)


async def _views_of(session: AsyncSession, actor: Actor, token_ids: list[str]
                    ) -> dict[str, View]:
    return {token.id: view_of(token)
            for token in await repository.get_many_visible(session, actor, token_ids)}


async def _read_view(sessions: async_sessionmaker[AsyncSession], actor: Actor,
                     token_id: str) -> View:
    async with read_only(sessions) as session:
        return view_of(await get_token(session=session, actor=actor, token_id=token_id))


async def create_token(*, session: AsyncSession, actor: Actor, data: TokenCreate, key: bytes,
                       catalog: ModuleCatalog | None = None,
                       policy: Policy = NO_POLICY) -> tuple[ApiToken, str]:
    """A new Active token and its secret. The secret is returned once and only its keyed
    hash is stored. Without `expiresAt`, the token gets the policy's longest lifetime (if
    any).

    The token returned is never attached to `session`: it was written with plain inserts
    (see `repository.insert_new`) and is only to be rendered."""
    MANAGE.check(actor)
    now = utcnow()
    expires_at = (_expiry(data.expires_at, policy, now) if "expires_at" in data.model_fields_set
                  else policy.latest_expiry(now))
    allowlist = to_stored(canonical_allowlist(data.ip_allowlist))
    if "rate_limit" in data.model_fields_set:
        quota = _quota(data.rate_limit)
    else:
        quota = policy.default_rate_limit or policy.max_rate_limit
    _within_policy(actor, quota, policy)
    account = await accounts.find_visible(session, actor, data.account.id)
    if account is None:
        raise ValidationFailed({"account": [f"Account {data.account.id} does not exist."]})
    if account.is_disabled:
        raise ValidationFailed({"account": [f"Account {account.id} is Disabled."]})
    modules = await grantable(session=session, actor=actor, account=account, refs=data.modules,
                              catalog=catalog)
    for _ in range(ID_ATTEMPTS):
        token_id = ids.new_id("TKN")
        secret = crypto.new_secret(token_id)
        token = transient(ApiToken, dict(
            id=token_id, account_id=account.id, account=account, name=data.name,
            description=data.description, icon=data.icon, status=TokenStatus.ACTIVE,
            modules=modules, secret_hash=crypto.hash_secret(key, secret), revision=1,
            expires_at=expires_at, ip_allowlist=allowlist,
            rate_limit=quota.limit if quota else None,
            rate_limit_window=quota.window if quota else None,
            retire_previous_on_first_use=False, expiry_notice=0).items())
        token.stamp_created(actor.by)
        # Built before the insert: on SQLite the insert takes the process's writer, held
        # until the commit (kit/db.Writer).
        record = _entry(actor, events.TOKEN_CREATED, token)
        if await repository.insert_new(session, token):
            await audit.write(session, record)
            return token, secret
    raise RuntimeError(f"no free API token id after {ID_ATTEMPTS} attempts")


async def update_token(*, session: AsyncSession, actor: Actor, token: ApiToken,
                       data: TokenUpdate, policy: Policy = NO_POLICY) -> ApiToken:
    """Change name, description, icon, modules, expiry and IP allowlist. Properties left
    out, or sent back unchanged, keep their value. An Expired token's expiry cannot be
    changed: it is rotated instead (a new secret for a token that stopped working)."""
    _authorize_change(actor, token)
    now = utcnow()
    before = token_document(token, now)
    # The body is judged (400) before the token's state and revision (409), as everywhere.
    if data.account is not None and data.account.id != token.account_id:
        raise ValidationFailed({"account": ["A token cannot be moved to another account."]})
    given = data.model_fields_set
    if "name" in given and data.name is None:
        raise ValidationFailed({"name": ["The name is required."]})
    if "modules" in given and data.modules is None:
        raise ValidationFailed({"modules": ["At least one module is required."]})
    new_expiry = ("expires_at" in given and _changed(data.expires_at, token.expires_at))
    expires_at = _expiry(data.expires_at, policy, now) if new_expiry else None
    allowlist = (to_stored(canonical_allowlist(data.ip_allowlist))
                 if "ip_allowlist" in given else token.ip_allowlist)
    quota = _quota(data.rate_limit) if "rate_limit" in given else None
    quota_changed = "rate_limit" in given and quota != token.quota
    if quota_changed:  # sent back as read, a limit an operator set stays
        _within_policy(actor, quota, policy)
    # Every check that reads the database comes before the first change: a query would
    # flush a half-made change, and each flush of the row is a revision.
    modules = None
    if data.modules is not None:
        modules = await grantable(session=session, actor=actor, account=token.account,
                                  refs=data.modules,
                                  already=frozenset(m.id for m in token.modules))
    _require_not_deleted(token, "changed")
    if data.revision is not None and data.revision != token.revision:
        raise Conflict(f"The API token was changed since revision {data.revision}; it is at "
                       f"revision {token.revision}. Read it again and repeat the change.")
    if new_expiry and is_expired(token.expires_at, now):
        raise _expired(token)
    if new_expiry:
        token.expires_at = expires_at
        token.expiry_notice = 0  # the new expiry gets notices of its own (tokens/expiry.py)
    if allowlist != token.ip_allowlist:
        token.ip_allowlist = allowlist
    if "name" in given and data.name is not None:  # None was refused above
        token.name = data.name
    if "description" in given:
        token.description = data.description
    if "icon" in given:
        token.icon = data.icon
    if quota_changed:
        token.quota = quota
    if modules is not None:
        token.modules = modules
    token.stamp_updated(actor.by)
    await session.flush()
    after = token_document(token, now)  # after the flush, which counts the revision
    await audit.write(session, _entry(actor, events.TOKEN_UPDATED, token, after,
                                      changes=audit.changes(before, after)))
    return token


async def disable_token(*, session: AsyncSession, actor: Actor, token: ApiToken) -> ApiToken:
    """Active -> Disabled: the token stops authenticating at once."""
    return await _move(session, actor, token, TokenStatus.ACTIVE, TokenStatus.DISABLED,
                       "disabled")


async def enable_token(*, session: AsyncSession, actor: Actor, token: ApiToken) -> ApiToken:
    """Disabled -> Active; not for a token past its expiry, nor one whose secret was
    reported as leaked (rotate it first)."""
    if token.status_reason == StatusReason.LEAKED and token.status == TokenStatus.DISABLED:
        _authorize_change(actor, token)
        # Enabled as it is, the token would take the leaked secret back into service.
        raise Conflict("The API token was disabled because its secret was reported as "
                       "leaked; rotate it to give it a new secret, then enable it.")
    return await _move(session, actor, token, TokenStatus.DISABLED, TokenStatus.ACTIVE,
                       "enabled")


async def rotate_token(*, session: AsyncSession, actor: Actor, token: ApiToken,
                       data: TokenRotate, key: bytes, policy: Policy = NO_POLICY,
                       by_itself: bool = False) -> tuple[ApiToken, str]:
    """A new secret for the token (same id, next revision), returned once.

    The replaced secret keeps working for `gracePeriodSeconds` (never past its own expiry;
    0: it stops at once), or until the new one is first used (`retirePreviousOnFirstUse`).
    At most two secrets work at a time: a secret still in its grace window from an earlier
    rotation stops now. Without `expiresAt` the new secret gets the lifetime the old one
    had, from now (none if it had none; the policy's longest when one is set). A Disabled
    token stays Disabled; an Expired one is Active again with its new expiry.
    `by_itself`: the token rotates its own secret (no module needed), and may then keep or
    shorten its expiry, never move it later. A manager may rotate only a token holding no
    module it lacks itself (the secret is then its to use). Only an Active token's old
    secret may be given a grace window."""
    _authorize_change(actor, token, by_itself=by_itself)
    if not by_itself:
        # The response holds the token's secret: whoever rotates it can then act as it, so a
        # manager may rotate only a token that holds no module it lacks itself (the rule of
        # `grantable` for a new token).
        beyond = sorted(module.name for module in token.modules
                        if module.id not in actor.module_ids)
        if beyond:
            raise Forbidden("This token cannot rotate a token holding modules it does not "
                            f"hold itself: {', '.join(beyond)}.")
    now = utcnow()
    if by_itself:
        # A token rotating itself may keep or shorten its expiry, never move it later: an
        # expiry set by a manager must not be escaped by the token it binds.
        latest = (as_utc(token.expires_at) if token.expires_at is not None
                  else policy.latest_expiry(now))
        expires_at = latest
        if "expires_at" in data.model_fields_set:
            expires_at = _expiry(data.expires_at, policy, now)
            if latest is not None and (expires_at is None or expires_at > latest):
                raise ValidationFailed({"expiresAt": [
                    "A token rotating itself cannot move its expiry later than "
                    f"{render(latest)}."]})
    elif "expires_at" in data.model_fields_set:
        expires_at = _expiry(data.expires_at, policy, now)
    else:
        expires_at = _same_lifetime(token, policy, now)
    _require_not_deleted(token, "rotated")
    grace = timedelta(seconds=data.grace_period_seconds)
    if grace and token.status != TokenStatus.ACTIVE:
        # Enabled within the window, the secret replaced after a leak would work again.
        raise Conflict(f"The API token is {token.status}: its old secret cannot be given a "
                       "grace window (rotate with gracePeriodSeconds 0).")
    previous_end = now + grace if grace and token.secret_hash is not None else None
    if previous_end is not None and token.expires_at is not None:
        previous_end = min(previous_end, as_utc(token.expires_at))
    if previous_end is not None and previous_end <= now:
        previous_end = None  # the old secret has stopped working already
    secret = crypto.new_secret(token.id)
    token.previous_secret_hash = token.secret_hash if previous_end is not None else None
    token.previous_expires_at = previous_end
    token.previous_last_access_at = None
    token.retire_previous_on_first_use = (data.retire_previous_on_first_use
                                          and previous_end is not None)
    token.secret_hash = crypto.hash_secret(key, secret)
    if _changed(expires_at, token.expires_at):
        token.expiry_notice = 0  # the new expiry gets notices of its own (tokens/expiry.py)
    token.expires_at = expires_at
    token.rotated_at = now
    token.status_reason = None  # a leaked secret is replaced: the token may be enabled
    token.stamp_updated(actor.by)
    await session.flush()
    # What the rotation did, never the secret (nor its hash).
    _record(session, actor, events.TOKEN_ROTATED, token, rotation={
        "gracePeriodSeconds": data.grace_period_seconds,
        "previousSecretExpiresAt": render(previous_end),
        "retirePreviousOnFirstUse": token.retire_previous_on_first_use,
        "byItself": by_itself})
    return token, secret


async def revoke_previous_secret(*, session: AsyncSession, actor: Actor,
                                 token: ApiToken) -> ApiToken:
    """End the grace window of the secret the last rotation replaced, now (409 when no
    replaced secret works)."""
    _authorize_change(actor, token)
    _require_not_deleted(token, "changed")
    if previous_until(grace_end(token), token.expires_at, utcnow()) is None:
        raise Conflict("The API token has no previous secret in a grace window.")
    end_grace(token)
    token.stamp_updated(actor.by)
    await session.flush()
    _record(session, actor, events.TOKEN_PREVIOUS_REVOKED, token)
    return token


async def delete_token(*, session: AsyncSession, actor: Actor, token: ApiToken,
                       by_itself: bool = False) -> ApiToken:
    """Active or Disabled -> Deleted, which is final. The row stays (IDs are never reused,
    Operations can still see it), but its secret hashes are dropped: they can never be
    needed. `by_itself`: the token deletes itself (no module needed)."""
    _authorize_change(actor, token, by_itself=by_itself)
    _require_not_deleted(token, "deleted again")
    token.status = TokenStatus.DELETED
    token.secret_hash = None
    end_grace(token)
    token.stamp_updated(actor.by)
    await session.flush()
    _record(session, actor, events.TOKEN_DELETED, token)
    return token


async def _move(session: AsyncSession, actor: Actor, token: ApiToken, source: TokenStatus,
                target: TokenStatus, verb: str) -> ApiToken:
    _authorize_change(actor, token)
    if token.status != source:
        article = "an" if source[0] in "AEIOU" else "a"
        raise Conflict(f"The API token is {token.status}; only {article} {source} token can be "
                       f"{verb}.")
    if target == TokenStatus.ACTIVE and is_expired(token.expires_at, utcnow()):
        raise _expired(token)
    token.status = target
    token.status_reason = None
    token.stamp_updated(actor.by)
    await session.flush()
    _record(session, actor, events.TOKEN_ENABLED if target == TokenStatus.ACTIVE
            else events.TOKEN_DISABLED, token)
    return token


def _record(session: AsyncSession, actor: Actor, event: events.Event, token: ApiToken,
            document: dict[str, Any] | None = None, **more: Any) -> None:
    """The change's record in the audit trail, in the change's unit of work."""
    audit.add(session, _entry(actor, event, token, document, **more))


def _entry(actor: Actor, event: events.Event, token: ApiToken,
           document: dict[str, Any] | None = None, **more: Any) -> dict[str, Any]:
    """The change's record, for `audit.add` (`_record`) or `audit.write` (create and
    update)."""
    return audit.entry(actor=actor, event=event, subject=token_subject(token),
                       documents={"apiToken": document or token_document(token, utcnow()),
                                  **more})


def _authorize_change(actor: Actor, token: ApiToken, *, by_itself: bool = False) -> None:
    """Every change needs Access Management, also of the token that acts (a token cannot
    rename, disable or delete itself without it), and a token the actor can see (404, as
    for a token that does not exist). `by_itself`: the self-service routes, where a token
    rotates or deletes itself with no module; it must then be the acting token."""
    if by_itself:
        if token.id != actor.token_id:
            raise _not_found(token.id)
    else:
        MANAGE.check(actor)
    if not repository.can_see(actor, token.account_id, token.status):
        raise _not_found(token.id)
    if token.id == actor.token_id and actor.window is not None:
        # The secret a rotation replaced (perhaps because it leaked) works on for its grace
        # window, but only as a credential: it may not rotate, change or delete its token.
        raise Forbidden("A secret replaced by a rotation cannot change its token; use the "
                        "current secret.")


def _changed(given: datetime | None, stored: datetime | None) -> bool:
    """Whether a PUT changes the expiry: a client sends back what it read."""
    if given is None or stored is None:
        return given is not stored
    return _to_millis(given) != as_utc(stored)


def _to_millis(value: datetime) -> datetime:
    """UTC, at the millisecond (what is stored is what is rendered); 400 past year 9999."""
    try:
        return to_millisecond(as_utc(value))
    except OverflowError:
        raise ValidationFailed({"expiresAt": ["The instant is out of range."]}) from None


def _expiry(given: datetime | None, policy: Policy, now: datetime) -> datetime | None:
    """A requested expiry (None: never), held to the rules: in the future, and within the
    policy's longest lifetime."""
    latest = policy.latest_expiry(now)
    if given is None:
        if latest is not None:
            raise ValidationFailed({"expiresAt": [_limit(policy, latest)]})
        return None
    expires_at = _to_millis(given)
    if expires_at <= now:
        raise ValidationFailed({"expiresAt": ["The expiry must be in the future."]})
    if latest is not None and expires_at > latest:
        raise ValidationFailed({"expiresAt": [_limit(policy, latest)]})
    return expires_at


def _limit(policy: Policy, latest: datetime) -> str:
    days = policy.max_lifetime.days if policy.max_lifetime is not None else 0
    return (f"A token must expire within {days} days (the server's limit): at the latest "
            f"{render(latest)}.")


def _same_lifetime(token: ApiToken, policy: Policy, now: datetime) -> datetime | None:
    """The expiry of a new secret rotated without one: the lifetime the old secret had
    (from its creation or its rotation to its expiry), from now, within the policy."""
    latest = policy.latest_expiry(now)
    if token.expires_at is None:
        return latest
    issued = as_utc(token.rotated_at or token.created_at)
    try:
        expires_at = now + max(as_utc(token.expires_at) - issued, timedelta(seconds=1))
    except OverflowError:  # a lifetime reaching past year 9999 from now
        expires_at = LAST_INSTANT
    return min(expires_at, latest) if latest is not None else expires_at


def _quota(given: RateLimitIn | None) -> Quota | None:
    return Quota(given.limit, given.window_seconds) if given is not None else None


def _within_policy(actor: Actor, quota: Quota | None, policy: Policy) -> None:
    """A tenant's token keeps its tokens within the operator's loosest rate limit (else it
    could lift its own, or make a token without one); Operations may give any."""
    ceiling = policy.max_rate_limit
    if ceiling is None or actor.is_operations:
        return
    if quota is None or not quota.within(ceiling):
        raise ValidationFailed({"rateLimit": [
            f"At most {ceiling.limit} requests per {ceiling.window} seconds (the server's "
            "limit); no limit at all is not allowed."]})


def _expired(token: ApiToken) -> Conflict:
    return Conflict(f"The API token expired at {render(token.expires_at)}; rotate it to give "
                    "it a new secret and expiry.")


def _not_found(token_id: str) -> NotFound:
    return NotFound(f"API token {token_id} not found.")


def _require_not_deleted(token: ApiToken, what: str) -> None:
    if token.status == TokenStatus.DELETED:
        raise Conflict(f"The API token is {TokenStatus.DELETED} and cannot be {what}.")
