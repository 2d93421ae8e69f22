"""Verified credentials kept in each process, so that the hot path (every request
authenticates) needs no database round trip.

Keyed by the keyed hash of the secret, never by the secret; bounded (least recently used
entries go first); dropped when the token or its account changes (kit/cache.py,
kit/invalidation.py), and not served once the credential's time is up (the token's expiry,
or the end of a replaced secret's grace window): no change announces that.
"""

import time

from tokenhouse.auth.actor import Actor
from tokenhouse.kit.cache import TaggedCache


class CredentialCache(TaggedCache[Actor]):
    def __init__(self, max_entries: int = 100_000):
        super().__init__(max_entries)

    def tags(self, value: Actor) -> tuple[str, str] | None:
        if value.token_id is None or value.account_id is None:
            return None  # the operator at the shell: never a cached credential
        return value.token_id, value.account_id

    def get(self, key: str) -> Actor | None:
        actor = super().get(key)
        if actor is not None and actor.valid_until is not None \
                and time.time() >= actor.valid_until:
            return None  # read again: the database tells why it no longer works
        return actor
