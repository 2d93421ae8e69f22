"""The webhook delivery rate: a local receiver, a webhook on the bench server pointing at it,
N token creates through the API (each writes a `platform.accounts.apiToken.created` record,
in its transaction, into the outbox), measured twice (benchmark.Benchmark.webhooks):

* live: records delivered while they are made, from the first create sent to the last
  delivery received (bounded by how fast the creates go when delivery keeps up);
* backlog: N records made on a server whose worker waits 60 s between passes, that server
  stopped, then a fresh server drains them: from the first delivery received to the last.

Every record must arrive, signed with the webhook's secret; repeats are counted (at least
once allows them; the normal case has none).

The receiver runs in this process, in a thread of its own: an asyncio server with a minimal
HTTP/1.1 reader (keep-alive, as the server's client keeps connections), answering 204, with
a listen backlog of 1,024 (a backlog of 5 made concurrent connections wait for SYN retries).
It keeps each delivery's raw body and headers, and verifies them after the run, so that the
receipt times are not slowed by the checks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.client as httpclient
import json
import random
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bench import BenchError
from bench.checks import http
from bench.scenarios import ACCESS_MANAGEMENT, TOKENS_PATH

WEBHOOKS_PATH = "/public/v1/audit/webhooks"
EVENT = "platform.accounts.apiToken.created"
PRODUCERS = 16            # concurrent creates, as scenario create's first connection count
BACKLOG = 1024
# Waiting for the last delivery, at most: this long, plus SLOWEST a delivery still missing
# when the wait starts (one webhook gets about 70 a second since the per-webhook limit).
DRAIN_TIMEOUT = 60.0
SLOWEST = 0.05


@dataclass(frozen=True, slots=True)
class Delivery:
    at: float                 # time.monotonic() when its body had arrived
    headers: dict[str, str]   # names in lower case
    body: bytes


class Receiver:
    """A local HTTP receiver in a thread: every POST kept, answered 204."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.ids: set[str] = set()  # distinct Tokenhouse-Delivery values
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="webhook-receiver",
                                        daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> Receiver:
        self._thread.start()
        if not self._ready.wait(10) or not self.port:
            raise BenchError("the webhook receiver did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(
            self._connection, "127.0.0.1", 0, backlog=BACKLOG))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            self._loop.close()

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.deliveries.append(Delivery(time.monotonic(), headers, body))
                self.ids.add(headers.get("tokenhouse-delivery", ""))
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed its connection
        finally:
            writer.close()


