"""Acceptance: `mpt-api-client`'s Audit API (`client.audit.records`, `client.audit.
event_types`), unmodified, against a live `tokenhouse serve`, as its own e2e tests call it:
as a Vendor token (create, get, filter by object.id, iterate, render, select; event types
get, filter, 404)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from mpt_api_client import MPTClient, RQLQuery
from mpt_api_client.exceptions import MPTAPIError

from tests.databases import BACKENDS
from tests.helpers import ACCOUNTS
from tests.live_server import LiveServer, serving
from tests.mpt import clients

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with serving(request.param, tmp_path_factory.mktemp(f"audit-{request.param}")) as live:
        yield live


@pytest.fixture(scope="module")
def vendor(server: LiveServer) -> Iterator[tuple[MPTClient, dict[str, Any]]]:
    """A Vendor account and a client of its token holding Audit and Access Management."""
    with server.client(server.admin_secret) as http:
        account = http.post(ACCOUNTS, json={"name": "Audit Vendor", "type": "Vendor"}).json()
        modules = {m["name"]: m["id"] for m in http.get(
            "/public/v1/accounts/modules?limit=100").json()["data"]}
        token = http.post("/public/v1/accounts/api-tokens", json={
            "name": "audit e2e", "account": {"id": account["id"]},
            "modules": [{"id": modules["Audit"]}, {"id": modules["Access Management"]}]})
        assert token.status_code == 201, token.text
    with clients(server.url) as make:
        yield make(token.json()["token"]), account


def record_data(account_id: str) -> dict[str, Any]:
    """What the client's e2e tests create."""
    return {"event": "extensions.e2e.test",
            "object": {"id": account_id, "name": "e2e test account"},
            "details": "e2e test details for {{object}}", "summary": "e2e test summary",
            "actor": {"type": "system", "id": "system"}, "payload": {"key": "value"}}


def test_records_create_get_filter_iterate(vendor: tuple[MPTClient, dict[str, Any]]) -> None:
    client, account = vendor
    records = client.audit.records
    created = records.create(record_data(account["id"]))
    assert created.event == "extensions.e2e.test"
    assert created.object.id == account["id"]
    got = records.get(created.id)
    assert got.id == created.id
    found = list(records.filter(RQLQuery(object__id=account["id"])).iterate())
    assert found and all(record.object.id == account["id"] for record in found)
    # The account's own trail holds its creation and its token's, newest first.
    assert found[0].id == created.id


def test_records_render_and_select(vendor: tuple[MPTClient, dict[str, Any]]) -> None:
    client, account = vendor
    records = client.audit.records
    created = records.create(record_data(account["id"]))
    rendered = list(records.filter(RQLQuery(object__id=account["id"]))
                    .options(render=True).iterate())
    assert rendered
    for record in rendered:
        assert "{{" not in record.details and "}}" not in record.details
    one = records.options(render=True).get(created.id)
    assert one.id == created.id and "{{" not in one.details
    selected = records.get(created.id, select=["object", "actor"])
    assert selected.id == created.id and selected.object.id == account["id"]
    assert selected.actor.id.startswith("TKN-")
    both = records.options(render=True).get(created.id, select=["object", "actor", "details"])
    assert both.id == created.id and "{{" not in both.details


def test_record_not_found(vendor: tuple[MPTClient, dict[str, Any]]) -> None:
    client, _ = vendor
    with pytest.raises(MPTAPIError, match=r"404 Not Found"):
        client.audit.records.get("REC-000-000-000")


def test_event_types_get_filter_and_404(vendor: tuple[MPTClient, dict[str, Any]]) -> None:
    client, _ = vendor
    event_types = client.audit.event_types
    first = next(event_types.iterate())
    got = event_types.get(first.id)
    assert (got.id, got.key) == (first.id, first.key)
    filtered = list(event_types.filter(RQLQuery(id=first.id)).iterate())
    assert [event_type.id for event_type in filtered] == [first.id]
    with pytest.raises(MPTAPIError, match=r"404 Not Found"):
        event_types.get("EVT-000-000")


def test_event_types_are_changed_by_operations_only(
        server: LiveServer, vendor: tuple[MPTClient, dict[str, Any]]) -> None:
    """The issue's rule (the client's own e2e updates as a Vendor: 403 here)."""
    client, _ = vendor
    first = next(client.audit.event_types.iterate())
    with pytest.raises(MPTAPIError, match=r"403 Forbidden"):
        client.audit.event_types.update(first.id, {"description": "Vendor's"})
    with clients(server.url) as make:
        admin: Callable[[str], MPTClient] = make
        changed = admin(server.admin_secret).audit.event_types.update(
            first.id, {"description": "Updated description for e2e testing"})
    assert changed.id == first.id
    assert changed.description == "Updated description for e2e testing"
