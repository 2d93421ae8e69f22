"""`select`: which fields a response carries, and `$meta.omitted`.

Rules (rql.md §8): start from the default shape; `+f` adds f with its default sub-shape, `-f`
removes it, `+a.b` guarantees a.b (an absent `a` then holds only what was added), `-a.b`
removes b from a (from each element of a collection), `*` is every top-level field, include
beats exclude for the same path, `id` is always there, unknown paths are a 400.
"""

from typing import Any

from tokenhouse.kit.rql.ast import Path, dotted
from tokenhouse.kit.rql.parser import RqlError, SelectItem
from tokenhouse.kit.rql.schema import Collection, Obj

FULL = True  # a field kept with its whole default sub-shape
Shape = dict[str, Any]  # field -> FULL or a sub-shape


def default_shape(node: Obj, omitted: tuple[str, ...] = ()) -> Shape:
    return {name: FULL for name, field in node.fields.items()
            if field.default and name not in omitted}


def compile_select(items: tuple[SelectItem, ...], root: Obj,
                   omitted: tuple[str, ...] = ()) -> Shape:
    """The shape a `select` asks for, from the default shape less `omitted` fields."""
    shape = default_shape(root, omitted)
    # Excludes first, then includes: include beats exclude whatever the order.
    for item in sorted(items, key=lambda i: i.include):
        if item.path == ("*",):
            if item.include:
                shape = {name: FULL for name in root.fields}
            else:
                shape = {}
            continue
        canonical = _canonical(root, item.path)
        if item.include:
            _include(shape, root, canonical)
        else:
            _exclude(shape, root, canonical)
    shape["id"] = FULL
    return shape


def omitted_fields(shape: Shape, root: Obj) -> list[str]:
    """Top-level fields outside the shape, in schema order."""
    return [name for name, field in root.fields.items()
            if name not in shape and not getattr(field, "conditional", False)]


def project(value: dict[str, Any], shape: Shape) -> dict[str, Any]:
    """The part of a rendered object that the shape keeps (keys absent stay absent)."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        sub = shape.get(key)
        if sub is None:
            continue
        if sub is FULL or item is None:
            out[key] = item
        elif isinstance(item, list):
            out[key] = [project(element, sub) if isinstance(element, dict) else element
                        for element in item]
        elif isinstance(item, dict):
            out[key] = project(item, sub)
        else:
            out[key] = item
    return out


def _canonical(root: Obj, path: Path) -> Path:
    node: Any = root
    names: list[str] = []
    for name in path:
        if isinstance(node, Collection):
            node = node.element
        found = node.lookup(name) if isinstance(node, Obj) else None
        if found is None:
            raise RqlError("select", f"Invalid property path in select: {dotted(path)}.")
        names.append(found[0])
        node = found[1]
    return tuple(names)


def _children(root: Obj, path: Path) -> Obj | None:
    node: Any = root
    for name in path:
        if isinstance(node, Collection):
            node = node.element
        node = node.fields[name]
    if isinstance(node, Collection):
        node = node.element
    return node if isinstance(node, Obj) else None


def _include(shape: Shape, root: Obj, path: Path) -> None:
    head, rest = path[0], path[1:]
    if not rest:
        shape[head] = FULL
        return
    current = shape.get(head)
    if current is FULL:
        return  # the whole default sub-shape is there; `+a.b` on a non-default b adds it
    if current is None:
        current = shape[head] = {}
    _include(current, _children(root, (head,)) or Obj({}), rest)


def _exclude(shape: Shape, root: Obj, path: Path) -> None:
    head, rest = path[0], path[1:]
    if head == "id" and not rest:
        return
    if not rest:
        shape.pop(head, None)
        return
    current = shape.get(head)
    if current is None:
        return
    child = _children(root, (head,))
    if child is None:
        return
    if current is FULL:
        current = shape[head] = default_shape(child)
    _exclude(current, child, rest)



