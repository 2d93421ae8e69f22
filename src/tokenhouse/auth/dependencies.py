"""The authentication dependencies: routes declare `actor: CurrentActor` (any valid token)
or the actor type of a permission (`authorized(...)`, see each domain's auth.py)."""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from starlette.types import Scope

from tokenhouse.auth.actor import Actor
from tokenhouse.auth.permissions import Permission
from tokenhouse.auth.service import authenticate
from tokenhouse.kit import metrics
from tokenhouse.kit.addresses import TrustedProxies
from tokenhouse.kit.origin import note_origin
from tokenhouse.kit.problems import TooManyRequests, Unauthorized, note_header
from tokenhouse.kit.ratelimit import Limiter, Quota, headers, token_key
from tokenhouse.runtime import runtime

# As GitHub sends it: clients can warn before a token stops working.
EXPIRATION_HEADER = b"api-token-expiration"


async def current_actor(request: Request) -> Actor:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("Authentication is required: send 'Authorization: Bearer <token>'.")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("Use the Bearer scheme: 'Authorization: Bearer <token>'.")
    held = runtime(request)
    # Authentication reads in a session of its own, opened only when the credential is not
    # in memory: on the hot path (a cached credential, a route served from memory) no
    # session is created at all. It reads committed data only, so it needs no part in the
    # route's unit of work.
    address = client_address(request, held.proxies)

    async def limit(admitted: Actor) -> None:
        assert admitted.token_id is not None and admitted.rate_limit is not None
        await count_request(request.scope, held.limiter, admitted.token_id,
                            admitted.rate_limit)

    actor = await authenticate(engine=held.engine, secret=secret.strip(),
                               key=held.hmac_key, cache=held.credentials,
                               views=held.token_views, sessions=held.sessions,
                               address=address, refusals=held.refusals, limit=limit)
    # Only an admitted request is recorded.
    if actor.token_id is not None:
        held.last_access.touch(actor.token_id, address, actor.window)
    if actor.expiration is not None:
        note_header(request.scope, EXPIRATION_HEADER, actor.expiration.encode())
    return actor


def client_address(request: Request, proxies: TrustedProxies) -> str | None:
    """The client's address (None: unknown), noted for the audit records of the request's
    changes. X-Forwarded-For is read only when proxies are trusted: otherwise a client could
    choose the address its token is judged (or its reports are counted) by."""
    peer = request.scope.get("client")
    address = proxies.client_address(
        peer[0] if peer else None,
        request.headers.getlist("x-forwarded-for") if proxies.networks else [])
    note_origin(address, request.scope)
    return address


async def count_request(scope: Scope, limiter: Limiter, token_id: str, quota: Quota) -> None:
    """Count a request of the token against its rate limit: the headers on whatever answers
    it, or 429 past the limit (every process counts on one Redis when configured)."""
    decision = await limiter.hit(token_key(token_id), quota.limit, quota.window)
    for name, value in headers(quota, decision):
        note_header(scope, name, value)
    if not decision.allowed:
        metrics.count_auth("rate_limited")
        raise TooManyRequests(
            f"The API token's rate limit ({quota.limit} requests per {quota.window} s) is "
            f"used up; retry in {decision.retry_after} s.",
            headers={"Retry-After": str(decision.retry_after)})


CurrentActor = Annotated[Actor, Depends(current_actor)]


def authorized(permission: Permission) -> Callable[[Actor], Awaitable[Actor]]:
    """A dependency that authenticates (401) and then requires `permission` (403), before
    the route looks at the path's object or reads a body."""

    async def dependency(actor: CurrentActor) -> Actor:
        permission.check(actor)
        return actor

    return dependency
