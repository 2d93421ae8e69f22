"""The audit trail on the portal (issue 13): a token's Audit trail tab (its records, newest
first, each with its JSON), Settings > Audit trail (filters by event, object and day, paged by
the server), a token without the Audit module told so in words, and text that integrations
recorded shown as text. Real Chromium, a real server, and the Audit API to set up records.

With PORTAL_DOCS_SCREENSHOTS=1 the Settings page's screenshot also replaces
docs/screenshots/audit.png (as tests/portal/test_readme_screenshots.py does for its own)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from playwright.sync_api import Browser, Locator, expect

from tests.helpers import TOKENS
from tests.live_server import LiveServer
from tests.portal.support import (
    Browsed,
    Portal,
    api,
    create_account,
    create_token,
    unique,
)

pytestmark = pytest.mark.slow

RECORDS = "/public/v1/audit/records"
EVENT = "platform.accounts.apiToken."
LACKS = "This API token lacks the Audit module"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def auditor(live: LiveServer, name: str = "Audit Ltd") -> tuple[dict[str, Any], dict[str, Any]]:
    """A fresh Client account and its token with Access Management and Audit."""
    account = create_account(live, unique(name), "Client")
    token = create_token(live, account["id"], unique("Auditor"),
                         modules=("Access Management", "Audit"))
    return account, token


def post_record(live: LiveServer, secret: str, **body: Any) -> dict[str, Any]:
    with api(live, secret) as client:
        response = client.post(RECORDS, json=body)
    assert response.status_code == 201, response.text
    record: dict[str, Any] = response.json()
    return record


def trail_total(live: LiveServer, secret: str, query: str = "") -> int:
    with api(live, secret) as client:
        response = client.get(f"{RECORDS}?limit=0{query}")
    assert response.status_code == 200, response.text
    return int(response.json()["$meta"]["pagination"]["total"])


def records(portal: Portal) -> Locator:
    return portal.page.locator(".audit-record")


def wait_trail(portal: Portal) -> None:
    """Wait until the list of records has answered."""
    expect(portal.page.locator(".audit-list")).not_to_have_attribute("aria-busy", "true")


def audit_requests(portal: Portal) -> list[str]:
    return [unquote(url) for url in portal.page.evaluate(
        "performance.getEntriesByType('resource').map(e => e.name)") if RECORDS in url]


def test_token_tab_lists_its_records_newest_first(portal: Portal, live: LiveServer) -> None:
    page = portal.page
    _, me = auditor(live)
    token = create_token(live, me["account"]["id"], unique("Payroll export"), secret=me["token"])
    other = create_token(live, me["account"]["id"], unique("Another"), secret=me["token"])
    portal.sign_in(me["token"], hash_=f"#/tokens/{token['id']}")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text(token["name"])

    # A rename and a disable, made on the page.
    page.get_by_role("button", name="Edit").click()
    renamed = unique("Payroll sync")
    portal.dialog().get_by_label("Name").fill(renamed)
    portal.dialog().get_by_role("button", name="Save changes").click()
    expect(heading).to_have_text(renamed)
    page.get_by_role("button", name="Disable").click()
    page.get_by_role("alertdialog").get_by_role("button", name="Disable").click()
    expect(page.locator(".title-row .badge")).to_have_text("Disabled")

    page.get_by_role("tab", name="Audit trail").click()
    assert portal.hash_params() == {"tab": "audit"}
    panel = page.get_by_role("tabpanel")
    wait_trail(portal)
    expect(panel.locator(".audit-record__summary")).to_have_text(
        ["API token disabled", "API token updated", "API token created"])
    expect(panel.locator(".audit-record__event")).to_have_text(
        [EVENT + "disabled", EVENT + "updated", EVENT + "created"])
    # render(): the details read as sentences, the placeholders filled in.
    expect(panel.locator(".audit-record__details").first).to_have_text(
        f"The API token {token['id']} ({renamed}) was disabled by {me['name']}.")
    expect(panel).not_to_contain_text("{{")
    expect(panel.locator(".audit-actor").first).to_have_text(me["name"])
    expect(panel.locator(".audit-record").first).to_contain_text(me["id"])
    expect(panel).not_to_contain_text(other["id"])  # only this token's records
    expect(panel).to_contain_text("Showing 1–3 of 3 records")

    # An update says what changed, field by field.
    expect(panel.locator(".audit-record").nth(1).get_by_role("list", name="Changes")).to_have_text(
        f'name: "{token["name"]}" → "{renamed}"')

    # Each record expands to its JSON (pretty, as text): the update's changes are in it.
    updated = panel.locator(".audit-record").nth(1)
    json_box = updated.locator("pre.json")
    expect(json_box).to_be_hidden()
    updated.get_by_text("Show JSON").click()
    expect(json_box).to_be_visible()
    shown = json.loads(json_box.inner_text())
    assert shown["event"] == EVENT + "updated"
    assert shown["id"] == updated.get_attribute("data-id")
    assert shown["documents"]["changes"]["name"] == {"from": token["name"], "to": renamed}
    assert "\n  " in json_box.inner_text()  # indented
    assert me["token"] not in json_box.inner_text()

    # More than a page: the tab pages through the API too. A reload of the address shows the
    # same tab, from its first page.
    for number in range(8):
        post_record(live, me["token"], event="extension.tests.payroll.checked",
                    summary=f"Checked {number}", object={"id": token["id"]})
    page.reload()
    wait_trail(portal)
    expect(page.get_by_role("tab", name="Audit trail")).to_have_attribute("aria-selected", "true")
    expect(records(portal).first).to_contain_text("Checked 7")
    expect(page.get_by_text("Showing 1–10 of 11 records")).to_be_visible()
    page.get_by_role("button", name="Next ›").click()
    expect(page.get_by_text("Showing 11–11 of 11 records")).to_be_visible()
    expect(records(portal).locator(".audit-record__summary")).to_have_text(["API token created"])
    expect(page.get_by_role("button", name="Next ›")).to_be_disabled()
    expect(page.get_by_role("button", name="‹ Previous")).to_be_focused()


def test_settings_page_filters_by_event_object_and_day_and_pages(
        portal: Portal, live: LiveServer) -> None:
    page = portal.page
    _, me = auditor(live)
    batch = "extension.tests.batch.made"
    for number in range(12):
        post_record(live, me["token"], event=batch, summary=f"Batch {number:02d} made",
                    object={"id": f"BAT-{number:04d}", "name": f"Batch {number:02d}"},
                    details="Batch {{payload.n}} of twelve.", payload={"n": number})
    total = trail_total(live, me["token"])
    assert total > 12  # the account's and the token's own records too
    portal.sign_in(me["token"])
    page.get_by_role("navigation", name="Settings").get_by_role(
        "link", name="Audit trail").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit trail")
    expect(page.get_by_role("link", name="Audit trail")).to_have_attribute(
        "aria-current", "page")
    wait_trail(portal)

    # Paged by the server, like the token list: newest first, ten a page.
    expect(records(portal)).to_have_count(10)
    expect(page.get_by_text(f"Showing 1–10 of {total} records")).to_be_visible()
    expect(records(portal).first).to_contain_text("Batch 11 made")
    expect(records(portal).first).to_contain_text("Batch 11 of twelve.")
    page.get_by_role("button", name="Next ›").click()
    expect(page.get_by_text(f"Showing 11–{min(total, 20)} of {total} records")).to_be_visible()
    assert portal.hash_params() == {"page": "2"}
    expect(records(portal).first).to_contain_text("Batch 01 made")
    assert any("limit=10&offset=10" in url for url in audit_requests(portal))
    page.get_by_role("button", name="‹ Previous").click()
    expect(page.get_by_text(f"Showing 1–10 of {total} records")).to_be_visible()

    # By event: the choices are the catalog's (the integration's own key joined it).
    event = page.get_by_label("Event")
    expect(event.locator("option", has_text="API token created")).to_have_count(1)
    event.select_option(batch)
    expect(page.get_by_text("Showing 1–10 of 12 records")).to_be_visible()
    assert portal.hash_params() == {"event": batch}
    page.get_by_role("button", name="Next ›").click()
    expect(page.get_by_text("Showing 11–12 of 12 records")).to_be_visible()
    expect(records(portal).locator(".audit-record__summary")).to_have_text(
        ["Batch 01 made", "Batch 00 made"])
    event.select_option(EVENT + "created")
    expect(records(portal)).to_have_count(1)
    expect(records(portal)).to_contain_text(me["name"])
    assert portal.hash_params() == {"event": EVENT + "created"}

    # By object: its ID, or a part of its name.
    page.get_by_role("button", name="Clear filters").click()
    box = page.get_by_label("Object")
    box.fill("BAT-0007")
    box.press("Enter")
    expect(records(portal)).to_have_count(1)
    expect(records(portal)).to_contain_text("Batch 07 made")
    box.fill("batch 1")
    box.press("Enter")
    expect(records(portal).locator(".audit-record__summary")).to_have_text(
        ["Batch 11 made", "Batch 10 made"])
    assert portal.hash_params() == {"object": "batch 1"}

    # By day (the browser's calendar, UTC here): none from tomorrow on, all of today.
    box.fill("")
    box.press("Enter")
    expect(page.get_by_text(f"Showing 1–10 of {total} records")).to_be_visible()
    today = datetime.now(UTC).date()
    page.get_by_label("From").fill((today + timedelta(days=1)).isoformat())
    expect(page.get_by_text("No audit records match these filters.")).to_be_visible()
    expect(records(portal)).to_have_count(0)
    page.get_by_label("From").fill(today.isoformat())
    page.get_by_label("To").fill(today.isoformat())
    page.wait_for_function("to => location.hash.endsWith(`to=${to}`)", arg=today.isoformat())
    wait_trail(portal)
    expect(page.get_by_text(f"Showing 1–10 of {total} records")).to_be_visible()
    assert portal.hash_params() == {"from": today.isoformat(), "to": today.isoformat()}
    last = audit_requests(portal)[-1]
    assert f"ge(timestamp,{today.isoformat()}T00:00:00.000Z)" in last
    assert f"lt(timestamp,{today + timedelta(days=1)}T00:00:00.000Z)" in last
    page.get_by_label("To").fill((today - timedelta(days=1)).isoformat())
    expect(page.get_by_text("No audit records match these filters.")).to_be_visible()

    # A bookmark of the filtered page, then back to the tokens.
    page.reload()
    expect(page.get_by_label("To")).to_have_value((today - timedelta(days=1)).isoformat())
    page.get_by_role("button", name="Clear filters").first.click()
    expect(page.get_by_text(f"Showing 1–10 of {total} records")).to_be_visible()
    page.get_by_role("navigation", name="Settings").get_by_role(
        "link", name="API tokens").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("API tokens")
    expect(page.get_by_role("alert")).to_have_count(0)


def test_a_token_without_audit_is_told_so(portal: Portal, live: LiveServer) -> None:
    page = portal.page
    account = create_account(live, unique("No Audit Ltd"), "Client")
    me = create_token(live, account["id"], unique("Plain"))  # Access Management only
    portal.sign_in(me["token"], hash_="#/audit")
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit trail")
    note = page.locator(".message--warning")
    expect(note).to_contain_text(LACKS)
    expect(note).to_contain_text("Sign in with a token that has the Audit module")
    expect(page.get_by_role("alert")).to_have_count(0)  # not an error: a missing right
    expect(page.get_by_label("Event")).to_be_visible()  # the page is whole
    expect(page.get_by_label("Event")).not_to_have_attribute("aria-invalid", "true")

    # Its own token's Audit trail tab says the same; the other tabs still work.
    page.get_by_role("navigation", name="Settings").get_by_role(
        "link", name="API tokens").click()
    portal.row(me["name"]).get_by_role("link").click()
    page.get_by_role("tab", name="Audit trail").click()
    expect(page.get_by_role("tabpanel")).to_contain_text(LACKS)
    page.get_by_role("tab", name="Modules").click()
    expect(page.get_by_role("tabpanel")).to_contain_text("Access Management")


def test_recorded_markup_stays_text(portal: Portal, live: LiveServer) -> None:
    """What an integration recorded (summary, details, object name, payload; the acting
    token's name) is shown as text to every reader, Operations included."""
    page = portal.page
    account = create_account(live, unique("Markup Ltd"), "Client")
    img = '<img src=x onerror="window.__pwned=1">'
    me = create_token(live, account["id"], f"{img} <b>auditor</b>",
                      modules=("Access Management", "Audit"))
    marker = unique("xss")
    summary = f"{img} {marker}"
    details = "<i>{{payload.html}}</i>"
    html = "<script>window.__pwned=2</script><b>bold</b>"
    posted = post_record(live, me["token"], event="extension.tests.markup.shown",
                         summary=summary, details=details,
                         object={"id": "INV-0001", "name": f"{img} invoice"},
                         payload={"html": html})
    # An event key is dotted words: markup is refused there by the API itself.
    with api(live, me["token"]) as client:
        refused = client.post(RECORDS, json={"event": "extension.<img src=x>.made",
                                             "summary": "x", "object": {"id": "INV-0002"}})
    assert refused.status_code == 400

    # Operations sees every account's records: it finds the tenant's by the object's ID.
    portal.sign_in(hash_="#/audit?object=INV-0001")
    wait_trail(portal)
    record = page.locator(f".audit-record[data-id='{posted['id']}']")
    expect(record.locator(".audit-record__summary")).to_have_text(summary)
    expect(record.locator(".audit-record__details")).to_have_text(f"<i>{html}</i>")
    expect(record).to_contain_text(f"{img} invoice")
    expect(record.locator(".audit-actor")).to_have_text(me["name"])
    record.get_by_text("Show JSON").click()
    shown = json.loads(record.locator("pre.json").inner_text())
    assert shown["summary"] == summary and shown["documents"]["payload"]["html"] == html
    assert page.locator("main img, main b, main i, main script").count() == 0
    assert page.evaluate("window.__pwned") is None

    # The tenant's own view, in the tab of its token (a record about the token itself).
    about = post_record(live, me["token"], event="extension.tests.markup.shown",
                        summary=f"{summary} token", details=details,
                        object={"id": me["id"]}, payload={"html": html})
    assert about["object"]["name"] == me["name"]
    browser = portal.page.context.browser
    assert browser is not None
    with Browsed(browser, live, portal.screenshots,
                 f"{portal.name}-tenant") as tenant:
        tenant.sign_in(me["token"], hash_=f"#/tokens/{me['id']}?tab=audit")
        wait_trail(tenant)
        expect(tenant.page.locator(".audit-record__summary")).to_have_text(
            [f"{summary} token", "API token created"])
        expect(tenant.page.locator(".audit-record__details").first).to_have_text(
            f"<i>{html}</i>")
        assert tenant.page.locator("main img, main b, main i, main script").count() == 0
        assert tenant.page.evaluate("window.__pwned") is None


def test_audit_page_screenshot(browser: Browser, live: LiveServer, screenshots: Path) -> None:
    """Settings > Audit trail with a few changes of a tenant's tokens."""
    account = create_account(live, "Contoso Ltd", "Client")
    me = create_token(live, account["id"], "Security review",
                      modules=("Access Management", "Audit"))
    erp = create_token(live, account["id"], "ERP integration",
                       secret=me["token"])
    with api(live, me["token"]) as client:
        path = f"{TOKENS}/{erp['id']}"
        assert client.put(path, json={"description": "Pushes invoices to SAP every hour."}
                          ).status_code == 200
        assert client.post(f"{path}/rotate", json={"gracePeriodSeconds": 3600}
                           ).status_code == 200
        assert client.post(f"{path}/revoke-previous-secret").status_code == 200
    post_record(live, me["token"], event="extension.billing.invoice.sent",
                summary="Invoice sent to SAP",
                details="Invoice {{payload.invoice}} was sent to {{payload.target}}.",
                object={"id": "INV-2026-0042", "name": "Invoice 2026-0042"},
                payload={"invoice": "2026-0042", "target": "SAP S/4HANA"})
    targets = [screenshots / "readme-audit.png"]
    if os.environ.get("PORTAL_DOCS_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        targets.append(DOCS / "audit.png")
    with Browsed(browser, live, screenshots, "test_audit_page_screenshot",
                 viewport={"width": 1280, "height": 880}) as portal:
        portal.sign_in(me["token"], hash_="#/audit")
        wait_trail(portal)
        expect(records(portal)).to_have_count(7)
        expect(records(portal).nth(3).get_by_role("list", name="Changes")).to_contain_text(
            "description: null →")
        portal.page.mouse.move(0, 0)
        for target in targets:
            portal.shot(path=target)


def test_audit_page_at_375_px_without_horizontal_scroll(browser: Browser, live: LiveServer,
                                                         screenshots: Path) -> None:
    _, me = auditor(live, "Narrow Audit International Holding")
    long_word = "A-very-long-object-name-without-any-space-" + "x" * 80
    post_record(live, me["token"], event="extension.tests.narrow." + "y" * 60,
                summary=long_word, details=long_word, object={"id": "NAR-0001", "name": long_word},
                payload={"text": long_word})
    with Browsed(browser, live, screenshots, "test_audit_page_at_375_px",
                 viewport={"width": 375, "height": 812}) as portal:
        portal.sign_in(me["token"], hash_="#/audit")
        wait_trail(portal)
        expect(records(portal).first).to_contain_text(long_word)
        portal.no_horizontal_scroll()
        records(portal).first.get_by_text("Show JSON").click()
        expect(records(portal).first.locator("pre.json")).to_be_visible()
        portal.no_horizontal_scroll()
        portal.shot("json", full_page=True)
