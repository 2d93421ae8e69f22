"""`lastAccessAt`, recorded without a database write on every request.

Authentication notes the time in memory; a background task writes what was noted at most once
per token per interval, in one statement, and a final flush runs on shutdown. Responses read
the noted value on top of the stored one, so a client sees its own access at once.

Each flush also tells every process what it wrote (`Seen` notes on the channel of
kit/invalidation.py), and every process keeps the latest access it heard of per token.
Token views kept in memory therefore show accesses made through any process within about
one interval, without reading the row again.
"""

import asyncio
import logging
from collections import OrderedDict
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenhouse.kit.invalidation import Seen, publish
from tokenhouse.kit.outage import unavailable
from tokenhouse.kit.tasks import cancel
from tokenhouse.kit.timeutil import as_utc, utcnow
from tokenhouse.tokens import repository

log = logging.getLogger("tokenhouse.last_access")
REMEMBERED = 100_000
CHUNK = 2000  # tokens per UPDATE
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)
NOTE_SIZE = 7000  # characters per `seen` note: PostgreSQL's NOTIFY takes at most 8000 bytes


class LastAccessRecorder:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], interval: float):
        self._sessions = sessions
        self._interval = interval
        self._pending: dict[str, datetime] = {}
        self._flushing: dict[str, datetime] = {}
        # What flushes wrote here or elsewhere (heard through `seen` notes), most recent last
        # and bounded: a row read before the write committed, or a token's view kept in
        # memory, may still hold an older value, so responses take the latest known access.
        self._known: OrderedDict[str, datetime] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def touch(self, token_id: str) -> None:
        self._pending[token_id] = utcnow()

    def seen(self, token_id: str, stored: datetime | None) -> datetime | None:
        """The latest access: the noted one when newer than what is stored."""
        noted = (self._pending.get(token_id) or self._flushing.get(token_id)
                 or self._known.get(token_id))
        if noted is None:
            return stored
        if stored is None or as_utc(stored) < noted:
            return noted
        return stored

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="last-access-flush")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except Exception as exc:
                # Kept for the next round (see flush); a database hiccup must not stop it.
                if unavailable(exc):  # an outage: one line per round, no traceback
                    log.warning("could not write lastAccessAt values (%s); will retry",
                                type(exc).__name__)
                else:
                    log.exception("could not write lastAccessAt values; will retry")

    async def flush(self) -> int:
        """Write every noted access. Returns how many tokens were written."""
        async with self._lock:
            if not self._pending:
                return 0
            self._flushing, self._pending = self._pending, {}
            # In id order, so that two processes writing the same tokens lock their rows in
            # the same order (no deadlock); in chunks, each its own short transaction, so no
            # flush holds many row locks or the event loop for long.
            ids = sorted(self._flushing)
            try:
                for start in range(0, len(ids), CHUNK):
                    chunk = {token_id: self._flushing[token_id]
                             for token_id in ids[start:start + CHUNK]}
                    async with self._sessions() as session:
                        await repository.write_last_access(session, chunk)
                        for note in seen_notes(chunk):
                            publish(session, note)
                        await session.commit()
                    for token_id, at in chunk.items():
                        self._remember(token_id, at)
            except BaseException:
                # Kept for the next round. Chunks already written are written again then,
                # which changes nothing: a stored value never moves backwards.
                for key, value in self._flushing.items():
                    self._pending.setdefault(key, value)
                self._flushing = {}
                raise
            self._flushing = {}
            return len(ids)

    def heard(self, seen: Seen) -> None:
        """Take in another process's note (`id=milliseconds,...`)."""
        try:
            for item in seen.note.split(","):
                token_id, _, millis = item.partition("=")
                self._remember(token_id, EPOCH + int(millis) * MILLISECOND)
        except ValueError:
            log.warning("ignored a malformed seen note")

    def _remember(self, token_id: str, at: datetime) -> None:
        known = self._known.get(token_id)
        if known is None or known < at:
            self._known[token_id] = at
        self._known.move_to_end(token_id)
        while len(self._known) > REMEMBERED:
            self._known.popitem(last=False)


def seen_notes(accesses: dict[str, datetime]) -> list[Seen]:
    """Accesses as notes of at most NOTE_SIZE characters each."""
    notes: list[Seen] = []
    items: list[str] = []
    size = 0
    for token_id, at in accesses.items():
        item = f"{token_id}={(at - EPOCH) // MILLISECOND}"
        if items and size + len(item) + 1 > NOTE_SIZE:
            notes.append(Seen(",".join(items)))
            items, size = [], 0
        items.append(item)
        size += len(item) + 1
    if items:
        notes.append(Seen(",".join(items)))
    return notes
