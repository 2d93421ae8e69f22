"""Verified credentials kept in each process, so that the hot path (every request
authenticates) needs no database round trip.

Keyed by the keyed hash of the secret, never by the secret; bounded (least recently used
entries go first); dropped when the token or its account changes (see kit/cache.py and
auth/invalidation.py).
"""

from tokenhouse.auth.actor import Actor
from tokenhouse.kit.cache import TaggedCache


class CredentialCache(TaggedCache):
    def __init__(self, max_entries: int = 100_000):
        super().__init__(max_entries)

    def get(self, secret_hash: str) -> Actor | None:
        return self.lookup(secret_hash)

    def put(self, secret_hash: str, actor: Actor, generation: int) -> None:
        if actor.token_id is None or actor.account_id is None:
            return
        self.store(secret_hash, actor, token_id=actor.token_id, account_id=actor.account_id,
                   generation=generation)
