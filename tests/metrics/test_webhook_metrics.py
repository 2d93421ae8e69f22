"""Webhook deliveries in GET /metrics (issue 12), on both databases: each attempt counted by
its outcome, with a real receiver (the fixtures of tests/webhooks/test_delivery.py)."""

from datetime import UTC, datetime

import time_machine

from tests.metrics.test_metrics import delta, scrape
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_delivery import (  # noqa: F401 - fixtures
    CREATED,
    Served,
    _status,
    auditor,
    database,
    deliveries,
    new_token,
    receiver,
    served,
    subscribe,
    until,
)

ATTEMPTS = "tokenhouse_webhook_deliveries_total"


async def test_each_attempt_is_counted_by_its_outcome(served: Served,  # noqa: F811
                                                      receiver: Receiver) -> None:  # noqa: F811
    client = served.client
    tenant = await auditor(served.factory)
    webhook = await subscribe(client, tenant, receiver.url(), [CREATED])
    _, _, before = await scrape(client)
    receiver.answer(503)
    with time_machine.travel(datetime.now(UTC), tick=True) as clock:
        await new_token(client, tenant, tenant.account_id)

        async def tried() -> bool:
            found = await deliveries(client, tenant, webhook["id"])
            return bool(found) and found[0]["attempts"] == 1

        await until(tried, what="the first attempt")
        _, _, between = await scrape(client)
        assert delta(before, between, ATTEMPTS, outcome="retrying") == 1
        assert delta(before, between, ATTEMPTS, outcome="delivered") == 0
        clock.shift(5)  # the first retry
        await until(lambda: _status(client, tenant, webhook["id"], "Delivered"),
                    what="Delivered")
    text, _, after = await scrape(client)
    assert delta(before, after, ATTEMPTS, outcome="retrying") == 1
    assert delta(before, after, ATTEMPTS, outcome="delivered") == 1
    assert delta(before, after, ATTEMPTS, outcome="failed") == 0
    assert webhook["id"] not in text and receiver.url() not in text
