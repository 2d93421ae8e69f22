"""auth_changes.id with AUTOINCREMENT on SQLite: ids never go back.

Without it SQLite gives a new row the largest id in the table plus one, so once the clean-up
had emptied the table new announcements restarted at 1 while every poller waited for ids
above the old maximum (a disable could miss the other processes for minutes). The table is
rebuilt (SQLite cannot add AUTOINCREMENT in place); the rows keep their ids, and the
sequence starts above the largest of them. PostgreSQL announces with NOTIFY and its id is a
sequence already: nothing to do there.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("auth_changes", recreate="always",
                              table_kwargs={"sqlite_autoincrement": autoincrement}):
        pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
