"""The Audit API's wire shapes (the platform's AuditRecord and AuditEventType)."""

from typing import Any

from pydantic import Field

from tokenhouse.kit.wire import READ_ONLY, ReadOnlyFields, WireIn, WireOut


class RecordObjectIn(WireIn):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
    name: str | None = Field(default=None, max_length=255)
    object_type: str | None = Field(default=None, max_length=64,
                                    description="Derived from the id's prefix when left out "
                                    "(`TKN`: ApiToken, `ACC`: Account; else Object).")
    icon: Any = Field(default=None, json_schema_extra=READ_ONLY)


class RecordCreate(ReadOnlyFields):
    """An integration's own event about an object of its own account."""

    event: str = Field(min_length=3, max_length=255, description="A dotted key such as "
                       "`extension.billing.invoice.sent`; `platform.*` is the platform's.")
    object: RecordObjectIn
    summary: str = Field(min_length=1, max_length=1000)
    details: str | None = Field(default=None, max_length=10_000, description="A template: "
                                "`{{path}}` names a value of the record's documents.")
    documents: dict[str, Any] | None = Field(default=None, description="Documents the "
                                             "details may name.")
    payload: Any = Field(default=None, description="Any JSON; kept as `documents.payload`.")
    # Set by the server (the acting token, the time, the request, who may see it).
    actor: Any = Field(default=None, json_schema_extra=READ_ONLY)
    timestamp: Any = Field(default=None, json_schema_extra=READ_ONLY)
    type: Any = Field(default=None, json_schema_extra=READ_ONLY)
    request: Any = Field(default=None, json_schema_extra=READ_ONLY)
    viewers: Any = Field(default=None, json_schema_extra=READ_ONLY)


class RecordObject(WireOut):
    id: str
    name: str | None
    icon: str | None
    object_type: str


class RecordAccount(WireOut):
    id: str | None
    name: str | None
    icon: str | None
    account_type: str


class RecordActor(WireOut):
    id: str
    name: str | None
    icon: str | None
    account: RecordAccount | None


class RecordApi(WireOut):
    ip: str | None
    user_agent: str | None


class RecordLog(WireOut):
    correlation_id: str | None = Field(description="The request's traceId.")


class RecordRequest(WireOut):
    api: RecordApi
    log: RecordLog


class RecordViewer(WireOut):
    id: str
    name: str | None
    type: str
    icon: str | None


class RecordOut(WireOut):
    id: str = Field(json_schema_extra=READ_ONLY, description="AUD-XXXX-XXXX-XXXX-XXXX")
    event: str
    summary: str
    details: str = Field(description="A template, unless the query says `render()`.")
    object: RecordObject
    timestamp: str = Field(json_schema_extra=READ_ONLY)
    actor: RecordActor = Field(json_schema_extra=READ_ONLY)
    type: str = Field(json_schema_extra=READ_ONLY, description="`Public`, or `Private` "
                      "(Operations only).")
    request: RecordRequest | None = Field(json_schema_extra=READ_ONLY, description="`null` "
                                          "for the server's own jobs and command line.")
    documents: dict[str, Any] | None
    viewers: list[RecordViewer] = Field(json_schema_extra=READ_ONLY)
    meta: dict[str, Any] | None = Field(default=None, alias="$meta",
                                        json_schema_extra=READ_ONLY)


class EventTypeUpdate(WireIn):
    description: str | None = Field(default=None, max_length=2000)
    id: Any = Field(default=None, json_schema_extra=READ_ONLY)
    key: Any = Field(default=None, json_schema_extra=READ_ONLY)
    name: Any = Field(default=None, json_schema_extra=READ_ONLY)


class EventTypeOut(WireOut):
    id: str = Field(json_schema_extra=READ_ONLY, description="AET-XXXX-XXXX")
    key: str = Field(json_schema_extra=READ_ONLY)
    name: str = Field(json_schema_extra=READ_ONLY)
    description: str | None
    meta: dict[str, Any] | None = Field(default=None, alias="$meta",
                                        json_schema_extra=READ_ONLY)