def _verify(secret: str, header: str, body: bytes) -> bool:
    """The README's receiver check ("Webhooks"), without the clock tolerance."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(secret.encode(), f"{fields['t']}.".encode() + body,
                        hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", ""))


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Producer:
    """`count` token creates by the admin, PRODUCERS at a time, each on a kept-alive
    connection of its thread; when each was answered, by token id."""

    def __init__(self, base_url: str, admin_secret: str, accounts: list[str]) -> None:
        parts = urlsplit(base_url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._headers = {"Authorization": f"Bearer {admin_secret}",
                         "Content-Type": "application/json"}
        self._accounts = accounts
        self._local = threading.local()

    def _create(self, number: int) -> tuple[str, float]:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = httpclient.HTTPConnection(
                self._host, self._port, timeout=30)
        body = json.dumps({"name": f"Bench webhook {number}",
                           "account": {"id": random.choice(self._accounts)},
                           "modules": [{"id": ACCESS_MANAGEMENT}]})
        connection.request("POST", TOKENS_PATH, body=body, headers=self._headers)
        answer = connection.getresponse()
        data = answer.read()
        if answer.status != 201:
            raise BenchError(f"webhooks: a create answered {answer.status}: "
                             f"{data[:1000].decode(errors='replace')}")
        token_id: str = json.loads(data)["id"]
        return token_id, time.monotonic()

    def run(self, count: int) -> dict[str, float]:
        with ThreadPoolExecutor(PRODUCERS, thread_name_prefix="webhook-producer") as pool:
            return dict(pool.map(self._create, range(count)))


@dataclass(frozen=True, slots=True)
class Batch:
    """Records made by `produce`: when the first create was sent, when the last was
    answered, and when each was answered, by token id (the record's object)."""
    began: float
    produced: float
    answered: dict[str, float]


def create_webhook(base_url: str, admin_secret: str, url: str) -> tuple[str, str]:
    """The admin's webhook for EVENT at `url`: its id and signing secret."""
    status, body = http("POST", f"{base_url}{WEBHOOKS_PATH}", secret=admin_secret,
                        body={"url": url, "events": [EVENT],
                              "description": "bench/run.py delivery rate"})
    if status != 201:
        raise BenchError(f"webhooks: creating the webhook answered {status}: "
                         f"{str(body)[:1000]}")
    return body["id"], body["secret"]


def produce(base_url: str, admin_secret: str, accounts: list[str], count: int) -> Batch:
    began = time.monotonic()
    answered = Producer(base_url, admin_secret, accounts).run(count)
    return Batch(began, time.monotonic(), answered)


def wait_for(receiver: Receiver, total: int) -> None:
    """Until `total` distinct deliveries have arrived, or the time allowed has passed (the
    check of `arrivals` says what is missing)."""
    missing = max(total - len(receiver.ids), 0)
    deadline = time.monotonic() + DRAIN_TIMEOUT + SLOWEST * missing
    while len(receiver.ids) < total and time.monotonic() < deadline:
        time.sleep(0.01)


def arrivals(receiver: Receiver, secret: str, batches: list[Batch]) -> tuple[
        dict[str, float], int]:
    """When each batch's record first arrived, by token id, and how many deliveries
    repeated one. A missing record, a wrong signature or a delivery of another record is a
    failed step."""
    made = {token for batch in batches for token in batch.answered}
    first_at: dict[str, float] = {}
    delivery_ids: set[str] = set()
    repeats = unsigned = foreign = 0
    for delivery in list(receiver.deliveries):
        if not _verify(secret, delivery.headers.get("tokenhouse-signature", "t=0"),
                       delivery.body):
            unsigned += 1
            continue
        record = json.loads(delivery.body)
        token_id = record["object"]["id"]
        if record["event"] != EVENT or delivery.headers.get("tokenhouse-event") != EVENT \
                or token_id not in made:
            foreign += 1
            continue
        delivery_id = delivery.headers["tokenhouse-delivery"]
        if token_id in first_at or delivery_id in delivery_ids:
            repeats += 1
            continue
        delivery_ids.add(delivery_id)
        first_at[token_id] = delivery.at
    missing = len(made) - len(first_at)
    if unsigned or foreign or missing:
        raise BenchError(f"webhooks: of {len(made)} records, {missing} never arrived (waited "
                         f"{DRAIN_TIMEOUT:.0f}s + {SLOWEST}s a record); {unsigned} deliveries "
                         f"had a wrong signature, {foreign} were not the records made")
    return first_at, repeats


def live_figures(batch: Batch, first_at: dict[str, float]) -> dict[str, Any]:
    """Records delivered while they are made: from the first create sent to the last
    record's delivery; lag from each create's answer to its record's delivery."""
    count = len(batch.answered)
    last = max(first_at[token] for token in batch.answered)
    lags = [first_at[token] - at for token, at in batch.answered.items()]
    return {
        "records": count, "producers": PRODUCERS,
        "create_rps": round(count / (batch.produced - batch.began), 1),
        "seconds": round(last - batch.began, 3),
        "deliveries_per_s": round(count / (last - batch.began), 1),
        "drain_after_last_create_s": round(last - batch.produced, 3),
        "lag_ms": {"p50": round(statistics.median(lags) * 1000, 1),
                   "p99": round(_percentile(lags, 0.99) * 1000, 1),
                   "max": round(max(lags) * 1000, 1)},
    }


def backlog_figures(batch: Batch, first_at: dict[str, float], held: int,
                    draining: float) -> dict[str, Any]:
    """Records waiting in the outbox when a server starts (at `draining`): from the first
    of them delivered to the last (the fan-out and the deliveries, as fast as they go).
    Records delivered before (`held`: the holding server's worker made a pass) are left
    out."""
    count = len(batch.answered)
    times = sorted(first_at[token] for token in batch.answered
                   if first_at[token] >= draining)
    seconds = times[-1] - times[0] if times else 0.0
    return {
        "records": count, "producers": PRODUCERS,
        "create_rps": round(count / (batch.produced - batch.began), 1),
        "delivered_while_held": held, "drained": len(times),
        "seconds": round(seconds, 3),
        "deliveries_per_s": round((len(times) - 1) / seconds, 1) if seconds > 0 else None,
    }
