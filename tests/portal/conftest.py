"""Browser tests of the portal (Settings > API tokens): real headless Chromium, driven by
Playwright, against a real `tokenhouse serve` process (tests/live_server.py, SQLite).

Debian's Chromium is used (/usr/bin/chromium; `make install-test` installs it): without it the
tests are skipped, unless the CI environment variable is set, where that is a failure.
Every test leaves a screenshot in test-output/screenshots/<test name>.png.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.live_server import LiveServer
from tests.portal.support import Browsed, Portal

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="package")
def chromium() -> Path:
    if not CHROMIUM.exists():
        reason = (f"{CHROMIUM} is missing: the portal's browser tests need Debian's chromium "
                  "package ('make install-test' installs it)")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="package")
def browser(chromium: Path) -> Iterator[object]:
    """One headless Chromium for the package (closed before any other test package runs:
    the sync API must not be alive while pytest-asyncio runs its loop)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), headless=True,
                                              args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="package")
def live_servers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[dict[str, Future[LiveServer]]]:
    """One throwaway server per test module of the package that runs, all started at once in
    the background (each takes seconds to migrate, bootstrap and serve): the later modules'
    servers are ready by the time their tests run."""
    names = (getattr(getattr(item, "module", None), "__name__", "")
             for item in request.session.items)
    modules = sorted({name for name in names if name.startswith(f"{__package__}.")})
    pool = ThreadPoolExecutor(max_workers=max(1, len(modules)), thread_name_prefix="live")
    futures = {name: pool.submit(LiveServer.start, "sqlite",
                                 tmp_path_factory.mktemp(name.rsplit(".", 1)[1]))
               for name in modules}
    try:
        yield futures
    finally:
        for future in futures.values():
            try:
                future.result().stop()
            except Exception:  # noqa: BLE001 - a server that failed to start stopped itself
                pass
        pool.shutdown()


@pytest.fixture(scope="module")
def live(live_servers: dict[str, Future[LiveServer]], request: pytest.FixtureRequest
         ) -> LiveServer:
    """The module's own server (migrated, bootstrapped: an Operations account and its admin
    token); each test makes the accounts and tokens it needs."""
    return live_servers[request.module.__name__].result()


@pytest.fixture(scope="session")
def screenshots(output_dir: Path) -> Path:
    path = output_dir / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def portal(browser: object, live: LiveServer, screenshots: Path,
           request: pytest.FixtureRequest) -> Iterator[Portal]:
    """A fresh browser context (its own sessionStorage) on the live server, 1280x800. At the
    end: a screenshot, and no script error or Content-Security-Policy violation happened."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    with Browsed(browser, live, screenshots, name) as portal:
        yield portal
