"""A bounded in-process cache of what the database holds, whose entries are dropped by the
changes units of work commit (kit/invalidation.py), in this process and every other.

One way in, with its rule inside: `get_or_load(key, load)` answers from memory, or runs
`load` and keeps its result unless a change arrived while `load` ran (a stale read can then
never overwrite an invalidation: the cache notes its `generation`, bumped by every change,
before loading, and keeps the result only if it has not moved). `load` is that second half
alone, and `load_many` the same for several entries read at once; `mark()` is the same
rule for one read that fills several caches (the generation is noted before the read, and
only a value kept through that mark goes in). There is no other way to put a value in.

`get` is the hit alone, for hot paths that try it first: a dict look-up, no coroutine, no
closure, nothing awaited.

Correctness rests on invalidation, not on expiry; a time-to-live only bounds the damage
should a change ever be lost. Entries are tagged with the token and the account they show,
and dropped when either changes.
"""

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tokenhouse.kit.invalidation import AccountChanged, Change, Seen, TokenChanged

# How long an entry may live however quiet it is: only a bound on the damage of a lost
# change, so long enough not to cost a re-read of every entry every few seconds.
SAFETY_TTL = 300.0


@dataclass(frozen=True, slots=True)
class _Entry:
    value: Any
    token_id: str
    account_id: str
    stored_at: float


class TaggedCache[V]:
    def __init__(self, max_entries: int):
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._by_token: dict[str, set[str]] = {}
        self._by_account: dict[str, set[str]] = {}
        self._max = max_entries
        self._generation = 0
        # Answers from memory and answers not there (while enabled), for operators and
        # `make bench` (logged at shutdown, see app.py).
        self.hits = 0
        self.misses = 0
        # Off until this process receives changes (and again whenever it cannot): a cache
        # that might miss a change must not answer.
        self.enabled = False

    def __len__(self) -> int:
        return len(self._entries)

    def tags(self, value: V) -> tuple[str, str] | None:
        """The token and the account `value` shows (it goes when either changes); None: not
        to be kept. By default an entry goes only when everything does."""
        return "", ""

    def get(self, key: str) -> V | None:
        """The value kept for `key`, or None."""
        if not self.enabled:
            return None
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        if time.monotonic() - entry.stored_at > SAFETY_TTL:
            self._drop(key)
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        value: V = entry.value
        return value

    async def get_or_load(self, key: str, load: Callable[[], Awaitable[V]]) -> V:
        """The value kept for `key`, or else `self.load(key, load)`."""
        value = self.get(key)
        if value is None:
            value = await self.load(key, load)
        return value

    async def load(self, key: str, load: Callable[[], Awaitable[V]]) -> V:
        """What `load` returns (an exception goes through, and nothing is kept), kept for
        `key` unless a change arrived while it ran. For a caller that tried `get` itself."""
        mark = self.mark()
        value = await load()
        mark.keep(key, value)
        return value

    def mark(self) -> "Mark[V]":
        """The cache as it is before a read whose result is to be kept, when one read fills
        several caches (or keeps something other than what it returns): take the mark
        before reading, and keep through it; what a change made stale in between is not
        kept."""
        return Mark(self, self._generation)

    async def load_many(self, load: Callable[[], Awaitable[dict[str, V]]]) -> dict[str, V]:
        """What `load` returns (values by key), each kept unless a change arrived while it
        loaded."""
        mark = self.mark()
        values = await load()
        for key, value in values.items():
            mark.keep(key, value)
        return values

    def apply(self, change: Change) -> None:
        """Drop what `change` makes wrong."""
        if isinstance(change, TokenChanged):
            self._generation += 1
            self._drop_tagged(self._by_token, change.token_id)
        elif isinstance(change, AccountChanged):
            self._generation += 1
            self._drop_tagged(self._by_account, change.account_id)
        elif not isinstance(change, Seen):  # data, not a change of anything kept here
            self.clear()

    def enable(self) -> None:
        """Start answering, from empty: what changed while not listening is unknown."""
        self.clear()
        self.enabled = True

    def disable(self) -> None:
        self.enabled = False
        self.clear()

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._by_token.clear()
        self._by_account.clear()

    def _keep(self, key: str, value: V, generation: int) -> None:
        tags = self.tags(value)
        if (tags is None or not self.enabled or generation != self._generation
                or self._max <= 0):
            return
        token_id, account_id = tags
        self._drop(key)
        self._entries[key] = _Entry(value, token_id, account_id, time.monotonic())
        self._by_token.setdefault(token_id, set()).add(key)
        self._by_account.setdefault(account_id, set()).add(key)
        while len(self._entries) > self._max:
            self._drop(next(iter(self._entries)))

    def _drop_tagged(self, index: dict[str, set[str]], tag: str) -> None:
        for key in list(index.get(tag, ())):
            self._drop(key)

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


@dataclass(frozen=True, slots=True)
class Mark[V]:
    """A cache's generation before a read (see `TaggedCache.mark`)."""

    cache: TaggedCache[V]
    generation: int

    def keep(self, key: str, value: V) -> None:
        """Keep `value` for `key`, unless a change arrived since the mark was taken."""
        self.cache._keep(key, value, self.generation)
