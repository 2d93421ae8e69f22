"""Refused uses of a token in the audit trail (issue 13): a request whose secret is valid,
refused because it comes from outside the token's IP allowlist or because the token
expired, is recorded as a `Private` record (Operations alone reads it), at most once per
token and reason per ten minutes, across every process.

Authentication only notes the refusal (`outside_allowlist`, `expired`): a look-up in this
process's memory of what it recorded lately, and for a first refusal a task that writes
the record in a unit of work of its own. The refusal is answered at once, whatever the
database does; the task is bounded in time (WRITE_SECONDS) and in number (IN_FLIGHT), and
a failure is logged, never raised. Valid requests never come here.

Across processes the ten minutes are a lease (kit/lease.py) named after the token and the
reason, taken in the record's own transaction: of two processes recording the same
refusal at once, one takes it and writes, the other finds it taken and writes nothing.
"""

import asyncio
import logging
import secrets
from collections import OrderedDict
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenhouse.kit import lease
from tokenhouse.kit.outage import unavailable
from tokenhouse.kit.timeutil import utcnow

log = logging.getLogger("tokenhouse.refusals")

OUTSIDE_ALLOWLIST = "address outside the allowlist"
EXPIRED = "expired"
# Lease names: `refused:<token id>:<reason>` (short words, not the reason's text).
PREFIX = "refused:"
_CODES = {OUTSIDE_ALLOWLIST: "network", EXPIRED: "expired"}
WINDOW = timedelta(minutes=10)
# After a failed write, the same refusal is tried again no sooner than this.
RETRY = timedelta(seconds=30)
WRITE_SECONDS = 5.0
IN_FLIGHT = 64  # writes at once; more refusals meanwhile are left to a later one
REMEMBERED = 10_000  # (token, reason) pairs this process remembers


class Refusals:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        # (token id, reason) -> until when this process records no more of it
        self._quiet: OrderedDict[tuple[str, str], datetime] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    def outside_allowlist(self, token_id: str, address: str | None) -> None:
        self._refused(token_id, OUTSIDE_ALLOWLIST, address)

    def expired(self, token_id: str, address: str | None) -> None:
        self._refused(token_id, EXPIRED, address)

    def _refused(self, token_id: str, reason: str, address: str | None) -> None:
        now = utcnow()
        key = (token_id, reason)
        quiet = self._quiet.get(key)
        # A time further off than the window was set by a clock ahead of this one: void.
        if quiet is not None and now < quiet <= now + WINDOW:
            return
        if len(self._tasks) >= IN_FLIGHT:
            return  # not remembered: a later refusal records it
        self._quiet[key] = now + WINDOW
        self._quiet.move_to_end(key)
        while len(self._quiet) > REMEMBERED:
            self._quiet.popitem(last=False)
        # The task runs in a copy of the request's context: its record shows the request's
        # address, user agent and trace id (kit/origin.py), though the answer is long gone.
        task = asyncio.create_task(self._write(token_id, reason, address, now),
                                   name="refusal-record")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, token_id: str, reason: str, address: str | None,
                     now: datetime) -> None:
        try:
            async with asyncio.timeout(WRITE_SECONDS):
                async with self._sessions() as session:
                    if await record(session, token_id, reason, address, now):
                        await session.commit()
        except Exception as exc:
            self._quiet[(token_id, reason)] = utcnow() + RETRY
            if unavailable(exc) or isinstance(exc, TimeoutError):
                log.warning("could not record a refused use of %s (%s)", token_id,
                            type(exc).__name__)
            else:
                log.exception("could not record a refused use of %s", token_id)

    async def drain(self) -> None:
        """Let the writes under way finish (each is bounded by WRITE_SECONDS)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def record(session: AsyncSession, token_id: str, reason: str, address: str | None,
                 now: datetime) -> bool:
    """Add the record of a refused use to the session's unit of work, unless one was
    recorded within WINDOW (by any process); whether it was added."""
    # Imported here: authentication (which imports this module) is imported by the audit
    # trail's own permissions.
    from tokenhouse.audit import events
    from tokenhouse.audit import service as audit
    from tokenhouse.auth.actor import Actor
    from tokenhouse.tokens.models import ApiToken
    from tokenhouse.tokens.schemas import token_document, token_subject

    name = f"{PREFIX}{token_id}:{_CODES[reason]}"
    # A holder of its own each time: the lease is never renewed, only taken once it ended.
    if not await lease.take(session, name, secrets.token_hex(8), WINDOW, now):
        return False
    token = await session.get(ApiToken, token_id)
    if token is None:
        return False
    account = token.account
    # The token that tried to act is the record's actor.
    actor = Actor(account_id=account.id, account_type=account.type, modules=frozenset(),
                  module_ids=frozenset(), token_id=token.id, token_name=token.name,
                  account_name=account.name)
    audit.record(session, actor=actor, event=events.TOKEN_REFUSED,
                 subject=token_subject(token), private=True,
                 documents={"apiToken": token_document(token, now),
                            "refusal": {"reason": reason, "ip": address}})
    return True
