"""The audit trail (issue 13): audit records, the catalog of event types with the
platform's own events, and the Audit module opened to every account type.

Tokens do not gain the Audit module: a token holds the modules it was given, and one that
needs the trail is given it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
AUDIT_MODULE = "MOD-8906"

# (id, key, name, description): the events tokenhouse records itself.
EVENTS = [
    ("AET-1000-0001", "platform.accounts.apiToken.created", "API token created",
     "An API token was created."),
    ("AET-1000-0002", "platform.accounts.apiToken.updated", "API token updated",
     "An API token's name, description, icon, modules, expiry, IP allowlist or rate limit "
     "changed; `documents.changes` tells what."),
    ("AET-1000-0003", "platform.accounts.apiToken.enabled", "API token enabled",
     "A Disabled API token was enabled."),
    ("AET-1000-0004", "platform.accounts.apiToken.disabled", "API token disabled",
     "An API token was disabled."),
    ("AET-1000-0005", "platform.accounts.apiToken.deleted", "API token deleted",
     "An API token was deleted (final)."),
    ("AET-1000-0006", "platform.accounts.apiToken.rotated", "API token rotated",
     "An API token was given a new secret."),
    ("AET-1000-0007", "platform.accounts.apiToken.previousSecretRevoked",
     "Previous secret revoked", "The grace window of a rotated API token's old secret ended "
     "early."),
    ("AET-1000-0008", "platform.accounts.apiToken.leaked", "API token secret reported leaked",
     "A secret of the API token was reported as leaked and stopped working."),
    ("AET-1000-0009", "platform.accounts.apiToken.expiring", "API token expiring",
     "An API token expires in 30, 7 or 1 days."),
    ("AET-1000-0010", "platform.accounts.apiToken.expired", "API token expired",
     "An API token's expiry passed."),
    ("AET-1000-0011", "platform.accounts.apiToken.refused", "API token use refused",
     "A request with a valid secret was refused (an address outside the allowlist, or an "
     "expired token). Private: Operations only."),
    ("AET-1000-0101", "platform.accounts.account.created", "Account created",
     "An account was created."),
    ("AET-1000-0102", "platform.accounts.account.updated", "Account updated",
     "An account changed; `documents.changes` tells what."),
    ("AET-1000-0103", "platform.accounts.account.enabled", "Account enabled",
     "An account was enabled."),
    ("AET-1000-0104", "platform.accounts.account.disabled", "Account disabled",
     "An account was disabled: none of its tokens authenticates."),
    ("AET-1000-0201", "platform.accounts.import.completed", "Import completed",
     "Accounts and tokens were imported from a file."),
]


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("event", sa.String(255), nullable=False),
        sa.Column("summary", sa.String(1000), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("object_id", sa.String(64), nullable=False),
        sa.Column("object_name", sa.String(255), nullable=True),
        sa.Column("object_icon", sa.String(2048), nullable=True),
        sa.Column("object_type", sa.String(64), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.String(64), nullable=False),
        sa.Column("actor_name", sa.String(255), nullable=True),
        sa.Column("actor_account_id", sa.String(16), nullable=True),
        sa.Column("actor", JSON, nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("request", JSON, nullable=True),
        sa.Column("documents", JSON, nullable=True),
        sa.Column("account_id", sa.String(16), nullable=True),
        sa.Column("viewers", JSON, nullable=False),
    )
    op.create_index("ix_audit_records_event", "audit_records", ["event"])
    op.create_index("ix_audit_records_actor_id", "audit_records", ["actor_id"])
    op.create_index("ix_audit_records_account_id_timestamp", "audit_records",
                    ["account_id", sa.text("timestamp DESC"), "id"])
    op.create_index("ix_audit_records_timestamp", "audit_records",
                    [sa.text("timestamp DESC"), "id"])
    op.create_index("ix_audit_records_object_id_timestamp", "audit_records",
                    ["object_id", sa.text("timestamp DESC")])
    table = op.create_table(
        "audit_event_types",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(16), nullable=False, server_default=""),
        sa.UniqueConstraint("owner", "key", name="uq_audit_event_types_owner_key"),
    )
    op.bulk_insert(table, [{"id": id_, "key": key, "name": name, "description": description,
                            "owner": ""} for id_, key, name, description in EVENTS])
    _audit_module_for(["Client", "Vendor", "Operations"])


def _audit_module_for(types: list[str]) -> None:
    modules = sa.table("modules", sa.column("id", sa.String),
                       sa.column("account_types", sa.JSON), sa.column("settings", sa.JSON))
    op.execute(modules.update().where(modules.c.id == AUDIT_MODULE).values(
        account_types=types,
        settings={"sharedAccount": False, "configurable": False, "default": False,
                  "paid": True, "type": types}))


def downgrade() -> None:
    _audit_module_for(["Operations"])
    op.drop_table("audit_event_types")
    op.drop_table("audit_records")
