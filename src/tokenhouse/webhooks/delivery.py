"""The delivery worker: one per server process, any number of processes.

Two steps, repeated every TOKENHOUSE_WEBHOOK_POLL_SECONDS while there is nothing to do, at
once while there is:

1. Fan-out. Records not yet fanned out (the outbox: written with `fanned_out` false in the
   change's own transaction) are claimed, one delivery row is made for each Enabled webhook
   that receives the record (webhooks/service.may_see and its events), and the records are
   marked fanned out, all in one short transaction: a crash before its commit leaves the
   records for the next pass, and the unique (webhook, record) pair keeps a record from being
   fanned out twice to one webhook whatever happens.
2. Delivery. Due deliveries are claimed for the free slots (IN_FLIGHT per process, at most
   PER_WEBHOOK of them per webhook, the oldest of each webhook first) in a
   short transaction (leased: their `next_attempt_at` moves LEASE ahead, with the claim's
   random id), then POSTed outside any transaction, each outcome written back as soon as it
   is known, only while the claim still holds the delivery. A process that dies mid-attempt
   leaves its deliveries due again when the lease ends; a process that stops cleanly gives
   them back at once.

Claims lock rows: FOR UPDATE SKIP LOCKED on PostgreSQL, so processes split the work; on
SQLite the file's writer (kit/db.Writer: BEGIN IMMEDIATE for a FOR UPDATE read, and turns
between processes), so one claims after the other has committed. In the normal case each
record therefore reaches each webhook once; after a crash, at least once (receivers drop
repeats by the record's `id`, which the signature covers).
"""

import asyncio
import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenhouse import __version__
from tokenhouse.audit.models import AuditRecord
from tokenhouse.audit.service import render_record
from tokenhouse.kit import ids, metrics
from tokenhouse.kit.db import read_only
from tokenhouse.kit.outage import unavailable
from tokenhouse.kit.paging import encode_json
from tokenhouse.kit.tasks import cancel
from tokenhouse.kit.timeutil import as_utc, utcnow
from tokenhouse.webhooks import repository, signing
from tokenhouse.webhooks.models import Delivery, DeliveryStatus, Webhook
from tokenhouse.webhooks.service import matcher, may_see
from tokenhouse.webhooks.targets import TargetRefused, guarded_transport

log = logging.getLogger("tokenhouse.webhooks")

