"""The webhooks' wire shapes and their representation."""

from typing import Any

from pydantic import Field

from tokenhouse.kit.timeutil import render
from tokenhouse.kit.wire import READ_ONLY, Audit, ReadOnlyFields, Ref, WireOut
from tokenhouse.webhooks.models import Delivery, Webhook

MAX_EVENTS = 50
EVENTS_DOC = ("Event keys to receive, such as `platform.accounts.apiToken.created`. `*` as a "
              "segment matches any one segment; as the last segment, one or more: "
              "`platform.accounts.apiToken.*`, `platform.*.account.*`, `*` (every event).")


class WebhookFields(ReadOnlyFields):
    description: str | None = Field(default=None, max_length=2000)
    secret: Any = Field(default=None, json_schema_extra=READ_ONLY)
    revision: Any = Field(default=None, json_schema_extra=READ_ONLY)


class WebhookCreate(WebhookFields):
    url: str = Field(min_length=1, max_length=2048, description="http or https; a public "
                     "address (see the README's Webhooks).")
    events: list[str] = Field(min_length=1, max_length=MAX_EVENTS, description=EVENTS_DOC)
    account: Ref | None = Field(default=None, description="Operations only: the account "
                                "whose trail the webhook receives (default: the caller's).")


class WebhookUpdate(WebhookFields):
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    events: list[str] | None = Field(default=None, min_length=1, max_length=MAX_EVENTS,
                                     description=EVENTS_DOC)
    account: Ref | None = Field(default=None, description="Cannot change.")
    # The revision the client read: a stale one is a 409, so edits never overwrite silently.
    revision: int | None = Field(default=None, description="The revision read; if the "
                                 "webhook has changed since, the PUT is a 409.")


class WebhookAccount(WireOut):
    id: str
    name: str


class WebhookOut(WireOut):
    id: str = Field(json_schema_extra=READ_ONLY, description="WHK-XXXX-XXXX")
    href: str = Field(json_schema_extra=READ_ONLY)
    account: WebhookAccount
    url: str
    events: list[str]
    description: str | None
    status: str = Field(json_schema_extra=READ_ONLY, description="`Enabled` or `Disabled`.")
    secret: str | None = Field(default=None, json_schema_extra=READ_ONLY, description="The "
                               "signing secret: in the create response only, never again.")
    audit: Audit | None = Field(default=None, json_schema_extra=READ_ONLY)
    revision: int = Field(json_schema_extra=READ_ONLY)
    meta: dict[str, Any] | None = Field(default=None, alias="$meta",
                                        json_schema_extra=READ_ONLY)


class DeliveryRef(WireOut):
    id: str


class LastResponse(WireOut):
    status_code: int | None = Field(description="The receiver's HTTP status; null when none "
                                    "answered.")
    error: str | None = Field(description="Why the attempt failed, in short; null on 2xx.")


class DeliveryOut(WireOut):
    id: str = Field(json_schema_extra=READ_ONLY, description="WHD-XXXX-XXXX-XXXX-XXXX, sent "
                    "as `Tokenhouse-Delivery`.")
    webhook: DeliveryRef
    record: DeliveryRef
    event: str
    status: str = Field(description="`Pending`, `Delivered` or `Failed` (given up).")
    attempts: int
    created_at: str
    last_attempt_at: str | None
    last_response: LastResponse | None
    next_attempt_at: str | None = Field(description="When it is tried next; null once "
                                        "Delivered or Failed.")
    delivered_at: str | None
    meta: dict[str, Any] | None = Field(default=None, alias="$meta",
                                        json_schema_extra=READ_ONLY)


HREF = "/public/v1/audit/webhooks/"


def render_webhook(webhook: Webhook, account_name: str,
                   secret: str | None = None) -> dict[str, Any]:
    """A webhook as the API shows it; `secret` in the create response alone."""
    body: dict[str, Any] = {
        "id": webhook.id,
        "href": HREF + webhook.id,
        "account": {"id": webhook.account_id, "name": account_name},
        "url": webhook.url,
        "events": list(webhook.events),
        "description": webhook.description,
        "status": webhook.status,
        "audit": webhook.render_audit(),
        "revision": webhook.revision,
    }
    if secret is not None:
        body["secret"] = secret
    return body


def render_delivery(delivery: Delivery) -> dict[str, Any]:
    pending = delivery.status == "Pending"
    answered = delivery.last_attempt_at is not None
    return {
        "id": delivery.id,
        "webhook": {"id": delivery.webhook_id},
        "record": {"id": delivery.record_id},
        "event": delivery.event,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "createdAt": render(delivery.created_at),
        "lastAttemptAt": render(delivery.last_attempt_at),
        "lastResponse": {"statusCode": delivery.last_status_code,
                         "error": delivery.last_error} if answered else None,
        "nextAttemptAt": render(delivery.next_attempt_at) if pending else None,
        "deliveredAt": render(delivery.delivered_at),
    }
