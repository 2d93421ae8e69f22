"""`seen` notes: how processes tell each other the accesses they noted (time, client
addresses, uses of a replaced secret), and how they are merged."""

from datetime import UTC, datetime, timedelta

from tokenhouse.kit.invalidation import Seen
from tokenhouse.kit.timeutil import stamp
from tokenhouse.tokens.last_access import (
    ADDRESSES,
    NOTE_SIZE,
    LastAccessRecorder,
    Noted,
    latest_access,
    latest_previous_access,
    merged_addresses,
    seen_notes,
)

AT = datetime(2026, 11, 28, 12, 30, 15, 123000, tzinfo=UTC)
WINDOW = AT + timedelta(hours=1)


def seen(heard: LastAccessRecorder, token_id: str, stored: datetime | None) -> datetime | None:
    return latest_access(stored, heard.noted(token_id))


def previous_seen(heard: LastAccessRecorder, token_id: str, window: datetime,
                  stored: datetime | None) -> datetime | None:
    return latest_previous_access(stored, window, heard.noted(token_id))


def addresses(heard: LastAccessRecorder, token_id: str, stored: str | None
              ) -> list[dict[str, str]]:
    return merged_addresses(stored, [noted.ips for noted in heard.noted(token_id)])


def recorder() -> LastAccessRecorder:
    return LastAccessRecorder(sessions=None, interval=10)  # type: ignore[arg-type]


def noted(at: datetime, *addresses: str, previous: datetime | None = None) -> Noted:
    made = Noted(at)
    for address in addresses:
        made.add(at, address)
    if previous is not None:
        made.add(at, None, previous)
    return made


def test_notes_carry_every_access_exactly_within_the_notify_limit() -> None:
    accesses = {f"TKN-{n:04d}-{n:04d}": noted(
        AT + timedelta(milliseconds=n), f"192.0.2.{n % 250}", "2001:db8::1",
        previous=WINDOW if n % 2 else None) for n in range(1000)}
    notes = seen_notes(accesses)
    assert len(notes) > 1 and all(len(note.note) <= NOTE_SIZE for note in notes)
    heard = recorder()
    for note in notes:
        heard.heard(note)
    for token_id, access in accesses.items():
        assert seen(heard, token_id, None) == access.at
        assert [a["ip"] for a in addresses(heard, token_id, None)] == sorted(access.ips)
        assert previous_seen(heard, token_id, WINDOW, None) == (
            access.at if access.previous else None)


def test_what_is_heard_never_moves_an_access_backwards() -> None:
    heard = recorder()
    later = AT + timedelta(seconds=5)
    heard.heard(seen_notes({"TKN-1": noted(later, "192.0.2.1")})[0])
    heard.heard(seen_notes({"TKN-1": noted(AT, "192.0.2.1")})[0])  # an older note, late
    assert seen(heard, "TKN-1", None) == later
    assert seen(heard, "TKN-1", later + timedelta(seconds=1)) == later + timedelta(seconds=1)
    assert addresses(heard, "TKN-1", None) == [{"ip": "192.0.2.1",
                                                "at": "2026-11-28T12:30:20.123Z"}]


def test_a_replaced_secret_s_use_counts_for_its_own_window_only() -> None:
    heard = recorder()
    heard.touch("TKN-1", "192.0.2.1", WINDOW)
    assert previous_seen(heard, "TKN-1", WINDOW, None) is not None
    # Rotated again: a new window, in which the old uses are not shown.
    assert previous_seen(heard, "TKN-1", WINDOW + timedelta(minutes=1), None) is None


def test_addresses_are_the_newest_distinct_ones_merged_with_those_stored() -> None:
    stored = ('[{"ip":"192.0.2.9","at":"2026-11-28T12:00:00.000Z"},'
              '{"ip":"192.0.2.1","at":"2026-11-28T11:00:00.000Z"}]')
    ips = {f"198.51.100.{n}": stamp(AT + timedelta(seconds=n)) for n in range(ADDRESSES)}
    ips["192.0.2.1"] = stamp(AT + timedelta(minutes=1))  # newer than its stored time
    merged = merged_addresses(stored, [ips])
    assert [a["ip"] for a in merged] == ["192.0.2.1", "198.51.100.4", "198.51.100.3",
                                         "198.51.100.2", "198.51.100.1"]
    assert merged_addresses("not json", [{}]) == []


def test_a_token_keeps_at_most_five_addresses_noted() -> None:
    heard = recorder()
    for n in range(ADDRESSES + 3):
        heard.touch("TKN-1", f"192.0.2.{n}")
    assert len(addresses(heard, "TKN-1", None)) == ADDRESSES


def test_a_malformed_note_is_ignored_not_fatal() -> None:
    heard = recorder()
    heard.heard(Seen("TKN-1=notanumber"))
    heard.heard(Seen("TKN-1=1@192.0.2.1!x"))
    heard.heard(seen_notes({"TKN-2": noted(AT)})[0])
    assert seen(heard, "TKN-2", None) == AT


def test_only_addresses_and_times_of_the_expected_form_are_shown() -> None:
    """Responses splice addresses in without escaping: a row edited by hand, or a note not
    of this service, shows nothing of its own."""
    hostile = '[{"ip":"1.2.3.4\\",\\"x\\":\\"","at":"2026-11-28T12:00:00.000Z"}]'
    assert merged_addresses(hostile, ()) == []
    assert merged_addresses('[{"ip":"192.0.2.1","at":"yesterday"}]', ()) == []
    heard = recorder()
    heard.heard(Seen('TKN-1=1@1.2.3.4"!2'))
    assert addresses(heard, "TKN-1", None) == []


def test_a_deadlock_is_an_expected_failure_of_a_flush() -> None:
    """PostgreSQL fails one side of a deadlock (40P01): the flush logs one line and retries
    next round, as for an outage, not a traceback."""
    import asyncpg
    from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
    from sqlalchemy.exc import DBAPIError

    from tokenhouse.tokens.last_access import _deadlock

    def wrapped(error: Exception) -> DBAPIError:
        return DBAPIError("UPDATE api_tokens ...", None,
                          AsyncAdapt_asyncpg_dbapi.Error(str(error), error))

    assert _deadlock(wrapped(asyncpg.exceptions.DeadlockDetectedError("deadlock detected")))
    assert not _deadlock(wrapped(asyncpg.exceptions.UniqueViolationError("duplicate")))
    assert not _deadlock(ValueError("no database error"))
