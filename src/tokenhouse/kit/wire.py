"""The wire: camelCase JSON bodies in, strict validation, shared output shapes."""

import json
import math
import re
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl

from fastapi import Request
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from tokenhouse.kit.problems import (
    BadRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    validation_errors,
)
from tokenhouse.kit.text import UNSTORABLE

MAX_JSON_BYTES = 1024 * 1024
# Nesting of a JSON body: the deepest body any route reads is 3 levels; deeper ones would
# only cost recursion (Python's parser and Pydantic's), so they are a 400.
MAX_JSON_DEPTH = 32
# Models of the bodies documented with `body_doc`; the app adds them to the OpenAPI components.
BODY_MODELS: set[type[BaseModel]] = set()
# A property the server sets (OpenAPI `readOnly`): in answers; ignored when a client sends it.
READ_ONLY: dict[str, Any] = {"readOnly": True}


class WireIn(BaseModel):
    """An input body: camelCase, unknown properties rejected (a typo must not pass silently)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              str_strip_whitespace=True)


class ReadOnlyFields(WireIn):
    """Fields of the representation that a client may send back (to PUT what it read) and
    that are ignored on input."""

    id: Any = Field(default=None, json_schema_extra=READ_ONLY)
    href: Any = Field(default=None, json_schema_extra=READ_ONLY)
    audit: Any = Field(default=None, json_schema_extra=READ_ONLY)
    status: Any = Field(default=None, json_schema_extra=READ_ONLY)
    meta: Any = Field(default=None, alias="$meta", validation_alias=AliasChoices("$meta"),
                      json_schema_extra=READ_ONLY)


class WireOut(BaseModel):
    """An output shape, for the OpenAPI document. Responses are built as plain dicts (no
    validation on the hot path); tests validate them against these models, with extra keys
    forbidden, so the document and the wire cannot drift apart."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ProblemDocument(BaseModel):
    """RFC 7807 problem details, as every error answers."""

    model_config = ConfigDict(extra="forbid", title="Problem")
    type: str
    title: str
    status: int
    detail: str | None = None
    trace_id: str = Field(alias="traceId")
    errors: dict[str, list[str]] | None = None


class Ref(BaseModel):
    """A reference to another object by id; the rest of a full object sent back is ignored."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=32)


class ActorRef(WireOut):
    id: str
    name: str | None = None
    icon: str | None = None
    href: str | None = None


class AuditEvent(WireOut):
    at: str
    by: ActorRef | None = None


class Audit(WireOut):
    created: AuditEvent
    updated: AuditEvent | None = None


class Pagination(BaseModel):
    model_config = ConfigDict(extra="forbid")
    offset: int
    limit: int
    total: int


class ListMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pagination: Pagination
    omitted: list[str] = []


Item = TypeVar("Item")


class ListOf(BaseModel, Generic[Item]):
    """The collection envelope of every list endpoint."""

    model_config = ConfigDict(extra="forbid")
    meta: ListMeta = Field(alias="$meta")
    data: list[Item]


class EmptyBody(WireIn):
    """No properties at all."""


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


class Body:
    """A request's body as it arrived, bounded, and judged only when asked (`json`, `empty`).

    Routes that change an object read the body first and judge it after finding the object:
    the body is never read while the unit of work holds SQLite's writer (kit/db.py), which a
    slow client could otherwise keep from every other write, and a bad body still answers
    after the 404 that an invisible object gets (the order of answers)."""

    __slots__ = ("_kind", "_limit", "_raw")

    def __init__(self, raw: bytes, kind: str, limit: int | None):
        self._raw = raw
        self._kind = kind
        self._limit = limit  # the limit it passed (reading stopped there), or None

    def json(self, *, required: bool = True) -> Any:
        """The JSON document; 413 past the limit, 415 for another media type, 400 for
        malformed JSON (or none, when `required`)."""
        if self._limit is not None:
            raise PayloadTooLarge(f"The request body is larger than {self._limit} bytes.")
        if not self._raw:
            if required:
                raise BadRequest("A JSON request body is required.",
                                 errors={"body": ["The request body is required."]})
            return None
        if self._kind != "application/json" and not self._kind.endswith("+json"):
            raise UnsupportedMediaType(
                f"Content-Type '{self._kind or 'none'}' is not supported; send "
                "application/json.")
        return parse_json(self._raw)

    def form(self) -> dict[str, str]:
        """An `application/x-www-form-urlencoded` body's fields (413 past the limit, 400 for
        a field given twice or text that is not UTF-8)."""
        if self._limit is not None:
            raise PayloadTooLarge(f"The request body is larger than {self._limit} bytes.")
        try:
            pairs = parse_qsl(self._raw.decode("utf-8"), keep_blank_values=True,
                              errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("The form body is not valid UTF-8.",
                             errors={"body": ["Not valid UTF-8."]}) from None
        fields: dict[str, str] = {}
        for name, value in pairs:
            if name in fields:
                raise ValidationFailed({name: ["Given more than once."]})
            fields[name] = value
        return fields

    @property
    def kind(self) -> str:
        """The body's media type (lower case, without parameters)."""
        return self._kind

    def empty(self) -> None:
        """Actions such as enable and disable take no body; an empty JSON object is
        tolerated."""
        payload = self.json(required=False)
        if payload is not None:
            validate(EmptyBody, payload)


