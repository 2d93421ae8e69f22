"""Limits on a request as a whole, checked before any routing or work.

- The query string: at most MAX_QUERY_BYTES (a 414 problem). Real queries are well under a
  kilobyte; the bound caps what the query parser, the SQL it compiles to and the parsed-query
  cache may be asked to hold.
- The path: at most MAX_PATH_BYTES (414), and no control character once percent-decoded (a
  400 problem): an id with NUL reached PostgreSQL as a 500, and a decoded line break forged
  log lines.
- The raw query string must be UTF-8 (400): it is read as text everywhere after this.

The rest of the input rules live where the input is read: filters in kit/rql/parser.py (depth,
terms, value length), bodies in kit/wire.py (size, depth, text) and kit/multipart.py, and the
rule on text both follow in kit/text.py.
"""

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from tokenhouse.kit.problems import problem_response

MAX_QUERY_BYTES = 8192
MAX_PATH_BYTES = 2048
PATH_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class RequestLimits:
    """Pure ASGI; runs inside ProblemMiddleware, so its problems carry the trace id."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = _refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _refusal(scope: Scope) -> ASGIApp | None:
    query: bytes = scope.get("query_string", b"")
    path: str = scope.get("path", "")
    if len(query) > MAX_QUERY_BYTES:
        return problem_response(414, f"The query string is longer than {MAX_QUERY_BYTES} "
                                     "bytes (the limit).")
    if len(path.encode("utf-8", "replace")) > MAX_PATH_BYTES:
        return problem_response(414, f"The path is longer than {MAX_PATH_BYTES} bytes "
                                     "(the limit).")
    if PATH_CONTROL.search(path):
        return problem_response(400, "The path contains a control character.",
                                errors={"path": ["Control characters are not allowed."]})
    try:
        query.decode("utf-8")
    except UnicodeDecodeError:
        return problem_response(400, "The query string is not valid UTF-8; percent-encode it.",
                                errors={"query": ["Not valid UTF-8."]})
    return None
