"""Rate limits and leak reports on the portal (issue 12): the wizard's and the edit dialog's
rate limit (the server's default, none, 600 per minute, custom), the details page's rate limit,
and a token disabled after its secret was reported as leaked: the banner, Enable refused
(409, the problem's detail shown), Rotate, then Enable. Real Chromium, a real server with
TOKENHOUSE_DEFAULT_RATE_LIMIT set, and the API to check what was stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, expect

from tests.live_server import LiveServer
from tests.portal.support import (
    TOKENS,
    Portal,
    api,
    create_account,
    create_token,
    get_token,
    token_action,
    unique,
)

pytestmark = pytest.mark.slow

# Large enough for the admin token's own requests in a test, and unlike any preset.
DEFAULT = {"limit": 5000, "windowSeconds": 60}
BANNER = "Disabled because its secret was reported as leaked — rotate it, then enable."


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """This module's own server, with a default rate limit for tokens made without one."""
    server = LiveServer.start("sqlite", tmp_path_factory.mktemp("rate_limit_portal"),
                              TOKENHOUSE_DEFAULT_RATE_LIMIT="5000/60")
    try:
        yield server
    finally:
        server.stop()


def status_with(live: LiveServer, secret: str) -> int:
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {secret}"}) as c:
        return c.get(f"{TOKENS}/self").status_code


def report_leaked(live: LiveServer, secret: str) -> None:
    """The leak report anyone may send (a scanner, here)."""
    with httpx.Client(base_url=live.url) as client:
        response = client.post(f"{TOKENS}/revoke-leaked",
                               json={"tokens": [secret], "source": "https://example.com/x"})
    assert response.status_code == 202, response.text


def wizard_to_security(portal: Portal, account: dict[str, Any], name: str) -> Locator:
    page = portal.page
    page.get_by_role("button", name="Add API token").click()
    dialog = portal.dialog()
    portal.account_select(dialog).select_option(account["id"])
    dialog.get_by_label("Name").fill(name)
    dialog.get_by_role("button", name="Next").click()
    dialog.get_by_label("Access Management").check()
    dialog.get_by_role("button", name="Next").click()
    expect(dialog.get_by_role("heading", name="Security")).to_be_focused()
    return dialog


def rate_group(scope: Locator) -> Locator:
    return scope.get_by_role("group", name="Rate limit")


def create(dialog: Locator, overview: str) -> dict[str, Any]:
    """From the Security step: Next, check the review's rate limit, create; the token as the
    wizard's summary shows it, and as stored."""
    dialog.get_by_role("button", name="Next").click()
    review = dialog.locator(".review")
    expect(review).to_contain_text(f"Rate limit{overview}")
    with dialog.page.expect_request(lambda r: r.method == "POST"
                                    and r.url.endswith(TOKENS)) as posted:
        dialog.get_by_role("button", name="Create token").click()
    secret = dialog.get_by_label("Your new API token").input_value()
    return {"body": json.loads(posted.value.post_data or "{}"), "secret": secret}


