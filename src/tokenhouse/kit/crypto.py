"""Token secrets: ``idt:<token id>:<random part>``, stored only as a keyed hash."""

import hashlib
import hmac
import secrets

SECRET_PREFIX = "idt"


def new_secret(token_id: str) -> str:
    # 32 random bytes: 256 bits, as the platform requires.
    return f"{SECRET_PREFIX}:{token_id}:{secrets.token_urlsafe(32)}"


def hash_secret(key: bytes, secret: str) -> str:
    """HMAC-SHA256 of the whole secret. Keyed, so a copy of the database alone does not allow
    an offline guess; the random part makes every secret unguessable anyway."""
    return hmac.digest(key, secret.encode(), hashlib.sha256).hex()


def token_id_of(secret: str) -> str | None:
    parts = secret.split(":")
    if len(parts) != 3 or parts[0] != SECRET_PREFIX or not parts[2]:
        return None
    return parts[1]


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
