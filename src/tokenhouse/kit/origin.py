"""Where the current request comes from (the client's address and user agent), for the
records of the audit trail: noted once by authentication, read only by what records a
change during the request. Unset outside a request (the command line, the server's jobs).

On the hot path (every authenticated request) noting costs one context variable set: the
user agent is read from the request's headers only when a record asks for it."""

from contextvars import ContextVar, Token
from dataclasses import dataclass

from starlette.types import Scope

MAX_USER_AGENT = 512


@dataclass(frozen=True, slots=True)
class Origin:
    ip: str | None
    user_agent: str | None


_noted: ContextVar[tuple[str | None, Scope] | None] = ContextVar("origin", default=None)


def note_origin(address: str | None, scope: Scope) -> None:
    """The request being served comes from `address` (the client's, see
    kit/addresses.TrustedProxies)."""
    _noted.set((address, scope))


def fresh_origin() -> Token[tuple[str | None, Scope] | None]:
    """A request begins (kit/problems.ProblemMiddleware): nothing noted yet, whatever the
    context it runs in holds; `reset_origin` with what this returns when it ends."""
    return _noted.set(None)


def reset_origin(token: Token[tuple[str | None, Scope] | None]) -> None:
    _noted.reset(token)


def current_origin() -> Origin | None:
    noted = _noted.get()
    if noted is None:
        return None
    address, scope = noted
    agent = None
    for name, value in scope.get("headers", ()):
        if name == b"user-agent":
            # The client's text, bounded: a record never stores a megabyte of it.
            agent = value.decode("latin-1")[:MAX_USER_AGENT]
            break
    return Origin(address, agent)
