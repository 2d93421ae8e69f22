"""List and item responses: the `$meta`/`data` envelope, and `select` applied to both."""

import json
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any

from starlette.responses import Response

from tokenhouse.kit.rql import Query, Resource, parse_query
from tokenhouse.kit.rql.parser import RqlError
from tokenhouse.kit.rql.shape import Shape, compile_select, omitted_fields, project

# The query string of a list, for the OpenAPI document (the route reads it raw: RQL filter
# terms are not name=value parameters).
LIST_DOC = {"parameters": [
    {"name": "limit", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 0, "default": 10},
     "description": "Page size; at most 100 (a larger value is capped and reported)."},
    {"name": "offset", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 0, "default": 0}},
    {"name": "select", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "Fields to add (+f) or remove (-f), e.g. -description,+audit."},
    {"name": "order", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "Sort keys, '-' for descending, e.g. -audit.created.at,name."},
], "description": "Filter with RQL terms in the query string, e.g. "
                  "`?eq(status,Active)&ilike(name,*ci*)` (see the README)."}

# Omitted from list items by default (as on the platform); `select=+audit` brings it back.
LIST_OMITTED = ("audit",)


def item_query(raw: str) -> Query:
    """The query string of a single-object request: `select` alone has a meaning there."""
    query = parse_query(raw)
    extra = sorted(query.given - {"select"})
    if query.filter is not None or extra:
        part = extra[0] if extra else "query"
        raise RqlError(part, "Only 'select' applies to a single object; filters, order, "
                             "limit and offset belong to lists.")
    return query


def list_shape(query: Query, resource: Resource) -> Shape:
    return compile_select(query.select, resource.root, LIST_OMITTED)


def item_shape(query: Query, resource: Resource) -> Shape:
    return compile_select(query.select, resource.root)


def list_query(raw: str, resource: Resource) -> tuple[Query, Shape]:
    """A list's query string, parsed, and the shape of its items (a bad `select` is a 400
    before any query runs)."""
    query = _parse(raw)
    return query, list_shape(query, resource)


# Parsed queries kept per query string: clients repeat theirs, and a Query is immutable. A
# bad one raises and is not kept. Only short query strings are kept, so that the cache is
# bounded in bytes, not just entries: an entry (the string and its tree) of a query of 1,024
# characters packed with terms measured ~24 KB, so the whole cache stays under ~12 MB per
# process whatever the clients send. Longer queries are parsed every time.
CACHED_QUERY_CHARS = 1024
CACHED_QUERIES = 512
_cached_parse = lru_cache(maxsize=CACHED_QUERIES)(parse_query)


def _parse(raw: str) -> Query:
    return _cached_parse(raw) if len(raw) <= CACHED_QUERY_CHARS else parse_query(raw)


def _meta(query: Query, total: int, shape: Shape, resource: Resource) -> dict[str, Any]:
    # pagination holds exactly offset, limit and total: mpt-api-client builds a dataclass
    # from it. `limit` is the effective (capped) one, which the client pages by.
    meta: dict[str, Any] = {"pagination": {"offset": query.offset, "limit": query.limit,
                                           "total": total}}
    omitted = omitted_fields(shape, resource.root)
    if omitted:
        meta["omitted"] = omitted
    return meta


def page(items: list[dict[str, Any]], query: Query, total: int, shape: Shape,
         resource: Resource) -> dict[str, Any]:
    return {"$meta": _meta(query, total, shape, resource),
            "data": [project(item, shape) for item in items]}


def encoded_page(items: list[bytes], query: Query, total: int, shape: Shape,
                 resource: Resource) -> Response:
    """`page` for items already encoded in `shape` (tokens kept as JSON in memory)."""
    meta = encode_json({"$meta": _meta(query, total, shape, resource)})
    return Response(meta[:-1] + b',"data":[' + b",".join(items) + b"]}",
                    media_type="application/json")


async def list_response(raw: str, resource: Resource,
                        load: Callable[[Query], Awaitable[tuple[list[Any], int]]],
                        render: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """A list endpoint's answer: parse the query string, load the page (`load` runs the
    service), render each object, apply `select`."""
    query, shape = list_query(raw, resource)
    items, total = await load(query)
    return page([render(item) for item in items], query, total, shape, resource)


# Starlette's JSONResponse settings, in an encoder made once: json.dumps with any option
# builds a new encoder on every call, which cost more than encoding a small value.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, indent=None,
                            separators=(",", ":"))


def encode_json(value: Any) -> bytes:
    """JSON exactly as Starlette's JSONResponse writes it."""
    return _ENCODER.encode(value).encode()


def item(body: dict[str, Any], shape: Shape, resource: Resource) -> dict[str, Any]:
    shaped = project(body, shape)
    omitted = [name for name in omitted_fields(shape, resource.root) if name in body]
    if omitted:
        shaped["$meta"] = {"omitted": omitted}
    return shaped
