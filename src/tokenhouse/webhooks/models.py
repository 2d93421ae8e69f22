"""The webhooks' tables: the subscriptions, and one delivery per record and webhook.

The outbox itself is the audit trail: a record is written with `fanned_out` false in the
change's own transaction (audit/models.py), and the delivery worker turns it into delivery
rows (webhooks/delivery.py). A delivery row is then the unit that is claimed, attempted,
retried and shown.
"""

import enum
from datetime import datetime

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from tokenhouse.kit.audit import Audited
from tokenhouse.kit.db import Base, JsonDoc


class WebhookStatus(enum.StrEnum):
    ENABLED = "Enabled"
    DISABLED = "Disabled"


class DeliveryStatus(enum.StrEnum):
    PENDING = "Pending"
    DELIVERED = "Delivered"
    FAILED = "Failed"


class Webhook(Audited, Base):
    __tablename__ = "audit_webhooks"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # WHK-XXXX-XXXX
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(JsonDoc)
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=WebhookStatus.ENABLED)
    # The signing secret is derived from the server's key and this random salt
    # (webhooks/signing.py); the secret itself is stored nowhere.
    salt: Mapped[str] = mapped_column(String(64))


class Delivery(Base):
    """One record to one webhook: attempted until its receiver answers 2xx, or given up."""

    __tablename__ = "audit_webhook_deliveries"
    __table_args__ = (
        # At most one delivery of a record per webhook, whoever fans it out.
        UniqueConstraint("webhook_id", "record_id"),
        # A webhook's deliveries, newest first (GET .../deliveries).
        Index("ix_audit_webhook_deliveries_webhook_id_created_at", "webhook_id",
              text("created_at DESC"), "id"),
        # The deliveries that are due: Pending ones only (the rest is history).
        Index("ix_audit_webhook_deliveries_due", "next_attempt_at",
              postgresql_where=text("status = 'Pending'"),
              sqlite_where=text("status = 'Pending'")),
    )

    id: Mapped[str] = mapped_column(String(24), primary_key=True)  # WHD-XXXX-XXXX-XXXX-XXXX
    webhook_id: Mapped[str] = mapped_column(
        ForeignKey("audit_webhooks.id", ondelete="CASCADE"))
    record_id: Mapped[str] = mapped_column(
        ForeignKey("audit_records.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # When it is next due. While an attempt is in flight it is the end of the claim's lease:
    # a process that dies mid-attempt leaves it due again then, for another to retry.
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The claim that holds it (a random value per claim): only that claim writes the outcome.
    claim: Mapped[str | None] = mapped_column(String(32))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(255))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
