"""What a resource offers to queries: its fields, their types, and the SQL behind each.

A resource is a tree: `Scalar` leaves (string, enum, datetime, number, boolean) bound to a
column expression, `Obj` nodes (nested objects), and `Collection` nodes (to-many relations,
reachable only through any()/all()). The same tree gives the response shape for `select`:
each node says whether it is in the default shape.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement

from tokenhouse.kit.rql.ast import Path, dotted

KINDS = ("string", "enum", "datetime", "number", "boolean")
DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})?)?$")
NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
# The numbers a query may compare: the range of the Integer columns on PostgreSQL (32 bits;
# SQLite's are wider). A value outside it would overflow the bound parameter, a 500.
NUMBER_RANGE = (Decimal(-(2**31)), Decimal(2**31 - 1))


@dataclass(frozen=True)
class Scalar:
    kind: str
    column: Any = None  # a ColumnElement; None for a field that exists only in the shape
    nullable: bool = True
    values: tuple[str, ...] = ()  # the members of an enum
    default: bool = True  # in the default response shape
    filterable: bool = True
    # Shown only in some responses (a token's secret): never named in `$meta.omitted`.
    conditional: bool = False
    # For a computed value (`column` an expression): the condition of `eq(field,value)` on
    # the stored columns, which indexes can serve. Also used by ne, in and out.
    equals: Callable[[Any], ColumnElement[bool]] | None = None


@dataclass(frozen=True)
class Obj:
    fields: Mapping[str, "Field"]
    default: bool = True
    # For `eq(obj,null())`: an expression that is NULL exactly when the object is absent.
    presence: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "_lower", {name.lower(): name for name in self.fields})

    def lookup(self, name: str) -> tuple[str, "Field"] | None:
        """Field names are ASCII case-insensitive."""
        canonical = self._lower.get(name.lower())  # type: ignore[attr-defined]
        return (canonical, self.fields[canonical]) if canonical else None


@dataclass(frozen=True)
class Collection:
    element: Obj
    # exists(condition on the element's columns, or None) -> EXISTS(...) for one parent row
    exists: Callable[[ColumnElement[bool] | None], ColumnElement[bool]] | None = None
    default: bool = True


Field = Scalar | Obj | Collection


@dataclass(frozen=True)
class Resource:
    """A queryable resource: its fields, and the column that breaks ties (its id)."""

    name: str
    root: Obj
    id_column: Any
    # Top-level fields in the default shape of a list item / a single object.
    item_omitted: tuple[str, ...] = field(default=())


def convert(scalar: Scalar, text: str, path: Path) -> Any:
    """A literal as the field's type; `_NoMatch` for an enum value that is no member."""
    from tokenhouse.kit.rql.parser import RqlError

    if scalar.kind == "string":
        return text
    if scalar.kind == "enum":
        for member in scalar.values:
            if member.lower() == text.lower():
                return member
        return NO_MATCH
    if scalar.kind == "datetime":
        try:
            value = parse_datetime(text)
        except OverflowError:
            raise RqlError(dotted(path), f"'{text[:60]}' is outside the range of "
                                         f"{dotted(path)} (years 1 to 9999 in UTC).") from None
        if value is None:
            raise RqlError(dotted(path), f"'{text[:60]}' is not a date-time for "
                                         f"{dotted(path)} (use YYYY-MM-DD or ISO 8601).")
        return value
    if scalar.kind == "number":
        if not NUMBER.match(text):
            raise RqlError(dotted(path), f"'{text[:60]}' is not a number for {dotted(path)}.")
        # Decimal first: int() of thousands of digits raises, and the range is checked
        # before anything reaches a bound parameter.
        number = Decimal(text)
        if not NUMBER_RANGE[0] <= number <= NUMBER_RANGE[1]:
            raise RqlError(dotted(path), f"'{text[:60]}' is outside the range of "
                                         f"{dotted(path)} ({NUMBER_RANGE[0]} to "
                                         f"{NUMBER_RANGE[1]}).")
        return float(number) if "." in text else int(number)
    if text.lower() not in ("true", "false"):
        raise RqlError(dotted(path), f"'{text[:60]}' is not true or false for {dotted(path)}.")
    return text.lower() == "true"


class _NoMatch:
    """An enum literal that names no member: equal to nothing."""


NO_MATCH = _NoMatch()


def parse_datetime(text: str) -> datetime | None:
    """`YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS[.f{1,9}][Z|±HH:MM]`, as an aware UTC datetime
    (no offset means UTC); OverflowError when the offset moves it out of years 1 to 9999.
    Fractions beyond microseconds are cut, not rounded."""
    match = DATETIME.match(text)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        tz = UTC
        if offset and offset != "Z":
            sign = 1 if offset[0] == "+" else -1
            hours, minutes = int(offset[1:3]), int(offset[4:6])
            if hours > 23 or minutes > 59:
                return None
            tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
        value = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                         int(second or 0), int((fraction or "0").ljust(6, "0")[:6]), tzinfo=tz)
    except ValueError:
        return None
    return value.astimezone(UTC)
