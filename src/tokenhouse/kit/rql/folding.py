"""Case folding for ilike: Unicode simple case folding, the same in Python and in SQL.

Simple folding is lower case except for about a hundred characters (ς, µ, ſ, ϐ, Cherokee
small letters, ...), whose folded form differs from their lower case. SQL gets there as
`translate(lower(x), <those>, <their folds>)` on PostgreSQL, and as the Python function below
on SQLite (registered on each connection: SQLite's own lower() knows only ASCII). Characters
are folded one by one, so a final Σ folds like any other (to σ).
"""

from functools import lru_cache

# Every cased character of Unicode lies below U+20000 (the planes above hold none).
CASED_BELOW = 0x20000


@lru_cache(maxsize=1)
def tables() -> tuple[str, str, dict[int, str]]:
    """(characters whose fold is not their lower case, their folds, a str.translate table
    folding every character)."""
    after_lower: dict[str, str] = {}
    folding: dict[int, str] = {}
    for point in range(CASED_BELOW):
        if 0xD800 <= point <= 0xDFFF:
            continue
        char = chr(point)
        lower = char.lower()[0]
        full = char.casefold()
        folded = full if len(full) == 1 else lower
        if len(full) == 1 and lower != full:
            after_lower[lower] = full
        if folded != char:
            folding[point] = folded
    return "".join(after_lower), "".join(after_lower.values()), folding


def fold(value: str | None) -> str | None:
    if not isinstance(value, str):
        return value
    return value.translate(tables()[2])
