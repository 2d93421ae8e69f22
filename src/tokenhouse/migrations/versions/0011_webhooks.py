"""Audit webhooks (issue 13): the subscriptions, their deliveries, the records' outbox flag
and the webhooks' own events in the catalog.

Records written before this migration are marked fanned out: no webhook existed when they
were made, so none is owed them (and the first worker would otherwise walk the whole trail).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
PENDING = "status = 'Pending'"

EVENTS = [
    ("AET-1000-0301", "platform.audit.webhook.created", "Webhook created",
     "An audit webhook was created."),
    ("AET-1000-0302", "platform.audit.webhook.updated", "Webhook updated",
     "An audit webhook's URL, events or description changed; `documents.changes` tells "
     "what."),
    ("AET-1000-0303", "platform.audit.webhook.enabled", "Webhook enabled",
     "A Disabled audit webhook was enabled."),
    ("AET-1000-0304", "platform.audit.webhook.disabled", "Webhook disabled",
     "An audit webhook was disabled: it receives nothing until enabled."),
    ("AET-1000-0305", "platform.audit.webhook.deleted", "Webhook deleted",
     "An audit webhook was deleted, with its deliveries."),
]


def upgrade() -> None:
    with op.batch_alter_table("audit_records") as batch:
        batch.add_column(sa.Column("fanned_out", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.execute(sa.text("UPDATE audit_records SET fanned_out = :done").bindparams(done=True))
    op.create_index("ix_audit_records_pending", "audit_records", ["timestamp", "id"],
                    postgresql_where=sa.text("NOT fanned_out"),
                    sqlite_where=sa.text("NOT fanned_out"))
    op.create_table(
        "audit_webhooks",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("account_id", sa.String(16), sa.ForeignKey(
            "accounts.id", name="fk_audit_webhooks_account_id_accounts"), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("events", JSON, nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.String(32), nullable=True),
        sa.Column("created_by_name", sa.String(255), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by_id", sa.String(32), nullable=True),
        sa.Column("updated_by_name", sa.String(255), nullable=True),
    )
    op.create_index("ix_audit_webhooks_account_id", "audit_webhooks", ["account_id"])
    op.create_table(
        "audit_webhook_deliveries",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("webhook_id", sa.String(16), sa.ForeignKey(
            "audit_webhooks.id", ondelete="CASCADE",
            name="fk_audit_webhook_deliveries_webhook_id_audit_webhooks"), nullable=False),
        sa.Column("record_id", sa.String(24), sa.ForeignKey(
            "audit_records.id", ondelete="CASCADE",
            name="fk_audit_webhook_deliveries_record_id_audit_records"), nullable=False),
        sa.Column("event", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claim", sa.String(32), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(255), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("webhook_id", "record_id",
                            name="uq_audit_webhook_deliveries_webhook_id_record_id"),
    )
    op.create_index("ix_audit_webhook_deliveries_webhook_id_created_at",
                    "audit_webhook_deliveries",
                    ["webhook_id", sa.text("created_at DESC"), "id"])
    op.create_index("ix_audit_webhook_deliveries_due", "audit_webhook_deliveries",
                    ["next_attempt_at"], postgresql_where=sa.text(PENDING),
                    sqlite_where=sa.text(PENDING))
    op.create_index("ix_audit_webhook_deliveries_record_id", "audit_webhook_deliveries",
                    ["record_id"])
    event_types = sa.table("audit_event_types", sa.column("id", sa.String),
                           sa.column("key", sa.String), sa.column("name", sa.String),
                           sa.column("description", sa.Text), sa.column("owner", sa.String))
    op.bulk_insert(event_types, [{"id": id_, "key": key, "name": name,
                                  "description": description, "owner": ""}
                                 for id_, key, name, description in EVENTS])


def downgrade() -> None:
    event_types = sa.table("audit_event_types", sa.column("id", sa.String))
    op.execute(event_types.delete().where(event_types.c.id.in_([e[0] for e in EVENTS])))
    op.drop_table("audit_webhook_deliveries")
    op.drop_table("audit_webhooks")
    op.drop_index("ix_audit_records_pending", table_name="audit_records")
    with op.batch_alter_table("audit_records") as batch:
        batch.drop_column("fanned_out")
