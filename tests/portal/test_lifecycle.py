"""The token lifecycle on the portal (issue 11): the wizard's expiry and IP allowlist, the
list's Expired filter and expiring-soon badge, expiry and allowlist in the edit dialog, and
Rotate in the details page. Real Chromium, a real server, and the API to check what was
stored and which secrets work."""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from playwright.sync_api import Locator, expect

from tests.live_server import LiveServer
from tests.portal.support import (
    TOKENS,
    Portal,
    create_account,
    create_token,
    get_token,
    unique,
)

pytestmark = pytest.mark.slow

SECRET_RE = re.compile(r"^idt:TKN-\d{4}-\d{4}:[0-9A-Za-z]{49}$")


def timestamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


def in_days(days: float) -> str:
    return timestamp(datetime.now(UTC) + timedelta(days=days))


def assert_near(value: str | None, expected: datetime, slack: timedelta) -> None:
    assert value is not None
    assert abs(parse(value) - expected) < slack, (value, expected)


def status_with(live: LiveServer, secret: str) -> int:
    """The status of a GET of the token list authenticated by `secret`."""
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {secret}"}) as c:
        return c.get(TOKENS).status_code


def eventually(check: Any, seconds: float = 5.0) -> None:
    """Poll `check()` until it is true, at most `seconds`."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.1)


# -- the wizard ----------------------------------------------------------------------------


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


def create_from_overview(dialog: Locator) -> str:
    """Create the token (from the Overview step): its secret."""
    dialog.get_by_role("button", name="Create token").click()
    secret = dialog.get_by_label("Your new API token").input_value()
    assert SECRET_RE.match(secret), secret
    return secret


def test_the_wizard_offers_an_expiry_of_90_days_by_default_and_sends_the_one_chosen(
        portal: Portal, live: LiveServer) -> None:
    account = create_account(live, unique("Expiry Ltd"), "Client")
    portal.sign_in()
    portal.wait_list()

    # The default: 90 days, stored as now + 90 days.
    dialog = wizard_to_security(portal, account, unique("Default expiry"))
    expect(dialog.get_by_role("group", name="Expiry").get_by_role("radio")).to_have_count(5)
    expect(dialog.get_by_role("radio", name="90 days")).to_be_checked()
    for other in ("30 days", "365 days", "A date", "Never"):
        expect(dialog.get_by_role("radio", name=other)).not_to_be_checked()
    expect(dialog.get_by_label("Expiry date")).to_be_hidden()
    portal.shot("security-step")
    dialog.get_by_role("button", name="Next").click()
    expect(dialog.locator(".review")).to_contain_text("In 90 days")
    secret = create_from_overview(dialog)
    token = get_token(live, secret.split(":")[1])
    assert_near(token["expiresAt"], datetime.now(UTC) + timedelta(days=90), timedelta(minutes=2))
    assert token["ipAllowlist"] in (None, [])
    expect(dialog.locator(".review")).to_contain_text("Expires")
    dialog.get_by_role("button", name="Done").click()
    expect(portal.dialog()).to_have_count(0)

    # A date: a past one is refused before anything is sent; the chosen one is its start.
    dialog = wizard_to_security(portal, account, unique("Dated expiry"))
    dialog.get_by_role("radio", name="A date").check()
    date_field = dialog.get_by_label("Expiry date")
    expect(date_field).to_be_focused()
    date_field.fill((date.today() - timedelta(days=1)).isoformat())
    dialog.get_by_role("button", name="Next").click()
    expect(dialog.get_by_text("Choose a date in the future.")).to_be_visible()
    expect(dialog.get_by_role("heading", name="Security")).to_be_visible()
    chosen = date.today() + timedelta(days=45)
    date_field.fill(chosen.isoformat())
    dialog.get_by_role("button", name="Next").click()
    expect(dialog.get_by_role("heading", name="Overview")).to_be_visible()
    # Back and forth keeps the choice.
    dialog.get_by_role("button", name="Back").click()
    expect(dialog.get_by_role("radio", name="A date")).to_be_checked()
    expect(dialog.get_by_label("Expiry date")).to_have_value(chosen.isoformat())
    dialog.get_by_role("button", name="Next").click()
    secret = create_from_overview(dialog)
    # The browser runs in UTC: the start of the chosen day is midnight UTC.
    assert get_token(live, secret.split(":")[1])["expiresAt"] == f"{chosen}T00:00:00.000Z"


def test_the_wizard_sends_an_allowlist_stored_canonical_and_shows_a_bad_entry_in_place(
        portal: Portal, live: LiveServer) -> None:
    account = create_account(live, unique("Allowlist Ltd"), "Client")
    portal.sign_in()
    portal.wait_list()
    dialog = wizard_to_security(portal, account, unique("Office only"))
    dialog.get_by_role("radio", name="Never").check()
    typed = "203.0.113.7\n2001:DB8:0::/32, 10.0.0.1/8\n::ffff:192.0.2.1"
    allowlist = dialog.get_by_label("IP allowlist")
    allowlist.fill(typed)
    dialog.get_by_role("button", name="Next").click()
    expect(dialog.locator(".review .chips--mono .chip")).to_have_text(
        ["203.0.113.7", "2001:DB8:0::/32", "10.0.0.1/8", "::ffff:192.0.2.1"])
    dialog.get_by_role("button", name="Create token").click()

    # The API refuses the entry with host bits set: back on the step, its words next to the
    # field, and nothing typed or chosen lost.
    expect(dialog.get_by_role("heading", name="Security")).to_be_visible()
    expect(dialog.get_by_role("alert")).to_contain_text("The API token could not be created.")
    error = dialog.locator(".field--allowlist .field-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("10.0.0.1/8")
    expect(allowlist).to_have_attribute("aria-invalid", "true")
    expect(allowlist).to_have_value(typed)
    expect(dialog.get_by_role("radio", name="Never")).to_be_checked()
    portal.shot("bad-entry")

    allowlist.fill(typed.replace("10.0.0.1/8", "10.0.0.0/8"))
    dialog.get_by_role("button", name="Next").click()
    secret = create_from_overview(dialog)
    token_id = secret.split(":")[1]
    token = get_token(live, token_id)
    assert token["expiresAt"] is None
    assert sorted(token["ipAllowlist"]) == sorted(
        ["203.0.113.7/32", "2001:db8::/32", "10.0.0.0/8", "192.0.2.1/32"])
    # It holds: this test's address is not in the list.
    assert status_with(live, secret) == 403
    dialog.get_by_role("button", name="Done").click()

    # The details page shows the list as stored.
    portal.open(f"#/tokens/{token_id}")
    panel = portal.page.get_by_role("tabpanel")
    expect(panel.locator(".chips--mono .chip")).to_have_text(token["ipAllowlist"])
    expect(panel).to_contain_text("Never")


# -- the list --------------------------------------------------------------------------------


def test_the_list_filters_expired_tokens_and_flags_those_expiring_within_7_days(
        portal: Portal, live: LiveServer) -> None:
    page = portal.page
    account = create_account(live, unique("Soon Ltd"), "Client")
    soon = create_token(live, account["id"], unique("Soon"), expires_at=in_days(3))
    later = create_token(live, account["id"], unique("Later"), expires_at=in_days(30))
    forever = create_token(live, account["id"], unique("Forever"))
    brief = create_token(live, account["id"], unique("Brief"),
                         expires_at=timestamp(datetime.now(UTC) + timedelta(seconds=3)))

    # Signed in with the token that expires soon: the top bar says so.
    portal.sign_in(soon["token"])
    expect(page.locator("#session-expiry")).to_have_text("Your token expires in 3 days")
    portal.wait_list()
    expect(portal.row(soon["name"]).locator(".col-expires .badge")).to_have_text(
        "Expires in 3 days")
    expect(portal.row(later["name"]).locator(".col-expires time")).to_be_visible()
    expect(portal.row(later["name"]).locator(".col-expires .badge")).to_have_count(0)
    expect(portal.row(forever["name"]).locator(".col-expires")).to_have_text("Never")
    portal.shot("list")

    # Expired is computed: wait (over HTTP) until the brief token's expiry has passed.
    eventually(lambda: get_token(live, brief["id"])["status"] == "Expired", seconds=6)
    status = page.get_by_label("Status")
    expect(status.locator("option")).to_have_text(
        ["All statuses", "Active", "Disabled", "Expired"])
    status.select_option("Expired")
    expect(portal.table.locator("tbody .token-link")).to_have_text([brief["name"]])
    expect(portal.row(brief["name"]).locator(".col-status .badge")).to_have_text("Expired")
    assert portal.hash_params()["status"] == "Expired"
    assert "eq(status,'Expired')" in unquote(portal.list_requests[-1])
    portal.shot("expired")
    status.select_option("Active")
    expect(portal.table.locator("tbody .token-link")).to_have_count(3)
    assert brief["name"] not in portal.row_names()

    # Sorted by expiry, on the server.
    page.get_by_role("button", name="Clear filters").first.click()
    page.locator("th.col-expires .sort-btn").click()
    expect(page.locator("th.col-expires")).to_have_attribute("aria-sort", "ascending")
    assert "order=expiresAt" in portal.list_requests[-1]
    dated = [n for n in portal.row_names() if n != forever["name"]]
    assert dated == [brief["name"], soon["name"], later["name"]]

    # The expired token's page: said so, no Enable/Disable, its expiry not editable.
    portal.row(brief["name"]).get_by_role("link").click()
    expect(page.locator(".title-row .badge")).to_have_text("Expired")
    expect(page.locator("main")).to_contain_text("Rotate it to give it a new secret")
    expect(page.get_by_role("button", name="Rotate")).to_be_visible()
    expect(page.get_by_role("button", name="Enable")).to_have_count(0)
    expect(page.get_by_role("button", name="Disable")).to_have_count(0)
    page.get_by_role("button", name="Edit").click()
    expect(portal.dialog().get_by_role("group", name="Expiry")).to_have_count(0)
    expect(portal.dialog()).to_contain_text("This API token has expired")
    portal.dialog().get_by_role("button", name="Cancel").click()

    # Rotating it with a new expiry is the way back: Active again, with a working secret.
    page.get_by_role("button", name="Rotate").click()
    dialog = portal.dialog()
    expect(dialog.get_by_role("radio", name="No, it stops now")).to_be_checked()
    dialog.get_by_role("radio", name="30 days").check()
    dialog.get_by_role("button", name="Rotate secret").click()
    secret = dialog.get_by_label("New secret").input_value()
    dialog.get_by_role("button", name="Done").click()
    expect(page.locator(".title-row .badge").first).to_have_text("Active")
    expect(page.get_by_role("button", name="Disable")).to_be_visible()
    assert status_with(live, secret) == 200
    assert_near(get_token(live, brief["id"])["expiresAt"],
                datetime.now(UTC) + timedelta(days=30), timedelta(minutes=2))


# -- edit ---------------------------------------------------------------------------------------


def test_edit_changes_the_expiry_and_the_allowlist(portal: Portal, live: LiveServer) -> None:
    page = portal.page
    account = create_account(live, unique("Edit Ltd"), "Vendor")
    token = create_token(live, account["id"], unique("Editable"), expires_at=in_days(30))
    portal.sign_in(hash_=f"#/tokens/{token['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text(token["name"])

    # Only the name changed: the expiry and the allowlist are left as they are.
    page.get_by_role("button", name="Edit").click()
    dialog = portal.dialog()
    expect(dialog.get_by_role("radio", name="No change")).to_be_checked()
    expect(dialog.get_by_label("IP allowlist")).to_have_value("")
    dialog.get_by_label("Name").fill(token["name"] + " renamed")
    with page.expect_request(lambda r: r.method == "PUT") as put:
        dialog.get_by_role("button", name="Save changes").click()
    sent = put.value.post_data_json
    assert "expiresAt" not in sent and "ipAllowlist" not in sent, sent
    expect(portal.dialog()).to_have_count(0)

    # A new expiry and a list; a bad entry first, shown next to the field.
    page.get_by_role("button", name="Edit").click()
    dialog = portal.dialog()
    dialog.get_by_role("radio", name="365 days").check()
    dialog.get_by_label("IP allowlist").fill("198.51.100.1/24")
    dialog.get_by_role("button", name="Save changes").click()
    expect(dialog.locator(".field--allowlist .field-error")).to_contain_text("198.51.100.1/24")
    expect(dialog.get_by_role("radio", name="365 days")).to_be_checked()
    dialog.get_by_label("IP allowlist").fill("198.51.100.0/24\n2001:db8:1::/48")
    dialog.get_by_role("button", name="Save changes").click()
    expect(portal.dialog()).to_have_count(0)
    stored = get_token(live, token["id"])
    assert_near(stored["expiresAt"], datetime.now(UTC) + timedelta(days=365), timedelta(minutes=2))
    assert sorted(stored["ipAllowlist"]) == ["198.51.100.0/24", "2001:db8:1::/48"]
    panel = page.get_by_role("tabpanel")
    expect(panel.locator(".chips--mono .chip")).to_have_text(stored["ipAllowlist"])

    # Back to any address, and never expiring.
    page.get_by_role("button", name="Edit").click()
    dialog = portal.dialog()
    expect(dialog.get_by_label("IP allowlist")).to_have_value(
        "\n".join(stored["ipAllowlist"]))
    dialog.get_by_role("radio", name="Never").check()
    dialog.get_by_label("IP allowlist").fill("")
    dialog.get_by_role("button", name="Save changes").click()
    expect(portal.dialog()).to_have_count(0)
    stored = get_token(live, token["id"])
    assert stored["expiresAt"] is None and stored["ipAllowlist"] in (None, [])
    expect(page.get_by_role("tabpanel")).to_contain_text("Any address")


# -- rotate ---------------------------------------------------------------------------------


def test_rotate_in_the_details_page_with_a_grace_window_then_revoke_the_old_secret(
        portal: Portal, live: LiveServer) -> None:
    page = portal.page
    account = create_account(live, unique("Rotate Ltd"), "Client")
    token = create_token(live, account["id"], unique("Rotated"), expires_at=in_days(30))
    old = token["token"]
    assert status_with(live, old) == 200  # a last-used address to show
    portal.sign_in(hash_=f"#/tokens/{token['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text(token["name"])
    general = page.get_by_role("tabpanel")
    expect(general).to_contain_text("Expires")
    expect(general.locator(f"time[datetime='{token['expiresAt']}']")).to_be_visible()
    expect(general).to_contain_text("Any address")
    page.get_by_role("tab", name="Details").click()
    expect(page.get_by_role("tabpanel").locator(".addresses li")).to_contain_text(["127.0.0.1"])

    page.get_by_role("button", name="Rotate").click()
    dialog = portal.dialog()
    expect(dialog.get_by_role("radio", name="24 hours")).to_be_checked()
    expect(dialog.get_by_role("radio", name="Same lifetime")).to_be_checked()
    dialog.get_by_role("radio", name="1 hour").check()
    portal.shot("rotate-dialog")
    with page.expect_request(lambda r: r.url.endswith("/rotate")) as request:
        dialog.get_by_role("button", name="Rotate secret").click()
    assert request.value.post_data_json == {"gracePeriodSeconds": 3600}

    # The new secret, once, with copy.
    field = dialog.get_by_label("New secret")
    new = field.input_value()
    assert SECRET_RE.match(new) and new != old and new.split(":")[1] == token["id"]
    dialog.get_by_role("button", name="Copy", exact=True).click()
    expect(dialog.get_by_text("Copied to the clipboard.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == new
    expect(dialog).to_contain_text("keeps working until")
    portal.shot("rotated")

    # Both secrets work during the grace window; the token kept its lifetime.
    assert status_with(live, new) == 200
    assert status_with(live, old) == 200
    stored = get_token(live, token["id"])
    assert stored["revision"] == token["revision"] + 1
    assert_near(stored["previousSecret"]["expiresAt"], datetime.now(UTC) + timedelta(hours=1),
                timedelta(minutes=2))
    assert_near(stored["expiresAt"], datetime.now(UTC) + timedelta(days=30), timedelta(minutes=2))

    dialog.get_by_role("button", name="Done").click()
    expect(portal.dialog()).to_have_count(0)
    expect(page.locator("input.secret")).to_have_count(0)
    assert new not in page.content()
    expect(page.get_by_text(f"Rotated the secret of “{token['name']}”.")).to_be_visible()
    note = page.locator(".message").filter(has_text="The old secret still works")
    expect(note).to_be_visible()
    portal.shot("old-secret-note")

    # "Revoke the old secret now": after a confirmation, the old one stops, the new one works.
    note.get_by_role("button", name="Revoke the old secret now").click()
    confirm = page.get_by_role("alertdialog", name="Revoke the old secret now?")
    confirm.get_by_role("button", name="Revoke").click()
    expect(confirm).to_have_count(0)
    expect(page.get_by_text("The old secret still works")).to_have_count(0)
    expect(page.get_by_role("button", name="Revoke the old secret now")).to_have_count(0)
    eventually(lambda: status_with(live, old) == 401, seconds=2)
    assert status_with(live, new) == 200
    assert get_token(live, token["id"])["previousSecret"] is None

    # Again, the old secret to stop when the new one is first used.
    page.get_by_role("button", name="Rotate").click()
    dialog = portal.dialog()
    dialog.get_by_role("radio", name="7 days").check()
    dialog.get_by_label("Stop the old secret as soon as the new one is first used").check()
    with page.expect_request(lambda r: r.url.endswith("/rotate")) as request:
        dialog.get_by_role("button", name="Rotate secret").click()
    assert request.value.post_data_json == {"gracePeriodSeconds": 604800,
                                            "retirePreviousOnFirstUse": True}
    newest = dialog.get_by_label("New secret").input_value()
    expect(dialog).to_contain_text("or until the new secret is first used")
    dialog.get_by_role("button", name="Done").click()
    expect(page.get_by_text("The old secret still works")).to_be_visible()
    assert status_with(live, new) == 200
    assert status_with(live, newest) == 200
    eventually(lambda: status_with(live, new) == 401, seconds=2)


def test_rotating_the_signed_in_token_keeps_the_session(portal: Portal, live: LiveServer) -> None:
    page = portal.page
    account = create_account(live, unique("Self Ltd"), "Client")
    me = create_token(live, account["id"], unique("Myself"), expires_at=in_days(60))
    portal.sign_in(me["token"], hash_=f"#/tokens/{me['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text(me["name"])
    page.get_by_role("button", name="Rotate").click()
    dialog = portal.dialog()
    expect(dialog).to_contain_text("This is the API token you are signed in with")
    dialog.get_by_role("radio", name="No, it stops now").check()
    expect(dialog.get_by_label("Stop the old secret as soon as the new one is first used")
           ).to_be_disabled()
    dialog.get_by_role("radio", name="30 days").check()
    dialog.get_by_role("button", name="Rotate secret").click()
    new = dialog.get_by_label("New secret").input_value()
    expect(dialog).to_contain_text("It no longer works.")
    dialog.get_by_role("button", name="Done").click()

    # The page goes on with the new secret; the old one is refused.
    assert status_with(live, me["token"]) == 401
    assert page.evaluate("sessionStorage.getItem('tokenhouse.portal.secret')") == new
    page.get_by_role("link", name="API tokens").click()
    expect(portal.row(me["name"])).to_be_visible()
    expect(page.locator("#session")).to_be_visible()
    assert_near(get_token(live, me["id"])["expiresAt"], datetime.now(UTC) + timedelta(days=30),
                timedelta(minutes=2))
