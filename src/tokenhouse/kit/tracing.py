"""A trace id per request, in the W3C trace-parent shape the platform uses in problems."""

import secrets
from contextvars import ContextVar

trace_id_var: ContextVar[str | None] = ContextVar("trace_id", default=None)


def new_trace_id() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"


def current_trace_id() -> str:
    value = trace_id_var.get()
    return value if value is not None else new_trace_id()
