"""A bounded in-process cache whose entries are dropped by token or by account, for data
that changes only through announced changes (see auth/invalidation.py).

Correctness rests on invalidation, not on expiry: every change that can make an entry wrong
is announced and drops the affected entries in every process. A time-to-live bounds the
damage should an announcement ever be lost.
"""

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

# How long an entry may live however quiet it is: only a bound on the damage of a lost
# announcement, so long enough not to cost a re-read of every entry every few seconds.
SAFETY_TTL = 300.0


@dataclass(frozen=True, slots=True)
class _Entry:
    value: Any
    token_id: str
    account_id: str
    stored_at: float


class TaggedCache:
    def __init__(self, max_entries: int):
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._by_token: dict[str, set[str]] = {}
        self._by_account: dict[str, set[str]] = {}
        self._max = max_entries
        # Bumped by every invalidation. A reader notes it before reading the database and
        # stores its result only if it has not moved: an invalidation that arrives while
        # the read is in flight can then never be overwritten by the stale result.
        self.generation = 0
        # Off until this process receives invalidations (and again whenever it cannot):
        # a cache that might miss an announcement must not answer.
        self.enabled = False

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, key: str) -> Any | None:
        if not self.enabled:
            return None
        entry = self._entries.get(key)
        if entry is None:
            return None
        if time.monotonic() - entry.stored_at > SAFETY_TTL:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry.value

    def store(self, key: str, value: Any, *, token_id: str, account_id: str,
              generation: int) -> None:
        if not self.enabled or generation != self.generation or self._max <= 0:
            return
        self._drop(key)
        self._entries[key] = _Entry(value, token_id, account_id, time.monotonic())
        self._by_token.setdefault(token_id, set()).add(key)
        self._by_account.setdefault(account_id, set()).add(key)
        while len(self._entries) > self._max:
            self._drop(next(iter(self._entries)))

    def invalidate_token(self, token_id: str) -> None:
        self.generation += 1
        for key in list(self._by_token.get(token_id, ())):
            self._drop(key)

    def invalidate_account(self, account_id: str) -> None:
        self.generation += 1
        for key in list(self._by_account.get(account_id, ())):
            self._drop(key)

    def enable(self) -> None:
        """Start answering, from empty: what changed while not listening is unknown."""
        self.clear()
        self.enabled = True

    def disable(self) -> None:
        self.enabled = False
        self.clear()

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
        self._by_token.clear()
        self._by_account.clear()

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for index, tag in ((self._by_token, entry.token_id),
                           (self._by_account, entry.account_id)):
            keys = index.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[tag]