def test_the_wizard_sends_the_rate_limit_chosen(portal: Portal, live: LiveServer) -> None:
    account = create_account(live, unique("Limits Ltd"), "Client")
    portal.sign_in()
    portal.wait_list()

    # The server's default unless chosen otherwise: the property is left out.
    dialog = wizard_to_security(portal, account, unique("Defaulted"))
    group = rate_group(dialog)
    expect(group.get_by_role("radio")).to_have_count(4)
    expect(group.get_by_role("radio", name="Server default")).to_be_checked()
    expect(dialog.get_by_label("Requests", exact=True)).to_be_hidden()
    portal.shot("security-step")
    made = create(dialog, "The server's default")
    assert "rateLimit" not in made["body"]
    token = get_token(live, made["secret"].split(":")[1])
    assert token["rateLimit"] == DEFAULT
    expect(dialog.locator(".review")).to_contain_text("Rate limit5,000 requests per minute")
    dialog.get_by_role("button", name="Done").click()

    # No limit: an explicit null.
    dialog = wizard_to_security(portal, account, unique("Unlimited"))
    rate_group(dialog).get_by_role("radio", name="No limit").check()
    made = create(dialog, "No limit")
    assert made["body"]["rateLimit"] is None
    assert get_token(live, made["secret"].split(":")[1])["rateLimit"] is None
    dialog.get_by_role("button", name="Done").click()

    # Custom: refused in place out of the API's bounds, kept across Back and Next.
    dialog = wizard_to_security(portal, account, unique("Custom"))
    rate_group(dialog).get_by_role("radio", name="Custom").check()
    requests = dialog.get_by_label("Requests", exact=True)
    expect(requests).to_be_focused()
    requests.fill("0")
    dialog.get_by_role("button", name="Next").click()
    expect(dialog.get_by_role("heading", name="Security")).to_be_visible()
    expect(dialog.locator(".field--rate-requests .field-error")).to_have_text(
        "Enter a whole number of requests from 1 to 1,000,000.")
    expect(requests).to_have_attribute("aria-invalid", "true")
    requests.fill("90")
    dialog.get_by_label("Per", exact=True).fill("25")
    dialog.get_by_label("Unit", exact=True).select_option(label="hours")
    dialog.get_by_role("button", name="Next").click()
    expect(dialog.locator(".field--rate-window .field-error")).to_have_text(
        "Enter a whole window from 1 second to 24 hours.")
    portal.shot("custom-refused")
    dialog.get_by_label("Per", exact=True).fill("2")
    dialog.get_by_role("button", name="Next").click()
    dialog.get_by_role("button", name="Back").click()
    expect(rate_group(dialog).get_by_role("radio", name="Custom")).to_be_checked()
    expect(requests).to_have_value("90")
    made = create(dialog, "90 requests per 2 hours")
    assert made["body"]["rateLimit"] == {"limit": 90, "windowSeconds": 7200}
    assert get_token(live, made["secret"].split(":")[1])["rateLimit"] == {
        "limit": 90, "windowSeconds": 7200}
    dialog.get_by_role("button", name="Done").click()

    # The preset, enforced by the server from the first request.
    dialog = wizard_to_security(portal, account, unique("Preset"))
    rate_group(dialog).get_by_role("radio", name="600 per minute").check()
    made = create(dialog, "600 requests per minute")
    assert made["body"]["rateLimit"] == {"limit": 600, "windowSeconds": 60}
    with httpx.Client(base_url=live.url,
                      headers={"Authorization": f"Bearer {made['secret']}"}) as client:
        assert client.get(f"{TOKENS}/self").headers["RateLimit-Policy"] == \
            '"default";q=600;w=60'


def test_the_edit_dialog_changes_the_rate_limit_and_the_details_show_it(
        portal: Portal, live: LiveServer) -> None:
    page = portal.page
    account = create_account(live, unique("Edit Ltd"), "Client")
    token = create_token(live, account["id"], unique("Edited"))
    with api(live) as client:
        response = client.put(f"{TOKENS}/{token['id']}",
                              json={"rateLimit": {"limit": 90, "windowSeconds": 7200}})
    assert response.status_code == 200, response.text
    portal.sign_in(hash_=f"#/tokens/{token['id']}")
    panel = page.get_by_role("tabpanel")
    expect(panel).to_contain_text("Rate limit90 requests per 2 hours")

    # The current limit is what the dialog starts from; an unchanged one is not sent.
    page.get_by_role("button", name="Edit").click()
    dialog = portal.dialog()
    group = rate_group(dialog)
    expect(group.get_by_role("radio")).to_have_count(3)  # no server default on a change
    expect(group.get_by_role("radio", name="Custom")).to_be_checked()
    expect(dialog.get_by_label("Requests", exact=True)).to_have_value("90")
    expect(dialog.get_by_label("Per", exact=True)).to_have_value("2")
    expect(dialog.get_by_label("Unit", exact=True)).to_have_value("3600")
    dialog.get_by_label("Name").fill("Renamed")
    with page.expect_request(lambda r: r.method == "PUT") as put:
        dialog.get_by_role("button", name="Save changes").click()
    assert "rateLimit" not in json.loads(put.value.post_data or "{}")
    expect(portal.dialog()).to_have_count(0)
    assert get_token(live, token["id"])["rateLimit"] == {"limit": 90, "windowSeconds": 7200}

    page.get_by_role("button", name="Edit").click()
    dialog = portal.dialog()
    rate_group(dialog).get_by_role("radio", name="600 per minute").check()
    dialog.get_by_role("button", name="Save changes").click()
    expect(portal.dialog()).to_have_count(0)
    expect(panel).to_contain_text("Rate limit600 requests per minute")
    assert get_token(live, token["id"])["rateLimit"] == {"limit": 600, "windowSeconds": 60}

    page.get_by_role("button", name="Edit").click()
    dialog = portal.dialog()
    expect(rate_group(dialog).get_by_role("radio", name="600 per minute")).to_be_checked()
    rate_group(dialog).get_by_role("radio", name="No limit").check()
    with page.expect_request(lambda r: r.method == "PUT") as put:
        dialog.get_by_role("button", name="Save changes").click()
    assert json.loads(put.value.post_data or "{}")["rateLimit"] is None
    expect(portal.dialog()).to_have_count(0)
    expect(panel).to_contain_text("Rate limitNo limit")
    assert get_token(live, token["id"])["rateLimit"] is None


