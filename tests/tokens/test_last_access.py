"""`seen` notes: how processes tell each other the lastAccessAt values they wrote."""

from datetime import UTC, datetime, timedelta

from tokenhouse.kit.invalidation import Seen
from tokenhouse.tokens.last_access import NOTE_SIZE, LastAccessRecorder, seen_notes

AT = datetime(2026, 11, 28, 12, 30, 15, 123000, tzinfo=UTC)


def recorder() -> LastAccessRecorder:
    return LastAccessRecorder(sessions=None, interval=10)  # type: ignore[arg-type]


def test_notes_carry_every_access_exactly_within_the_notify_limit() -> None:
    accesses = {f"TKN-{n:04d}-{n:04d}-{n:04d}": AT + timedelta(milliseconds=n)
                for n in range(1000)}
    notes = seen_notes(accesses)
    assert len(notes) > 1 and all(len(note.note) <= NOTE_SIZE for note in notes)
    heard = recorder()
    for note in notes:
        heard.heard(note)
    assert {token_id: heard.seen(token_id, None) for token_id in accesses} == accesses


def test_what_is_heard_never_moves_an_access_backwards() -> None:
    heard = recorder()
    later = AT + timedelta(seconds=5)
    heard.heard(seen_notes({"TKN-1": later})[0])
    heard.heard(seen_notes({"TKN-1": AT})[0])  # an older note arriving late
    assert heard.seen("TKN-1", None) == later
    assert heard.seen("TKN-1", later + timedelta(seconds=1)) == later + timedelta(seconds=1)


def test_a_malformed_note_is_ignored_not_fatal() -> None:
    heard = recorder()
    heard.heard(Seen("TKN-1=notanumber"))
    heard.heard(seen_notes({"TKN-2": AT})[0])
    assert heard.seen("TKN-2", None) == AT
