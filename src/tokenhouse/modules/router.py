"""HTTP routes of /public/v1/accounts/modules (the catalog is read-only)."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from tokenhouse.auth.dependencies import CurrentActor
from tokenhouse.kit import paging
from tokenhouse.kit.db import Session
from tokenhouse.kit.routing import LeanRoute
from tokenhouse.kit.wire import ListOf
from tokenhouse.modules import service
from tokenhouse.modules.repository import RESOURCE
from tokenhouse.modules.schemas import ModuleOut, render_module

router = APIRouter(prefix="/public/v1/accounts/modules", tags=["Modules"], route_class=LeanRoute)


@router.get("", response_model=ListOf[ModuleOut], summary="List modules",
            openapi_extra=paging.LIST_DOC)
async def list_modules(request: Request, session: Session, actor: CurrentActor) -> JSONResponse:
    return JSONResponse(await paging.list_response(
        request.url.query, RESOURCE,
        lambda query: service.list_modules(session=session, actor=actor, query=query),
        render_module))


@router.get("/{module_id}", response_model=ModuleOut, summary="Get a module")
async def get_module(module_id: str, request: Request, session: Session,
                     actor: CurrentActor) -> JSONResponse:
    module = await service.get_module(session=session, actor=actor, module_id=module_id)
    shape = paging.item_shape(paging.item_query(request.url.query), RESOURCE)
    return JSONResponse(paging.item(render_module(module), shape, RESOURCE))
