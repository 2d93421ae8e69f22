"""api_tokens: expiry, when the secret was last rotated, the previous secret of a rotation
and its grace window, an IP allowlist, and the last client addresses (issue 11).

Columns added and dropped in place (no table rebuild on SQLite): every new column is NULL or
has a server default, so existing tokens keep working unchanged (no expiry, no allowlist).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

COLUMNS: tuple[sa.Column[Any], ...] = (
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("previous_secret_hash", sa.String(length=64), nullable=True),
    sa.Column("previous_expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("previous_last_access_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("retire_previous_on_first_use", sa.Boolean(), nullable=False,
              server_default=sa.false()),
    sa.Column("ip_allowlist", sa.Text(), nullable=True),
    sa.Column("last_access_ips", sa.Text(), nullable=True),
)
INDEXES = ("expires_at", "previous_secret_hash")


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("api_tokens", column)
    for name in INDEXES:
        op.create_index(f"ix_api_tokens_{name}", "api_tokens", [name])


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(f"ix_api_tokens_{name}", table_name="api_tokens")
    # Plain DROP COLUMN (SQLite 3.35+), not a batch rebuild: a rebuild drops api_tokens,
    # which cascades to the module links (see 0007).
    for column in reversed(COLUMNS):
        op.drop_column("api_tokens", column.name)
