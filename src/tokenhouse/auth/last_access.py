"""`lastAccessAt`, recorded without a database write on every request.

Authentication notes the time in memory; a background task writes what was noted at most once
per token per interval, in one statement, and a final flush runs on shutdown. Responses read
the noted value on top of the stored one, so a client sees its own access at once.
"""

import asyncio
import logging
from collections import OrderedDict
from datetime import datetime

from sqlalchemy import and_, bindparam, or_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenhouse.kit.tasks import cancel
from tokenhouse.kit.timeutil import as_utc, utcnow
from tokenhouse.tokens.models import ApiToken

log = logging.getLogger("tokenhouse.last_access")
REMEMBERED = 100_000


class LastAccessRecorder:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], interval: float):
        self._sessions = sessions
        self._interval = interval
        self._pending: dict[str, datetime] = {}
        self._flushing: dict[str, datetime] = {}
        # What flushes wrote, most recent last and bounded: a row read before the write
        # committed (or a token's view kept in memory) may still hold an older value, so
        # responses keep taking this process's own latest record of the access.
        self._written: OrderedDict[str, datetime] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def touch(self, token_id: str) -> None:
        self._pending[token_id] = utcnow()

    def seen(self, token_id: str, stored: datetime | None) -> datetime | None:
        """The latest access: the noted one when newer than what is stored."""
        noted = (self._pending.get(token_id) or self._flushing.get(token_id)
                 or self._written.get(token_id))
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
            except Exception:
                # Kept for the next round (see flush); a database hiccup must not stop it.
                log.exception("could not write lastAccessAt values; will retry")

    async def flush(self) -> int:
        """Write every noted access. Returns how many tokens were written."""
        async with self._lock:
            if not self._pending:
                return 0
            self._flushing, self._pending = self._pending, {}
            rows = [{"tid": k, "at": v} for k, v in self._flushing.items()]
            table = ApiToken.__table__
            # Never move a value backwards (another process may have written a newer one).
            statement = (
                update(table)
                .where(and_(table.c.id == bindparam("tid"),
                            or_(table.c.last_access_at.is_(None),
                                table.c.last_access_at < bindparam("at"))))
                .values(last_access_at=bindparam("at"))
            )
            try:
                async with self._sessions() as session:
                    connection = await session.connection()
                    await connection.execute(statement, rows)
                    await session.commit()
            except BaseException:
                for key, value in self._flushing.items():
                    self._pending.setdefault(key, value)
                self._flushing = {}
                raise
            for key, value in self._flushing.items():
                self._written[key] = value
                self._written.move_to_end(key)
            while len(self._written) > REMEMBERED:
                self._written.popitem(last=False)
            self._flushing = {}
            return len(rows)
