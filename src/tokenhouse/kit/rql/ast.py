"""The syntax tree of an RQL filter. Paths are tuples of names as written."""

from dataclasses import dataclass

Path = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Literal:
    """A value as written; `quoted` values are never read as a field reference."""

    text: str
    quoted: bool


@dataclass(frozen=True, slots=True)
class Null:
    pass


@dataclass(frozen=True, slots=True)
class Empty:
    pass


Value = Literal | Empty
Operand = Literal | Empty | Null


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # eq ne gt ge lt le
    path: Path
    value: Operand


@dataclass(frozen=True, slots=True)
class Like:
    path: Path
    pattern: Value
    fold: bool  # ilike


@dataclass(frozen=True, slots=True)
class In:
    path: Path
    values: tuple[Value, ...]
    negate: bool  # out


@dataclass(frozen=True, slots=True)
class And:
    items: tuple["Node", ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple["Node", ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: "Node"


@dataclass(frozen=True, slots=True)
class Quantified:
    """any(c) / any(c, e) / all(c, e)."""

    every: bool
    path: Path
    condition: "Node | None"


Node = Compare | Like | In | And | Or | Not | Quantified


def dotted(path: Path) -> str:
    return ".".join(path)
