"""The portal's Settings > API tokens page, end to end: real Chromium, real server, and only
the public API in between (whatever the page does, the API allowed)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.live_server import LiveServer
from tests.portal.support import (
    TOKENS,
    Browsed,
    Portal,
    api,
    create_account,
    create_token,
    get_token,
    token_action,
    unique,
)

pytestmark = pytest.mark.slow

SECRET_RE = re.compile(r"^idt:TKN-\d{4}-\d{4}:[0-9A-Za-z]{49}$")


def admin_modules(live: LiveServer) -> list[dict]:
    return get_token(live, live.token["id"])["modules"]


# -- sign in -----------------------------------------------------------------------------


def test_sign_in_shows_readable_errors_and_keeps_the_secret_in_the_tab_only(
        portal: Portal, live: LiveServer) -> None:
    page = portal.page
    portal.open()
    assert page.url.startswith(f"{live.url}/portal/"), "/ redirects to the page"
    expect(page.get_by_role("heading", name="Sign in to API tokens")).to_be_visible()
    field = page.get_by_label("API token", exact=True)
    sign_in = page.get_by_role("button", name="Sign in")

    # A well-formed secret that is not valid: the problem's detail, not a status code.
    field.fill(f"idt:{live.token['id']}:{'x' * 43}")
    sign_in.click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Could not sign in.")
    expect(alert).to_contain_text("The credential is not a valid API token.")
    expect(alert).not_to_contain_text("401")
    expect(field).to_have_attribute("aria-invalid", "true")
    portal.shot("wrong-token")

    # Not a secret at all: said so before anything is sent.
    field.fill("my password")
    sign_in.click()
    expect(alert).to_contain_text("This is not an API token")

    field.fill(live.admin_secret)
    sign_in.click()
    expect(page.locator("#session-account")).to_have_text(live.account["name"])
    expect(page.locator("#session-type")).to_have_text("Operations")
    expect(page.get_by_role("heading", level=1, name="API tokens")).to_be_visible()
    # The list: the admin token, used just now; the exact time on hover.
    admin_row = portal.row(live.token["name"])
    expect(admin_row.locator(".col-lastAccess time")).to_have_text(
        re.compile(r"^(just now|\d+ minutes? ago)$"))
    expect(admin_row.locator(".col-lastAccess time")).to_have_attribute(
        "title", re.compile(r"\d{4}.*\d{1,2}:\d{2}:\d{2}"))
    expect(admin_row.locator(".col-created time")).to_have_attribute("datetime",
                                                                     live.token["audit"]["created"]["at"])
    expect(admin_row.locator(".col-status .badge")).to_have_text("Active")

    # The secret: in this tab's sessionStorage only. No cookie, nothing in the address.
    stored = page.evaluate("sessionStorage.getItem('tokenhouse.portal.secret')")
    assert stored == live.admin_secret
    assert page.evaluate("document.cookie") == ""
    assert page.context.cookies() == []
    assert live.admin_secret not in page.url
    assert live.admin_secret.split(":")[2] not in page.evaluate("localStorage.length ? "
                                                                "JSON.stringify(localStorage) : ''")

    # A reload stays signed in; another tab is not signed in.
    page.reload()
    expect(page.locator("#session-account")).to_have_text(live.account["name"])
    other = page.context.new_page()
    other.goto(f"{live.url}/")
    expect(other.get_by_role("heading", name="Sign in to API tokens")).to_be_visible()
    other.close()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to API tokens")).to_be_visible()
    expect(page.get_by_text("You have signed out.")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('tokenhouse.portal.secret')") is None
    expect(page.locator("#session")).to_be_hidden()


def test_a_token_disabled_meanwhile_ends_the_session_with_a_message(
        portal: Portal, live: LiveServer) -> None:
    account = create_account(live, unique("Session Ltd"), "Client")
    token = create_token(live, account["id"], unique("Short-lived"))
    portal.sign_in(token["token"])
    portal.wait_list()
    token_action(live, token["id"], "disable")  # by the Operations admin, elsewhere
    portal.page.get_by_label("Status").select_option("Active")
    expect(portal.page.get_by_role("heading", name="Sign in to API tokens")).to_be_visible()
    expect(portal.page.get_by_text("Your session has ended")).to_be_visible()
    assert portal.page.evaluate("sessionStorage.getItem('tokenhouse.portal.secret')") is None


# -- add -----------------------------------------------------------------------------------


def test_add_token_with_the_wizard_and_call_the_api_with_its_secret(
        portal: Portal, live: LiveServer) -> None:
    page = portal.page
    account = create_account(live, unique("Wizard Client"), "Client")
    portal.sign_in()
    portal.wait_list()
    add = page.get_by_role("button", name="Add API token")
    add.click()
    dialog = portal.dialog()
    expect(dialog.get_by_role("heading", name="Add API token")).to_be_visible()
    assert page.evaluate("!!document.activeElement.closest('dialog[open]')"), \
        "the focus moves into the wizard"

    # General: both required fields are said to be missing.
    account_select = portal.account_select(dialog)
    expect(account_select).to_be_enabled()
    dialog.get_by_role("button", name="Next").click()
    expect(dialog.get_by_text("Choose the account the token is for.")).to_be_visible()
    expect(dialog.get_by_text("Enter a name.")).to_be_visible()
    account_select.select_option(account["id"])
    name = unique("CI pipeline")
    dialog.get_by_label("Name").fill(name)
    dialog.get_by_label("Description").fill("Deploys the storefront.")
    dialog.get_by_role("button", name="Next").click()

    # Modules: exactly those the signed-in token holds and a Client account may use.
    expect(dialog.get_by_role("heading", name="Modules")).to_be_focused()
    offered = dialog.locator("input[name=modules]").evaluate_all("els => els.map(e => e.value)")
    expected = [m["id"] for m in admin_modules(live) if "Client" in m["accountTypes"]]
    assert sorted(offered) == sorted(expected)
    assert any("Client" not in m["accountTypes"] for m in admin_modules(live)), \
        "the admin holds Operations-only modules, which must not be offered"
    dialog.get_by_role("button", name="Clear").click()
    dialog.get_by_role("button", name="Next").click()
    expect(dialog.get_by_text("Choose at least one module.")).to_be_visible()
    dialog.get_by_label("Access Management").check()
    dialog.get_by_label("Billing").check()
    dialog.get_by_role("button", name="Next").click()

    # Security: the expiry (90 days unless chosen otherwise) and the allowlist (empty: any
    # address); test_lifecycle.py tries them.
    expect(dialog.get_by_role("heading", name="Security")).to_be_focused()
    dialog.get_by_role("button", name="Next").click()

    # Overview, then create.
    expect(dialog.get_by_role("heading", name="Overview")).to_be_visible()
    expect(dialog).to_contain_text(name)
    expect(dialog).to_contain_text(account["name"])
    expect(dialog.locator(".chip")).to_have_text(["Access Management", "Billing"])
    dialog.get_by_role("button", name="Create token").click()

    # Summary: the secret, once, with a warning and a copy button.
    expect(dialog.get_by_role("heading", name="API token created")).to_be_visible()
    expect(dialog).to_contain_text("it cannot be shown again")
    secret = dialog.get_by_label("Your new API token").input_value()
    assert SECRET_RE.match(secret), secret
    dialog.get_by_role("button", name="Copy", exact=True).click()
    expect(dialog.get_by_text("Copied to the clipboard.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    portal.shot("summary")

    # The secret works, from outside the browser.
    token_id = secret.split(":")[1]
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {secret}"}) as client:
        listed = client.get(TOKENS)
        assert listed.status_code == 200, listed.text
        me = client.get(f"{TOKENS}/{token_id}")
    assert me.status_code == 200
    assert me.json()["account"]["id"] == account["id"]
    assert me.json()["description"] == "Deploys the storefront."
    assert sorted(m["name"] for m in me.json()["modules"]) == ["Access Management", "Billing"]

    dialog.get_by_role("button", name="Done").click()
    expect(portal.dialog()).to_have_count(0)
    expect(add).to_be_focused()
    # The dialog (and the secret in it) is removed by its close event, which runs after the
    # browser has already returned focus: wait for it rather than race it.
    expect(page.locator("input.secret"), "the secret is gone from the page").to_have_count(0)
    expect(portal.row(name)).to_be_visible()


# -- list: search, filters, sorting, paging --------------------------------------------------


def test_search_filter_sort_and_page_on_the_server_with_the_state_in_the_address(
        portal: Portal, live: LiveServer) -> None:
    page = portal.page
    account = create_account(live, unique("Filter Corp"), "Vendor")
    tag = f"q{uuid.uuid4().hex[:6]}"
    names = [f"{tag} token {i:02d}" for i in range(12)]
    disabled = set()
    for i, name in enumerate(names):
        token = create_token(live, account["id"], name)
        if i % 3 == 0:
            token_action(live, token["id"], "disable")
            disabled.add(name)
    # Found by its description (case-insensitive), not its name.
    create_token(live, account["id"], "Zulu integration", description=f"Used by {tag.upper()}.")
    everything = sorted([*names, "Zulu integration"])

    portal.sign_in()
    portal.wait_list()
    page.get_by_label("Search").fill(tag.upper())
    expect(page.get_by_text("Showing 1–10 of 13 API tokens")).to_be_visible()
    assert portal.hash_params()["q"] == tag.upper()

    # Sort by name (ascending, then descending): headers say so.
    name_header = page.locator("th.col-name")
    name_header.get_by_role("button").click()
    expect(name_header).to_have_attribute("aria-sort", "ascending")
    expect(portal.table.locator("tbody .token-link")).to_have_text(everything[:10])
    name_header.get_by_role("button").click()
    expect(name_header).to_have_attribute("aria-sort", "descending")
    descending = sorted(everything, reverse=True)
    expect(portal.table.locator("tbody .token-link")).to_have_text(descending[:10])
    expect(page.locator("th.col-created")).not_to_have_attribute("aria-sort", re.compile("."))

    # Paging.
    page.get_by_role("button", name="Next ›").click()
    expect(portal.table.locator("tbody .token-link")).to_have_text(descending[10:])
    expect(page.get_by_text("Showing 11–13 of 13 API tokens")).to_be_visible()
    assert portal.hash_params()["page"] == "2"

    # Status and account filters (back to page 1).
    page.get_by_label("Status").select_option("Disabled")
    want = sorted(disabled, reverse=True)
    expect(portal.table.locator("tbody .token-link")).to_have_text(want)
    for badge in portal.table.locator("tbody .col-status .badge").all():
        expect(badge).to_have_text("Disabled")
    portal.account_select().select_option(account["id"])
    expect(portal.table.locator("tbody .token-link")).to_have_text(want)
    params = portal.hash_params()
    assert params == {"q": tag.upper(), "status": "Disabled", "account": account["id"],
                      "order": "-name"}, params

    # The server did the work: RQL in the query string, one page at a time.
    # (Chromium sends ' as %27; the server decodes before it parses.)
    raw = unquote(httpx.URL(portal.list_requests[-1]).query.decode())
    assert raw.startswith("limit=10&offset=0&order=-name&select=+audit&"), raw
    assert f"or(ilike(name,'*{tag.upper()}*'),ilike(description,'*{tag.upper()}*'))" in raw
    assert "eq(status,'Disabled')" in raw and f"eq(account.id,'{account['id']}')" in raw
    portal.shot("filtered")

    # Reload: the same view, controls included.
    page.reload()
    expect(portal.table.locator("tbody .token-link")).to_have_text(want)
    expect(page.get_by_label("Search")).to_have_value(tag.upper())
    expect(page.get_by_label("Status")).to_have_value("Disabled")
    expect(portal.account_select()).to_have_value(account["id"])
    expect(name_header).to_have_attribute("aria-sort", "descending")

    # A bookmark opened in a new tab: sign in, and the filtered view is there.
    bookmark = page.url
    other = page.context.new_page()
    other.goto(bookmark)
    other.get_by_label("API token", exact=True).fill(live.admin_secret)
    other.get_by_role("button", name="Sign in").click()
    expect(other.locator("#token-table tbody .token-link")).to_have_text(want)
    other.close()

    # Clear filters: everything again.
    page.get_by_role("button", name="Clear filters").first.click()
    expect(page.get_by_label("Search")).to_have_value("")
    assert "q" not in portal.hash_params() and "status" not in portal.hash_params()


def test_search_text_with_quotes_stars_and_percent_is_sent_exactly(
        portal: Portal, live: LiveServer) -> None:
    account = create_account(live, unique("Quote Co"), "Client")
    tag = uuid.uuid4().hex[:6]
    odd = f"O'Brien \"{tag}\" *star* 50% & more"
    plain = f"OBrien {tag} xstarx 50 more"
    create_token(live, account["id"], odd)
    create_token(live, account["id"], plain)
    portal.sign_in(hash_="#/tokens?order=name")
    portal.wait_list()
    for text, expected in [(f"o'brien \"{tag}", [odd]),  # both kinds of quote
                           (f"\"{tag}\"", [odd]),         # double quotes
                           ("O'Brien", [odd]),             # a single quote
                           ("*star*", [odd]),              # a star is a star, not "any run"
                           ("50% &", [odd]),               # % and & are text
                           (tag, [odd, plain])]:
        portal.search(text)
        expect(portal.table.locator("tbody .token-link")).to_have_text(expected)
        assert portal.hash_params()["q"] == text
    expect(portal.page.get_by_role("alert")).to_have_count(0)


# -- details, edit, disable, enable, delete ----------------------------------------------


def test_details_edit_disable_enable_delete_with_confirmations(
        portal: Portal, live: LiveServer) -> None:
    page = portal.page
    account = create_account(live, unique("Details Ltd"), "Client")
    token = create_token(live, account["id"], unique("ERP integration"),
                         modules=("Access Management", "Billing"),
                         description="Pushes invoices to the ERP.")
    secret = token["token"]
    portal.sign_in(hash_=f"#/tokens/{token['id']}")  # a deep link survives the sign-in

    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text(token["name"])
    general = page.get_by_role("tabpanel")
    expect(general).to_contain_text("Pushes invoices to the ERP.")
    expect(general).to_contain_text(token["id"])
    expect(general).to_contain_text(f"{live.url}/public/v1")
    expect(general.locator(".badge")).to_have_text("Active")

    page.get_by_role("tab", name="Modules").click()
    expect(page.get_by_role("tabpanel").locator(".module-name")).to_have_text(
        ["Access Management", "Billing"])
    assert portal.hash_params() == {"tab": "modules"}
    page.get_by_role("tab", name="Details").click()
    details = page.get_by_role("tabpanel")
    expect(details).to_contain_text("Created by")
    expect(details).to_contain_text(live.token["name"])
    expect(details).to_contain_text("Never changed")

    # Edit: name, description, modules; sent with the revision.
    page.get_by_role("button", name="Edit").click()
    dialog = portal.dialog()
    expect(dialog.get_by_label("Name")).to_be_focused()
    new_name = unique("ERP connector")
    dialog.get_by_label("Name").fill(new_name)
    dialog.get_by_label("Description").fill("Pushes invoices and credit notes.")
    dialog.get_by_label("Billing").uncheck()
    dialog.get_by_label("Helpdesk").check()
    dialog.get_by_role("button", name="Save changes").click()
    expect(portal.dialog()).to_have_count(0)
    expect(heading).to_have_text(new_name)
    expect(page.get_by_text(f"Saved the changes to “{new_name}”.")).to_be_visible()
    stored = get_token(live, token["id"])
    assert stored["revision"] == token["revision"] + 1 and stored["name"] == new_name
    assert sorted(m["name"] for m in stored["modules"]) == ["Access Management", "Helpdesk"]
    expect(page.get_by_role("tabpanel")).to_contain_text("Updated by")
    expect(page.get_by_role("tabpanel")).not_to_contain_text("Never changed")

    # A change made meanwhile elsewhere: the save is refused (409), in words.
    page.get_by_role("button", name="Edit").click()
    dialog = portal.dialog()
    dialog.get_by_label("Description").fill("My change")
    with api(live) as client:
        assert client.put(f"{TOKENS}/{token['id']}",
                          json={"name": "Renamed elsewhere"}).status_code == 200
    dialog.get_by_role("button", name="Save changes").click()
    alert = dialog.get_by_role("alert")
    expect(alert).to_contain_text("Someone else changed this API token")
    expect(alert).to_contain_text(f"changed since revision {stored['revision']}")
    expect(alert).not_to_contain_text("409")
    portal.shot("conflict")
    dialog.get_by_role("button", name="Cancel").click()
    expect(heading).to_have_text("Renamed elsewhere")  # the page shows the current version
    assert get_token(live, token["id"])["description"] == "Pushes invoices and credit notes."

    # Disable: confirmation first (Cancel changes nothing), then the token stops working.
    page.get_by_role("button", name="Disable").click()
    confirm = page.get_by_role("alertdialog", name="Disable this API token?")
    expect(confirm).to_be_visible()
    expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_have_count(0)
    assert get_token(live, token["id"])["status"] == "Active"
    page.get_by_role("button", name="Disable").click()
    page.get_by_role("alertdialog").get_by_role("button", name="Disable").click()
    expect(page.locator(".title-row .badge")).to_have_text("Disabled")
    expect(page.get_by_role("button", name="Enable")).to_be_focused()
    expect(page.get_by_role("button", name="Disable")).to_have_count(0)
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {secret}"}) as c:
        assert c.get(TOKENS).status_code == 401

    # Enable.
    page.get_by_role("button", name="Enable").click()
    page.get_by_role("alertdialog", name="Enable this API token?").get_by_role(
        "button", name="Enable").click()
    expect(page.locator(".title-row .badge")).to_have_text("Active")
    expect(page.get_by_role("button", name="Enable")).to_have_count(0)
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {secret}"}) as c:
        assert c.get(TOKENS).status_code == 200

    # Delete: back to the list, where Operations still sees it, as Deleted.
    page.get_by_role("button", name="Delete").click()
    confirm = page.get_by_role("alertdialog", name="Delete this API token?")
    expect(confirm).to_contain_text("cannot be undone")
    confirm.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("heading", level=1, name="API tokens")).to_be_visible()
    expect(page.get_by_text("Deleted “Renamed elsewhere”.")).to_be_visible()
    assert get_token(live, token["id"])["status"] == "Deleted"
    portal.account_select().select_option(account["id"])
    expect(portal.row("Renamed elsewhere").locator(".badge")).to_have_text("Deleted")


def test_an_api_error_on_an_action_is_shown_in_the_dialog(portal: Portal,
                                                         live: LiveServer) -> None:
    account = create_account(live, unique("Race Ltd"), "Client")
    token = create_token(live, account["id"], unique("Raced"))
    portal.sign_in(hash_=f"#/tokens/{token['id']}")
    expect(portal.page.get_by_role("heading", level=1)).to_have_text(token["name"])
    token_action(live, token["id"], "disable")  # meanwhile, elsewhere
    portal.page.get_by_role("button", name="Disable").click()
    confirm = portal.page.get_by_role("alertdialog")
    confirm.get_by_role("button", name="Disable").click()
    alert = confirm.get_by_role("alert")
    expect(alert).to_contain_text("Could not disable:")
    expect(alert).to_contain_text("The API token is Disabled")
    expect(confirm).to_be_visible()


# -- Client and Vendor tokens -----------------------------------------------------------------


def test_a_client_token_sees_only_its_account_without_account_column_or_filter(
        portal: Portal, live: LiveServer) -> None:
    page = portal.page
    mine = create_account(live, unique("Contoso"), "Client")
    theirs = create_account(live, unique("Fabrikam"), "Vendor")
    me = create_token(live, mine["id"], unique("Contoso admin"),
                      modules=("Access Management", "Billing", "Marketplace"))
    colleague = create_token(live, mine["id"], unique("Contoso reporting"))
    create_token(live, theirs["id"], unique("Fabrikam token"))

    # No clipboard here: the copy button selects the secret for Ctrl+C instead.
    page.add_init_script("Object.defineProperty(Navigator.prototype, 'clipboard', "
                         "{get: () => undefined})")
    portal.sign_in(me["token"])
    expect(page.locator("#session-account")).to_have_text(mine["name"])
    expect(page.locator("#session-type")).to_have_text("Client")
    assert sorted(portal.row_names()) == sorted([me["name"], colleague["name"]])
    expect(page.get_by_text("Showing 1–2 of 2 API tokens")).to_be_visible()
    expect(page.get_by_role("columnheader", name="Account")).to_have_count(0)
    expect(portal.account_select()).to_have_count(0)
    expect(page.get_by_label("Status").locator("option")).to_have_text(
        ["All statuses", "Active", "Disabled", "Expired"])

    # The wizard: no account choice, and only this token's own modules.
    page.get_by_role("button", name="Add API token").click()
    dialog = portal.dialog()
    expect(dialog.locator("select")).to_have_count(0)
    expect(dialog).to_contain_text(mine["name"])
    name = unique("Contoso CI")
    dialog.get_by_label("Name").fill(name)
    dialog.get_by_label("Name").press("Enter")
    expect(dialog.locator("input[name=modules] + span .opt-name")).to_have_text(
        ["Access Management", "Billing", "Marketplace"])
    expect(dialog.locator("input[name=modules]:checked")).to_have_count(0)
    dialog.get_by_label("Marketplace").check()
    dialog.get_by_role("button", name="Next").click()
    dialog.get_by_role("button", name="Next").click()
    dialog.get_by_role("button", name="Create token").click()
    secret = dialog.get_by_label("Your new API token").input_value()
    assert SECRET_RE.match(secret)
    dialog.get_by_role("button", name="Copy", exact=True).click()
    expect(dialog.get_by_text("the text is selected, press Ctrl+C")).to_be_visible()
    expect(dialog.get_by_label("Your new API token")).to_be_focused()
    assert page.evaluate("getSelection().toString() || (document.activeElement.value.slice("
                         "document.activeElement.selectionStart, "
                         "document.activeElement.selectionEnd))") == secret
    dialog.get_by_role("button", name="Done").click()
    expect(portal.table.locator("tbody tr[data-id]")).to_have_count(3)
    created = get_token(live, secret.split(":")[1])
    assert created["account"]["id"] == mine["id"]


# -- safety, keyboard, small screens ----------------------------------------------------------


def test_html_in_names_renders_as_text(portal: Portal, live: LiveServer) -> None:
    page = portal.page
    account = create_account(live, unique("<b>Bold</b> Inc"), "Client")
    name = f"<img src=x onerror=\"window.__pwned=1\"> <b>{uuid.uuid4().hex[:4]}</b> & co"
    description = "<script>window.__pwned=2</script><i>desc</i>"
    token = create_token(live, account["id"], name, description=description)
    portal.sign_in()
    portal.search(name)
    link = portal.table.get_by_role("link", name=name, exact=True)
    expect(link).to_have_text(name)
    assert portal.table.locator("img, b, i, script").count() == 0
    expect(portal.row(name).locator(".col-account")).to_contain_text(account["name"])
    link.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    expect(page.get_by_role("tabpanel")).to_contain_text(description)
    page.get_by_role("button", name="Edit").click()
    expect(portal.dialog().get_by_role("heading", level=2)).to_have_text(f"Edit “{name}”")
    expect(portal.dialog().get_by_label("Name")).to_have_value(name)
    assert page.locator("main img, main b, main i, dialog img, dialog script").count() == 0
    assert page.evaluate("window.__pwned") is None
    portal.dialog().get_by_role("button", name="Cancel").click()
    assert token["id"] in page.url


def test_keyboard_alone(portal: Portal, live: LiveServer) -> None:
    page = portal.page
    account = create_account(live, unique("Keys Ltd"), "Client")
    token = create_token(live, account["id"], unique("Keyboard token"))
    portal.sign_in()
    portal.wait_list()

    def tab_to(selector: str, limit: int = 40) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate(f"document.activeElement.matches({selector!r})"):
                outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
                assert outline != "none", f"no visible focus on {selector}"
                return
        raise AssertionError(f"{selector} not reached with Tab")

    # The wizard opens with Enter, Escape closes it and the focus comes back.
    tab_to("#add-token")
    page.keyboard.press("Enter")
    expect(portal.dialog()).to_be_visible()
    assert page.evaluate("!!document.activeElement.closest('dialog[open]')")
    page.keyboard.press("Escape")
    expect(portal.dialog()).to_have_count(0)
    expect(page.locator("#add-token")).to_be_focused()

    # Sorting from the keyboard.
    tab_to("th.col-status .sort-btn")
    page.keyboard.press("Enter")
    expect(page.locator("th.col-status")).to_have_attribute("aria-sort", "ascending")
    expect(page.locator("th.col-status .sort-btn")).to_be_focused()

    # Open a token by its link, move between the tabs with the arrow keys.
    portal.search(token["name"])
    expect(portal.table.locator("tbody tr[data-id]")).to_have_count(1)
    tab_to("a.token-link")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_be_focused()
    tab_to("[role=tab][aria-selected=true]")
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Modules")).to_be_focused()
    expect(page.get_by_role("tab", name="Modules")).to_have_attribute("aria-selected", "true")
    page.keyboard.press("End")
    expect(page.get_by_role("tab", name="Audit trail")).to_be_focused()
    page.keyboard.press("ArrowLeft")
    expect(page.get_by_role("tab", name="Details")).to_be_focused()
    expect(page.get_by_role("tabpanel")).to_contain_text("Created by")

    # A confirmation dialog: the focus is on Cancel, Escape closes it.
    page.get_by_role("button", name="Delete").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("alertdialog").get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_role("alertdialog")).to_have_count(0)
    expect(page.get_by_role("button", name="Delete")).to_be_focused()
    assert get_token(live, token["id"])["status"] == "Active"

    # The live region and labels are there for screen readers.
    expect(page.locator("#announcer")).to_have_attribute("aria-live", "polite")


def test_usable_at_375_px_without_horizontal_scroll(browser: Browser, live: LiveServer,
                                                    screenshots: Path) -> None:
    account = create_account(live, unique("Narrow Screens International Holding"), "Client")
    token = create_token(live, account["id"],
                         "A-very-long-token-name-without-any-space-in-it-at-all-" + "x" * 40,
                         modules=("Access Management", "Billing", "Marketplace", "Helpdesk"),
                         description="y" * 300)
    with Browsed(browser, live, screenshots, "test_usable_at_375_px_list",
                 viewport={"width": 375, "height": 812}) as portal:
        portal.sign_in()
        portal.wait_list()
        portal.no_horizontal_scroll()
        portal.shot("list", full_page=True)
        portal.search(token["name"][:30])
        expect(portal.table.locator("tbody tr[data-id]")).to_have_count(1)
        portal.no_horizontal_scroll()
        portal.shot("search")
        portal.row(token["name"]).get_by_role("link").click()
        expect(portal.page.get_by_role("heading", level=1)).to_have_text(token["name"])
        portal.no_horizontal_scroll()
        portal.shot("details", full_page=True)
        portal.page.get_by_role("button", name="Edit").click()
        expect(portal.dialog()).to_be_visible()
        portal.no_horizontal_scroll()
        portal.shot("edit")
        portal.page.keyboard.press("Escape")
        portal.page.get_by_role("link", name="API tokens").click()
        portal.page.get_by_role("button", name="Add API token").click()
        dialog = portal.dialog()
        portal.account_select(dialog).select_option(account["id"])
        dialog.get_by_label("Name").fill("Phone token")
        dialog.get_by_role("button", name="Next").click()
        dialog.get_by_label("Billing").check()
        portal.no_horizontal_scroll()
        portal.shot("wizard-modules")
        dialog.get_by_role("button", name="Next").click()
        expect(dialog.get_by_role("heading", name="Security")).to_be_visible()
        portal.no_horizontal_scroll()
        portal.shot("wizard-security")
        dialog.get_by_role("button", name="Next").click()
        dialog.get_by_role("button", name="Create token").click()
        expect(dialog.get_by_label("Your new API token")).to_be_visible()
        portal.no_horizontal_scroll()
        box = dialog.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375
