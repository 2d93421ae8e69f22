"""The audit trail's tables.

A record is written once and never changed or deleted through the API. What it shows is
stored as it was rendered when the change happened (actor, object, request, documents,
viewers), so a later rename or delete never rewrites history; the columns beside it are
what queries filter and order on.
"""

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from tokenhouse.kit.db import Base, JsonDoc


class RecordType(enum.StrEnum):
    PUBLIC = "Public"
    # Kept from the object's account: only Operations reads them (refused uses of a token).
    PRIVATE = "Private"


class AuditRecord(Base):
    __tablename__ = "audit_records"
    __table_args__ = (
        # The tenant's trail, newest first (the default order), and one object's trail.
        Index("ix_audit_records_account_id_timestamp", "account_id", text("timestamp DESC"),
              "id"),
        Index("ix_audit_records_timestamp", text("timestamp DESC"), "id"),
        Index("ix_audit_records_object_id_timestamp", "object_id", text("timestamp DESC")),
        # The webhooks' outbox: the records not yet fanned out (migration 0011).
        Index("ix_audit_records_pending", "timestamp", "id",
              postgresql_where=text("NOT fanned_out"), sqlite_where=text("NOT fanned_out")),
    )

    id: Mapped[str] = mapped_column(String(24), primary_key=True)  # AUD-XXXX-XXXX-XXXX-XXXX
    event: Mapped[str] = mapped_column(String(255), index=True)
    summary: Mapped[str] = mapped_column(String(1000))
    details: Mapped[str] = mapped_column(Text)  # a template: {{path}} names a document value
    object_id: Mapped[str] = mapped_column(String(64))
    object_name: Mapped[str | None] = mapped_column(String(255))
    object_icon: Mapped[str | None] = mapped_column(String(2048))
    object_type: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The acting token (or `system`) and its account, for filters; `actor` as rendered.
    actor_id: Mapped[str] = mapped_column(String(64), index=True)
    actor_name: Mapped[str | None] = mapped_column(String(255))
    actor_account_id: Mapped[str | None] = mapped_column(String(16))
    actor: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    type: Mapped[str] = mapped_column(String(16))
    request: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    documents: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    # The account whose trail holds the record (the object's), besides Operations, which
    # sees every record; NULL: Operations only. The tenant scope reads this column alone.
    account_id: Mapped[str | None] = mapped_column(String(16))
    viewers: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc)
    # The webhooks' outbox (webhooks/delivery.py): false until the worker has made the
    # record's deliveries; written with the record, so in the change's transaction.
    fanned_out: Mapped[bool] = mapped_column(Boolean, default=False)


class EventType(Base):
    """The catalog of event keys. The platform's own (`owner` ''), seeded by migration
    0010; a key an integration first records joins the catalog of its own account only, so
    one tenant's event names never show to another."""

    __tablename__ = "audit_event_types"
    __table_args__ = (UniqueConstraint("owner", "key"),)

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # AET-XXXX-XXXX
    key: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    # '' for the platform's events; else the account that first recorded the key.
    owner: Mapped[str] = mapped_column(String(16), default="", server_default="")
