"""Serves the portal's static files with a strict Content-Security-Policy, and `/` -> the page."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from tokenhouse.kit.routing import LeanRoute

STATIC = Path(__file__).resolve().parent / "static"

# Scripts only from this origin (no inline script, no eval): a stored name such as
# "<img onerror=...>" can never run. The API is on the same origin.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),
]

router = APIRouter(include_in_schema=False, route_class=LeanRoute)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/portal/", status_code=307)


# The app does not redirect trailing slashes (that redirect wrote the request's Host header
# into Location); the page's own address without its slash still leads to it, by a path.
@router.get("/portal")
async def portal() -> RedirectResponse:
    return RedirectResponse("/portal/", status_code=307)


class PortalFiles(StaticFiles):
    """Static files with the portal's security headers on every answer."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await super().__call__(scope, receive, send_with_headers)


def mount(app: object) -> None:
    """Serve the page under /portal/ (index.html for /portal/)."""
    app.mount("/portal", PortalFiles(directory=STATIC, html=True), name="portal")  # type: ignore[attr-defined]
