"""A leak report through one real server process stops the secret in another within a second
(its credential cached there), on one database, SQLite and PostgreSQL."""

from collections.abc import Iterator

import pytest

from tests.auth.test_invalidation import refused_within, warm
from tests.databases import BACKENDS
from tests.helpers import TOKENS
from tests.live_server import LiveServer
from tests.processes import Server
from tests.tokens.test_rotation_processes import (
    PROPAGATION,
    Servers,
    new_token,
    rotate,
    status,
)

LEAKS = f"{TOKENS}/revoke-leaked"


@pytest.fixture(scope="module", params=BACKENDS)
def servers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Servers]:
    """Server A (migrated, bootstrapped) and server B, another process on the same database."""
    live = LiveServer.start(request.param, tmp_path_factory.mktemp(f"leaks-{request.param}"))
    assert live.server is not None
    other = Server(cwd=live.workdir, env=live.env)
    try:
        other.wait_healthy()
        yield Servers(live, live.server, other)
    finally:
        other.stop()
        live.stop()


def report(server: Server, secret: str) -> None:
    with server.client() as anyone:  # no credential
        response = anyone.post(LEAKS, json={"tokens": [secret], "source": "a test"})
    assert response.status_code == 202, response.text
    assert response.json() == {"received": 1}


def test_a_reported_secret_stops_in_the_other_process_within_a_second(servers: Servers):
    token = new_token(servers)
    warm(servers.b, token["token"])
    warm(servers.a, token["token"])
    report(servers.a, token["token"])
    assert status(servers.a, token["token"]) == 401  # at once, where it was reported
    elapsed = refused_within(servers.b, token["token"], PROPAGATION)
    assert elapsed is not None, "server B still accepts a reported secret after 1 s"
    with servers.b.client(servers.live.admin_secret) as admin:
        seen = admin.get(f"{TOKENS}/{token['id']}").json()
    assert (seen["status"], seen["statusReason"]) == ("Disabled", "Leaked")


def test_a_reported_previous_secret_stops_in_the_other_process(servers: Servers):
    token = new_token(servers)
    rotated = rotate(servers, token, gracePeriodSeconds=3600)
    warm(servers.a, token["token"])  # the replaced secret, in its window
    warm(servers.a, rotated["token"])
    report(servers.b, token["token"])  # reported through B this time
    elapsed = refused_within(servers.a, token["token"], PROPAGATION)
    assert elapsed is not None, "server A still accepts a reported previous secret after 1 s"
    warm(servers.a, rotated["token"])  # the current secret works on, everywhere
    warm(servers.b, rotated["token"])
