"""api_tokens.secret_hash: a plain index instead of a UNIQUE constraint.

PostgreSQL reports a unique violation with the clashing key in its DETAIL ("Key
(secret_hash)=(...) already exists"), and its server log keeps that line: a clash wrote a
secret hash into the log. Uniqueness is the service's to check (a new secret is 256 random
bits; an import refuses a hash already in the store or twice in its file, before writing),
and authentication binds the token id with the hash, so two rows can never be confused. The
index keeps those look-ups fast.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite cannot drop a constraint in place: the batch rebuilds the table.
    with op.batch_alter_table("api_tokens") as table:
        table.create_index("ix_api_tokens_secret_hash", ["secret_hash"])
        table.drop_constraint("uq_api_tokens_secret_hash", type_="unique")


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as table:
        table.create_unique_constraint("uq_api_tokens_secret_hash", ["secret_hash"])
        table.drop_index("ix_api_tokens_secret_hash")
