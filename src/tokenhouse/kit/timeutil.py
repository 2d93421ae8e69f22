"""UTC timestamps, rendered as the platform does: milliseconds and a ``Z``."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return to_millisecond(datetime.now(UTC))


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
    # isoformat: C speed (it runs several times per response), four-digit years, and the
    # milliseconds truncated, as stored. A UTC value always ends in "+00:00".
    return as_utc(value).isoformat(timespec="milliseconds")[:-6] + "Z"
