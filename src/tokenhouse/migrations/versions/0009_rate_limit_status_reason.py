"""api_tokens: a per-token rate limit, and why a token was disabled (issue 12).

Columns added and dropped in place, as in 0008: all NULL, so existing tokens keep working
unchanged (no limit of their own, no reason).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMNS: tuple[sa.Column[Any], ...] = (
    sa.Column("rate_limit", sa.Integer(), nullable=True),
    sa.Column("rate_limit_window", sa.Integer(), nullable=True),
    sa.Column("status_reason", sa.String(length=32), nullable=True),
)


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("api_tokens", column)


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+), not a batch rebuild (see 0008).
    for column in reversed(COLUMNS):
        op.drop_column("api_tokens", column.name)
