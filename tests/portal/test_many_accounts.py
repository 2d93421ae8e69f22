"""More accounts than one page (100): the account filter and the wizard's account choice
find the others on the server. A server of its own: the 105 accounts would push the other
tests' accounts off the first page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.live_server import LiveServer
from tests.portal.support import Portal, api, create_token, get_token

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def accounts(live: LiveServer) -> list[dict]:
    made = []
    with api(live) as client:
        for i in range(105):
            response = client.post("/public/v1/accounts/accounts",
                                   json={"name": f"Account {i:03d}", "type": "Client"})
            assert response.status_code == 201, response.text
            made.append(response.json())
    return made


def test_accounts_beyond_the_first_page_can_be_found_filtered_and_chosen(
        portal: Portal, live: LiveServer, accounts: list[dict]) -> None:
    page = portal.page
    last = accounts[-1]  # "Account 104": after the first 100 by name
    token = create_token(live, last["id"], "Far away token")
    portal.sign_in()
    portal.wait_list()

    select = portal.account_select()
    expect(page.get_by_text("106 accounts: the first 100 by name are listed")).to_be_visible()
    assert select.locator(f"option[value='{last['id']}']").count() == 0
    page.get_by_label("Find an account (Account)").fill("104")
    expect(select.locator(f"option[value='{last['id']}']")).to_have_count(1)
    select.select_option(last["id"])
    expect(portal.table.locator("tbody .token-link")).to_have_text([token["name"]])
    assert portal.hash_params()["account"] == last["id"]

    # A reload (a bookmark) names the account although it is not on the first page.
    page.reload()
    expect(portal.table.locator("tbody .token-link")).to_have_text([token["name"]])
    expect(portal.account_select()).to_have_value(last["id"])
    expect(portal.account_select().locator("option:checked")).to_have_text("Account 104 (Client)")

    # The wizard finds it too.
    page.get_by_role("button", name="Add API token").click()
    dialog = portal.dialog()
    dialog.get_by_label("Find an account (Account)").fill("Account 103")
    choice = portal.account_select(dialog)
    expect(choice.locator("option")).to_have_text(["Choose an account", "Account 103 (Client)"])
    choice.select_option(label="Account 103 (Client)")
    dialog.get_by_label("Name").fill("Found by name")
    dialog.get_by_role("button", name="Next").click()
    dialog.get_by_label("Access Management").check()
    dialog.get_by_role("button", name="Next").click()
    dialog.get_by_role("button", name="Next").click()
    dialog.get_by_role("button", name="Create token").click()
    secret = dialog.get_by_label("Your new API token").input_value()
    assert get_token(live, secret.split(":")[1])["account"]["id"] == accounts[103]["id"]
