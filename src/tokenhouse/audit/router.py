"""HTTP routes of /public/v1/audit: records and event types (the platform's Audit API)."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from tokenhouse.audit import service
from tokenhouse.audit.auth import Auditor, EventTypesManager
from tokenhouse.audit.repository import EVENT_TYPES, RECORDS
from tokenhouse.audit.schemas import (
    EventTypeOut,
    EventTypeUpdate,
    RecordCreate,
    RecordOut,
)
from tokenhouse.kit import paging
from tokenhouse.kit.db import Session
from tokenhouse.kit.routing import LeanRoute
from tokenhouse.kit.wire import ListOf, body_doc, read_body, read_json, validate

router = APIRouter(prefix="/public/v1/audit", tags=["Audit"], route_class=LeanRoute)

# A record is an event's account, not a store of documents: it is kept for good and sent
# to every matching webhook, so its size is bounded well below other bodies' (413 past it).
MAX_RECORD_BYTES = 64 * 1024


@router.get("/records", response_model=ListOf[RecordOut], summary="List audit records",
            openapi_extra=paging.LIST_DOC)
async def list_records(request: Request, session: Session, actor: Auditor) -> JSONResponse:
    """Newest first unless `order` says otherwise; `render()` fills in the details."""
    query, shape = paging.list_query(request.url.query, RECORDS)
    records, total = await service.list_records(session=session, actor=actor, query=query)
    return JSONResponse(paging.page(
        [service.render_record(entry, rendered=query.render) for entry in records], query,
        total, shape, RECORDS))


@router.post("/records", status_code=201, response_model=RecordOut,
             summary="Record an event of an integration", openapi_extra=body_doc(RecordCreate))
async def create_record(request: Request, session: Session, actor: Auditor) -> JSONResponse:
    data = validate(RecordCreate, (await read_body(request, MAX_RECORD_BYTES)).json())
    entry = await service.create_record(session=session, actor=actor, data=data)
    return JSONResponse(service.render_record(entry), status_code=201)


@router.get("/records/{record_id}", response_model=RecordOut, summary="Get an audit record")
async def get_record(record_id: str, request: Request, session: Session,
                     actor: Auditor) -> JSONResponse:
    entry = await service.get_record(session=session, actor=actor, record_id=record_id)
    query = paging.item_query(request.url.query)
    return JSONResponse(paging.item(service.render_record(entry, rendered=query.render),
                                    paging.item_shape(query, RECORDS), RECORDS))


@router.get("/event-types", response_model=ListOf[EventTypeOut], summary="List event types",
            openapi_extra=paging.LIST_DOC)
async def list_event_types(request: Request, session: Session, actor: Auditor) -> JSONResponse:
    return JSONResponse(await paging.list_response(
        request.url.query, EVENT_TYPES,
        lambda query: service.list_event_types(session=session, actor=actor, query=query),
        service.render_event_type))


@router.get("/event-types/{type_id}", response_model=EventTypeOut, summary="Get an event type")
async def get_event_type(type_id: str, request: Request, session: Session,
                         actor: Auditor) -> JSONResponse:
    found = await service.get_event_type(session=session, actor=actor, type_id=type_id)
    shape = paging.item_shape(paging.item_query(request.url.query), EVENT_TYPES)
    return JSONResponse(paging.item(service.render_event_type(found), shape, EVENT_TYPES))


@router.put("/event-types/{type_id}", response_model=EventTypeOut,
            summary="Change an event type's description", openapi_extra=body_doc(EventTypeUpdate))
async def update_event_type(type_id: str, request: Request, session: Session,
                            actor: EventTypesManager) -> JSONResponse:
    found = await service.get_event_type(session=session, actor=actor, type_id=type_id,
                                         for_update=True)
    data = validate(EventTypeUpdate, await read_json(request))
    found = await service.update_event_type(session=session, actor=actor, event_type=found,
                                            data=data)
    return JSONResponse(service.render_event_type(found))
