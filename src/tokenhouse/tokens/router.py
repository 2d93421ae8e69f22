"""HTTP routes of /public/v1/accounts/api-tokens: parse, call the service, shape."""

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from tokenhouse.auth.dependencies import CurrentActor
from tokenhouse.kit import paging
from tokenhouse.kit.db import Session, reading
from tokenhouse.kit.timeutil import render
from tokenhouse.kit.wire import ListOf, body_doc, read_body, read_json, validate
from tokenhouse.runtime import Resources, Runtime
from tokenhouse.tokens import service
from tokenhouse.tokens.auth import TokensManager
from tokenhouse.tokens.models import ApiToken
from tokenhouse.tokens.repository import RESOURCE
from tokenhouse.tokens.schemas import TokenCreate, TokenOut, TokenUpdate, render_token

router = APIRouter(prefix="/public/v1/accounts/api-tokens", tags=["API tokens"])

# A response that carries a secret must not be kept by any cache on the way.
NO_STORE = {"Cache-Control": "no-store"}


def _shape(resources: Runtime, token: ApiToken, *,
           secret: str | None = None) -> dict[str, Any]:
    last_access = resources.last_access.seen(token.id, token.last_access_at)
    return render_token(token, last_access=last_access, secret=secret)


@router.get("", response_model=ListOf[TokenOut], summary="List API tokens",
            openapi_extra=paging.LIST_DOC)
async def list_tokens(request: Request, session: Session, actor: TokensManager,
                      resources: Resources) -> Response:
    query, shape = paging.list_query(request.url.query, RESOURCE)
    await reading(session)
    items, total = await service.list_tokens(session=session, actor=actor, query=query,
                                             views=resources.token_views)
    accesses = [render(resources.last_access.seen(item.view.token_id, item.last_access_at))
                for item in items]
    if not query.select:  # the default shape: items as kept in memory
        return paging.encoded_page([item.view.item.join(at) for item, at in zip(
            items, accesses, strict=True)], query, total, shape, RESOURCE)
    return JSONResponse(paging.page([item.view.body(at) for item, at in zip(
        items, accesses, strict=True)], query, total, shape, RESOURCE))


@router.post("", status_code=201, response_model=TokenOut, summary="Create an API token",
             openapi_extra=body_doc(TokenCreate))
async def create_token(request: Request, session: Session, actor: TokensManager,
                       resources: Resources) -> JSONResponse:
    data = validate(TokenCreate, await read_json(request))
    token, secret = await service.create_token(session=session, actor=actor, data=data,
                                               key=resources.hmac_key,
                                               catalog=resources.modules)
    return JSONResponse(_shape(resources, token, secret=secret), status_code=201,
                        headers=NO_STORE)


@router.get("/{token_id}", response_model=TokenOut, summary="Get an API token")
async def get_token(token_id: str, request: Request, actor: CurrentActor,
                    resources: Resources) -> Response:
    # The hot path: no unit of work (see service.read_token).
    view = await service.read_token(sessions=resources.sessions, actor=actor,
                                    token_id=token_id, views=resources.token_views)
    # The query (`select`) is looked at once the token is known to be visible: 404 first.
    raw_query = request.scope["query_string"]
    shape = paging.item_shape(paging.item_query(raw_query.decode("latin-1")), RESOURCE) \
        if raw_query else None
    last_access = render(resources.last_access.seen(token_id, view.last_access_at))
    # The secret is shown only to a caller that authenticated with this very token: it
    # already holds the secret, and `mpt-cli accounts add` reads it back from here.
    secret = _bearer_secret(request) if token_id == actor.token_id else None
    headers = NO_STORE if secret is not None else None
    if shape is None:
        return Response(view.whole.join(last_access, secret), media_type="application/json",
                        headers=headers)
    body = view.body(last_access)
    if secret is not None:
        body["token"] = secret
    return JSONResponse(paging.item(body, shape, RESOURCE), headers=headers)


@router.put("/{token_id}", response_model=TokenOut, summary="Change an API token",
            openapi_extra=body_doc(TokenUpdate))
async def update_token(token_id: str, request: Request, session: Session,
                       actor: TokensManager, resources: Resources) -> JSONResponse:
    # The body arrives before the token is read for update (which takes SQLite's writer, see
    # kit/db.Writer) and is judged after it (404 before 400).
    body = await read_body(request)
    token = await service.get_token(session=session, actor=actor, token_id=token_id,
                                    for_update=True)
    data = validate(TokenUpdate, body.json())
    token = await service.update_token(session=session, actor=actor, token=token, data=data)
    return JSONResponse(_shape(resources, token))


@router.delete("/{token_id}", status_code=204, summary="Delete an API token")
async def delete_token(token_id: str, session: Session, actor: TokensManager) -> Response:
    token = await service.get_token(session=session, actor=actor, token_id=token_id,
                                    for_update=True)
    await service.delete_token(session=session, actor=actor, token=token)
    return Response(status_code=204)


@router.post("/{token_id}/disable", response_model=TokenOut, summary="Disable an API token")
async def disable_token(token_id: str, request: Request, session: Session,
                        actor: TokensManager, resources: Resources) -> JSONResponse:
    body = await read_body(request)  # before the writer, as in update_token
    token = await service.get_token(session=session, actor=actor, token_id=token_id,
                                    for_update=True)
    body.empty()
    token = await service.disable_token(session=session, actor=actor, token=token)
    return JSONResponse(_shape(resources, token))


@router.post("/{token_id}/enable", response_model=TokenOut, summary="Enable an API token")
async def enable_token(token_id: str, request: Request, session: Session,
                       actor: TokensManager, resources: Resources) -> JSONResponse:
    body = await read_body(request)  # before the writer, as in update_token
    token = await service.get_token(session=session, actor=actor, token_id=token_id,
                                    for_update=True)
    body.empty()
    token = await service.enable_token(session=session, actor=actor, token=token)
    return JSONResponse(_shape(resources, token))


def _bearer_secret(request: Request) -> str:
    return request.headers["authorization"].partition(" ")[2].strip()
