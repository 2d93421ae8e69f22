"""From the raw query string to a `Query`: parameters, select and order items, filter tree.

A hand-written recursive-descent parser, because the dialect's details decide correctness and
no published parser implements them: whitespace is never skipped, a quote may only open a
value, `,`/`&` and `|`/`;` are infix operators with AND binding tighter, `path=value`
shortcuts fit anywhere a term does, and every error must name the offending part (see the
README for the libraries we looked at).
"""

import re
from dataclasses import dataclass
from typing import NoReturn

from tokenhouse.kit.problems import BadRequest
from tokenhouse.kit.rql.ast import (
    And,
    Compare,
    Empty,
    In,
    Like,
    Literal,
    Node,
    Not,
    Null,
    Operand,
    Or,
    Path,
    Quantified,
    Value,
    dotted,
)
from tokenhouse.kit.text import UNSTORABLE

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
# Limits on what one query may ask, generous for real clients (the portal and mpt-api-client
# write a few terms, a few levels deep). Each bounds work an anonymous-looking query string
# could otherwise make unbounded: Python recursion in the parser and the compiler, SQLite's
# expression depth (1,000) and ORDER BY terms, and pattern lengths.
MAX_DEPTH = 32  # nested parentheses in the filter: `(`, `and(`, `not(`, `eq(` ...
MAX_TERMS = 256  # comparisons in the filter; each value of an in()/out() list counts as one
MAX_ORDER_KEYS = 16
MAX_SELECT_ITEMS = 64
# Longer than any stored text can be (the longest columns hold 2,048 characters).
MAX_VALUE_LENGTH = 4096
MAX_WHOLE_DIGITS = 18  # limit and offset: beyond this they are no page of any real list
PARAMETERS = ("limit", "offset", "select", "order")
COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
OPERATORS = (*COMPARISONS, "like", "ilike", "in", "out", "and", "or", "not", "any", "all")
DELIMITERS = "(),&|;='\""
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")


class RqlError(BadRequest):
    """A query that cannot be read; `part` names what is wrong (a field path, an operator, a
    parameter, or `query` for syntax)."""

    def __init__(self, part: str, message: str):
        super().__init__(message, errors={part: [message]})


@dataclass(frozen=True)
class SelectItem:
    include: bool
    path: Path  # ("*",) for every top-level field


@dataclass(frozen=True)
class OrderKey:
    descending: bool
    path: Path


@dataclass(frozen=True)
class Query:
    filter: Node | None = None
    select: tuple[SelectItem, ...] = ()
    order: tuple[OrderKey, ...] = ()
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    # The parameters the query string named, and whether it had filter terms.
    given: frozenset[str] = frozenset()
    terms: int = 0  # comparisons in the filter, as counted against MAX_TERMS
    # `render()`: fill the placeholders of templated fields (audit records' `details`).
    render: bool = False


def parse_query(raw: str) -> Query:
    """Parse the text after `?` as the platform's clients write it."""
    text = decode(raw)
    params: dict[str, str] = {}
    filters: list[str] = []
    render = False
    for part in split_parts(text):
        name, has_value, value = part.partition("=")
        key = name.lower()
        if has_value and key in PARAMETERS:
            if key in params:
                raise RqlError(key, f"The parameter '{key}' is given more than once.")
            params[key] = value
        elif part.lower() in ("render()", "render()="):
            # A directive, not a filter. mpt-api-client sends it bare on a list and as
            # `render%28%29=` on a single read (it url-encodes the name and adds `=`).
            render = True
        else:
            filters.append(part)
    parser = FilterParser("&".join(filters))
    node = parser.parse() if filters else None
    return Query(
        filter=node,
        select=parse_select(params.get("select", "")),
        order=parse_order(params.get("order", "")),
        limit=min(_whole(params, "limit", DEFAULT_LIMIT), MAX_LIMIT),
        offset=_whole(params, "offset", 0),
        given=frozenset(params),
        terms=parser.terms,
        render=render,
    )


def decode(raw: str) -> str:
    """Percent-decode (`+` stays a plus; a `%` without two hex digits stays as it is)."""
    data = PERCENT.sub(lambda m: bytes([int(m.group(1), 16)]), raw.encode("utf-8"))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise RqlError("query", "The query is not valid UTF-8 once percent-decoded.") from None


