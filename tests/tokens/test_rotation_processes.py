"""Rotation, the grace window and IP allowlists across real server processes on one database
(issue 11): server A makes each change, server B (another process, which had the old secret
verified and cached) must follow it within a second, or when the window's time is up. The
clocks are real: the windows are a few seconds long and every wait polls with a deadline."""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import httpx
import pytest

from tests.auth.test_invalidation import refused_within, warm
from tests.databases import BACKENDS
from tests.helpers import TOKENS, problem
from tests.live_server import LiveServer
from tests.processes import Server

LAST_ACCESS_INTERVAL = 0.5
# Time for a change made through A to reach B (the issue: "within a second").
PROPAGATION = 1.0
ALLOWED = "203.0.113.0/24"
FORWARDED = "203.0.113.9"


@dataclass
class Servers:
    live: LiveServer  # the database's admin token and account
    a: Server
    b: Server


@pytest.fixture(scope="module", params=BACKENDS)
def servers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Servers]:
    """Server A (migrated, bootstrapped) and server B, another process on the same database;
    neither trusts a proxy."""
    live = LiveServer.start(request.param, tmp_path_factory.mktemp(f"rotation-{request.param}"),
                            TOKENHOUSE_LAST_ACCESS_INTERVAL=str(LAST_ACCESS_INTERVAL))
    assert live.server is not None
    other = Server(cwd=live.workdir, env=live.env)
    try:
        other.wait_healthy()
        yield Servers(live, live.server, other)
    finally:
        other.stop()
        live.stop()


@pytest.fixture(scope="module")
def trusting(servers: Servers) -> Iterator[Server]:
    """A third process on the same database that believes X-Forwarded-For from 127.0.0.1."""
    server = Server(cwd=servers.live.workdir,
                    env={**servers.live.env, "TOKENHOUSE_TRUSTED_PROXIES": "127.0.0.1"})
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


def admin(servers: Servers, server: Server | None = None) -> httpx.Client:
    return (server or servers.a).client(servers.live.admin_secret)


def new_token(servers: Servers, **fields: Any) -> dict[str, Any]:
    """A token of the bootstrap account with Access Management (it may list tokens)."""
    with admin(servers) as client:
        modules = [m["id"] for m in client.get("/public/v1/accounts/modules?limit=100").json()[
            "data"] if m["name"] == "Access Management"]
        response = client.post(TOKENS, json={"name": "rotated", "account": {
            "id": servers.live.account_id}, "modules": [{"id": modules[0]}], **fields})
        assert response.status_code == 201, response.text
        return response.json()


