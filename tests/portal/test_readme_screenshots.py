"""The README's screenshots of the portal, made on a throwaway server with made-up data (the
secret in wizard-summary.png belongs to a server that no longer exists).

Every run saves them under test-output/screenshots/readme-*.png; with PORTAL_DOCS_SCREENSHOTS=1
they also replace docs/screenshots/{list,wizard-summary,details}.png:

    PORTAL_DOCS_SCREENSHOTS=1 .venv/bin/python -m pytest tests/portal/test_readme_screenshots.py
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.live_server import LiveServer
from tests.portal.support import TOKENS, Browsed, create_account, create_token, token_action

pytestmark = pytest.mark.slow

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def seed(live: LiveServer) -> dict[str, dict]:
    contoso = create_account(live, "Contoso Ltd", "Client")
    fabrikam = create_account(live, "Fabrikam Software", "Vendor")
    create_account(live, "Northwind Traders", "Client")
    made = {
        "legacy": create_token(live, contoso["id"], "Legacy order sync",
                               modules=("Commerce",),
                               description="Old nightly job, replaced by the ERP integration."),
        "catalog": create_token(live, fabrikam["id"], "Catalog publisher",
                                modules=("Catalog Management", "Program Management", "Integration"),
                                description="Publishes product updates from the PIM."),
        "monitoring": create_token(live, fabrikam["id"], "Monitoring",
                                   modules=("Helpdesk", "Notifications")),
        "ci": create_token(live, contoso["id"], "CI pipeline",
                           modules=("Marketplace", "Commerce"),
                           description="Deploys the storefront and places test orders."),
        "erp": create_token(live, contoso["id"], "ERP integration",
                            modules=("Access Management", "Billing", "Commerce", "Marketplace"),
                            description="Pushes invoices and credit notes to SAP every hour."),
    }
    token_action(live, made["legacy"]["id"], "disable")
    for key in ("ci", "erp", "catalog"):  # used: a last access to show
        with httpx.Client(base_url=live.url,
                          headers={"Authorization": f"Bearer {made[key]['token']}"}) as client:
            client.get(f"{TOKENS}/{made[key]['id']}")
    return made


@pytest.fixture(scope="module")
def targets(screenshots: Path) -> dict[str, list[Path]]:
    docs = os.environ.get("PORTAL_DOCS_SCREENSHOTS") == "1"
    if docs:
        DOCS.mkdir(parents=True, exist_ok=True)
    return {name: [screenshots / f"readme-{name}.png", *([DOCS / f"{name}.png"] if docs else [])]
            for name in ("list", "wizard-summary", "details")}


def test_readme_screenshots(browser: Browser, live: LiveServer, screenshots: Path,
                            targets: dict[str, list[Path]]) -> None:
    made = seed(live)
    with Browsed(browser, live, screenshots, "test_readme_screenshots",
                 viewport={"width": 1280, "height": 880}) as portal:
        page = portal.page
        portal.sign_in()
        expect(portal.table.locator("tbody tr[data-id]")).to_have_count(6)
        page.mouse.move(0, 0)
        for path in targets["list"]:
            portal.shot(path=path)

        page.get_by_role("button", name="Add API token").click()
        dialog = portal.dialog()
        portal.account_select(dialog).select_option(label="Northwind Traders (Client)")
        dialog.get_by_label("Name").fill("Reporting dashboard")
        dialog.get_by_label("Description").fill("Reads billing data for the finance dashboard.")
        dialog.get_by_role("button", name="Next").click()
        dialog.get_by_label("Billing").check()
        dialog.get_by_label("Spotlight").check()
        dialog.get_by_role("button", name="Next").click()
        dialog.get_by_role("button", name="Next").click()
        dialog.get_by_role("button", name="Create token").click()
        expect(dialog.get_by_role("heading", name="API token created")).to_be_visible()
        assert dialog.get_by_label("Your new API token").input_value().startswith("idt:TKN-")
        page.mouse.move(0, 0)
        for path in targets["wizard-summary"]:
            portal.shot(path=path)
        dialog.get_by_role("button", name="Done").click()

        portal.open(f"#/tokens/{made['erp']['id']}")
        expect(page.get_by_role("heading", level=1)).to_have_text("ERP integration")
        expect(page.get_by_role("tabpanel")).to_contain_text("Pushes invoices")
        page.mouse.move(0, 0)
        for path in targets["details"]:
            portal.shot(path=path)
