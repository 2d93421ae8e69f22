"""The API's Swagger UI page, /public/v1/accounts/docs (issue 9, defect 11): served with its
assets from this server alone (a PyPI package's files, no CDN), under a strict
Content-Security-Policy, and working with every other origin unreachable.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import fastapi_offline
import pytest
from playwright.sync_api import expect

from tests.live_server import LiveServer
from tests.portal.support import Browsed

pytestmark = pytest.mark.slow

DOCS = "/public/v1/accounts/docs"
PACKAGE_FILES = Path(fastapi_offline.__file__).resolve().parent / "static"


class References(HTMLParser):
    """Every href/src of a page, and how many inline scripts, handlers or styles it has."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline = 0
        self._in_script_without_src = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]
        if tag == "script" and not found.get("src"):
            self._in_script_without_src = True
        if any(name.startswith("on") for name, _ in attrs) or tag == "style" or \
                "style" in found:
            self.inline += 1

    def handle_data(self, data: str) -> None:
        if self._in_script_without_src and data.strip():
            self.inline += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script_without_src = False


def csp_directives(header: str) -> dict[str, list[str]]:
    return {parts[0]: parts[1:] for parts in (d.split() for d in header.split(";") if d.strip())}


def test_the_page_and_its_assets_are_served_here_under_a_strict_policy(
        live: LiveServer) -> None:
    with live.client() as http:
        page = http.get(DOCS)
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        policy = csp_directives(page.headers["content-security-policy"])
        assert policy["default-src"] == ["'none'"]
        assert policy["script-src"] == ["'self'"]
        assert policy["style-src"] == ["'self'"]
        assert policy["connect-src"] == ["'self'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert page.headers["x-content-type-options"] == "nosniff"
        parsed = References()
        parsed.feed(page.text)
        assert parsed.inline == 0, page.text
        assert not re.search(r"(?i)\b(?:https?:)?//", page.text), page.text
        # Every reference is a path of this server, under the page's own path.
        assert parsed.urls and all(url.startswith(f"{DOCS}/") for url in parsed.urls), \
            parsed.urls
        served: dict[str, Any] = {}
        for url in parsed.urls:
            response = http.get(url)
            assert response.status_code == 200, (url, response.status_code)
            assert response.headers["content-security-policy"] == \
                page.headers["content-security-policy"], url
            served[urlsplit(url).path.rsplit("/", 1)[1]] = response
    # The package's own files, byte for byte, with their types.
    for name, kind in (("swagger-ui-bundle.js", "text/javascript"),
                       ("swagger-ui.css", "text/css"), ("favicon.png", "image/png")):
        assert served[name].headers["content-type"].startswith(kind), name
        assert served[name].content == (PACKAGE_FILES / name).read_bytes(), name
    init = served["init.js"].text
    assert "/public/v1/accounts/openapi.json" in init and "validatorUrl: null" in init
    # The stylesheet pulls nothing in from elsewhere (its images are data: URIs).
    assert not re.search(r"@import|url\((?![\"']?data:)", served["swagger-ui.css"].text)


def test_the_page_works_with_every_other_origin_unreachable(
        browser: Any, live: LiveServer, screenshots: Path) -> None:
    """In Chromium, with any request to another origin refused: the operations are listed,
    one answers "Try it out", no script error and no CSP violation (checked by Browsed)."""
    own = urlsplit(live.url).netloc
    elsewhere: list[str] = []
    with Browsed(browser, live, screenshots, "api-docs") as portal:
        page = portal.page

        def only_here(route: Any) -> None:
            if urlsplit(route.request.url).netloc == own:
                route.continue_()
            else:
                elsewhere.append(route.request.url)
                route.abort()

        page.route("**/*", only_here)
        page.goto(f"{live.url}{DOCS}")
        operations = page.locator(".opblock")
        expect(operations.first).to_be_visible()
        assert operations.count() >= 15
        health = page.locator(".opblock", has_text="/healthz")
        health.locator(".opblock-summary").click()
        health.get_by_role("button", name="Try it out").click()
        health.get_by_role("button", name="Execute").click()
        expect(health.locator(".live-responses-table .response-col_status").nth(1)) \
            .to_have_text("200")
    assert elsewhere == []
