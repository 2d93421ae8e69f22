"""The HTTP server as `tokenhouse serve` runs it: a request's head is bounded while it
arrives, and no client may choose the address the server logs for it."""

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live_server import LiveServer, serving
from tokenhouse.kit.server import MAX_HEAD_BYTES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with serving("sqlite", Path(tmp_path_factory.mktemp("server"))) as server:
        yield server


def exchange(live: LiveServer, chunks: Iterator[bytes]) -> tuple[bytes, int]:
    """Send `chunks` on one connection (stopping when the server closes it); the answer and
    how many bytes were sent."""
    port = int(live.url.rsplit(":", 1)[1])
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        try:
            for chunk in chunks:
                connection.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while part := connection.recv(65536):
                answer += part
                if b"\r\n\r\n" in answer and b"Content-Length" not in answer:
                    break
        except (ConnectionResetError, TimeoutError):
            pass
    return answer, sent


def endless_header() -> Iterator[bytes]:
    """A request whose one header never ends (64 MiB at most)."""
    yield b"GET /public/v1/accounts/modules HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer idt:"
    for _ in range(1024):
        yield b"T" * 65536
        time.sleep(0.001)


def test_an_endless_header_is_refused_while_it_arrives(live: LiveServer) -> None:
    answer, sent = exchange(live, endless_header())
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"application/problem+json" in answer
    # Refused within a few reads of the limit, not after the whole 64 MiB.
    assert sent < 64 * MAX_HEAD_BYTES
    # The server goes on serving.
    with live.client() as client:
        assert client.get("/healthz").status_code == 200


def test_heads_within_the_limit_and_large_bodies_pass(live: LiveServer) -> None:
    with live.client(live.admin_secret) as client:
        padding = {"X-Padding": "p" * (MAX_HEAD_BYTES // 2)}
        assert client.get("/public/v1/accounts/modules", headers=padding).status_code == 200
        # A body larger than the head limit, sent with its head in one go, is the app's to
        # judge (here: a 400 for the bad name, not a 431).
        body = {"name": "x" * 900_000, "type": "Client"}
        response = client.post("/public/v1/accounts/accounts", json=body)
        assert response.status_code == 400, response.text


def test_forwarded_addresses_are_not_believed(live: LiveServer) -> None:
    with live.client() as client:
        client.get("/healthz", headers={"X-Forwarded-For": "203.0.113.9"})
    time.sleep(0.2)
    log = live.log(20_000)
    assert "GET /healthz" in log
    assert "203.0.113.9" not in log
