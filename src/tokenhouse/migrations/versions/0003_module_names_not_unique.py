"""Module names are not unique: the catalog is keyed by id, and an import may upsert entries
(with their own ids) whose names match the built-in ones.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("modules") as batch:
        batch.drop_constraint("uq_modules_name", type_="unique")


def downgrade() -> None:
    with op.batch_alter_table("modules") as batch:
        batch.create_unique_constraint("uq_modules_name", ["name"])
