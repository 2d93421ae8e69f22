"""The hot list queries use their indexes on PostgreSQL (EXPLAIN of the real statements).

A tenant's first page of its own tokens, filtered by status and ordered by creation date
newest first, must be an index scan, never a scan of every token. The table holds enough rows
(and fresh statistics) for the planner to choose as it would in production.
"""

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, text

from tokenhouse.auth.actor import Actor
from tokenhouse.kit.repository import scope_params
from tokenhouse.kit.rql import parse_query
from tokenhouse.kit.timeutil import utcnow
from tokenhouse.models import Account, ApiToken
from tokenhouse.tokens.repository import list_statements

ACCOUNTS = 200
TOKENS_EACH = 100


@pytest.fixture
async def crowded(client, app, backend):
    """20,000 tokens over 200 accounts, written in bulk."""
    if backend != "postgresql":
        pytest.skip("query plans are checked on PostgreSQL, the production database")
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rng = random.Random(7)
    accounts = [{"id": f"ACC-{n:04d}-0000", "type": "Client", "status": "Active",
                 "name": f"Account {n}", "revision": 1, "created_at": start}
                for n in range(ACCOUNTS)]
    tokens = [{"id": f"TKN-{a:04d}-{t:04d}", "account_id": f"ACC-{a:04d}-0000",
               "name": f"token {t}", "status": rng.choice(["Active", "Active", "Disabled",
                                                           "Deleted"]),
               "revision": 1, "created_at": start + timedelta(minutes=rng.randrange(500_000))}
              for a in range(ACCOUNTS) for t in range(TOKENS_EACH)]
    async with app.state.runtime.sessions() as session:
        connection = await session.connection()
        await connection.execute(insert(Account.__table__), accounts)
        await connection.execute(insert(ApiToken.__table__), tokens)
        await session.commit()
    async with app.state.runtime.engine.connect() as connection:
        await connection.execute(text("ANALYZE api_tokens"))
        await connection.execute(text("ANALYZE accounts"))
        await connection.commit()
    return Actor(account_id="ACC-0042-0000", account_type="Client",
                 modules=frozenset({"Access Management"}), module_ids=frozenset())


async def explain(app, statement) -> str:
    compiled = statement.compile(dialect=app.state.runtime.engine.dialect,
                                 compile_kwargs={"literal_binds": True})
    async with app.state.runtime.engine.connect() as connection:
        rows = await connection.execute(text(f"EXPLAIN {compiled}"))
        return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize("raw", [
    "eq(status,Active)&order=-audit.created.at&limit=10",
    "order=-audit.created.at",
    "",
])
async def test_a_tenants_first_page_is_an_index_scan(app, crowded, raw):
    statements = list_statements(crowded, parse_query(raw), "postgresql")
    for statement in (statements.rows, statements.count):
        plan = await explain(app, statement.params(scope_params(crowded), now=utcnow()))
        assert "Seq Scan on api_tokens" not in plan, plan
        assert "ix_api_tokens_account_id_status" in plan, plan


async def test_the_newest_first_page_needs_no_sort_of_the_tenants_tokens(app, crowded):
    statements = list_statements(crowded, parse_query(
        "eq(status,Active)&order=-audit.created.at&limit=10"), "postgresql")
    plan = await explain(app, statements.rows.params(scope_params(crowded), now=utcnow()))
    # The index gives the order: the first ten rows are read, not every row then sorted.
    assert "Index Scan using ix_api_tokens_account_id_status_created_at" in plan, plan
    assert "Sort" not in plan, plan


async def test_authentication_looks_up_the_secret_hash_by_index(app, crowded):
    plan = await explain(app, ApiToken.__table__.select().where(
        ApiToken.secret_hash == "0" * 64))
    assert "ix_api_tokens_secret_hash" in plan, plan
