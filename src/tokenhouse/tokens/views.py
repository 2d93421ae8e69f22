"""Rendered tokens kept in each process, so that reading a token (GET .../api-tokens/{id},
which every client does to check itself) needs no database round trip.

A view is the token's representation without `lastAccessAt` (added at response time from
the stored value and this process's recorder) and without the secret. Views are dropped by
the same announcements as cached credentials (a token changed; its account changed or was
disabled; the module catalog changed), and expire after `ttl` so that accesses recorded by
other processes show within about two of their write intervals.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tokenhouse.kit.cache import TaggedCache
from tokenhouse.tokens.models import ApiToken


@dataclass(frozen=True, slots=True)
class View:
    account_id: str
    status: str
    last_access_at: datetime | None  # as stored when the view was made
    body: dict[str, Any]


class TokenViews(TaggedCache):
    def get(self, token_id: str) -> View | None:
        return self.lookup(token_id)

    def put(self, token: ApiToken, body: dict[str, Any], generation: int) -> None:
        self.store(token.id, View(token.account_id, token.status, token.last_access_at, body),
                   token_id=token.id, account_id=token.account_id, generation=generation)
