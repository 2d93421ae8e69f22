"""A real HTTP receiver for webhook tests: a server on a free local port, in a thread,
that keeps every request and answers with the statuses it is told to."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # time.time() when it arrived
    status: int  # what the receiver answered

    @property
    def record(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value

    @property
    def delivery(self) -> str:
        return self.headers["tokenhouse-delivery"]


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_verify() -> Callable[[str, str, bytes], bool]:
    """The receiver's check exactly as the README's "Webhooks" shows it (its code is run
    here, so the README cannot drift from what works)."""
    section = README.read_text().split("\n## Webhooks\n", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 - our own README
    verify: Callable[[str, str, bytes], bool] = namespace["verify"]
    return verify


class Receiver:
    def __init__(self, delay: float = 0.0) -> None:
        """`delay`: seconds to wait before answering."""
        self.received: list[Received] = []
        self._answers: deque[int] = deque()
        self._waiting = 0  # requests being held (`delay`)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if delay:
                    with receiver._lock:
                        receiver._waiting += 1
                    time.sleep(delay)
                    with receiver._lock:
                        receiver._waiting -= 1
                with receiver._lock:
                    status = receiver._answers.popleft() if receiver._answers else 200
                    receiver.received.append(Received(
                        {k.lower(): v for k, v in self.headers.items()}, body, time.time(),
                        status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            # The default backlog of 5 made concurrent deliveries wait for SYN retries.
            request_queue_size = 128

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def answer(self, *statuses: int) -> None:
        """Answer the next requests with these statuses (then 200)."""
        with self._lock:
            self._answers.extend(statuses)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self) -> int:
        with self._lock:
            return len(self.received)

    def waiting(self) -> int:
        """Requests arrived and not yet answered (held by `delay`)."""
        with self._lock:
            return self._waiting
