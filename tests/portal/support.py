"""Helpers of the portal's browser tests: a page on the live server, and API calls that set up
the data (accounts, tokens) the way any client would."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from tests.helpers import ACCOUNTS, MODULES, TOKENS
from tests.live_server import LiveServer


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:6]}"


# -- the API, for set-up and checks -----------------------------------------------------


def api(live: LiveServer, secret: str | None = None) -> httpx.Client:
    return live.client(secret or live.admin_secret)


def module_ids(live: LiveServer, *names: str) -> list[str]:
    with api(live) as client:
        page = client.get(MODULES, params={"limit": "100"}).json()["data"]
    by_name = {m["name"]: m["id"] for m in page}
    return [by_name[name] for name in names]


def create_account(live: LiveServer, name: str, account_type: str) -> dict[str, Any]:
    with api(live) as client:
        response = client.post(ACCOUNTS, json={"name": name, "type": account_type})
    assert response.status_code == 201, response.text
    return response.json()


def create_token(live: LiveServer, account_id: str, name: str, *,
                 modules: tuple[str, ...] = ("Access Management",),
                 description: str | None = None, secret: str | None = None,
                 expires_at: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "account": {"id": account_id},
                            "modules": [{"id": m} for m in module_ids(live, *modules)]}
    if description is not None:
        body["description"] = description
    if expires_at is not None:
        body["expiresAt"] = expires_at
    with api(live, secret) as client:
        response = client.post(TOKENS, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def get_token(live: LiveServer, token_id: str) -> dict[str, Any]:
    with api(live) as client:
        response = client.get(f"{TOKENS}/{token_id}")
    assert response.status_code == 200, response.text
    return response.json()


def token_action(live: LiveServer, token_id: str, action: str) -> None:
    with api(live) as client:
        response = client.post(f"{TOKENS}/{token_id}/{action}")
    assert response.status_code == 200, response.text


# -- the page ----------------------------------------------------------------------------


class Portal:
    """The portal in one browser tab."""

    def __init__(self, page: Page, live: LiveServer, screenshots: Path, name: str):
        self.page = page
        self.live = live
        self.screenshots = screenshots
        self.name = name
        self.list_requests: list[str] = []
        page.on("request", self._seen)

    def _seen(self, request: Any) -> None:
        if request.url.split("?")[0].endswith(TOKENS) and request.method == "GET":
            self.list_requests.append(request.url)

    def open(self, hash_: str = "") -> None:
        """`/` (which redirects to the page), then the route `hash_` (e.g. '#/tokens?q=x')."""
        self.page.goto(f"{self.live.url}/{hash_}")

    def sign_in(self, secret: str | None = None, hash_: str = "") -> None:
        self.open(hash_)
        self.page.get_by_label("API token", exact=True).fill(secret or self.live.admin_secret)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.locator("#session")).to_be_visible()

    @property
    def table(self) -> Locator:
        return self.page.locator("#token-table")

    def wait_list(self) -> None:
        """Wait until the list has answered (no request in flight)."""
        expect(self.table).to_be_visible()
        expect(self.table).not_to_have_attribute("aria-busy", "true")
        expect(self.table.locator("tbody tr").first).to_be_visible()

    def search(self, text: str) -> None:
        """Type `text` in the search box, press Enter, wait for the list to answer."""
        box = self.page.get_by_label("Search", exact=True)
        box.fill(text)
        box.press("Enter")
        self.page.wait_for_function(
            "q => new URLSearchParams(location.hash.split('?')[1] || '').get('q') === q",
            arg=text.strip())
        expect(self.table).not_to_have_attribute("aria-busy", "true")

    def account_select(self, scope: Locator | None = None) -> Locator:
        return (scope or self.page).get_by_role("combobox", name="Account")

    def row_names(self) -> list[str]:
        self.wait_list()
        return self.table.locator("tbody tr[data-id] .token-link").all_inner_texts()

    def row(self, name: str) -> Locator:
        return self.table.locator("tbody tr[data-id]").filter(
            has=self.page.get_by_role("link", name=name, exact=True))

    def hash_params(self) -> dict[str, str]:
        url = self.page.evaluate("location.hash")
        query = url.split("?", 1)[1] if "?" in url else ""
        return dict(httpx.QueryParams(query))

    def dialog(self) -> Locator:
        return self.page.locator("dialog[open]")

    def shot(self, label: str | None = None, *, full_page: bool = False,
             path: Path | None = None) -> Path:
        target = path or self.screenshots / (f"{self.name}-{label}.png" if label
                                             else f"{self.name}.png")
        target.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(target), full_page=full_page)
        return target

    def no_horizontal_scroll(self) -> None:
        sizes = self.page.evaluate(
            "({scroll: document.documentElement.scrollWidth, client: "
            "document.documentElement.clientWidth, inner: window.innerWidth})")
        assert sizes["scroll"] <= sizes["client"], sizes


class Browsed:
    """A fresh browser context and page; on exit a screenshot, then a check that no script
    error and no Content-Security-Policy violation happened."""

    def __init__(self, browser: Browser, live: LiveServer, screenshots: Path, name: str,
                 viewport: dict[str, int] | None = None):
        self.browser = browser
        self.live = live
        self.screenshots = screenshots
        self.name = name
        self.viewport = viewport or {"width": 1280, "height": 800}
        self.problems: list[str] = []
        self.context: BrowserContext | None = None

    def __enter__(self) -> Portal:
        self.context = self.browser.new_context(viewport=self.viewport, locale="en-US",
                                                timezone_id="UTC")
        self.context.grant_permissions(["clipboard-read", "clipboard-write"],
                                       origin=self.live.url)
        self.context.set_default_timeout(10_000)
        page = self.context.new_page()
        page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        page.on("console", self._console)
        self.portal = Portal(page, self.live, self.screenshots, self.name)
        return self.portal

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.problems.append(f"CSP violation: {message.text}")

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        assert self.context is not None
        try:
            if not self.portal.page.is_closed():
                self.portal.shot()
        finally:
            self.context.close()
        if exc_type is None:
            assert not self.problems, self.problems
