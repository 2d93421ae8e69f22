"""auth_changes (how processes sharing a SQLite file tell each other to drop cached
credentials), and the index behind a tenant's token list ordered by creation.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("change", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_changes")),
    )
    op.create_index(op.f("ix_auth_changes_at"), "auth_changes", ["at"])
    # WHERE account_id = ? AND status ... ORDER BY created_at DESC, id: the hot list query.
    op.create_index("ix_api_tokens_account_id_status_created_at", "api_tokens",
                    ["account_id", "status", sa.text("created_at DESC"), "id"])


def downgrade() -> None:
    op.drop_index("ix_api_tokens_account_id_status_created_at", table_name="api_tokens")
    op.drop_index(op.f("ix_auth_changes_at"), table_name="auth_changes")
    op.drop_table("auth_changes")