def test_a_leaked_token_says_why_it_is_disabled_and_is_enabled_after_a_rotation(
        portal: Portal, live: LiveServer) -> None:
    page = portal.page
    account = create_account(live, unique("Leak Ltd"), "Client")
    token = create_token(live, account["id"], unique("Leaked"))
    token_action(live, token["id"], "disable")
    portal.sign_in(hash_=f"#/tokens/{token['id']}")
    expect(page.get_by_role("button", name="Enable")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("leaked")

    # Reported while the page is open: Enable is refused, the dialog says why with the
    # problem's detail, and the page behind now shows the reason.
    report_leaked(live, token["token"])
    with api(live) as client:
        refused = client.post(f"{TOKENS}/{token['id']}/enable")
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    page.get_by_role("button", name="Enable").click()
    dialog = portal.dialog()
    dialog.get_by_role("button", name="Enable").click()
    alert = dialog.get_by_role("alert")
    expect(alert).to_contain_text("Could not enable:")
    expect(alert).to_contain_text(detail)
    assert "leaked" in detail and "rotate" in detail
    expect(page.locator(".page-head .badge--leaked")).to_have_text("Leaked")
    portal.shot("enable-refused")
    dialog.get_by_role("button", name="Cancel").click()
    expect(portal.dialog()).to_have_count(0)

    # Opened afresh: the banner, the badge, and Enable warns before it is tried.
    page.reload()
    banner = page.locator(".message--error").filter(has_text=BANNER)
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Its secret was reported as leaked")
    expect(page.locator(".title-row .badge")).to_have_text(["Disabled", "Leaked"])
    page.get_by_role("button", name="Enable").click()
    expect(portal.dialog()).to_contain_text("it cannot be enabled before it is rotated")
    portal.dialog().get_by_role("button", name="Cancel").click()
    portal.shot("banner")

    # The list flags it too.
    portal.open("#/tokens")
    portal.search(token["name"])
    expect(portal.row(token["name"]).locator(".badge--leaked")).to_have_text("Leaked")
    portal.row(token["name"]).get_by_role("link").click()

    # Rotate from the banner, then Enable: Active, the new secret works, the old never again.
    page.get_by_role("button", name="Rotate now").click()
    dialog = portal.dialog()
    expect(dialog.get_by_role("radio", name="No, it stops now")).to_be_checked()
    dialog.get_by_role("button", name="Rotate secret").click()
    secret = dialog.get_by_label("New secret").input_value()
    dialog.get_by_role("button", name="Done").click()
    expect(page.locator("#flash")).to_contain_text("It can be enabled again now.")
    expect(page.get_by_text(BANNER)).to_have_count(0)
    expect(page.locator(".badge--leaked")).to_have_count(0)
    page.get_by_role("button", name="Enable").click()
    portal.dialog().get_by_role("button", name="Enable").click()
    expect(page.locator(".title-row .badge").first).to_have_text("Active")
    assert status_with(live, secret) == 200
    assert status_with(live, token["token"]) == 401
    stored = get_token(live, token["id"])
    assert (stored["status"], stored["statusReason"]) == ("Active", None)
