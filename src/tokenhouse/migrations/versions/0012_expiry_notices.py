"""api_tokens.expiry_notice: how far the expiry job has told of a token's expiry (issue 13);
job_leases: which process runs a job, and when a refused use was last recorded.

`expiry_notice` is 0 for every token at first (none given yet): a token expiring within 30
days gets its due notice at the job's first round. The partial index holds only the Active
tokens still owed a notice, so a round never reads the (growing) set of tokens whose expiry
was recorded, nor Disabled or Deleted ones.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# As tokens/expiry.py queries it, word for word: the planners use a partial index only for
# a query whose condition states the index's own.
OWED = "status = 'Active' AND expiry_notice < 4"


def upgrade() -> None:
    op.add_column("api_tokens", sa.Column("expiry_notice", sa.SmallInteger(), nullable=False,
                                          server_default="0"))
    op.create_index("ix_api_tokens_expiry_owed", "api_tokens", ["expires_at", "id"],
                    postgresql_where=sa.text(OWED), sqlite_where=sa.text(OWED))
    op.create_table(
        "job_leases",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_job_leases"),
    )


def downgrade() -> None:
    op.drop_table("job_leases")
    op.drop_index("ix_api_tokens_expiry_owed", table_name="api_tokens")
    # Plain DROP COLUMN (SQLite 3.35+), not a batch rebuild (see 0008).
    op.drop_column("api_tokens", "expiry_notice")