def split_parts(text: str) -> list[str]:
    """Split at every `&` outside quotes and parentheses; empty parts are dropped."""
    parts: list[str] = []
    depth, quote, start = 0, "", 0
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth = max(depth - 1, 0)
        elif char == "&" and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [part for part in parts if part]


def _whole(params: dict[str, str], key: str, default: int) -> int:
    text = params.get(key)
    if text is None or text == "":
        return default
    if not (text.isascii() and text.isdigit()):
        raise RqlError(key, f"'{key}' must be a whole number from 0 up; got '{text[:40]}'.")
    if len(text.lstrip("0")) > MAX_WHOLE_DIGITS:
        raise RqlError(key, f"'{key}' has more than {MAX_WHOLE_DIGITS} digits.")
    return min(int(text), 2**31 - 1)


def _path(text: str, part: str, *, star: bool = False) -> Path:
    if star and text == "*":
        return ("*",)
    names = tuple(text.split("."))
    if not all(NAME.fullmatch(name) for name in names):
        raise RqlError(part, f"Invalid property path '{text[:80]}' in {part}.")
    return names


# A tuple, not the string "+- ": "" is in every string, and an empty item (`order=a,,b`)
# then raised an IndexError (a 500) instead of the 400 of an invalid path.
SIGNS = ("+", "-", " ")


def parse_select(value: str) -> tuple[SelectItem, ...]:
    items = []
    if value.count(",") >= MAX_SELECT_ITEMS:
        raise RqlError("select", f"select names more than {MAX_SELECT_ITEMS} fields.")
    for item in value.split(",") if value else ():
        sign, rest = (item[0], item[1:]) if item[:1] in SIGNS else ("+", item)
        items.append(SelectItem(include=sign != "-", path=_path(rest, "select", star=True)))
    return tuple(items)


def parse_order(value: str) -> tuple[OrderKey, ...]:
    keys = []
    if value.count(",") >= MAX_ORDER_KEYS:
        raise RqlError("order", f"order has more than {MAX_ORDER_KEYS} keys.")
    for item in value.split(",") if value else ():
        sign, rest = (item[0], item[1:]) if item[:1] in SIGNS else ("+", item)
        keys.append(OrderKey(descending=sign == "-", path=_path(rest, "order")))
    return tuple(keys)


