"""HTTP routes of /public/v1/accounts/api-tokens: parse, call the service, shape."""

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.convertors import Convertor, register_url_convertor

from tokenhouse.auth.actor import Actor
from tokenhouse.auth.dependencies import CurrentActor
from tokenhouse.kit import paging
from tokenhouse.kit.addresses import canonical_address
from tokenhouse.kit.db import Session, reading
from tokenhouse.kit.problems import ValidationFailed
from tokenhouse.kit.routing import LeanRoute
from tokenhouse.kit.timeutil import utcnow
from tokenhouse.kit.wire import Body, ListOf, body_doc, read_body, read_json, validate
from tokenhouse.runtime import Resources, Runtime
from tokenhouse.tokens import service
from tokenhouse.tokens.auth import Introspector, TokensManager
from tokenhouse.tokens.models import ApiToken
from tokenhouse.tokens.repository import RESOURCE
from tokenhouse.tokens.schemas import (
    IntrospectionOut,
    IntrospectionRequest,
    TokenCreate,
    TokenOut,
    TokenRotate,
    TokenUpdate,
)
from tokenhouse.tokens.views import View, spliced, view_of

router = APIRouter(prefix="/public/v1/accounts/api-tokens", tags=["API tokens"],
                   route_class=LeanRoute)


class TokenId(Convertor[str]):
    """A token id in a path: any segment but `self`, `introspect` and `revoke-leaked`, which
    name routes of their own. Without it `PUT .../self` reached the PUT of `{token_id}` (a 404
    for a token "self"), and a 405 named PUT among the methods of `.../self`."""

    regex = r"(?!(?:self|introspect|revoke-leaked)(?:/|$))[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("token_id", TokenId())

# A response that carries a secret must not be kept by any cache on the way.
NO_STORE = {"Cache-Control": "no-store"}


def _answer(resources: Runtime, token: ApiToken, *, secret: str | None = None,
            status_code: int = 200) -> Response:
    """A token as changed by this request (rendered as its view is, never kept)."""
    now = utcnow()
    view = view_of(token, now)
    body = view.whole.join(spliced(view, resources.last_access, now=now, secret=secret))
    return Response(body, status_code=status_code, media_type="application/json",
                    headers=NO_STORE if secret is not None else None)


def _read(request: Request, resources: Runtime, view: View, secret: str | None) -> Response:
    """A GET of one token: its view with the dynamic values, shaped by `select` if any."""
    # The query (`select`) is looked at once the token is known to be visible: 404 first.
    raw_query = request.scope["query_string"]
    shape = paging.item_shape(paging.item_query(raw_query.decode("latin-1")), RESOURCE) \
        if raw_query else None
    values = spliced(view, resources.last_access, secret=secret)
    headers = NO_STORE if secret is not None else None
    if shape is None:
        return Response(view.whole.join(values), media_type="application/json",
                        headers=headers)
    return JSONResponse(paging.item(view.body(values), shape, RESOURCE), headers=headers)


# First of the routes: reading one token is the hot path (every client checks itself), and
# routes are matched in order.
@router.get("/{token_id:token_id}", response_model=TokenOut, summary="Get an API token")
async def get_token(token_id: str, request: Request, actor: CurrentActor,
                    resources: Resources) -> Response:
    # The hot path: no unit of work (see service.read_token).
    view = await service.read_token(sessions=resources.sessions, actor=actor,
                                    token_id=token_id, views=resources.token_views)
    # The secret is shown only to a caller that authenticated with this very token: it
    # already holds the secret, and `mpt-cli accounts add` reads it back from here.
    secret = _bearer_secret(request) if token_id == actor.token_id else None
    return _read(request, resources, view, secret)


@router.get("", response_model=ListOf[TokenOut], summary="List API tokens",
            openapi_extra=paging.LIST_DOC)
