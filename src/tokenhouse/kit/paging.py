"""List query strings: `limit` and `offset`, and the `$meta`/`data` envelope.

The raw query string is read as the platform's clients write it: parts split at `&`, `+` kept
as a plus. Filtering, `select` and `order` are not implemented yet, so anything but an empty
`select`/`order` and the paging parameters is refused with a 400, never silently ignored.
"""

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from tokenhouse.kit.problems import BadRequest

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
PARAMETERS = ("limit", "offset", "select", "order")


@dataclass(frozen=True, slots=True)
class Page:
    limit: int = DEFAULT_LIMIT
    offset: int = 0


def parse_list_query(raw: str) -> Page:
    values = parse_parameters(raw)
    return Page(limit=min(_whole(values, "limit", DEFAULT_LIMIT), MAX_LIMIT),
                offset=_whole(values, "offset", 0))


def parse_parameters(raw: str) -> dict[str, str]:
    """The named parameters of a query string; a filter term or an unknown name is a 400."""
    values: dict[str, str] = {}
    for part in raw.split("&"):
        if not part:
            continue
        name, has_value, value = part.partition("=")
        key = unquote(name).lower()
        if key not in PARAMETERS or not has_value:
            raise BadRequest(
                f"Unsupported query parameter '{unquote(part)[:100]}'. This server accepts "
                "limit, offset, select and order (filtering is not available yet).",
                errors={unquote(name)[:100] or "query": ["Unsupported query parameter."]})
        if key in values:
            raise BadRequest(f"The query parameter '{key}' is given more than once.",
                             errors={key: ["Repeated query parameter."]})
        values[key] = unquote(value)
    for key in ("select", "order"):
        if values.get(key):
            raise BadRequest(f"'{key}' is not supported yet; send it empty or leave it out.",
                             errors={key: [f"Unsupported {key} expression."]})
    return values


def _whole(values: dict[str, str], key: str, default: int) -> int:
    text = values.get(key)
    if text is None or text == "":
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise BadRequest(f"'{key}' must be a whole number from 0 up; got '{text[:50]}'.",
                         errors={key: ["Must be a non-negative integer."]})
    return int(text)


def envelope(items: list[dict[str, Any]], page: Page, total: int,
             omitted: list[str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"pagination": {"offset": page.offset, "limit": page.limit,
                                           "total": total}}
    if omitted:
        meta["omitted"] = omitted
    return {"$meta": meta, "data": items}
