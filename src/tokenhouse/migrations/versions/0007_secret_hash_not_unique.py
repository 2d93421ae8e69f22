"""api_tokens.secret_hash: a plain index instead of a UNIQUE constraint.

PostgreSQL reports a unique violation with the clashing key in its DETAIL ("Key
(secret_hash)=(...) already exists"), and its server log keeps that line: a clash wrote a
secret hash into the log. Uniqueness is the service's to check (a new secret is 256 random
bits; an import refuses a hash already in the store or twice in its file, before writing),
and authentication binds the token id with the hash, so two rows can never be confused. The
index keeps those look-ups fast.

SQLite cannot drop a constraint in place: the table is rebuilt (copied, dropped, renamed).
With foreign keys on (as every connection of the service has them), dropping api_tokens
deletes its rows first, and that cascades to api_token_modules: the links are kept aside and
put back. The rebuild also loses the DESC of the list index: it is made again as 0004 made it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

LIST_INDEX = "ix_api_tokens_account_id_status_created_at"


def _rebuild(change: str) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("CREATE TEMP TABLE th_links_0007 AS SELECT token_id, module_id "
                   "FROM api_token_modules")
    with op.batch_alter_table("api_tokens") as table:
        if change == "upgrade":
            table.create_index("ix_api_tokens_secret_hash", ["secret_hash"])
            table.drop_constraint("uq_api_tokens_secret_hash", type_="unique")
        else:
            table.create_unique_constraint("uq_api_tokens_secret_hash", ["secret_hash"])
            table.drop_index("ix_api_tokens_secret_hash")
    if sqlite:
        op.execute("INSERT INTO api_token_modules (token_id, module_id) "
                   "SELECT token_id, module_id FROM th_links_0007 WHERE NOT EXISTS ("
                   "SELECT 1 FROM api_token_modules l WHERE l.token_id = th_links_0007.token_id "
                   "AND l.module_id = th_links_0007.module_id)")
        op.execute("DROP TABLE th_links_0007")
        op.drop_index(LIST_INDEX, table_name="api_tokens")
        op.create_index(LIST_INDEX, "api_tokens",
                        ["account_id", "status", sa.text("created_at DESC"), "id"])


def upgrade() -> None:
    _rebuild("upgrade")


def downgrade() -> None:
    _rebuild("downgrade")