def rotate(servers: Servers, token: dict[str, Any], **body: Any) -> dict[str, Any]:
    """Rotate `token` through A; the answer is checked for what every rotation answers."""
    with admin(servers) as client:
        response = client.post(f"{TOKENS}/{token['id']}/rotate", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    rotated = response.json()
    assert rotated["id"] == token["id"]
    assert rotated["revision"] == token["revision"] + 1
    assert rotated["token"] not in (None, token["token"])
    return rotated


def status(server: Server, secret: str) -> int:
    with server.client(secret) as client:
        return client.get(TOKENS).status_code


def within(seconds: float, check: Callable[[], bool]) -> bool:
    """Whether `check` holds at some point within `seconds` (polled)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def eventually[T](seconds: float, fetch: Callable[[], T], accept: Callable[[T], bool]
                  ) -> T | None:
    """The first value `fetch` gives within `seconds` that `accept`s (polled), or None."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = fetch()
        if accept(value):
            return value
        time.sleep(0.02)
    return None


def read(servers: Servers, token_id: str, server: Server | None = None) -> dict[str, Any]:
    with admin(servers, server) as client:
        response = client.get(f"{TOKENS}/{token_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()


# -- rotation --------------------------------------------------------------------------------

def test_the_old_secret_works_everywhere_during_the_grace_window_and_stops_after_it(
        servers: Servers) -> None:
    token = new_token(servers)
    old = token["token"]
    warm(servers.b, old)
    warm(servers.a, old)
    rotated = rotate(servers, token, gracePeriodSeconds=3)
    rotated_at = time.time()
    new = rotated["token"]
    assert rotated["previousSecret"] is not None
    window_end = epoch(rotated["previousSecret"]["expiresAt"])
    assert window_end - rotated_at <= 3.0
    # The whole window, past the time the rotation takes to reach B (which then reads the
    # old secret again): both secrets work in both processes.
    checked_until = rotated_at
    with servers.a.client(old) as old_a, servers.b.client(old) as old_b, \
            servers.a.client(new) as new_a, servers.b.client(new) as new_b:
        while time.time() < window_end - 0.3:
            for client in (old_b, old_a, new_b, new_a):
                response = client.get(TOKENS)
                assert response.status_code == 200, (
                    f"{time.time() - rotated_at:.2f} s after the rotation: {response.text}")
            checked_until = time.time()
            time.sleep(0.05)
    assert checked_until - rotated_at > PROPAGATION, "the window ended before it was checked"
    # Then the old secret stops, in B too (its cached credential's time is up) ...
    with servers.b.client(old) as old_b:
        refused = eventually(window_end + 2.0 - time.time(), lambda: old_b.get(TOKENS),
                             lambda response: response.status_code == 401)
    assert refused is not None, \
        "server B still accepts the replaced secret 2 s after its grace window ended"
    assert "grace window has ended" in problem(refused, 401)["detail"]
    assert status(servers.a, old) == 401
    # ... and the new one works on, everywhere; the token shows no previous secret.
    assert status(servers.b, new) == 200
    assert status(servers.a, new) == 200
    assert read(servers, token["id"], servers.b)["previousSecret"] is None
    assert read(servers, token["id"])["previousSecret"] is None


def test_revoking_the_previous_secret_reaches_the_other_process(servers: Servers) -> None:
    token = new_token(servers)
    old = token["token"]
    rotated = rotate(servers, token, gracePeriodSeconds=600)
    new = rotated["token"]
    warm(servers.b, old)  # B holds the replaced secret, verified for its long window
    warm(servers.a, old)
    with admin(servers) as client:
        response = client.post(f"{TOKENS}/{token['id']}/revoke-previous-secret")
        assert response.status_code == 200, response.text
        assert response.json()["previousSecret"] is None
        assert response.json()["revision"] == rotated["revision"] + 1
    assert status(servers.a, old) == 401  # at once where it was revoked
    assert refused_within(servers.b, old, PROPAGATION) is not None, \
        "server B still accepts a revoked previous secret after 1 s"
    assert status(servers.b, new) == 200
    assert status(servers.a, new) == 200
    # Nothing is left to revoke.
    with admin(servers, servers.b) as client:
        problem(client.post(f"{TOKENS}/{token['id']}/revoke-previous-secret"), 409)


def test_the_first_use_of_the_new_secret_retires_the_old_one_in_every_process(
        servers: Servers) -> None:
    token = new_token(servers)
    old = token["token"]
    rotated = rotate(servers, token, gracePeriodSeconds=600, retirePreviousOnFirstUse=True)
    new = rotated["token"]
    assert rotated["previousSecret"] is not None
    assert epoch(rotated["previousSecret"]["expiresAt"]) - time.time() > 590
    warm(servers.b, old)  # the old secret works (the new one is not used yet) ...
    warm(servers.a, old)
    assert read(servers, token["id"], servers.b)["previousSecret"] is not None
    assert status(servers.a, new) == 200  # ... until the new one's first use, through A
    assert status(servers.a, old) == 401
    assert refused_within(servers.b, old, PROPAGATION) is not None, \
        "server B still accepts the old secret 1 s after the new one was first used"
    assert status(servers.b, new) == 200
    assert read(servers, token["id"])["previousSecret"] is None
    assert within(PROPAGATION, lambda: read(servers, token["id"], servers.b)[
        "previousSecret"] is None), "server B still shows the retired secret after 1 s"


def test_a_rotation_without_grace_stops_the_old_secret_everywhere(servers: Servers) -> None:
    token = new_token(servers)
    old = token["token"]
    warm(servers.b, old)
    warm(servers.a, old)
    rotated = rotate(servers, token, gracePeriodSeconds=0)
    assert rotated["previousSecret"] is None
    assert status(servers.a, old) == 401
    assert refused_within(servers.b, old, PROPAGATION) is not None, \
        "server B still accepts the replaced secret 1 s after a rotation without grace"
    assert status(servers.b, rotated["token"]) == 200


def test_an_introspection_through_the_other_process_sees_a_rotation_within_a_second(
        servers: Servers) -> None:
    """Introspection (issue 12) answers from the caches of authentication: a change made
    through A reaches B's answers as it reaches B's authentication."""
    token = new_token(servers)

    def active(secret: str) -> bool:
        with admin(servers, servers.b) as client:
            answer = client.post(f"{TOKENS}/introspect", json={"token": secret})
        assert answer.status_code == 200, answer.text
        return bool(answer.json()["active"])

    assert active(token["token"]) and active(token["token"])  # B holds it in memory
    rotated = rotate(servers, token, gracePeriodSeconds=0)
    assert within(PROPAGATION, lambda: not active(token["token"])), \
        "server B's introspection still finds the replaced secret active after 1 s"
    assert active(rotated["token"])


# -- last access -----------------------------------------------------------------------------

def test_uses_of_each_secret_through_one_process_show_in_the_others_read(
        servers: Servers) -> None:
    token = new_token(servers)
    rotated = rotate(servers, token, gracePeriodSeconds=600)
    started = time.time()
    for _ in range(2):  # A now holds the token's view
        before = read(servers, token["id"])
    assert before["lastAccessAt"] is None and before["lastAccessIps"] == []
    assert before["previousSecret"]["lastAccessAt"] is None
    deadline = LAST_ACCESS_INTERVAL + PROPAGATION

    # A use of the new secret through B counts for the token, not for the old secret.
    reads = partial(read, servers, token["id"])
    assert status(servers.b, rotated["token"]) == 200
    seen = eventually(deadline, reads, lambda body: body["lastAccessAt"] is not None)
    assert seen is not None, "server A never showed the use of the new secret made through B"
    assert seen["previousSecret"]["lastAccessAt"] is None
    assert [entry["ip"] for entry in seen["lastAccessIps"]] == ["127.0.0.1"]

    # A use of the old secret through B shows in `previousSecret`.
    assert status(servers.b, token["token"]) == 200
    seen = eventually(deadline, reads,
                      lambda body: body["previousSecret"]["lastAccessAt"] is not None)
    assert seen is not None, "server A never showed the use of the old secret made through B"
    assert started - 1 <= epoch(seen["previousSecret"]["lastAccessAt"]) <= time.time() + 1
    assert seen["previousSecret"]["expiresAt"] == rotated["previousSecret"]["expiresAt"]
    assert [entry["ip"] for entry in seen["lastAccessIps"]] == ["127.0.0.1"]
    assert seen["lastAccessAt"] >= seen["previousSecret"]["lastAccessAt"]
    # A's list (the stored values, read afresh, and what A heard) shows the same.
    with admin(servers) as client:
        page = client.get(f"{TOKENS}?eq(id,{token['id']})").json()["data"]
    assert [item["id"] for item in page] == [token["id"]]
    assert page[0]["previousSecret"] == seen["previousSecret"]
    assert page[0]["lastAccessIps"] == seen["lastAccessIps"]


# -- IP allowlists and X-Forwarded-For -------------------------------------------------------

def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(servers: Servers) -> None:
    token = new_token(servers, ipAllowlist=[ALLOWED])
    assert token["ipAllowlist"] == [ALLOWED]
    for server in (servers.a, servers.b):
        with server.client(token["token"]) as client:
            response = client.get(TOKENS, headers={"X-Forwarded-For": FORWARDED})
        body = problem(response, 403)
        assert body["detail"] == f"Token {token['id']} cannot be used from 127.0.0.1."
        # A refused request records nothing: a process shows what it noted at once.
        seen = read(servers, token["id"], server)
        assert seen["lastAccessAt"] is None and seen["lastAccessIps"] == []


def test_x_forwarded_for_from_a_trusted_proxy_names_the_client(
        servers: Servers, trusting: Server) -> None:
    token = new_token(servers, ipAllowlist=[ALLOWED])
    with trusting.client(token["token"]) as client:
        # The proxy's own address is not in the list ...
        body = problem(client.get(TOKENS), 403)
        assert body["detail"] == f"Token {token['id']} cannot be used from 127.0.0.1."
        # ... the client it forwards for is, and has the token's answer.
        response = client.get(TOKENS, headers={"X-Forwarded-For": FORWARDED})
        assert response.status_code == 200, response.text
        # A forged hop left of the client is what the client wrote: not believed.
        response = client.get(TOKENS, headers={"X-Forwarded-For": f"198.51.100.1, {FORWARDED}"})
        assert response.status_code == 200, response.text
        forged = f"{FORWARDED}, 198.51.100.1"  # the client is the last untrusted hop
        body = problem(client.get(TOKENS, headers={"X-Forwarded-For": forged}), 403)
        assert body["detail"] == f"Token {token['id']} cannot be used from 198.51.100.1."
    # The client's address is recorded (only it: refused requests record nothing), and
    # shows through the other processes.
    for server in (servers.a, servers.b):
        seen = eventually(LAST_ACCESS_INTERVAL + PROPAGATION,
                          partial(read, servers, token["id"], server),
                          lambda body: body["lastAccessIps"] != [])
        assert seen is not None, "the address of the trusted proxy's client never showed"
        assert [entry["ip"] for entry in seen["lastAccessIps"]] == [FORWARDED]
