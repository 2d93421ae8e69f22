"""Rendered tokens kept in each process, so that reading a token (GET .../api-tokens/{id},
which every client does to check itself) and the items of a list page need no database
round trip.

A view is the token's representation, kept as JSON bytes split around `lastAccessAt`: that
one property, and the secret on a self-read, are spliced in at response time. `lastAccessAt`
comes from the stored value and the latest access this process knows of (its own, and those
other processes tell; see tokens/last_access.py). The representation is kept twice: whole
(GET) and as a list item (without `audit`). Bytes, not dicts: a view costs about 2 KB and
nothing for the garbage collector to walk. A `select` decodes it.

Views are dropped by the same changes as cached credentials (a token changed; its account
changed or was disabled; the module catalog changed; see kit/invalidation.py). Like them,
they expire after a safety TTL in case a change is ever lost.
"""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tokenhouse.kit import paging
from tokenhouse.kit.cache import TaggedCache
from tokenhouse.kit.paging import encode_json
from tokenhouse.kit.rql import parse_query
from tokenhouse.kit.rql.shape import project
from tokenhouse.tokens.models import ApiToken
from tokenhouse.tokens.repository import RESOURCE
from tokenhouse.tokens.schemas import render_token

LAST_ACCESS = "lastAccessAt"
LIST_ITEM = paging.list_shape(parse_query(""), RESOURCE)


@dataclass(frozen=True, slots=True)
class Split:
    """A JSON object with the value of `lastAccessAt` left out, to be spliced in."""

    head: bytes  # up to and including `"lastAccessAt":`
    tail: bytes  # from the property after lastAccessAt to the end

    @classmethod
    def of(cls, body: dict[str, Any]) -> "Split":
        keys = list(body)
        at = keys.index(LAST_ACCESS)
        head = encode_json({key: body[key] for key in keys[:at]})[:-1]
        tail = encode_json({key: body[key] for key in keys[at + 1:]})[1:]
        return cls(head + b',"' + LAST_ACCESS.encode() + b'":', b"," + tail)

    def join(self, last_access: str | None, secret: str | None = None) -> bytes:
        middle = encode_json(last_access)
        if secret is not None:  # the secret follows lastAccessAt, as in a create response
            middle += b',"token":' + encode_json(secret)
        return self.head + middle + self.tail


@dataclass(frozen=True, slots=True)
class View:
    token_id: str
    account_id: str
    status: str
    revision: int
    last_access_at: datetime | None  # as stored when the view was made
    whole: Split
    item: Split

    def body(self, last_access: str | None) -> dict[str, Any]:
        """The representation as a dict, for `select` (the slow path)."""
        body: dict[str, Any] = json.loads(self.whole.join(last_access))
        return body


def view_of(token: ApiToken) -> View:
    body = render_token(token, last_access=None)
    return View(token.id, token.account_id, token.status, token.revision, token.last_access_at,
                Split.of(body), Split.of(project(body, LIST_ITEM)))


class TokenViews(TaggedCache[View]):
    """Views by token id."""

    def tags(self, value: View) -> tuple[str, str]:
        return value.token_id, value.account_id
