"""Webhook deliveries across real server processes on one database (issue 13): a restart
in the middle of deliveries loses nothing, and two processes deliver each record once."""

import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.databases import BACKENDS
from tests.helpers import TOKENS
from tests.live_server import LiveServer
from tests.processes import Server
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.slow

WEBHOOKS = "/public/v1/audit/webhooks"
CREATED = "platform.accounts.apiToken.created"
SETTINGS = {"TOKENHOUSE_WEBHOOK_ALLOW_PRIVATE": "true", "TOKENHOUSE_WEBHOOK_POLL_SECONDS": "0.05"}


def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


def subscribe(client: httpx.Client, url: str) -> dict[str, Any]:
    response = client.post(WEBHOOKS, json={"url": url, "events": [CREATED]})
    assert response.status_code == 201, response.text
    return dict(response.json())


def new_token(client: httpx.Client, account_id: str) -> str:
    response = client.post(TOKENS, json={"name": "delivered", "account": {"id": account_id},
                                         "modules": [{"id": "MOD-1732"}]})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def delivered(receiver: Receiver) -> Counter[str]:
    """How many times each token's creation was answered 2xx."""
    return Counter(got.record["object"]["id"] for got in list(receiver.received)
                   if got.status == 200)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_restart_in_the_middle_of_deliveries_loses_nothing(backend: str, tmp_path: Path):
    with Receiver() as receiver:
        live = LiveServer.start(backend, tmp_path, **SETTINGS)
        extra: list[Server] = []
        try:
            with live.client(live.admin_secret) as admin:
                subscribe(admin, receiver.url())
                # 1. Deliveries between their retries when the server stops: the receiver
                # fails their first attempts.
                receiver.answer(503, 503, 503)
                made = [new_token(admin, live.account_id) for _ in range(3)]
                until(lambda: receiver.count() >= 3, 10, "the first attempts")
            assert live.server is not None and live.server.terminate() == 0, live.log()
            # 2. Records not yet fanned out when a process dies: this one looks once a
            # minute (at its start), and is killed.
            slow = Server(cwd=live.workdir, env={**live.env,
                                                 "TOKENHOUSE_WEBHOOK_POLL_SECONDS": "60"})
            extra.append(slow)
            slow.wait_healthy()
            time.sleep(0.3)  # its one look at start is over
            with slow.client(live.admin_secret) as client:
                made += [new_token(client, live.account_id) for _ in range(3)]
            os.killpg(slow.process.pid, signal.SIGKILL)
            slow.process.wait(10)
            sent = {got.record["object"]["id"] for got in list(receiver.received)}
            assert not sent & set(made[3:])  # nothing of the second three was sent
            # 3. A server started again delivers all of it: the first three when their
            # retry is due (5 s after their attempt), the others at once.
            again = Server(cwd=live.workdir, env=live.env)
            extra.append(again)
            again.wait_healthy()
            until(lambda: set(delivered(receiver)) == set(made), 20, "every delivery")
            time.sleep(0.5)
            assert delivered(receiver) == Counter({token: 1 for token in made})
        finally:
            for server in extra:
                server.stop()
            live.stop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_processes_deliver_each_record_once(backend: str, tmp_path: Path):
    with Receiver() as receiver:
        live = LiveServer.start(backend, tmp_path, **SETTINGS)
        other = Server(cwd=live.workdir, env=live.env)
        try:
            other.wait_healthy()
            with live.client(live.admin_secret) as a, other.client(live.admin_secret) as b:
                subscribe(a, receiver.url())
                made = [new_token(client, live.account_id)
                        for _ in range(15) for client in (a, b)]
            until(lambda: receiver.count() >= len(made), 20, "every delivery")
            time.sleep(1.0)  # time for a second delivery of anything, were there one
            assert receiver.count() == len(made)
            assert delivered(receiver) == Counter({token: 1 for token in made})
            assert len({got.delivery for got in receiver.received}) == len(made)
        finally:
            other.stop()
            live.stop()
