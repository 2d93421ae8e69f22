"""Rendered tokens kept in each process, so that reading a token (GET .../api-tokens/{id},
which every client does to check itself) needs no database round trip.

A view is the token's representation without `lastAccessAt` and without the secret, both
added at response time: `lastAccessAt` from the stored value and the latest access this
process knows of (its own, and those other processes announce; see auth/last_access.py).
Besides the dict (for `select`), a view holds its JSON encoding split around `lastAccessAt`,
so that the default representation is answered without encoding anything again.

Views are dropped by the same announcements as cached credentials (a token changed; its
account changed or was disabled; the module catalog changed). Like them, they expire after
`ttl` in case an announcement is ever lost.
"""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tokenhouse.kit.cache import TaggedCache
from tokenhouse.tokens.models import ApiToken
from tokenhouse.tokens.schemas import render_token

LAST_ACCESS = "lastAccessAt"


def encode(value: Any) -> bytes:
    """JSON as Starlette's JSONResponse writes it."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class View:
    account_id: str
    status: str
    revision: int
    last_access_at: datetime | None  # as stored when the view was made
    body: dict[str, Any]  # the representation, lastAccessAt left None
    head: bytes  # the JSON up to `"lastAccessAt":`
    tail: bytes  # the JSON from the property after lastAccessAt on

    def json(self, last_access: str | None, secret: str | None = None) -> bytes:
        """The default representation, with `lastAccessAt` and, if given, the secret (which
        follows it, as in every other response)."""
        middle = encode(last_access)
        if secret is not None:
            middle += b',"token":' + encode(secret)
        return self.head + middle + self.tail


def view_of(token: ApiToken) -> View:
    body = render_token(token, last_access=None)
    keys = list(body)
    split = keys.index(LAST_ACCESS)
    before = {key: body[key] for key in keys[:split]}
    after = {key: body[key] for key in keys[split + 1:]}
    head = encode(before)[:-1] + b',"' + LAST_ACCESS.encode() + b'":'
    tail = b"," + encode(after)[1:]
    return View(token.account_id, token.status, token.revision, token.last_access_at, body,
                head, tail)


class TokenViews(TaggedCache):
    def get(self, token_id: str) -> View | None:
        return self.lookup(token_id)

    def put(self, token_id: str, view: View, generation: int) -> None:
        self.store(token_id, view, token_id=token_id, account_id=view.account_id,
                   generation=generation)
