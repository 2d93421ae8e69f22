"""HTTP routes of /public/v1/accounts/modules (the catalog is read-only)."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from tokenhouse.auth.dependencies import CurrentActor
from tokenhouse.kit.db import Session
from tokenhouse.kit.paging import envelope, parse_list_query
from tokenhouse.kit.wire import ListOf
from tokenhouse.modules import service
from tokenhouse.modules.schemas import ModuleOut, render_module

router = APIRouter(prefix="/public/v1/accounts/modules", tags=["Modules"])


@router.get("", response_model=ListOf[ModuleOut], summary="List modules")
async def list_modules(request: Request, session: Session, actor: CurrentActor) -> JSONResponse:
    page = parse_list_query(request.url.query)
    modules, total = await service.list_modules(session=session, actor=actor, page=page)
    return JSONResponse(envelope([render_module(m, audit=False) for m in modules], page, total,
                                 omitted=["audit"]))


@router.get("/{module_id}", response_model=ModuleOut, summary="Get a module")
async def get_module(module_id: str, session: Session, actor: CurrentActor) -> JSONResponse:
    module = await service.get_module(session=session, actor=actor, module_id=module_id)
    return JSONResponse(render_module(module))
