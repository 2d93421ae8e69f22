"""Leases in the database (kit/lease.py) on SQLite and PostgreSQL: one holder at a time,
renewed by its holder, taken over when its time is up or it was given up, void when written
by a clock ahead, and one winner among holders asking at once."""

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenhouse.kit import lease

LENGTH = timedelta(seconds=30)


def sessions_of(app: FastAPI) -> async_sessionmaker[AsyncSession]:
    made: async_sessionmaker[AsyncSession] = app.state.runtime.sessions
    return made


async def take(app: FastAPI, name: str, holder: str, now: datetime) -> bool:
    async with sessions_of(app)() as session:
        taken = await lease.take(session, name, holder, LENGTH, now)
        await session.commit()
    return taken


async def test_one_holder_at_a_time_until_its_time_is_up(app: FastAPI) -> None:
    name = f"test.{secrets.token_hex(4)}"
    start = datetime.now(UTC)
    assert await take(app, name, "a", start)
    assert not await take(app, name, "b", start + timedelta(seconds=1))
    assert await take(app, name, "a", start + timedelta(seconds=20))  # renewed: until +50 s
    assert not await take(app, name, "b", start + timedelta(seconds=40))
    assert await take(app, name, "b", start + timedelta(seconds=50))  # a stopped renewing
    assert not await take(app, name, "a", start + timedelta(seconds=51))


async def test_a_lease_given_up_is_taken_at_once(app: FastAPI) -> None:
    name = f"test.{secrets.token_hex(4)}"
    held = lease.Lease(sessions_of(app), name, LENGTH)
    other = lease.Lease(sessions_of(app), name, LENGTH)
    assert held.holder != other.holder
    assert await held.hold()
    assert not await other.hold()
    await held.release()
    assert await other.hold()
    await held.release()  # not its own any more: changes nothing
    assert not await held.hold()


async def test_a_lease_from_a_clock_ahead_is_void(app: FastAPI) -> None:
    name = f"test.{secrets.token_hex(4)}"
    start = datetime.now(UTC)
    assert await take(app, name, "ahead", start + timedelta(days=1))
    assert await take(app, name, "b", start)


async def test_holders_asking_at_once_one_wins(app: FastAPI) -> None:
    for _ in range(5):
        name = f"test.{secrets.token_hex(4)}"
        now = datetime.now(UTC)
        results = await asyncio.gather(*(take(app, name, f"h{index}", now)
                                         for index in range(8)))
        assert sum(results) == 1, results


async def test_ended_leases_are_purged_by_prefix(app: FastAPI) -> None:
    prefix = f"test.{secrets.token_hex(4)}."
    start = datetime.now(UTC)
    assert await take(app, prefix + "old", "a", start - timedelta(minutes=5))
    assert await take(app, prefix + "running", "a", start)
    assert await take(app, "other" + prefix, "a", start - timedelta(minutes=5))
    async with sessions_of(app)() as session:
        assert await lease.purge(session, prefix, start) == 1
        await session.commit()
    assert not await take(app, prefix + "running", "b", start)
    assert await take(app, prefix + "old", "b", start)  # ended or gone: the same