async def list_tokens(request: Request, session: Session, actor: TokensManager,
                      resources: Resources) -> Response:
    query, shape = paging.list_query(request.url.query, RESOURCE)
    await reading(session)
    items, total = await service.list_tokens(session=session, actor=actor, query=query,
                                             views=resources.token_views)
    now = utcnow()
    values = [spliced(item.view, resources.last_access, accessed=item.accessed, now=now)
              for item in items]
    if not query.select:  # the default shape: items as kept in memory
        return paging.encoded_page([item.view.item.join(value) for item, value in zip(
            items, values, strict=True)], query, total, shape, RESOURCE)
    return JSONResponse(paging.page([item.view.body(value) for item, value in zip(
        items, values, strict=True)], query, total, shape, RESOURCE))


@router.post("", status_code=201, response_model=TokenOut, summary="Create an API token",
             openapi_extra=body_doc(TokenCreate))
async def create_token(request: Request, session: Session, actor: TokensManager,
                       resources: Resources) -> Response:
    data = validate(TokenCreate, await read_json(request))
    token, secret = await service.create_token(session=session, actor=actor, data=data,
                                               key=resources.hmac_key,
                                               catalog=resources.modules,
                                               policy=resources.policy)
    return _answer(resources, token, secret=secret, status_code=201)


@router.post("/introspect", response_model=IntrospectionOut,
             summary="Introspect a token (RFC 7662), for the platform's services",
             openapi_extra=body_doc(IntrospectionRequest, form=True))
async def introspect(request: Request, actor: Introspector, resources: Resources) -> Response:
    """Who is this bearer, and may it go on: the token's claims, or exactly
    `{"active": false}` whatever the reason."""
    body = await read_body(request)
    if body.kind == "application/x-www-form-urlencoded":
        fields: dict[str, object] = dict(body.form())
        if "consume" in fields:  # a form's values are text: "true" or "false" only
            fields["consume"] = {"true": True, "false": False}.get(str(fields["consume"]),
                                                                   fields["consume"])
        data = validate(IntrospectionRequest, fields)
    else:
        data = validate(IntrospectionRequest, body.json())
    address = None
    if data.client_ip is not None:
        address = canonical_address(data.client_ip)
        if address is None:
            raise ValidationFailed({"clientIp": [f"{data.client_ip!r} is not an IP address."]})
    answer = await service.introspect(
        actor=actor, secret=data.token, address=address, engine=resources.engine,
        key=resources.hmac_key, sessions=resources.sessions,
        credentials=resources.credentials, views=resources.token_views,
        accesses=resources.last_access, limiter=resources.limiter, consume=data.consume,
        refusals=resources.refusals)
    return Response(answer, media_type="application/json", headers=NO_STORE)


# The self-service routes (`self` is no token id: see TokenId).
@router.get("/self", response_model=TokenOut, summary="Get the API token that authenticates "
            "the request")
async def get_self(request: Request, actor: CurrentActor, resources: Resources) -> Response:
    """Any valid token, no module needed. Without the secret (see GET of one token)."""
    assert actor.token_id is not None  # an HTTP actor is always a token
    view = await service.read_token(sessions=resources.sessions, actor=actor,
                                    token_id=actor.token_id, views=resources.token_views)
    return _read(request, resources, view, None)


@router.post("/self/rotate", response_model=TokenOut, summary="Rotate the secret of the API "
             "token that authenticates the request", openapi_extra=body_doc(TokenRotate))
async def rotate_self(request: Request, session: Session, actor: CurrentActor,
                      resources: Resources) -> Response:
    """As the rotate action, done by the token on itself: no module needed."""
    assert actor.token_id is not None
    return await _rotate(request, session, actor, resources, actor.token_id, by_itself=True)


@router.delete("/self", status_code=204, summary="Delete the API token that authenticates "
               "the request")