# One attempt, connection to last byte: a receiver that takes longer has failed it.
TIMEOUT = 5.0
# Retries after a failed attempt: FIRST_RETRY, then doubling, at most MAX_DELAY apart (more
# tries late in a long outage than doubling alone would give), for GIVE_UP after the record
# was fanned out; then the delivery is Failed.
FIRST_RETRY = timedelta(seconds=5)
MAX_DELAY = timedelta(hours=1)
GIVE_UP = timedelta(hours=24)
# How long a claim holds its deliveries: longer than an attempt and writing its outcome.
LEASE = timedelta(seconds=60)
FAN_OUT_BATCH = 200
# Attempts in flight per process (one connection each at most). A slot is refilled as soon
# as its attempt is written.
IN_FLIGHT = 50
# Attempts in flight per webhook and process: a receiver that hangs (or a webhook with a
# backlog) holds at most this many slots, never the deliveries of every other webhook. The
# most webhooks an account may have (service.MAX_PER_ACCOUNT, 20) times this stays below
# IN_FLIGHT, so neither can one tenant's webhooks take every slot.
PER_WEBHOOK = 2
ERROR_CHARS = 200
REFUSED = "Refused: the target is not a public address."


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int | None = None
    error: str | None = None
    refused: bool = False  # the target's address is not allowed: no retry

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class DeliveryWorker:
    """The process's fan-out and delivery loop (see the module's docstring); started and
    stopped by the app's lifespan."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], key: bytes, *,
                 allow_private: bool, poll_seconds: float) -> None:
        self._sessions = sessions
        self._key = key
        self.allow_private = allow_private
        self._poll = poll_seconds
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        # Attempts in flight, and how many of each claim's deliveries are not yet written.
        self._attempts: set[asyncio.Task[None]] = set()
        self._claims: dict[str, int] = {}
        # Attempts in flight by webhook id (at most PER_WEBHOOK each).
        self._held: dict[str, int] = {}
        self._slot_free = asyncio.Event()
        # Compiled event patterns by webhook id and revision.
        self._matchers: dict[tuple[str, int], re.Pattern[str]] = {}

    def start(self) -> None:
        self._client = httpx.AsyncClient(
            transport=guarded_transport(self.allow_private, IN_FLIGHT),
            timeout=httpx.Timeout(TIMEOUT), follow_redirects=False, trust_env=False,
            headers={"User-Agent": f"tokenhouse-webhooks/{__version__}"})
        self._task = asyncio.create_task(self._run(), name="webhook-delivery")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
        if self._attempts:
            # Attempts in flight end within their timeout, and their outcomes are written;
            # one that does not is cut short (and its delivery given back below).
            await asyncio.wait(list(self._attempts), timeout=TIMEOUT + 1)
            for attempt in list(self._attempts):
                await cancel(attempt)
        if self._claims:
            # Attempts cut short by the stop: due again now, for whichever process is up.
            claims, self._claims = sorted(self._claims), {}
            try:
                async with asyncio.timeout(TIMEOUT), self._sessions() as session:
                    await repository.release(session, claims, utcnow())
                    await session.commit()
            except Exception as exc:  # they are due again when their lease ends
                log.warning("could not give back webhook deliveries (%s)",
                            type(exc).__name__)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        while True:
            try:
                busy = await self.run_once()
            except Exception as exc:
                busy = False
                # A database hiccup must not stop deliveries: the next pass tries again.
                if unavailable(exc):
                    log.warning("webhook delivery pass failed (%s); will retry",
                                type(exc).__name__)
                else:
                    log.exception("webhook delivery pass failed; will retry")
            if busy:
                await asyncio.sleep(0)
            else:  # until the poll interval ends, or an attempt frees its slot
                self._slot_free.clear()
                try:
                    async with asyncio.timeout(self._poll):
                        await self._slot_free.wait()
                except TimeoutError:
                    pass

    async def run_once(self) -> bool:
        """One pass: fan out and deliver what is due. Whether there was anything."""
        async with read_only(self._sessions) as session:
            pending, due = await repository.work_waiting(session, utcnow())
        fanned = await self.fan_out() if pending else 0
        # Deliveries the fan-out just made are due at once.
        delivered = await self.deliver_due() if due or fanned else 0
        return bool(fanned or delivered)

    async def fan_out(self) -> int:
        """Make the deliveries of up to FAN_OUT_BATCH records; how many records."""
        async with self._sessions() as session:
            records = await repository.claim_pending_records(session, FAN_OUT_BATCH)
            if not records:
                await session.rollback()
                return 0
            hooks = await repository.subscribers(session)
            now = utcnow()
            rows = []
            for entry in records:
                made = as_utc(entry.timestamp)
                for hook, account_type in hooks:
                    # A webhook receives what happened from its creation on.
                    if made < as_utc(hook.created_at) \
                            or not may_see(hook.account_id, account_type, entry) \
                            or not self._matches(hook, entry.event):
                        continue
                    rows.append({"id": ids.new_id("WHD", 4), "webhook_id": hook.id,
                                 "record_id": entry.id, "event": entry.event,
                                 "status": DeliveryStatus.PENDING, "attempts": 0,
                                 "created_at": now, "next_attempt_at": now})
            await repository.add_deliveries(session, rows)
            await repository.mark_fanned_out(session, [entry.id for entry in records])
            await session.commit()
            return len(records)

    def _matches(self, hook: Webhook, event: str) -> bool:
        key = (hook.id, hook.revision)
        pattern = self._matchers.get(key)
        if pattern is None:
            if len(self._matchers) > 10_000:
                self._matchers.clear()
            pattern = self._matchers[key] = matcher(hook.events)
        return pattern.fullmatch(event) is not None

    async def deliver_due(self) -> int:
        """Claim due deliveries for the free slots and start their attempts; how many."""
        room = IN_FLIGHT - len(self._attempts)
        if room <= 0:
            return 0
        claim = secrets.token_hex(16)
        now = utcnow()
        async with self._sessions() as session:
            if not await repository.claim_due(session, now, now + LEASE, claim, room,
                                              PER_WEBHOOK, self._held):
                await session.rollback()
                return 0
            work = await repository.claimed(session, claim)
            await session.commit()
        self._claims[claim] = len(work)
        for delivery, hook, entry in work:
            self._held[hook.id] = self._held.get(hook.id, 0) + 1
            attempt = asyncio.create_task(self._deliver(claim, delivery, hook, entry),
                                          name="webhook-attempt")
            self._attempts.add(attempt)
            attempt.add_done_callback(self._finished)
        return len(work)

    def _finished(self, attempt: asyncio.Task[None]) -> None:
        self._attempts.discard(attempt)
        self._slot_free.set()

    async def _deliver(self, claim: str, delivery: Delivery, hook: Webhook,
                       entry: AuditRecord) -> None:
        """One attempt, and its outcome written (while the claim holds the delivery). One
        cut short by a stop leaves its claim to `stop`, which gives it back."""
        try:
            await self._settle(claim, delivery, hook, entry)
        finally:
            held = self._held.pop(hook.id, 1) - 1
            if held > 0:
                self._held[hook.id] = held

    async def _settle(self, claim: str, delivery: Delivery, hook: Webhook,
                      entry: AuditRecord) -> None:
        try:
            outcome = await self._attempt(delivery, hook, entry)
        except Exception as exc:
            # Whatever went wrong, the attempt is settled as failed (retried with back-off):
            # an escaped error would leave the delivery Pending for ever, re-leased every
            # LEASE. Logged once, by kind: the URL (and its query's credentials) stays out.
            log.error("webhook %s: delivery %s failed unexpectedly (%s)", hook.id,
                      delivery.id, type(exc).__name__)
            outcome = Outcome(error="The attempt failed (an error in tokenhouse).")
        values = _settled(delivery, outcome, utcnow())
        # GET /metrics: "Delivered", "Failed" (given up), or no status: retrying. Counted
        # as made, before its outcome is written (and seen by GET .../deliveries).
        metrics.count_webhook_attempt(str(values.get("status", "retrying")).lower())
        try:
            async with self._sessions() as session:
                await repository.settle(session, delivery.id, claim, values)
                await session.commit()
        except Exception as exc:  # tried again when its lease ends: at least once
            log.warning("could not write the outcome of webhook delivery %s (%s)",
                        delivery.id, type(exc).__name__)
        left = self._claims.get(claim, 0) - 1
        if left > 0:
            self._claims[claim] = left
        else:
            self._claims.pop(claim, None)

    async def _attempt(self, delivery: Delivery, hook: Webhook, entry: AuditRecord) -> Outcome:
        """POST the record (as GET /audit/records/{id} answers it), signed."""
        assert self._client is not None
        body = encode_json(render_record(entry))
        secret = signing.secret_of(self._key, hook.id, hook.salt)
        headers = {"Content-Type": "application/json",
                   "Tokenhouse-Event": entry.event,
                   "Tokenhouse-Delivery": delivery.id,
                   "Tokenhouse-Signature": signing.signature(secret, int(time.time()), body)}
        try:
            async with asyncio.timeout(TIMEOUT):
                async with self._client.stream("POST", hook.url, content=body,
                                               headers=headers) as response:
                    status = response.status_code
        except (TimeoutError, httpx.TimeoutException):
            return Outcome(error=f"No answer within {TIMEOUT:.0f} s.")
        except httpx.HTTPError as error:
            cause = error.__cause__
            if isinstance(cause, TargetRefused):
                # What the name resolved to is for the operator: a tenant must not learn
                # the server's internal DNS from its deliveries.
                log.warning("webhook %s: delivery %s refused: %s", hook.id, delivery.id,
                            cause)
                return Outcome(error=REFUSED, refused=True)
            return Outcome(error=_short(f"{type(error).__name__}: {error}"))
        if 200 <= status < 300:
            return Outcome(status_code=status)
        phrase = response.reason_phrase or ""
        note = " (redirects are not followed)" if 300 <= status < 400 else ""
        return Outcome(status_code=status, error=_short(f"HTTP {status} {phrase}{note}"))


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ERROR_CHARS else text[:ERROR_CHARS - 1] + "…"


def _settled(delivery: Delivery, outcome: Outcome, now: datetime) -> dict[str, object]:
    """The columns an attempt's outcome writes."""
    attempts = delivery.attempts + 1
    values: dict[str, object] = {"attempts": attempts, "last_attempt_at": now,
                                 "last_status_code": outcome.status_code,
                                 "last_error": outcome.error}
    if outcome.delivered:
        return {**values, "status": DeliveryStatus.DELIVERED, "delivered_at": now,
                "next_attempt_at": None}
    delay = min(FIRST_RETRY * 2 ** (attempts - 1), MAX_DELAY)
    retry = now + delay
    if outcome.refused or retry > as_utc(delivery.created_at) + GIVE_UP:
        return {**values, "status": DeliveryStatus.FAILED, "next_attempt_at": None}
    return {**values, "next_attempt_at": retry}
