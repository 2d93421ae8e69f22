"""The rules of API tokens: who may see and change what, and the token's lifecycle.

Services take keyword arguments and never a Request, so the HTTP routes, the command line and
the web page go through the same rules. They flush but never commit: the caller owns the unit
of work.
"""

from dataclasses import dataclass
from datetime import datetime
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenhouse.accounts import repository as accounts
from tokenhouse.auth.actor import Actor
from tokenhouse.kit import crypto, ids
from tokenhouse.kit.db import read_only
from tokenhouse.kit.problems import Conflict, NotFound, ValidationFailed
from tokenhouse.kit.repository import transient
from tokenhouse.kit.rql import Query
from tokenhouse.modules.catalog import ModuleCatalog
from tokenhouse.modules.service import grantable
from tokenhouse.tokens import repository
from tokenhouse.tokens.auth import MANAGE
from tokenhouse.tokens.models import ApiToken, TokenStatus
from tokenhouse.tokens.schemas import TokenCreate, TokenUpdate
from tokenhouse.tokens.views import TokenViews, View, view_of

ID_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class Listed:
    """A token on a page: its view, and `lastAccessAt` as the page's query read it."""

    view: View
    last_access_at: datetime | None


async def list_tokens(*, session: AsyncSession, actor: Actor, query: Query,
                      views: TokenViews | None = None) -> tuple[list[Listed], int]:
    """The tokens visible to the actor, one page, with the total.

    The page itself (which tokens, in which order, how many in all) always comes from the
    database. Each token's representation comes from `views` when the view there is of the
    revision the page read; the others are loaded in one query and kept."""
    MANAGE.check(actor)
    rows, total = await repository.list_visible(session, actor, query)
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
    return [Listed(found[row.id], row.last_access_at) for row in rows if row.id in found], total


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


async def _views_of(session: AsyncSession, actor: Actor, token_ids: list[str]
                    ) -> dict[str, View]:
    return {token.id: view_of(token)
            for token in await repository.get_many_visible(session, actor, token_ids)}


async def _read_view(sessions: async_sessionmaker[AsyncSession], actor: Actor,
                     token_id: str) -> View:
    async with read_only(sessions) as session:
        return view_of(await get_token(session=session, actor=actor, token_id=token_id))


async def create_token(*, session: AsyncSession, actor: Actor, data: TokenCreate, key: bytes,
                       catalog: ModuleCatalog | None = None) -> tuple[ApiToken, str]:
    """A new Active token and its secret. The secret is returned once and only its keyed
    hash is stored.

    The token returned is never attached to `session`: it was written with plain inserts
    (see `repository.insert_new`) and is only to be rendered."""
    MANAGE.check(actor)
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
            modules=modules, secret_hash=crypto.hash_secret(key, secret), revision=1).items())
        token.stamp_created(actor.by)
        if await repository.insert_new(session, token):
            return token, secret
    raise RuntimeError(f"no free API token id after {ID_ATTEMPTS} attempts")


async def update_token(*, session: AsyncSession, actor: Actor, token: ApiToken,
                       data: TokenUpdate) -> ApiToken:
    """Change name, description, icon and modules. Properties left out keep their value."""
    _authorize_change(actor, token)
    # The body is judged (400) before the token's state and revision (409), as everywhere.
    if data.account is not None and data.account.id != token.account_id:
        raise ValidationFailed({"account": ["A token cannot be moved to another account."]})
    given = data.model_fields_set
    if "name" in given and data.name is None:
        raise ValidationFailed({"name": ["The name is required."]})
    if "modules" in given and data.modules is None:
        raise ValidationFailed({"modules": ["At least one module is required."]})
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
    if "name" in given and data.name is not None:  # None was refused above
        token.name = data.name
    if "description" in given:
        token.description = data.description
    if "icon" in given:
        token.icon = data.icon
    if modules is not None:
        token.modules = modules
    token.stamp_updated(actor.by)
    await session.flush()
    return token


async def disable_token(*, session: AsyncSession, actor: Actor, token: ApiToken) -> ApiToken:
    """Active -> Disabled: the token stops authenticating at once."""
    return await _move(session, actor, token, TokenStatus.ACTIVE, TokenStatus.DISABLED,
                       "disabled")


async def enable_token(*, session: AsyncSession, actor: Actor, token: ApiToken) -> ApiToken:
    """Disabled -> Active."""
    return await _move(session, actor, token, TokenStatus.DISABLED, TokenStatus.ACTIVE,
                       "enabled")


async def delete_token(*, session: AsyncSession, actor: Actor, token: ApiToken) -> ApiToken:
    """Active or Disabled -> Deleted, which is final. The row stays (IDs are never reused,
    Operations can still see it), but its secret hash is dropped: it can never be needed."""
    _authorize_change(actor, token)
    _require_not_deleted(token, "deleted again")
    token.status = TokenStatus.DELETED
    token.secret_hash = None
    token.stamp_updated(actor.by)
    await session.flush()
    return token


async def _move(session: AsyncSession, actor: Actor, token: ApiToken, source: TokenStatus,
                target: TokenStatus, verb: str) -> ApiToken:
    _authorize_change(actor, token)
    if token.status != source:
        article = "an" if source[0] in "AEIOU" else "a"
        raise Conflict(f"The API token is {token.status}; only {article} {source} token can be "
                       f"{verb}.")
    token.status = target
    token.stamp_updated(actor.by)
    await session.flush()
    return token


def _authorize_change(actor: Actor, token: ApiToken) -> None:
    """Every change needs Access Management, also of the token that acts (a token cannot
    rename, disable or delete itself without it), and a token the actor can see (404, as
    for a token that does not exist)."""
    MANAGE.check(actor)
    if not repository.can_see(actor, token.account_id, token.status):
        raise _not_found(token.id)


def _not_found(token_id: str) -> NotFound:
    return NotFound(f"API token {token_id} not found.")


def _require_not_deleted(token: ApiToken, what: str) -> None:
    if token.status == TokenStatus.DELETED:
        raise Conflict(f"The API token is {TokenStatus.DELETED} and cannot be {what}.")
