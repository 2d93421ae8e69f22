"""The clock (kit/timeutil.py): read at most once a millisecond, and never stale."""

from datetime import UTC, datetime, timedelta

import time_machine

from tokenhouse.kit.timeutil import stamp, utcnow


def test_now_follows_the_clock_to_the_millisecond_both_ways() -> None:
    with time_machine.travel(datetime(2026, 3, 4, 5, 6, 7, 891_999, tzinfo=UTC), tick=False):
        first = utcnow()
        assert first == datetime(2026, 3, 4, 5, 6, 7, 891_000, tzinfo=UTC)
        assert utcnow() is first  # the same millisecond: the same value, rendered once
        assert stamp(first) == "2026-03-04T05:06:07.891Z"
    with time_machine.travel(datetime(2026, 3, 4, 5, 6, 7, 892_000, tzinfo=UTC), tick=False):
        assert stamp(utcnow()) == "2026-03-04T05:06:07.892Z"
    # Back in time (a test's clock, or the system's set back): never the later value.
    with time_machine.travel(datetime(2025, 1, 1, tzinfo=UTC), tick=False):
        assert stamp(utcnow()) == "2025-01-01T00:00:00.000Z"


def test_now_is_the_system_clock_cut_to_the_millisecond() -> None:
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    now = utcnow()
    after = datetime.now(UTC)
    assert before <= now <= after
    assert now.microsecond % 1000 == 0 and now.tzinfo is UTC


def test_any_value_renders_as_the_platform_does() -> None:
    assert stamp(datetime(2026, 1, 2, 3, 4, 5, 678_901)) == "2026-01-02T03:04:05.678Z"  # naive
    offset = datetime(2026, 1, 2, 5, 4, 5, 678_000).astimezone()
    assert stamp(offset) == stamp(offset.astimezone(UTC))


def test_the_value_kept_at_import_renders_as_any_other() -> None:
    import importlib

    from tokenhouse.kit import timeutil
    importlib.reload(timeutil)  # the module's state at import (the same module dict)
    assert timeutil.stamp(timeutil._EPOCH) == "1970-01-01T00:00:00.000Z"
