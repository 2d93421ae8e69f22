"""Domain errors and their one rendering: RFC 7807 problem documents.

Services raise these; `install` renders them (and every framework or unexpected error) as
`application/problem+json` with a `traceId`. Routes never build error responses by hand.
"""

import logging
import re
import traceback
from http import HTTPStatus
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tokenhouse.kit.origin import fresh_origin, reset_origin
from tokenhouse.kit.outage import unavailable
from tokenhouse.kit.tracing import current_trace_id, new_trace_id, trace_id_var

log = logging.getLogger("tokenhouse")

# The platform points `type` at the RFC section of the status.
_RFC9110 = {
    400: "15.5.1", 401: "15.5.2", 403: "15.5.4", 404: "15.5.5", 405: "15.5.6", 409: "15.5.10",
    413: "15.5.14", 414: "15.5.15", 415: "15.5.16", 422: "15.5.21", 500: "15.6.1", 503: "15.6.4",
}


# What a client sees while the database cannot serve (an outage, a lost connection).
UNAVAILABLE = "The service cannot reach its database at the moment. Try again shortly."
RETRY_AFTER = "2"


def type_for(status: int) -> str:
    if status == 429:  # defined by RFC 6585, not RFC 9110
        return "https://tools.ietf.org/html/rfc6585#section-4"
    return f"https://tools.ietf.org/html/rfc9110#section-{_RFC9110.get(status, '15')}"


class Problem(Exception):
    """An expected failure, with the HTTP status it maps to."""

    status = 500

    def __init__(self, detail: str, *, errors: dict[str, list[str]] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers


class BadRequest(Problem):
    status = 400


class ValidationFailed(BadRequest):
    """Input that breaks a rule; `errors` names each offending property."""

    def __init__(self, errors: dict[str, list[str]], detail: str | None = None):
        super().__init__(detail or "One or more validation errors occurred.", errors=errors)


class Unauthorized(Problem):
    status = 401

    def __init__(self, detail: str):
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(Problem):
    status = 403


class NotFound(Problem):
    status = 404


class Conflict(Problem):
    status = 409


class UnsupportedMediaType(Problem):
    status = 415


class PayloadTooLarge(Problem):
    status = 413


class TooManyRequests(Problem):
    status = 429


class ServiceUnavailable(Problem):
    status = 503


def problem_response(status: int, detail: str | None, *,
                     errors: dict[str, list[str]] | None = None,
                     headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "type": type_for(status),
        "title": HTTPStatus(status).phrase,
        "status": status,
        "traceId": current_trace_id(),
    }
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers,
                        media_type="application/problem+json")


def _property_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    path = ""
    for part in parts:
        path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
    return path or "body"


def validation_errors(raw: list[dict[str, Any]]) -> tuple[str, dict[str, list[str]]]:
    """Pydantic's error list as the platform's `errors` map (property path -> messages)."""
    errors: dict[str, list[str]] = {}
    detail = "One or more validation errors occurred."
    for err in raw:
        kind = err.get("type")
        if kind == "json_invalid":
            return "The request body is not valid JSON.", {"body": ["Malformed JSON."]}
        path = _property_path(tuple(err.get("loc", ())))
        if kind == "missing":
            message = f"The {path} is required."
        elif kind == "extra_forbidden":
            message = f"Unknown property '{path}'."
        elif kind in ("model_type", "dict_type") and path == "body":
            message = "The request body must be a JSON object."
        else:
            message = str(err.get("msg", "Invalid value."))
        errors.setdefault(path, []).append(message)
    return detail, errors


def install(app: FastAPI) -> None:
    """Render every error of the app as a problem document."""
    app.add_middleware(ProblemMiddleware)

    @app.exception_handler(Problem)
    async def _domain(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.detail, errors=exc.errors, headers=exc.headers)

    @app.exception_handler(StaleDataError)
    async def _stale(request: Request, exc: StaleDataError) -> JSONResponse:
        return problem_response(409, "The object was changed by another request at the same "
                                     "time. Read it again and repeat the change.")

    async def _database(request: Request, exc: Exception) -> JSONResponse:
        if not unavailable(exc):
            raise exc  # a fault of the code: ProblemMiddleware logs it and answers 500
        # Expected during an outage: one line, no traceback, and no driver message (it can
        # quote the statement's parameters) in the log or the response.
        log.warning("database unavailable (%s); answered 503 (trace %s)", type(exc).__name__,
                    current_trace_id())
        return problem_response(503, UNAVAILABLE, headers={"Retry-After": RETRY_AFTER})

    for kind in (DBAPIError, SQLAlchemyTimeoutError, OSError, TimeoutError, asyncpg.PostgresError):
        app.add_exception_handler(kind, _database)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, errors = validation_errors(list(exc.errors()))
        return problem_response(400, detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else None
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No resource at {request.url.path}."
        elif exc.status_code == 405:
            detail = f"The method {request.method} is not allowed on {request.url.path}."
        return problem_response(exc.status_code, detail, headers=getattr(exc, "headers", None))


# Characters that could end or rewrite a log line: C0 and C1 controls, DEL, and the Unicode
# line and paragraph separators.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# A traceback beyond this many lines keeps its first and last lines only.
_TRACEBACK_LINES = 120


def printable(text: str) -> str:
    """Request data for a log line, control characters escaped (`\\x0a`): a decoded `%0A` in
    a path must not start a line of its own that the attacker wrote."""
    return _UNPRINTABLE.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def _traceback() -> str:
    """The exception being handled, each line behind `  | ` (an exception's message may hold
    request data and line breaks: indented, it cannot pass for a log line of its own), cut in
    the middle when long."""
    lines = traceback.format_exc().splitlines()
    if len(lines) > _TRACEBACK_LINES:
        left_out = len(lines) - _TRACEBACK_LINES
        lines = [*lines[:20], f"... {left_out} lines left out ...",
                 *lines[-(_TRACEBACK_LINES - 20):]]
    return "\n".join(f"  | {printable(line)}" for line in lines)


# Headers noted during a request for every answer to it, errors included (see note_header).
NOTED_HEADERS = "tokenhouse.headers"


def note_header(scope: Scope, name: bytes, value: bytes) -> None:
    """Send `name: value` with whatever the request is answered (ProblemMiddleware adds it):
    for headers decided before the route answers, such as those authentication sets."""
    scope.setdefault(NOTED_HEADERS, []).append((name, value))


class ProblemMiddleware:
    """Gives each request its trace id, adds the headers noted for it (`note_header`), and
    turns an unexpected exception into a 500 problem.

    Pure ASGI (no BaseHTTPMiddleware), so it costs next to nothing on the hot path. It catches
    here rather than in an `Exception` handler because Starlette runs that handler outside
    every middleware, where the request's trace id is already gone.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trace_id = new_trace_id()
        reset = trace_id_var.set(trace_id)
        origin = fresh_origin()
        started = False

        async def send_traced(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []),
                                      (b"traceparent", trace_id.encode()),
                                      *scope.get(NOTED_HEADERS, ())]
            await send(message)

        try:
            await self.app(scope, receive, send_traced)
        except Exception:
            # The stack trace goes to the log, never to the client. The log never sees a
            # secret: secrets travel only in headers and bodies, and neither is logged.
            log.error("unexpected error on %s %s (trace %s)\n%s",
                      printable(str(scope.get("method"))), printable(str(scope.get("path"))),
                      trace_id, _traceback())
            if started:
                raise
            response = problem_response(
                500, "An unexpected error occurred. Quote the traceId when reporting it.")
            await response(scope, receive, send_traced)
        finally:
            trace_id_var.reset(reset)
            reset_origin(origin)
