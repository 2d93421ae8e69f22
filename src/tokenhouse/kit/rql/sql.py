"""RQL filter trees and order keys as SQLAlchemy expressions, typed by a resource's schema.

Semantics (rql.md): two-valued logic (a comparison with a missing value is false, and `not`
makes it true), strings compared by code point, enumerations equal regardless of ASCII case,
`*` wildcards anywhere in like/ilike patterns, any()/all() over collections as EXISTS.
The same expressions run on SQLite and PostgreSQL; where the two differ (collation, LIKE's
case rules) the dialect is asked for explicitly.
"""

from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, literal, not_, or_

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
    Or,
    Path,
    Quantified,
    dotted,
)
from tokenhouse.kit.rql.folding import fold, tables
from tokenhouse.kit.rql.parser import OrderKey, RqlError
from tokenhouse.kit.rql.schema import NO_MATCH, Collection, Obj, Resource, Scalar, convert

OPS = {"eq": "__eq__", "gt": "__gt__", "ge": "__ge__", "lt": "__lt__", "le": "__le__"}


class Compiler:
    def __init__(self, resource: Resource, dialect: str):
        self.resource = resource
        self.postgres = dialect == "postgresql"

    # -- paths ----------------------------------------------------------------------------

    def resolve(self, scope: Obj, path: Path, part: str = "") -> tuple[Path, Any]:
        """The field at `path` in `scope`; a path through a collection must use any()/all()."""
        node: Any = scope
        canonical: list[str] = []
        for i, name in enumerate(path):
            if isinstance(node, Collection):
                raise RqlError(dotted(path), f"{dotted(path[:i])} is a collection: use "
                                             f"any({dotted(path[:i])},...) to filter on it.")
            found = node.lookup(name) if isinstance(node, Obj) else None
            if found is None:
                raise RqlError(dotted(path), f"Invalid property path: {dotted(path)}.")
            canonical.append(found[0])
            node = found[1]
        return tuple(canonical), node

    def scalar(self, scope: Obj, path: Path) -> Scalar:
        canonical, node = self.resolve(scope, path)
        if not isinstance(node, Scalar):
            raise RqlError(dotted(path), f"{dotted(path)} is not a single value; compare one "
                                         "of its fields.")
        if not node.filterable or node.column is None:
            raise RqlError(dotted(path), f"{dotted(path)} cannot be used in a query.")
        return node

    def text_column(self, scalar: Scalar) -> Any:
        # Code point order on PostgreSQL whatever the database's collation (SQLite's default
        # BINARY collation already compares UTF-8 bytes, which is code point order).
        if self.postgres and scalar.kind in ("string", "enum"):
            return scalar.column.collate("C")
        return scalar.column

    # -- filter ---------------------------------------------------------------------------

    def filter(self, node: Node, scope: Obj | None = None) -> ColumnElement[bool]:
        scope = scope or self.resource.root
        if isinstance(node, And):
            return and_(*(self.filter(item, scope) for item in node.items))
        if isinstance(node, Or):
            return or_(*(self.filter(item, scope) for item in node.items))
        if isinstance(node, Not):
            return not_(self.filter(node.item, scope))
        if isinstance(node, Compare):
            return self.compare(node, scope)
        if isinstance(node, Like):
            return self.like(node, scope)
        if isinstance(node, In):
            return self.within(node, scope)
        return self.quantified(node, scope)

    def compare(self, node: Compare, scope: Obj) -> ColumnElement[bool]:
        if node.op == "ne":
            return not_(self.compare(Compare("eq", node.path, node.value), scope))
        if isinstance(node.value, Null):
            if node.op != "eq":
                raise RqlError(dotted(node.path), "null() can only be used with eq and ne.")
            return self.is_null(scope, node.path)
        scalar = self.scalar(scope, node.path)
        if scalar.kind in ("enum", "boolean") and node.op != "eq":
            raise RqlError(dotted(node.path), f"{dotted(node.path)} can only be compared with "
                                              "eq, ne, in and out.")
        other = self.field_reference(scope, node.value, scalar)
        column = self.text_column(scalar) if node.op != "eq" else scalar.column
        if other is not None:
            guard = [scalar.column.is_not(None), other.column.is_not(None)]
            right = self.text_column(other) if node.op != "eq" else other.column
            return and_(*guard, getattr(column, OPS[node.op])(right))
        value = self.typed(scalar, node.value, node.path)
        if value is NO_MATCH:
            return false()
        if node.op == "eq" and scalar.equals is not None:
            return self.guarded(scalar, scalar.equals(value))
        return self.guarded(scalar, getattr(column, OPS[node.op])(value))

    def guarded(self, scalar: Scalar, condition: ColumnElement[bool]) -> ColumnElement[bool]:
        """Two-valued logic: a missing value satisfies no comparison (and `not` of one)."""
        if scalar.nullable:
            return and_(scalar.column.is_not(None), condition)
        return condition

    def is_null(self, scope: Obj, path: Path) -> ColumnElement[bool]:
        _, node = self.resolve(scope, path)
        if isinstance(node, Scalar):
            if node.column is None:
                raise RqlError(dotted(path), f"{dotted(path)} cannot be used in a query.")
            return node.column.is_(None) if node.nullable else false()
        if isinstance(node, Obj):
            return node.presence.is_(None) if node.presence is not None else false()
        raise RqlError(dotted(path), f"{dotted(path)} is a collection: use any() to test it.")

    def field_reference(self, scope: Obj, value: Any, scalar: Scalar) -> Scalar | None:
        """An unquoted value naming a scalar field in scope is that field (field-to-field)."""
        if not isinstance(value, Literal) or value.quoted:
            return None
        names = tuple(value.text.split("."))
        try:
            _, node = self.resolve(scope, names)
        except RqlError:
            return None
        if not isinstance(node, Scalar) or node.column is None:
            return None
        if node.kind != scalar.kind or node.values != scalar.values:
            raise RqlError(value.text, f"{value.text} and the compared field have different "
                                       "types.")
        return node

    def typed(self, scalar: Scalar, value: Any, path: Path) -> Any:
        if isinstance(value, Empty):
            if scalar.kind != "string":
                raise RqlError(dotted(path), f"empty() is a string; {dotted(path)} is not.")
            return ""
        return convert(scalar, value.text, path)

    def like(self, node: Like, scope: Obj) -> ColumnElement[bool]:
        scalar = self.scalar(scope, node.path)
        if scalar.kind not in ("string", "enum"):
            raise RqlError(dotted(node.path), f"like/ilike need a text field; "
                                              f"{dotted(node.path)} is not.")
        text = "" if isinstance(node.pattern, Empty) else node.pattern.text
        segments = pattern_segments(text)
        column = scalar.column
        if node.fold:
            column = self.folded(column)
            segments = [fold(s) if isinstance(s, str) else s for s in segments]
        if self.postgres:
            condition = column.like(literal(like_pattern(segments)), escape="\\")
        else:
            # SQLite's LIKE ignores ASCII case; GLOB is case-sensitive (case is folded above
            # for ilike), and its pattern is written so that every other character is literal.
            condition = column.op("GLOB", is_comparison=True)(
                literal(glob_pattern(segments)))
        return self.guarded(scalar, condition)

    def folded(self, column: Any) -> Any:
        """The column under simple case folding (see folding.py)."""
        if self.postgres:
            source, target, _ = tables()
            return func.translate(func.lower(column), literal(source), literal(target))
        return func.th_fold(column)

    def within(self, node: In, scope: Obj) -> ColumnElement[bool]:
        scalar = self.scalar(scope, node.path)
        values = [self.typed(scalar, value, node.path) for value in node.values]
        members = [value for value in values if value is not NO_MATCH]
        if not members:
            condition: ColumnElement[bool] = false()
        elif scalar.equals is not None:
            condition = self.guarded(scalar, or_(*(scalar.equals(value) for value in members)))
        else:
            condition = self.guarded(scalar, scalar.column.in_(members))
        return not_(condition) if node.negate else condition

    def quantified(self, node: Quantified, scope: Obj) -> ColumnElement[bool]:
        _, collection = self.resolve(scope, node.path)
        if not isinstance(collection, Collection) or collection.exists is None:
            raise RqlError(dotted(node.path), f"{dotted(node.path)} is not a collection.")
        if node.condition is None:
            return collection.exists(None)
        condition = self.filter(node.condition, collection.element)
        if node.every:
            # all(c, e): no element fails e (true for an empty collection).
            return not_(collection.exists(not_(condition)))
        return collection.exists(condition)

    # -- order ----------------------------------------------------------------------------

    def order(self, keys: tuple[OrderKey, ...]) -> list[Any]:
        """ORDER BY terms: nulls first ascending and last descending, ties broken by id."""
        terms: list[Any] = []
        for key in keys:
            canonical, node = self.resolve(self.resource.root, key.path)
            if not isinstance(node, Scalar) or node.column is None or not node.filterable:
                raise RqlError(dotted(key.path), f"Cannot order by {dotted(key.path)}: "
                                                 "choose a single-valued field.")
            column = self.text_column(node)
            if not node.nullable:
                # No NULLs to place: a plain ASC/DESC lets an index serve the order.
                terms.append(column.desc() if key.descending else column.asc())
            else:
                terms.append(column.desc().nulls_last() if key.descending
                             else column.asc().nulls_first())
        terms.append(self.resource.id_column.asc())
        return terms


def pattern_segments(text: str) -> list[Any]:
    """A like/ilike pattern as literal strings and WILDCARD markers. `*` is any run of
    characters; `\\*` is a literal `*`, `\\\\` a literal backslash, any other `\\` literal."""
    segments: list[Any] = []
    literal_text = ""
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in "*\\":
            literal_text += text[i + 1]
            i += 2
            continue
        if char == "*":
            if literal_text:
                segments.append(literal_text)
                literal_text = ""
            if not segments or segments[-1] is not WILDCARD:
                segments.append(WILDCARD)
        else:
            literal_text += char
        i += 1
    if literal_text:
        segments.append(literal_text)
    return segments


class _Wildcard:
    pass


WILDCARD = _Wildcard()


def like_pattern(segments: list[Any]) -> str:
    out = ""
    for segment in segments:
        if segment is WILDCARD:
            out += "%"
        else:
            out += segment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return out


def glob_pattern(segments: list[Any]) -> str:
    out = ""
    for segment in segments:
        if segment is WILDCARD:
            out += "*"
        else:
            out += "".join(f"[{c}]" if c in "*?[" else c for c in segment)
    return out

