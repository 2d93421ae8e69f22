"""Leases in the database: which process runs a job, or whether a thing was done lately.

A lease is a row of `job_leases` (name, holder, until). It is taken, or renewed by its
holder, with one conditional UPDATE, or one INSERT when the row does not exist yet: the
statement itself decides, so two processes asking at once never both get it (PostgreSQL
re-checks the UPDATE's condition on the row the other one committed, and makes a second
INSERT of the name wait for the first and then do nothing; SQLite runs one writer at a
time). A holder that dies simply stops renewing: another process takes the lease once its
time is up.

Why a table and not PostgreSQL's advisory locks: one mechanism on both databases (SQLite
has none), no connection held out of the pool for a process's lifetime (a session lock
would be lost unseen with its connection, and breaks behind a transaction-mode pooler),
and a lease can also stand for "done within the last ten minutes" (audit records of
refused uses), which a lock held by no one cannot.

Times are the service's clock (kit/timeutil.utcnow), as everywhere else. A lease ending
later than `now + longest` was written by a clock ahead of this one (a server's clock
stepped back, a test's moved clock) and is void: a holder can never block the others for
longer than the lease's own length.
"""

import logging
import os
import secrets
import socket
from datetime import datetime, timedelta

from sqlalchemy import DateTime, String, delete, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from tokenhouse.kit.db import Base
from tokenhouse.kit.repository import dialect_name
from tokenhouse.kit.timeutil import utcnow

log = logging.getLogger("tokenhouse.lease")


class JobLease(Base):
    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    until: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def process_holder() -> str:
    """A name for this process as a lease holder: host and pid for people reading the
    table, and a random part, so that a restarted process reusing a pid is not taken for
    the one that held the lease before."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{secrets.token_hex(4)}"


async def take(session: AsyncSession, name: str, holder: str, length: timedelta,
               now: datetime | None = None) -> bool:
    """Take the lease `name` for `holder` until now + `length`, or renew it when `holder`
    has it; False when another holder's lease is still running. In the session's unit of
    work: the lease is held once it commits (and not if it rolls back)."""
    now = now or utcnow()
    until = now + length
    taken = await session.execute(
        update(JobLease)
        .where(JobLease.name == name,
               or_(JobLease.holder == holder, JobLease.until <= now,
                   JobLease.until > until))
        .values(holder=holder, until=until)
        .execution_options(synchronize_session=False))
    if getattr(taken, "rowcount", 0) == 1:
        return True
    insert = postgresql.insert if dialect_name(session) == "postgresql" else sqlite.insert
    added = await session.scalar(
        insert(JobLease).values(name=name, holder=holder, until=until)
        .on_conflict_do_nothing(index_elements=["name"]).returning(JobLease.name))
    return added is not None


async def purge(session: AsyncSession, prefix: str, now: datetime | None = None) -> int:
    """Delete the ended leases whose names start with `prefix` (an ended lease and no lease
    are the same to `take`). Returns how many."""
    result = await session.execute(
        delete(JobLease).where(JobLease.name.startswith(prefix, autoescape=True),
                               JobLease.until <= (now or utcnow()))
        .execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


class Lease:
    """A lease this process holds while it keeps renewing it (`hold` once per round of its
    job, well within `length`), each time in a unit of work of its own."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], name: str,
                 length: timedelta, holder: str | None = None) -> None:
        self._sessions = sessions
        self.name = name
        self.length = length
        self.holder = holder or process_holder()

    async def hold(self) -> bool:
        """Take or renew the lease; whether this process holds it now."""
        async with self._sessions() as session:
            held = await take(session, self.name, self.holder, self.length)
            await session.commit()
        return held

    async def release(self) -> None:
        """Give the lease up (a clean stop): another process may take it at once instead of
        after its time."""
        async with self._sessions() as session:
            await session.execute(
                delete(JobLease).where(JobLease.name == self.name,
                                       JobLease.holder == self.holder)
                .execution_options(synchronize_session=False))
            await session.commit()