async def read_body(request: Request, limit: int = MAX_JSON_BYTES) -> Body:
    """The body, read to its end or until it passes `limit` (then no further: the answer
    will be a 413, see `Body.json`)."""
    kind = media_type(request)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return Body(b"", kind, limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return Body(b"", kind, limit)
    return Body(bytes(body), kind, None)


async def read_json(request: Request, *, required: bool = True) -> Any:
    """The request's JSON body; 413 past MAX_JSON_BYTES, 415 for another media type, 400 for
    malformed JSON."""
    return (await read_body(request)).json(required=required)


async def read_empty(request: Request) -> None:
    """A body that must be empty (or `{}`), see `Body.empty`."""
    (await read_body(request)).empty()


def parse_json(raw: bytes | str) -> Any:
    """A JSON body, at most MAX_JSON_DEPTH deep, without text no column may hold (see
    `check_json`)."""
    try:
        text = raw.decode(json.detect_encoding(raw), "surrogatepass") \
            if isinstance(raw, bytes) else raw
        value = STRICT_JSON.decode(text)
    except RecursionError:
        # The C decoder gives up at the interpreter's recursion limit, long before the stack.
        raise _too_deep("body") from None
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The request body is not valid JSON.",
                         errors={"body": ["Malformed JSON."]}) from None
    data = raw.encode() if isinstance(raw, str) else raw
    # The walk costs Python time per value (seconds for a MiB of small numbers): it runs only
    # when the raw text could hold what it looks for, which C-speed scans tell.
    deep = data.count(b"[") + data.count(b"{") > MAX_JSON_DEPTH
    odd = ESCAPED_UNSTORABLE.search(data) is not None
    if deep or odd:
        check_json(value, strings=odd)
    return value


class NotANumber(ValueError):
    """NaN, Infinity, or a number past a double (1e999): JSON no column or document can
    hold. Each was a 500 where a body is kept whole (an audit record's payload)."""


def _no_constant(name: str) -> Any:
    raise NotANumber(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise NotANumber("a number too large for a float")
    return number


# Made once: json.loads with options builds a decoder per call (introspection parses a
# body on the hot path; an import, every line).
STRICT_JSON = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


# JSON refuses raw control characters in strings: they can only come as `\u` escapes.
ESCAPED_UNSTORABLE = re.compile(rb"\\u(?:00[01][0-9a-fA-F]|[dD][89a-fA-F][0-9a-fA-F]{2})")


def check_json(value: Any, *, strings: bool = True) -> None:
    """400 naming the property for nesting deeper than MAX_JSON_DEPTH, and (`strings`) for
    strings, keys too, with control characters other than tab and line breaks, or lone
    surrogates (`\\ud800` decodes to a str that no database encoding accepts; NUL is refused
    by PostgreSQL)."""
    # Containers only go on the stack, with where they are (a chain of (parent, key) pairs,
    # made into a path only for the error).
    stack: list[tuple[Any, Any, int]] = [(value, None, 1)]
    while stack:
        item, where, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise _too_deep(_path(where))
        pairs = item.items() if isinstance(item, dict) else enumerate(item)
        for key, child in pairs:
            if isinstance(child, (dict, list)):
                stack.append((child, (where, key), depth + 1))
            elif strings and isinstance(child, str) and UNSTORABLE.search(child):
                raise _unstorable(_path((where, key)))
            if strings and isinstance(key, str) and UNSTORABLE.search(key):
                raise _unstorable(_path((where, key[:64])))


def _path(where: Any) -> str:
    """`a.b[0].c` from a chain of (parent, key) pairs; `body` for the document itself."""
    keys: list[Any] = []
    while where is not None:
        where, key = where
        keys.append(key)
    path = ""
    for key in reversed(keys):
        path += f"[{key}]" if isinstance(key, int) else f".{key}" if path else key
    return path or "body"


def _too_deep(path: str) -> BadRequest:
    return BadRequest(f"The request body is nested more than {MAX_JSON_DEPTH} levels deep "
                      "(the limit).", errors={path: ["Nested too deeply."]})


def _unstorable(path: str) -> ValidationFailed:
    return ValidationFailed({path: ["Control characters (other than tab and line breaks) "
                                    "and lone surrogates are not allowed."]})


def validate[M: BaseModel](model: type[M], data: Any) -> M:
    """Validate input against a wire model; every violation is a 400 naming the property."""
    if not isinstance(data, dict):
        raise ValidationFailed({"body": ["The request body must be a JSON object."]})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        detail, errors = validation_errors([dict(error) for error in exc.errors()])
        raise ValidationFailed(errors, detail) from None


def body_doc(model: type[BaseModel], *, multipart_part: str | None = None,
             form: bool = False) -> dict[str, Any]:
    """`openapi_extra` documenting a body that the route reads itself (see `read_json`).

    Routes read bodies themselves, not through FastAPI's parameters, so that authorization
    and visibility (404) are decided before the body is looked at.
    """
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    content: dict[str, Any] = {"application/json": {"schema": ref}}
    if form:  # the same fields, form-encoded (RFC 7662)
        content["application/x-www-form-urlencoded"] = {"schema": ref}
    if multipart_part:
        content["multipart/form-data"] = {"schema": {
            "type": "object",
            "properties": {multipart_part: ref,
                           "icon": {"type": "string", "format": "binary"}},
            "required": [multipart_part],
        }}
    BODY_MODELS.add(model)
    return {"requestBody": {"required": True, "content": content}}
