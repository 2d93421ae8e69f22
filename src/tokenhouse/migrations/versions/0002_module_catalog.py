"""The module catalog: the platform features a token may be allowed to use.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ALL = ["Client", "Vendor", "Operations"]
BUYERS = {"group.buyers": ["selected", "all"]}

# (id, name, description, account types, enabled by default, configurable, paid, filters)
CATALOG = [
    ("MOD-1732", "Access Management",
     "Users, user groups and API tokens of the account.", ALL, True, False, False, {}),
    ("MOD-2846", "Account Management",
     "Account details, addresses and, for Operations, every account of the platform.",
     ALL, True, False, False, {}),
    ("MOD-3419", "Marketplace",
     "Browse the catalog and place orders for the account's buyers.",
     ["Client", "Operations"], True, True, False, BUYERS),
    ("MOD-4073", "Catalog Management",
     "Products, items, price lists and listings.", ["Vendor", "Operations"],
     True, False, False, {}),
    ("MOD-4588", "Commerce",
     "Orders, agreements, subscriptions and assets.", ALL, True, True, False, BUYERS),
    ("MOD-5261", "Billing",
     "Statements, invoices, journals and credit memos.", ALL, False, True, False, BUYERS),
    ("MOD-5907", "Helpdesk",
     "Support cases and queues.", ALL, True, False, False, {}),
    ("MOD-6134", "Program Management",
     "Programs, enrollments and certificates.", ["Vendor", "Operations"],
     False, True, False, {}),
    ("MOD-6650", "Spotlight",
     "Insights and recommended actions on the account's objects.", ["Client", "Operations"],
     True, False, False, {}),
    ("MOD-7281", "Integration",
     "Extensions, webhooks and the events they receive.", ["Vendor", "Operations"],
     False, True, False, {}),
    ("MOD-7815", "Notifications",
     "Message categories, subscribers and batches.", ALL, True, True, False, {}),
    ("MOD-8342", "Exchange",
     "Currency exchange rates and curves.", ["Operations"], False, False, False, {}),
    ("MOD-8906", "Audit",
     "The platform's audit trail of every change.", ["Operations"], False, False, True, {}),
]


def _table() -> sa.TableClause:
    return sa.table(
        "modules",
        sa.column("id", sa.String), sa.column("name", sa.String),
        sa.column("description", sa.Text), sa.column("account_types", sa.JSON),
        sa.column("is_enabled_by_default", sa.Boolean),
        sa.column("is_configurable", sa.Boolean), sa.column("paid", sa.Boolean),
        sa.column("settings", sa.JSON), sa.column("filters", sa.JSON),
        sa.column("revision", sa.Integer), sa.column("created_at", sa.DateTime(timezone=True)),
    )


def upgrade() -> None:
    now = datetime(2026, 11, 28, tzinfo=UTC)
    rows = []
    for mod_id, name, description, types, default, configurable, paid, filters in CATALOG:
        rows.append({
            "id": mod_id, "name": name, "description": description, "account_types": types,
            "is_enabled_by_default": default, "is_configurable": configurable, "paid": paid,
            "settings": {"sharedAccount": False, "configurable": configurable,
                         "default": default, "paid": paid, "type": types},
            "filters": filters, "revision": 1, "created_at": now,
        })
    op.bulk_insert(_table(), rows)


def downgrade() -> None:
    table = _table()
    op.execute(table.delete().where(table.c.id.in_([row[0] for row in CATALOG])))
