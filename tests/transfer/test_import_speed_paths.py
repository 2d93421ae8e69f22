"""The fast reading of an export-shaped line (service._read_plain) searches the line's UTF-8
bytes, and takes a line the slow way exactly where the text itself holds what it cannot see
through: a lone surrogate (no UTF-8 bytes at all), a NUL or surrogate escape, brackets enough
to nest too deeply, NaN, Infinity, a float literal too large. Any other escape, and blank
lines of any whitespace, read as before. Checked here line by line, in this process; every
refusal's message is the slow reading's (test_line_validation.py holds the rest)."""

from __future__ import annotations

import json

import pytest

from tests.transfer.test_line_validation import EXPORTED, TOKEN, deep, problems_of
from tokenhouse.transfer import service
from tokenhouse.transfer.service import MAX_DEPTH, read_chunks


def spaced(line: str) -> str:
    """The same line not in export's shape (read the slow way)."""
    return line.replace('{"id":"', '{"id": "', 1)


@pytest.mark.parametrize("value", ["\ud800", "a\udfffb"])
def test_a_raw_lone_surrogate_is_read_the_slow_way_and_named_alike(value: str) -> None:
    """A text not read from a UTF-8 file may hold one unescaped: it has no UTF-8 bytes."""
    line = EXPORTED.replace('"name":"fuzz token"', f'"name":"{value}"', 1)
    assert line != EXPORTED
    assert service._read_plain(line) is None
    [(_, message)] = problems_of(line)
    assert "surrogate" in message and message == problems_of(spaced(line))[0][1]


@pytest.mark.parametrize("escaped", ['\\u00fcber', 'a \\"quoted\\" \\\\ name \\n',
                                     "\\u0041\\u2028"])
def test_a_harmless_escape_keeps_a_line_fast_and_read_alike(escaped: str) -> None:
    """An escape other than a NUL or a surrogate reads the fast way, as the same value as
    the slow way reads it."""
    line = EXPORTED.replace('"name":"fuzz token"', f'"name":"{escaped}"', 1)
    assert line != EXPORTED
    fast = service._read_plain(line)
    assert fast is not None
    assert fast == service._read_checked(line)[0]
    assert fast.name == json.loads(f'"{escaped}"')


@pytest.mark.parametrize("escape", ["\\u0000", "\\ud800", "\\uDBFF"])
def test_a_nul_or_surrogate_escape_anywhere_is_read_the_slow_way(escape: str) -> None:
    line = EXPORTED.replace('"Fuzz account"', f'"Fuzz{escape} account"', 1)
    assert line != EXPORTED
    assert service._read_plain(line) is None
    [(_, message)] = problems_of(line)
    assert message == problems_of(spaced(line))[0][1]


def test_brackets_of_both_kinds_count_towards_the_nesting() -> None:
    """A line with more brackets than MAX_DEPTH, of either kind, goes the slow way (which
    measures the real depth, and accepts this one); one with MAX_DEPTH stays fast."""
    spare = MAX_DEPTH - EXPORTED.count("{") - EXPORTED.count("[")
    assert spare >= 2

    def nested(levels: int) -> str:
        return EXPORTED.replace('"revision":7', f'"revision":7,"x":{deep(levels)}', 1)

    assert service._read_plain(nested(spare)) is not None
    assert service._read_plain(nested(spare + 1)) is None
    assert not any(chunk.problems for chunk in read_chunks([nested(spare + 1)]))


@pytest.mark.parametrize("number", ["1e5", "2E-3", "1" * 309, "-0.5e+2"])
def test_a_finite_number_that_looks_large_goes_the_slow_way_and_is_accepted(number: str
                                                                              ) -> None:
    line = EXPORTED.replace('"revision":7', f'"revision":7,"x":{number}', 1)
    assert service._read_plain(line) is None
    assert not any(chunk.problems for chunk in read_chunks([line]))


@pytest.mark.parametrize("word", ["NaN", "Infinity"])
def test_nan_or_infinity_in_a_string_only_costs_the_slow_way(word: str) -> None:
    line = json.dumps({**TOKEN, "description": f"not a {word}"}, separators=(",", ":"))
    assert service._read_plain(line) is None
    [chunk] = read_chunks([line])
    assert not chunk.problems and len(chunk.tokens) == 1


def test_blank_lines_of_any_whitespace_are_skipped() -> None:
    lines = ["", "\n", "  \t\r\n", "\u2028\u3000\n", EXPORTED + "\n", " \f\v"]
    [chunk] = read_chunks(lines)
    assert chunk.lines == len(lines)
    assert not chunk.problems and len(chunk.tokens) == 1


@pytest.mark.parametrize(("old", "new"), [
    ('"name":"fuzz token"', '"name":"first","name":"fuzz token"'),
    ('"name":"fuzz token"', '"name":"fuzz token","name":"second"'),
    ('"revision":3', '"revision":3,"revision":2'),
    ('"status":"Active"', '"status":"Sleeping","status":"Active"'),
    ('"status":"Active"', '"status":"Active","status":"Sleeping"'),
    ('"id":"TKN-7000-0001"', '"id":"TKN-7000-0001","id":"ACC-7000-0002"'),
    ('"at":"2025-01-02T03:04:05.678Z"', '"at":"2025-01-02T03:04:05.678Z","at":"x"'),
])
def test_a_repeated_key_reads_as_its_last_value_both_ways(old: str, new: str) -> None:
    """pydantic's parser, as Python's, keeps the last of repeated keys: the fast reading
    gives the slow reading's line, and a line it refuses is the slow reading's to name."""
    line = EXPORTED.replace(old, new, 1)
    assert line != EXPORTED
    slow, _, problem = service._read_checked(line)
    fast = service._read_plain(line)
    assert fast == slow
    assert (fast is None) == (problem is not None)


@pytest.mark.parametrize(("changes", "where"), [({"account": "ACC-7000-0001"}, "account"),
                                                ({"modules": ["MOD-1732"]}, "modules.0"),
                                                ({"account": None}, "account")])
def test_a_reference_that_is_no_object_is_named_by_its_property(changes: dict[str, object],
                                                                 where: str) -> None:
    """A token's account and modules are read as dicts (no model of their own): the
    message names the property and what it should be, nothing internal."""
    line = json.dumps({**TOKEN, **changes}, separators=(",", ":"))
    assert service._read_plain(line) is None
    assert problems_of(line) == problems_of(spaced(line)) == [
        (1, f"TKN-7000-0001: {where}: Input should be a valid dictionary")]
