"""An in-process cache of verified credentials, so that the hot path (every request
authenticates) needs no database round trip.

Keyed by the keyed hash of the secret, never by the secret. Bounded (least recently used
entries go first). Correctness rests on invalidation, not on expiry: every change that can
make a cached actor wrong (a token disabled, deleted or changed; an account disabled; the
module catalog changed) is announced (see `invalidation.py`) and drops the affected entries
in every process. A time-to-live bounds the damage should an announcement ever be lost.
"""

import time
from collections import OrderedDict
from dataclasses import dataclass

from tokenhouse.auth.actor import Actor


@dataclass(frozen=True, slots=True)
class Entry:
    actor: Actor
    stored_at: float


class CredentialCache:
    def __init__(self, max_entries: int = 100_000, ttl: float = 300.0):
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._by_token: dict[str, str] = {}
        self._by_account: dict[str, set[str]] = {}
        self._max = max_entries
        self._ttl = ttl
        # Bumped by every invalidation. A reader notes it before reading the database and
        # stores its result only if it has not moved: an invalidation that arrives while
        # the read is in flight can then never be overwritten by the stale result.
        self.generation = 0
        # Off until this process receives invalidations (and again whenever it cannot):
        # a cache that might miss an announcement must not answer.
        self.enabled = False

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, secret_hash: str) -> Actor | None:
        if not self.enabled:
            return None
        entry = self._entries.get(secret_hash)
        if entry is None:
            return None
        if time.monotonic() - entry.stored_at > self._ttl:
            self._drop(secret_hash)
            return None
        self._entries.move_to_end(secret_hash)
        return entry.actor

    def put(self, secret_hash: str, actor: Actor, generation: int) -> None:
        if not self.enabled or generation != self.generation or actor.token_id is None:
            return
        self._drop(secret_hash)
        self._entries[secret_hash] = Entry(actor, time.monotonic())
        self._by_token[actor.token_id] = secret_hash
        if actor.account_id is not None:
            self._by_account.setdefault(actor.account_id, set()).add(secret_hash)
        while len(self._entries) > self._max:
            self._drop(next(iter(self._entries)))

    def invalidate_token(self, token_id: str) -> None:
        self.generation += 1
        secret_hash = self._by_token.get(token_id)
        if secret_hash is not None:
            self._drop(secret_hash)

    def invalidate_account(self, account_id: str) -> None:
        self.generation += 1
        for secret_hash in list(self._by_account.get(account_id, ())):
            self._drop(secret_hash)

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

    def _drop(self, secret_hash: str) -> None:
        entry = self._entries.pop(secret_hash, None)
        if entry is None:
            return
        actor = entry.actor
        if actor.token_id is not None and self._by_token.get(actor.token_id) == secret_hash:
            del self._by_token[actor.token_id]
        if actor.account_id is not None:
            hashes = self._by_account.get(actor.account_id)
            if hashes is not None:
                hashes.discard(secret_hash)
                if not hashes:
                    del self._by_account[actor.account_id]
