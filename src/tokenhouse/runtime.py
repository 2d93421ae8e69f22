"""What the app holds for its lifetime, made once by its lifespan (app.py) and given to the
routes as a typed dependency (`Resources`), instead of untyped attributes of `app.state`."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tokenhouse.auth.cache import CredentialCache
from tokenhouse.auth.refusals import Refusals
from tokenhouse.kit.addresses import TrustedProxies
from tokenhouse.kit.invalidation import InvalidationListener
from tokenhouse.kit.ratelimit import Limiter, Quota
from tokenhouse.modules.catalog import ModuleCatalog
from tokenhouse.tokens.last_access import LastAccessRecorder
from tokenhouse.tokens.lifecycle import Policy
from tokenhouse.tokens.views import TokenViews


@dataclass(frozen=True, slots=True)
class Runtime:
    engine: AsyncEngine
    # Sessions carry this process's caches, so that a commit drops what it changed at once.
    sessions: async_sessionmaker[AsyncSession]
    # The key of the keyed hash of secrets (kit/crypto.py).
    hmac_key: bytes
    credentials: CredentialCache
    token_views: TokenViews
    modules: ModuleCatalog
    last_access: LastAccessRecorder
    invalidation: InvalidationListener
    # Who may vouch for a client's address (X-Forwarded-For), and the tokens' lifetime.
    proxies: TrustedProxies
    policy: Policy
    # Counts requests against tokens' rate limits (and leak reports against addresses).
    limiter: Limiter
    # Leak reports a client address may send (leaks/router.py): TOKENHOUSE_LEAK_REPORTS_PER_HOUR.
    leak_reports: Quota
    # Records refused uses of valid secrets in the audit trail (auth/refusals.py).
    refusals: Refusals


async def resources(request: Request) -> Runtime:
    """The dependency behind `Resources`. Async on purpose: FastAPI runs a plain `def`
    dependency in a worker thread, which cost a read (the hot path) twice its CPU."""
    return runtime(request)


def runtime(request: Request) -> Runtime:
    """The app's runtime, for routes and their dependencies."""
    held: Runtime = request.app.state.runtime
    return held


Resources = Annotated[Runtime, Depends(resources)]
