"""UTC timestamps, rendered as the platform does: milliseconds and a ``Z``."""

import time
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The clock's last millisecond: (milliseconds since the epoch, as a datetime, rendered).
# Every request reads "now" (its access is noted, its answer renders it) and several requests
# share a millisecond under load: reading the clock is then one integer comparison, and
# rendering it none. One tuple, replaced whole: a thread never sees a value of one
# millisecond with the rendering of another.
_now: tuple[int, datetime, str] = (-1, _EPOCH, "1970-01-01T00:00:00.000Z")


def utcnow() -> datetime:
    """Now, cut to the millisecond (the same object throughout a millisecond)."""
    milliseconds = time.time_ns() // 1_000_000
    now = _now
    if now[0] != milliseconds:
        now = _tick(milliseconds)
    return now[1]


def _tick(milliseconds: int) -> tuple[int, datetime, str]:
    global _now
    at = _EPOCH + timedelta(milliseconds=milliseconds)
    _now = (milliseconds, at, _rendered(at))
    return _now


def to_millisecond(value: datetime) -> datetime:
    """`value` cut to the millisecond, so that what is stored equals what is rendered."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def render(value: datetime | None) -> str | None:
    return None if value is None else stamp(value)


def stamp(value: datetime) -> str:
    """`render` of a value that is there."""
    now = _now
    if value is now[1]:  # `utcnow()`'s, rendered once
        return now[2]
    return _rendered(as_utc(value))


def _rendered(value: datetime) -> str:
    # isoformat: C speed (it runs several times per response), four-digit years, and the
    # milliseconds truncated, as stored. A UTC value always ends in "+00:00".
    return value.isoformat(timespec="milliseconds")[:-6] + "Z"
