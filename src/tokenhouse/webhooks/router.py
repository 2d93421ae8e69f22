"""HTTP routes of /public/v1/audit/webhooks: parse, call the service, shape."""

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from tokenhouse.auth.actor import Actor
from tokenhouse.kit import paging
from tokenhouse.kit.db import Session
from tokenhouse.kit.routing import LeanRoute
from tokenhouse.kit.wire import ListOf, body_doc, read_body, validate
from tokenhouse.runtime import Resources
from tokenhouse.webhooks import service
from tokenhouse.webhooks.auth import WebhooksManager
from tokenhouse.webhooks.delivery import DeliveryWorker
from tokenhouse.webhooks.models import Webhook
from tokenhouse.webhooks.repository import DELIVERIES, WEBHOOKS
from tokenhouse.webhooks.schemas import (
    DeliveryOut,
    WebhookCreate,
    WebhookOut,
    WebhookUpdate,
    render_delivery,
    render_webhook,
)

router = APIRouter(prefix="/public/v1/audit/webhooks", tags=["Audit"], route_class=LeanRoute)

# The create response carries the secret: no cache on the way may keep it.
NO_STORE = {"Cache-Control": "no-store"}


def _allow_private(request: Request) -> bool:
    """TOKENHOUSE_WEBHOOK_ALLOW_PRIVATE, as the app's delivery worker holds it."""
    worker: DeliveryWorker = request.app.state.webhooks
    return worker.allow_private


@router.get("", response_model=ListOf[WebhookOut], summary="List audit webhooks",
            openapi_extra=paging.LIST_DOC)
async def list_webhooks(request: Request, session: Session,
                        actor: WebhooksManager) -> JSONResponse:
    return JSONResponse(await paging.list_response(
        request.url.query, WEBHOOKS,
        lambda query: service.list_webhooks(session=session, actor=actor, query=query),
        lambda row: render_webhook(*row)))


@router.post("", status_code=201, response_model=WebhookOut,
             summary="Create an audit webhook (its secret is in this response only)",
             openapi_extra=body_doc(WebhookCreate))
async def create_webhook(request: Request, session: Session, actor: WebhooksManager,
                         resources: Resources) -> JSONResponse:
    data = validate(WebhookCreate, (await read_body(request)).json())
    webhook, account_name, secret = await service.create_webhook(
        session=session, actor=actor, data=data, key=resources.hmac_key,
        allow_private=_allow_private(request))
    return JSONResponse(render_webhook(webhook, account_name, secret), status_code=201,
                        headers=NO_STORE)


@router.get("/{webhook_id}", response_model=WebhookOut, summary="Get an audit webhook")
async def get_webhook(webhook_id: str, request: Request, session: Session,
                      actor: WebhooksManager) -> JSONResponse:
    webhook, account_name = await service.get_webhook(session=session, actor=actor,
                                                      webhook_id=webhook_id)
    shape = paging.item_shape(paging.item_query(request.url.query), WEBHOOKS)
    return JSONResponse(paging.item(render_webhook(webhook, account_name), shape, WEBHOOKS))


@router.put("/{webhook_id}", response_model=WebhookOut, summary="Change an audit webhook",
            openapi_extra=body_doc(WebhookUpdate))
async def update_webhook(webhook_id: str, request: Request, session: Session,
                         actor: WebhooksManager) -> JSONResponse:
    # The body arrives before the webhook is read for update (which takes SQLite's
    # writer, see kit/db.Writer) and is judged after it (404 before 400).
    body = await read_body(request)
    webhook, account_name = await service.get_webhook(session=session, actor=actor,
                                                      webhook_id=webhook_id, for_update=True)
    data = validate(WebhookUpdate, body.json())
    webhook = await service.update_webhook(session=session, actor=actor, webhook=webhook,
                                           account_name=account_name, data=data,
                                           allow_private=_allow_private(request))
    return JSONResponse(render_webhook(webhook, account_name))


@router.delete("/{webhook_id}", status_code=204, summary="Delete an audit webhook")
async def delete_webhook(webhook_id: str, session: Session,
                         actor: WebhooksManager) -> Response:
    webhook, _ = await service.get_webhook(session=session, actor=actor,
                                           webhook_id=webhook_id, for_update=True)
    await service.delete_webhook(session=session, actor=actor, webhook=webhook)
    return Response(status_code=204)


@router.post("/{webhook_id}/enable", response_model=WebhookOut,
             summary="Enable an audit webhook")
async def enable_webhook(webhook_id: str, request: Request, session: Session,
                         actor: WebhooksManager) -> JSONResponse:
    return await _act(request, session, actor, webhook_id, service.enable_webhook)


@router.post("/{webhook_id}/disable", response_model=WebhookOut,
             summary="Disable an audit webhook")
async def disable_webhook(webhook_id: str, request: Request, session: Session,
                          actor: WebhooksManager) -> JSONResponse:
    return await _act(request, session, actor, webhook_id, service.disable_webhook)


@router.get("/{webhook_id}/deliveries", response_model=ListOf[DeliveryOut],
            summary="List an audit webhook's deliveries (newest first)",
            openapi_extra=paging.LIST_DOC)
async def list_deliveries(webhook_id: str, request: Request, session: Session,
                          actor: WebhooksManager) -> JSONResponse:
    webhook, _ = await service.get_webhook(session=session, actor=actor,
                                           webhook_id=webhook_id)
    return JSONResponse(await paging.list_response(
        request.url.query, DELIVERIES,
        lambda query: service.list_deliveries(session=session, actor=actor, webhook=webhook,
                                              query=query),
        render_delivery))


async def _act(request: Request, session: Session, actor: Actor, webhook_id: str,
               action: Callable[..., Awaitable[Webhook]]) -> JSONResponse:
    """An action without a body (`{}` tolerated) on a webhook read for update."""
    body = await read_body(request)  # before the writer, as in update_webhook
    webhook, account_name = await service.get_webhook(session=session, actor=actor,
                                                      webhook_id=webhook_id, for_update=True)
    body.empty()
    webhook = await action(session=session, actor=actor, webhook=webhook)
    return JSONResponse(render_webhook(webhook, account_name))
