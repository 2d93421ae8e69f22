"""The expiry job: `expiring` records 30, 7 and 1 days before a token's `expiresAt`, once
each, and `expired` once it has passed (issue 13).

Every server process runs `ExpiryJob`, and the one holding the lease `tokens.expiry`
(kit/lease.py) does the work, every TOKENHOUSE_JOB_INTERVAL seconds. A round
(`notice_expiries`) reads, in order of expiry and in batches, the Active tokens owed a
notice, and for each writes its record and marks the token (`expiry_notice`) in one
transaction. Only the most pressing notice is written: a token made to expire in three
days gets the 7-day one, a token found past its expiry (the servers were down) gets
`expired` alone.

Once each holds whatever the lease does: the mark is a conditional UPDATE (`expiry_notice`
still below the notice, the expiry still the one read), and the record is written only
when that UPDATE changed the row, in the same transaction. Two rounds at once (a lease
taken over from a holder too slow to renew it, a round started by hand) therefore write
each record once: the second one's UPDATE waits for the first's commit and then matches
nothing.

A changed expiry (PUT, rotation: tokens/service.py) sets `expiry_notice` back to 0, so the
new expiry gets its own notices. Expired is computed from the service's clock, never stored
(tokens/lifecycle.py); the job only tells of it, on the same clock.
"""

import asyncio
import logging
import math
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Select, Table, case, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenhouse.audit import events
from tokenhouse.audit import service as audit
from tokenhouse.auth import refusals
from tokenhouse.auth.actor import SYSTEM
from tokenhouse.kit import lease
from tokenhouse.kit.outage import unavailable
from tokenhouse.kit.tasks import cancel
from tokenhouse.kit.timeutil import as_utc, render, utcnow
from tokenhouse.tokens.models import ApiToken, TokenStatus
from tokenhouse.tokens.schemas import token_document, token_subject

log = logging.getLogger("tokenhouse.expiry")

LEASE = "tokens.expiry"
DAY = timedelta(days=1)
# `expiry_notice` values: the notices in the order they fall due (0: none given).
NOTICES = {1: 30, 2: 7, 3: 1}  # notice -> days before the expiry
EXPIRED = 4
BATCH = 200  # tokens per transaction
# The tokens still owed a notice, word for word as migration 0012's partial index states
# them (the planners use it only for a query whose condition says the same).
OWED = text("api_tokens.status = 'Active' AND api_tokens.expiry_notice < 4")
_TOKENS = cast(Table, ApiToken.__table__)


def due_notice(expires_at: datetime, now: datetime) -> int:
    """The notice a token expiring at `expires_at` is owed by now (0: none yet)."""
    left = as_utc(expires_at) - now
    if left <= timedelta(0):
        return EXPIRED
    for notice in (3, 2, 1):
        if left <= NOTICES[notice] * DAY:
            return notice
    return 0


async def notice_expiries(sessions: async_sessionmaker[AsyncSession],
                          now: datetime | None = None, batch: int = BATCH) -> int:
    """One round: every notice due by `now` (the service's clock), written and marked, one
    transaction per batch of tokens. Returns how many records were written."""
    now = now or utcnow()
    owed = owed_tokens(now, batch)
    written = 0
    after: tuple[datetime, str] | None = None
    while True:
        # Keyset paging on (expires_at, id): each batch starts past the last one, so a
        # token whose mark failed (changed meanwhile) is not read again in this round.
        statement = owed if after is None else owed.where(
            tuple_(ApiToken.expires_at, ApiToken.id) > tuple_(*after))
        async with sessions() as session:
            tokens = list((await session.scalars(statement)).unique())
            for token in tokens:
                if await _notice(session, token, now):
                    written += 1
            await session.commit()
        if len(tokens) < batch:
            return written
        last = tokens[-1]
        assert last.expires_at is not None  # selected by its expiry
        after = (last.expires_at, last.id)


def owed_tokens(now: datetime, batch: int = BATCH) -> Select[ApiToken]:
    """The first `batch` Active tokens owed a notice by `now`, soonest expiry first (a scan
    of migration 0012's partial index, in its order)."""
    due = case((ApiToken.expires_at <= now, EXPIRED),
               (ApiToken.expires_at <= now + NOTICES[3] * DAY, 3),
               (ApiToken.expires_at <= now + NOTICES[2] * DAY, 2), else_=1)
    return (select(ApiToken)
            .where(OWED, ApiToken.expires_at <= now + NOTICES[1] * DAY,
                   ApiToken.expiry_notice < due)
            .order_by(ApiToken.expires_at, ApiToken.id).limit(batch))


async def _notice(session: AsyncSession, token: ApiToken, now: datetime) -> bool:
    """Mark `token` as told of its due notice and record it, in the session's unit of work;
    False when another round (or a change of its expiry) got there first."""
    assert token.expires_at is not None
    notice = due_notice(token.expires_at, now)
    # On the connection, not through the ORM: a notice is no change of the token (no
    # revision, and no invalidation of any process's cached credentials or views).
    connection = await session.connection()
    marked = await connection.execute(
        update(_TOKENS)
        .where(_TOKENS.c.id == token.id, _TOKENS.c.status == TokenStatus.ACTIVE,
               _TOKENS.c.expires_at == token.expires_at, _TOKENS.c.expiry_notice < notice)
        .values(expiry_notice=notice))
    if marked.rowcount != 1:
        return False
    expiry: dict[str, Any] = {"expiresAt": render(token.expires_at)}
    if notice == EXPIRED:
        event = events.TOKEN_EXPIRED
        expiry["daysLeft"] = 0
    else:
        event = events.TOKEN_EXPIRING
        expiry["daysLeft"] = math.ceil((as_utc(token.expires_at) - now) / DAY)
    audit.record(session, actor=SYSTEM, event=event, subject=token_subject(token),
                 documents={"apiToken": token_document(token, now), "expiry": expiry})
    return True


class ExpiryJob:
    """`notice_expiries` every `interval` seconds in the process holding the lease. The
    lease lasts three intervals: a holder that dies is replaced within that time."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], interval: float) -> None:
        self._sessions = sessions
        self._interval = interval
        self._lease = lease.Lease(sessions, LEASE, timedelta(seconds=3 * interval))
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="expiry-notices")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
        try:
            await self._lease.release()
        except Exception as exc:  # the lease then simply runs out
            log.warning("could not release the expiry job's lease (%s)", type(exc).__name__)

    async def _tidy(self) -> None:
        """Drop the ended leases of refused uses (auth/refusals.py): one row per token and
        reason refused in the last ten minutes stays, not one per token ever refused."""
        async with self._sessions() as session:
            await lease.purge(session, refusals.PREFIX)
            await session.commit()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                if await self._lease.hold():
                    written = await notice_expiries(self._sessions)
                    if written:
                        log.info("expiry notices recorded: %d", written)
                    await self._tidy()
            except Exception as exc:
                # The next round tries again: what was not marked is still owed.
                if unavailable(exc):
                    log.warning("could not record expiry notices (%s); will retry",
                                type(exc).__name__)
                else:
                    log.exception("could not record expiry notices; will retry")
