"""Webhook secrets and signatures.

A webhook's signing secret is derived, not stored: HMAC-SHA256 of the webhook's id and a
random salt (stored) under the server's key (TOKENHOUSE_SECRET_KEY). The server can sign
with it at every delivery, and a copy of the database alone does not reveal it, as it does
not reveal a token's secret. A new salt is a new secret.

A delivery is signed as Stripe and GitHub sign theirs: `Tokenhouse-Signature:
t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the secret>`. The time inside
the signed text lets a receiver refuse an old delivery replayed to it.
"""

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
# Domain separation: the same server key also hashes token secrets (kit/crypto.py).
LABEL = b"tokenhouse webhook signing secret\x00"


def new_salt() -> str:
    return secrets.token_hex(32)


def secret_of(key: bytes, webhook_id: str, salt: str) -> str:
    """The webhook's signing secret (shown once, when the webhook is created)."""
    digest = hmac.digest(key, LABEL + f"{webhook_id}:{salt}".encode(), hashlib.sha256)
    return SECRET_PREFIX + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `Tokenhouse-Signature` header's value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"

