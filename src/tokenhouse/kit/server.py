"""The HTTP server's protocol: uvicorn's httptools protocol with a bound on a request's head.

httptools keeps a header line in memory until it ends and has no limit of its own: one
request with a 100 MB `Authorization` header held a worker for 15 s and 600 MB before the app
could even look at it. (uvicorn's h11 protocol has a limit, but costs far more CPU per
request.) The limits of kit/limits.py run only once the head is complete; this one runs while
it arrives.
"""

import asyncio
import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Request line and headers together. Real heads are well under 8 KiB; a browser's cookies for
# another application on the same host can add a few KiB.
MAX_HEAD_BYTES = 64 * 1024

_BODY = json.dumps({
    "type": "https://www.rfc-editor.org/rfc/rfc6585#section-5",
    "title": "Request Header Fields Too Large",
    "status": 431,
    "detail": f"The request line and headers are longer than {MAX_HEAD_BYTES} bytes (the "
              "limit).",
}).encode()


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Counts the bytes of each request's head as they arrive and answers 431 (and closes the
    connection) once they pass MAX_HEAD_BYTES, so a head never holds more than the limit and
    one read of memory."""

    _head: int | None  # bytes of the current request's head so far; None: in a body
    _ends = 0  # heads and messages completed on this connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head = 0
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        in_head, ends = self._head is not None, self._ends
        super().data_received(data)
        # Only a read that is head from its first byte to its last is counted: a read that
        # also ended a head or a message is not (it holds body bytes, or the start of the
        # next request), which undercounts by at most one read and never refuses a request
        # whose head is within the limit.
        if in_head and self._head is not None and ends == self._ends:
            self._head += len(data)
            if self._head > MAX_HEAD_BYTES:
                self._refuse()

    def on_headers_complete(self) -> None:
        self._head = None
        self._ends += 1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head = 0
        self._ends += 1

    def _refuse(self) -> None:
        self._head = None
        head = (b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: application/problem+json\r\n"
                b"content-length: " + str(len(_BODY)).encode() + b"\r\n"
                b"connection: close\r\n\r\n")
        self.transport.write(head + _BODY)
        self.transport.close()