async def delete_self(session: Session, actor: CurrentActor) -> Response:
    """The token deletes itself: no module needed. Final, as any delete."""
    assert actor.token_id is not None
    token = await service.get_token(session=session, actor=actor, token_id=actor.token_id,
                                    for_update=True)
    await service.delete_token(session=session, actor=actor, token=token, by_itself=True)
    return Response(status_code=204)


@router.put("/{token_id:token_id}", response_model=TokenOut, summary="Change an API token",
            openapi_extra=body_doc(TokenUpdate))
async def update_token(token_id: str, request: Request, session: Session,
                       actor: TokensManager, resources: Resources) -> Response:
    # The body arrives before the token is read for update (which takes SQLite's writer, see
    # kit/db.Writer) and is judged after it (404 before 400).
    body = await read_body(request)
    token = await service.get_token(session=session, actor=actor, token_id=token_id,
                                    for_update=True)
    data = validate(TokenUpdate, body.json())
    token = await service.update_token(session=session, actor=actor, token=token, data=data,
                                       policy=resources.policy)
    return _answer(resources, token)


@router.delete("/{token_id:token_id}", status_code=204, summary="Delete an API token")
async def delete_token(token_id: str, session: Session, actor: TokensManager) -> Response:
    token = await service.get_token(session=session, actor=actor, token_id=token_id,
                                    for_update=True)
    await service.delete_token(session=session, actor=actor, token=token)
    return Response(status_code=204)


@router.post("/{token_id:token_id}/disable", response_model=TokenOut,
             summary="Disable an API token")
async def disable_token(token_id: str, request: Request, session: Session,
                        actor: TokensManager, resources: Resources) -> Response:
    return await _act(request, session, actor, resources, token_id, service.disable_token)


@router.post("/{token_id:token_id}/enable", response_model=TokenOut, summary="Enable an API token")
async def enable_token(token_id: str, request: Request, session: Session,
                       actor: TokensManager, resources: Resources) -> Response:
    return await _act(request, session, actor, resources, token_id, service.enable_token)


@router.post("/{token_id:token_id}/rotate", response_model=TokenOut,
             summary="Rotate the secret of an API token", openapi_extra=body_doc(TokenRotate))
async def rotate_token(token_id: str, request: Request, session: Session,
                       actor: TokensManager, resources: Resources) -> Response:
    """A new secret (shown once), same id; the old one works on during the grace window."""
    return await _rotate(request, session, actor, resources, token_id, by_itself=False)


@router.post("/{token_id:token_id}/revoke-previous-secret", response_model=TokenOut,
             summary="End the grace window of the secret a rotation replaced")
async def revoke_previous_secret(token_id: str, request: Request, session: Session,
                                 actor: TokensManager, resources: Resources) -> Response:
    return await _act(request, session, actor, resources, token_id,
                      service.revoke_previous_secret)


async def _act(request: Request, session: Session, actor: Actor, resources: Runtime,
               token_id: str, action: Callable[..., Awaitable[ApiToken]]) -> Response:
    """An action without a body (`{}` tolerated) on a token read for update."""
    body = await read_body(request)  # before the writer, as in update_token
    token = await service.get_token(session=session, actor=actor, token_id=token_id,
                                    for_update=True)
    body.empty()
    return _answer(resources, await action(session=session, actor=actor, token=token))


async def _rotate(request: Request, session: Session, actor: Actor, resources: Runtime,
                  token_id: str, *, by_itself: bool) -> Response:
    body: Body = await read_body(request)  # before the writer, as in update_token
    token = await service.get_token(session=session, actor=actor, token_id=token_id,
                                    for_update=True)
    payload = body.json(required=False)
    data = validate(TokenRotate, {} if payload is None else payload)
    token, secret = await service.rotate_token(session=session, actor=actor, token=token,
                                               data=data, key=resources.hmac_key,
                                               policy=resources.policy, by_itself=by_itself)
    return _answer(resources, token, secret=secret)


def _bearer_secret(request: Request) -> str:
    return request.headers["authorization"].partition(" ")[2].strip()
