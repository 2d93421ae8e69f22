"""Token secrets: ``idt:<token id>:<random part>``, stored only as a keyed hash."""

import hashlib
import hmac
import re
import secrets

SECRET_PREFIX = "idt"


def new_secret(token_id: str) -> str:
    # 32 random bytes: 256 bits, as the platform requires.
    return f"{SECRET_PREFIX}:{token_id}:{secrets.token_urlsafe(32)}"


def hash_secret(key: bytes, secret: str) -> str:
    """HMAC-SHA256 of the whole secret. Keyed, so a copy of the database alone does not allow
    an offline guess; the random part makes every secret unguessable anyway."""
    return hmac.digest(key, secret.encode(), hashlib.sha256).hex()


# `idt:<token id>:<random part>`. The random part is 43 characters here (32 bytes, URL-safe
# base64); a longer one (another issuer's, imported as a hash) is accepted up to 256.
SECRET_SHAPE = re.compile(rf"{SECRET_PREFIX}:(TKN-[0-9]{{4}}-[0-9]{{4}}):[A-Za-z0-9_-]{{43,256}}")


def token_id_of(secret: str) -> str | None:
    """The token id a secret names, or None when the secret does not have the shape of one:
    then it is refused before it is hashed or sent to the database, however long it is."""
    match = SECRET_SHAPE.fullmatch(secret)
    return match.group(1) if match else None


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
