"""GET /metrics (issue 12) over HTTP, on SQLite and PostgreSQL: the series, parsed by
prometheus_client's own parser, after real requests; what no label may hold; the switch.

The metrics are process-wide (one registry per process, as in production), so each test
reads the change its own requests made: a scrape before, a scrape after."""

import asyncio
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import time_machine
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import Factory, Issued
from tests.helpers import TOKENS, problem
from tokenhouse.app import create_app
from tokenhouse.kit.settings import Settings

TOKEN_ROUTE = f"{TOKENS}/{{token_id}}"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """Family name -> type, and (sample name, labels) -> value."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return types, samples


async def scrape(client: httpx.AsyncClient) -> tuple[str, dict[str, str], Samples]:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return (response.text, *parse(response.text))


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def requests(route: str, method: str, status: int) -> dict[str, str]:
    return {"route": route, "method": method, "status": str(status)}


async def test_series_after_requests(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.admin()
    _, _, before = await scrape(client)
    for _ in range(2):  # the first reads the database, the second is served from memory
        assert (await client.get(f"{TOKENS}/{admin.id}", headers=admin.headers)
                ).status_code == 200
    problem(await client.get(f"{TOKENS}/{admin.id}",
                             headers={"Authorization": "Bearer idt:TKN-0000-0000:wrong"}), 401)
    problem(await client.get(f"/no/such/path/{admin.id}"), 404)
    text, types, after = await scrape(client)

    assert types == {
        "tokenhouse_http_requests": "counter",
        "tokenhouse_http_request_duration_seconds": "histogram",
        "tokenhouse_authentications": "counter",
        "tokenhouse_cache_hits": "counter",
        "tokenhouse_cache_misses": "counter",
        "tokenhouse_cache_entries": "gauge",
        "tokenhouse_last_access_flush_tokens": "histogram",
        "tokenhouse_last_access_flush_failures": "counter",
        "tokenhouse_webhook_deliveries": "counter",
        "tokenhouse_invalidation_listening": "gauge",
    }
    total = "tokenhouse_http_requests_total"
    assert delta(before, after, total, **requests(TOKEN_ROUTE, "GET", 200)) == 2
    assert delta(before, after, total, **requests(TOKEN_ROUTE, "GET", 401)) == 1
    assert delta(before, after, total, **requests("unmatched", "GET", 404)) == 1
    # The scrape before this one is counted once it has answered.
    assert value(after, total, **requests("/metrics", "GET", 200)) >= 1
    # Latency: three requests of the route, in cumulative buckets that end at the count.
    duration = "tokenhouse_http_request_duration_seconds"
    assert delta(before, after, f"{duration}_count", route=TOKEN_ROUTE) == 3
    assert delta(before, after, f"{duration}_sum", route=TOKEN_ROUTE) > 0
    buckets = sorted((float(dict(labels)["le"]), count) for (name, labels), count
                     in after.items() if name == f"{duration}_bucket"
                     and dict(labels)["route"] == TOKEN_ROUTE)
    counts = [count for _, count in buckets]
    assert counts == sorted(counts) and buckets[-1] == (float("inf"),
                                                        value(after, f"{duration}_count",
                                                              route=TOKEN_ROUTE))
    outcomes = "tokenhouse_authentications_total"
    assert delta(before, after, outcomes, outcome="valid") == 2
    assert delta(before, after, outcomes, outcome="invalid") == 1
    for outcome in ("disabled", "expired", "refused_network", "rate_limited"):
        assert (outcomes, frozenset({("outcome", outcome)})) in after  # shown from the start
    assert delta(before, after, "tokenhouse_cache_hits_total", cache="credentials") >= 1
    assert delta(before, after, "tokenhouse_cache_hits_total", cache="token_views") >= 1
    assert delta(before, after, "tokenhouse_cache_misses_total", cache="credentials") >= 1
    assert value(after, "tokenhouse_cache_entries", cache="credentials") >= 1
    assert value(after, "tokenhouse_invalidation_listening") == 1
    assert_no_secrets(text, admin)


def assert_no_secrets(text: str, *tokens: Issued) -> None:
    """No token id, secret, account id or client address anywhere in the document."""
    for token in tokens:
        for part in (token.id, token.secret, token.account_id):
            assert part not in text
    assert "TKN-" not in text and "ACC-" not in text and "idt:" not in text
    assert "127.0.0.1" not in text


async def test_a_flush_is_counted_with_its_size(client: httpx.AsyncClient,
                                                factory: Factory) -> None:
    admin = await factory.admin()
    _, _, before = await scrape(client)
    assert (await client.get(f"{TOKENS}/{admin.id}", headers=admin.headers)).status_code == 200
    deadline = time.monotonic() + 5  # the tests' flush interval is 0.2 s
    while True:
        _, _, after = await scrape(client)
        flushed = delta(before, after, "tokenhouse_last_access_flush_tokens_count")
        if flushed or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert flushed >= 1
    assert delta(before, after, "tokenhouse_last_access_flush_tokens_sum") >= 1
    assert delta(before, after, "tokenhouse_last_access_flush_tokens_bucket", le="+Inf") >= 1


async def test_each_refusal_is_counted_by_its_outcome(client: httpx.AsyncClient,
                                                      factory: Factory) -> None:
    admin = await factory.admin()
    tenant = await factory.tenant()
    disabled = await factory.token(tenant.account_id, status="Disabled")
    deleted = await factory.token(tenant.account_id, status="Deleted")
    closed_account = (await factory.account("Client"))["id"]
    of_disabled_account = await factory.token(closed_account)
    assert (await client.post(f"/public/v1/accounts/accounts/{closed_account}/disable",
                              headers=admin.headers)).status_code == 200
    elsewhere = await allowlisted(client, admin, tenant.account_id, ["10.0.0.0/8"])
    expiring = await allowlisted(client, admin, tenant.account_id, None,
                                 expiresAt=stamp(datetime.now(UTC) + timedelta(hours=1)))
    _, _, before = await scrape(client)
    for token in (disabled, deleted, of_disabled_account):
        problem(await client.get(TOKENS, headers=token.headers), 401)
    problem(await client.get(TOKENS, headers=bearer(elsewhere["token"])), 403)
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=2), tick=True):
        problem(await client.get(TOKENS, headers=bearer(expiring["token"])), 401)
    problem(await client.get(TOKENS, headers=bearer("not-a-token")), 401)
    text, _, after = await scrape(client)
    outcomes = "tokenhouse_authentications_total"
    counted = {outcome: delta(before, after, outcomes, outcome=outcome)
               for outcome in ("valid", "invalid", "disabled", "expired", "refused_network")}
    # Deleted and malformed: invalid; a Disabled token and a Disabled account's: disabled.
    assert counted == {"valid": 0, "invalid": 2, "disabled": 2, "expired": 1,
                       "refused_network": 1}
    assert_no_secrets(text, admin, tenant, disabled, deleted, of_disabled_account)
    for made in (elsewhere, expiring):
        assert made["id"] not in text and made["token"] not in text
    assert "10.0.0.0" not in text


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


async def allowlisted(client: httpx.AsyncClient, admin: Issued, account_id: str,
                      allowlist: Iterable[str] | None, **fields: Any) -> dict[str, Any]:
    """A token made over HTTP (with its secret), with `allowlist` and `fields`."""
    modules = {m["name"]: m["id"] for m in (await client.get(
        "/public/v1/accounts/modules?limit=100", headers=admin.headers)).json()["data"]}
    response = await client.post(TOKENS, headers=admin.headers, json={
        "name": "metrics", "account": {"id": account_id},
        "modules": [{"id": modules["Access Management"]}],
        "ipAllowlist": list(allowlist) if allowlist is not None else None, **fields})
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


async def test_documented_outside_the_public_api(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/public/v1/accounts/openapi.json")).json()["paths"]
    operation = paths["/metrics"]["get"]
    assert "text/plain" in operation["responses"]["200"]["content"]
    assert "security" not in operation  # as the probes: no credential


async def test_turned_off_it_is_a_404(settings: Settings) -> None:
    app: FastAPI = create_app(settings.model_copy(update={"metrics": False}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tokenhouse.test") as c:
        problem(await c.get("/metrics"), 404)
        assert "/metrics" not in (await c.get("/public/v1/accounts/openapi.json")).json()[
            "paths"]


def test_the_setting_reads_off(monkeypatch: Any) -> None:
    monkeypatch.setenv("TOKENHOUSE_METRICS", "off")
    assert Settings().metrics is False
    monkeypatch.setenv("TOKENHOUSE_METRICS", "on")
    assert Settings().metrics is True
