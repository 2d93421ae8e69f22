"""The delivery worker's reads use the partial indexes on PostgreSQL (EXPLAIN of the real
statements): every process runs them every poll interval, and the trail and the deliveries
only grow, so a scan of either would grow with them. The tables hold enough rows (and fresh
statistics) for the planner to choose as it would in production."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, text

from tests.tokens.test_query_plans import explain
from tokenhouse.models import Account, AuditRecord, Delivery, Webhook
from tokenhouse.webhooks.repository import due_deliveries, fair_due, pending_records

RECORDS = 20_000
PENDING = 5


@pytest.fixture
async def crowded(client, app, backend):
    """20,000 records, 5 of them not fanned out, each with a delivery (5 Pending)."""
    if backend != "postgresql":
        pytest.skip("query plans are checked on PostgreSQL, the production database")
    start = datetime(2024, 1, 1, tzinfo=UTC)
    account = {"id": "ACC-0001-0000", "type": "Client", "status": "Active", "name": "A",
               "revision": 1, "created_at": start}
    webhook = {"id": "WHK-0001-0000", "account_id": account["id"], "status": "Enabled",
               "url": "https://hooks.example.invalid/plans", "events": ["extension.*"],
               "salt": "00", "revision": 1, "created_at": start}
    records = [{"id": f"AUD-0000-0000-{n // 10_000:04d}-{n % 10_000:04d}",
                "event": "extension.plans.test", "summary": "s", "details": "d",
                "object_id": "OBJ-1", "object_type": "Object",
                "timestamp": start + timedelta(seconds=n), "actor_id": "system",
                "actor": {"id": "system"}, "type": "Public", "viewers": [],
                "account_id": account["id"], "fanned_out": n < RECORDS - PENDING}
               for n in range(RECORDS)]
    deliveries = [{"id": f"WHD-0000-0000-{n // 10_000:04d}-{n % 10_000:04d}",
                   "webhook_id": webhook["id"], "record_id": record["id"],
                   "event": record["event"], "attempts": 1, "created_at": record["timestamp"],
                   "status": "Delivered" if record["fanned_out"] else "Pending",
                   "next_attempt_at": None if record["fanned_out"] else record["timestamp"]}
                  for n, record in enumerate(records)]
    async with app.state.runtime.sessions() as session:
        connection = await session.connection()
        await connection.execute(insert(Account.__table__), [account])
        await connection.execute(insert(Webhook.__table__), [webhook])
        await connection.execute(insert(AuditRecord.__table__), records)
        await connection.execute(insert(Delivery.__table__), deliveries)
        await session.commit()
    async with app.state.runtime.engine.connect() as connection:
        for table in ("audit_records", "audit_webhook_deliveries", "audit_webhooks"):
            await connection.execute(text(f"ANALYZE {table}"))
        await connection.commit()


async def test_the_worker_reads_only_what_waits(crowded, app):
    now = datetime.now(UTC)
    for statement, index in ((pending_records(200), "ix_audit_records_pending"),
                             (pending_records(1), "ix_audit_records_pending"),
                             (due_deliveries(now, 50), "ix_audit_webhook_deliveries_due"),
                             (due_deliveries(now, 1), "ix_audit_webhook_deliveries_due"),
                             (fair_due(now, 50, 2, {}), "ix_audit_webhook_deliveries_due"),
                             (fair_due(now, 50, 2, {"WHK-0001-0000": 1}),
                              "ix_audit_webhook_deliveries_due")):
        plan = await explain(app, statement)
        assert index in plan, plan
        assert "Seq Scan on audit_records" not in plan, plan
        assert "Seq Scan on audit_webhook_deliveries" not in plan, plan