class FilterParser:
    """filter = disjunction; disjunction = conjunction {("|"|";") conjunction};
    conjunction = term {("&"|",") term}; term = call | shortcut | "(" disjunction ")"."""

    def __init__(self, text: str):
        self.text = text
        self.pos = 0
        self.depth = 0
        self.terms = 0

    def parse(self) -> Node:
        node = self.disjunction()
        if self.pos != len(self.text):
            self.fail(f"Unexpected '{self.text[self.pos]}'")
        return node

    # -- helpers ------------------------------------------------------------------------

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def fail(self, what: str, part: str = "query") -> NoReturn:
        shown = self.text[max(0, self.pos - 30):self.pos + 30]
        raise RqlError(part, f"{what} at position {self.pos + 1} of the filter, near '{shown}'.")

    def expect(self, char: str) -> None:
        if self.peek() != char:
            found = f"'{self.peek()}'" if self.peek() else "the end"
            self.fail(f"Expected '{char}' but found {found}")
        self.pos += 1

    def name(self) -> str:
        match = NAME.match(self.text, self.pos)
        if not match:
            found = f"'{self.peek()}'" if self.peek() else "the end"
            self.fail(f"Expected a name but found {found}")
        self.pos = match.end()
        return match.group()

    def enter(self) -> None:
        """Step past a `(`: recursion (here, in the compiler, in SQL) is bounded by depth."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"The filter is nested more than {MAX_DEPTH} levels deep (the limit)")
        self.pos += 1

    def leave(self) -> None:
        self.expect(")")
        self.depth -= 1

    def counted[N: Node](self, node: N, path: Path, values: tuple[Operand, ...]) -> N:
        """A comparison, its values checked, counted against MAX_TERMS."""
        self.terms += max(len(values), 1)
        if self.terms > MAX_TERMS:
            self.fail(f"The filter has more than {MAX_TERMS} terms (the limit)")
        for value in values:
            if not isinstance(value, Literal):
                continue
            if len(value.text) > MAX_VALUE_LENGTH:
                raise RqlError(dotted(path), f"A value for {dotted(path)} is longer than "
                                             f"{MAX_VALUE_LENGTH} characters (the limit).")
            if UNSTORABLE.search(value.text):
                # No stored text holds it (bodies refuse it), and NUL would reach PostgreSQL.
                raise RqlError(dotted(path), f"A value for {dotted(path)} contains a control "
                                             "character.")
        return node

    def path(self) -> Path:
        names = [self.name()]
        while self.peek() == ".":
            self.pos += 1
            names.append(self.name())
        return tuple(names)

    # -- grammar --------------------------------------------------------------------------

    def disjunction(self) -> Node:
        items = [self.conjunction()]
        while self.peek() in ("|", ";") and self.peek():
            self.pos += 1
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conjunction(self) -> Node:
        items = [self.term()]
        while self.peek() in ("&", ",") and self.peek():
            self.pos += 1
            items.append(self.term())
        return items[0] if len(items) == 1 else And(tuple(items))

    def term(self) -> Node:
        if self.peek() == "(":
            self.enter()
            node = self.disjunction()
            self.leave()
            return node
        start = self.pos
        path = self.path()
        if self.peek() == "(":
            if len(path) != 1 or path[0].lower() not in OPERATORS:
                self.pos = start
                name = ".".join(path)
                raise RqlError(name, f"Unknown expression group '{name}'.")
            self.enter()
            node = self.call(path[0].lower())
            self.leave()
            return node
        if self.peek() == "=":
            self.pos += 1
            value = self.operand("Invalid equals shortcut: ")
            if self.peek() == "=":
                self.fail("Invalid equals shortcut: more than one '='")
            return self.counted(Compare("eq", path, value), path, (value,))
        self.fail(f"Expected an operator or '=' after '{'.'.join(path)}'")

    def call(self, op: str) -> Node:
        if op in ("and", "or"):
            items = [self.argument()]
            while self.peek() == ",":
                self.pos += 1
                items.append(self.argument())
            return items[0] if len(items) == 1 else (And if op == "and" else Or)(tuple(items))
        if op == "not":
            return Not(self.argument())
        path = self.path()
        if op in ("any", "all"):
            if self.peek() != ",":
                if op == "all":
                    self.fail("all() needs a condition: all(collection,condition)")
                return self.counted(Quantified(False, path, None), path, ())
            self.pos += 1
            return Quantified(op == "all", path, self.argument())
        self.expect(",")
        if op in COMPARISONS:
            operand = self.operand()
            return self.counted(Compare(op, path, operand), path, (operand,))
        if op in ("like", "ilike"):
            pattern = self.value()
            return self.counted(Like(path, pattern, fold=op == "ilike"), path, (pattern,))
        # in / out
        if self.peek() == "(":
            self.pos += 1
            if self.peek() == ")":
                self.fail(f"{op}() needs at least one value")
            values = [self.value()]
            while self.peek() == ",":
                self.pos += 1
                values.append(self.value())
            self.expect(")")
        else:
            values = [self.value()]
        return self.counted(In(path, tuple(values), negate=op == "out"), path, tuple(values))

    def argument(self) -> Node:
        """A term inside a named operator: only `,` separates arguments there."""
        node = self.term()
        if self.peek() in ("&", "|", ";") and self.peek():
            self.fail(f"Only ',' separates arguments; found '{self.peek()}'")
        return node

    def operand(self, context: str = "") -> Operand:
        if self.keyword("null()"):
            return Null()
        return self.value(context)

    def keyword(self, word: str) -> bool:
        end = self.pos + len(word)
        if self.text[self.pos:end].lower() == word and (end == len(self.text)
                                                       or self.text[end] in "),&|;"):
            self.pos = end
            return True
        return False

    def value(self, context: str = "") -> Value:
        if self.keyword("empty()"):
            return Empty()
        char = self.peek()
        if char in ("'", '"'):
            end = self.text.find(char, self.pos + 1)
            if end < 0:
                self.fail(f"{context}Unterminated quote")
            literal = Literal(self.text[self.pos + 1:end], quoted=True)
            self.pos = end + 1
        else:
            start = self.pos
            while self.pos < len(self.text) and self.text[self.pos] not in DELIMITERS:
                self.pos += 1
            if self.pos == start:
                found = f"'{char}'" if char else "the end"
                self.fail(f"{context}Expected a value but found {found}")
            if self.peek() in ("'", '"'):
                self.fail(f"{context}A quote inside a value; quote the whole value")
            literal = Literal(self.text[start:self.pos], quoted=False)
        if self.peek() not in ("", ")", ",", "&", "|", ";"):
            self.fail(f"{context}Unexpected '{self.peek()}' after a value")
        return literal
