"""auth_changes.change as text: besides invalidations it now carries `seen` notes (batches of
lastAccessAt values, up to 7000 characters) between processes sharing a SQLite file.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("auth_changes") as table:
        table.alter_column("change", type_=sa.Text(), existing_type=sa.String(length=64),
                           existing_nullable=False)


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM auth_changes WHERE change LIKE 'seen:%'"))
    with op.batch_alter_table("auth_changes") as table:
        table.alter_column("change", type_=sa.String(length=64), existing_type=sa.Text(),
                           existing_nullable=False)
