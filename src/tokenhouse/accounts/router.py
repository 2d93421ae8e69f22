"""HTTP routes of /public/v1/accounts/accounts: parse, call the service, shape.

Create and update take a JSON body, or multipart form data with the JSON in a part named
`account` and an optional image in `icon` (or `logo`, the name `mpt-api-client` uses).
"""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from tokenhouse.accounts import service
from tokenhouse.accounts.auth import AccountsManager
from tokenhouse.accounts.repository import RESOURCE
from tokenhouse.accounts.schemas import AccountCreate, AccountOut, AccountUpdate, render_account
from tokenhouse.auth.dependencies import CurrentActor
from tokenhouse.kit import multipart, paging
from tokenhouse.kit.db import Session
from tokenhouse.kit.problems import ValidationFailed
from tokenhouse.kit.routing import LeanRoute
from tokenhouse.kit.wire import (
    MAX_JSON_BYTES,
    ListOf,
    body_doc,
    media_type,
    parse_json,
    read_empty,
    read_json,
    validate,
)

router = APIRouter(prefix="/public/v1/accounts/accounts", tags=["Accounts"], route_class=LeanRoute)

MAX_ICON_BYTES = 1024 * 1024
# The parts of a multipart create or update, and the bytes each may hold.
FORM_PARTS = {"account": MAX_JSON_BYTES, "icon": MAX_ICON_BYTES, "logo": MAX_ICON_BYTES}
MAX_FORM_BYTES = MAX_ICON_BYTES + MAX_JSON_BYTES
# Raster formats only: an SVG served from this origin could carry script.
ICON_SIGNATURES = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}


@router.get("", response_model=ListOf[AccountOut], summary="List accounts",
            openapi_extra=paging.LIST_DOC)
async def list_accounts(request: Request, session: Session, actor: CurrentActor) -> JSONResponse:
    return JSONResponse(await paging.list_response(
        request.url.query, RESOURCE,
        lambda query: service.list_accounts(session=session, actor=actor, query=query),
        render_account))


@router.post("", status_code=201, response_model=AccountOut, summary="Create an account",
             openapi_extra=body_doc(AccountCreate, multipart_part="account"))
async def create_account(request: Request, session: Session,
                         actor: AccountsManager) -> JSONResponse:
    payload, icon = await _read_account_body(request)
    data = validate(AccountCreate, payload)
    account = await service.create_account(session=session, actor=actor, data=data, icon=icon)
    return JSONResponse(render_account(account), status_code=201)


@router.get("/{account_id}", response_model=AccountOut, summary="Get an account")
async def get_account(account_id: str, request: Request, session: Session,
                      actor: CurrentActor) -> JSONResponse:
    account = await service.get_account(session=session, actor=actor, account_id=account_id)
    shape = paging.item_shape(paging.item_query(request.url.query), RESOURCE)
    return JSONResponse(paging.item(render_account(account), shape, RESOURCE))


@router.put("/{account_id}", response_model=AccountOut, summary="Change an account",
            openapi_extra=body_doc(AccountUpdate, multipart_part="account"))
async def update_account(account_id: str, request: Request, session: Session,
                         actor: AccountsManager) -> JSONResponse:
    account = await service.get_account(session=session, actor=actor, account_id=account_id)
    payload, icon = await _read_account_body(request)
    data = validate(AccountUpdate, payload)
    account = await service.update_account(session=session, actor=actor, account=account,
                                           data=data, icon=icon)
    return JSONResponse(render_account(account))


@router.post("/{account_id}/disable", response_model=AccountOut, summary="Disable an account")
async def disable_account(account_id: str, request: Request, session: Session,
                          actor: AccountsManager) -> JSONResponse:
    account = await service.get_account(session=session, actor=actor, account_id=account_id)
    await read_empty(request)
    account = await service.disable_account(session=session, actor=actor, account=account)
    return JSONResponse(render_account(account))


@router.post("/{account_id}/enable", response_model=AccountOut, summary="Enable an account")
async def enable_account(account_id: str, request: Request, session: Session,
                         actor: AccountsManager) -> JSONResponse:
    account = await service.get_account(session=session, actor=actor, account_id=account_id)
    await read_empty(request)
    account = await service.enable_account(session=session, actor=actor, account=account)
    return JSONResponse(render_account(account))


@router.get("/{account_id}/icon", summary="Get an account's icon", response_class=Response,
            responses={200: {"content": {kind: {"schema": {"type": "string",
                                                            "format": "binary"}}
                                         for kind in ICON_SIGNATURES}}})
async def get_icon(account_id: str, session: Session, actor: CurrentActor) -> Response:
    icon = await service.get_icon(session=session, actor=actor, account_id=account_id)
    return Response(icon.data, media_type=icon.content_type,
                    headers={"X-Content-Type-Options": "nosniff",
                             "Cache-Control": "private, max-age=300"})


async def _read_account_body(request: Request) -> tuple[Any, service.Icon | None]:
    if media_type(request) != "multipart/form-data":
        return await read_json(request), None
    # Bounded while it arrives (kit/multipart.py): a chunked upload stops at the limit.
    form = await multipart.read_form(request, FORM_PARTS, max_total=MAX_FORM_BYTES)
    part = form.get("account")
    if part is None:
        raise ValidationFailed({"account": ["The account part (JSON) is required."]})
    upload = form.get("icon") or form.get("logo")
    if upload is not None and upload.filename is None:
        raise ValidationFailed({"icon": ["The icon must be sent as a file part."]})
    icon = _read_icon(bytes(upload.data)) if upload is not None else None
    return parse_json(bytes(part.data)), icon


def _read_icon(data: bytes) -> service.Icon:
    for content_type, signatures in ICON_SIGNATURES.items():
        if any(data.startswith(signature) for signature in signatures):
            if content_type != "image/webp" or data[8:12] == b"WEBP":
                return service.Icon(content_type=content_type, data=data)
    raise ValidationFailed({"icon": ["The icon must be a PNG, JPEG, GIF or WebP image."]})
