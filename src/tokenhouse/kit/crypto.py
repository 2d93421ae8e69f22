"""Token secrets: ``idt:<token id>:<random part><checksum>``, stored only as a keyed hash."""

import hashlib
import hmac
import re
import secrets
import zlib

SECRET_PREFIX = "idt"
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DIGIT = {char: value for value, char in enumerate(BASE62)}
RANDOM_LENGTH = 43  # base62 characters: 43 * log2(62) = 256.03 bits, as the platform requires
CHECKSUM_LENGTH = 6  # 62**6 > 2**32: every CRC-32 fits


def base62(value: int, width: int) -> str:
    """`value` in base62 (0-9A-Za-z), most significant digit first, left-padded with '0'."""
    digits = []
    while value:
        value, digit = divmod(value, 62)
        digits.append(BASE62[digit])
    return "".join(reversed(digits)).rjust(width, "0")


def checksum(body: str) -> str:
    """The 6 characters that end a secret: the CRC-32 of `body` (the secret before them, from
    `idt:` on) in base62. Public and offline, as GitHub's: a scanner tells a real secret from
    a look-alike without asking us, and we refuse a mistyped or forged one without a lookup."""
    return base62(zlib.crc32(body.encode()), CHECKSUM_LENGTH)


def new_secret(token_id: str) -> str:
    # One draw below 62**43: every 43-character base62 string is equally likely.
    random_part = base62(secrets.randbelow(62 ** RANDOM_LENGTH), RANDOM_LENGTH)
    body = f"{SECRET_PREFIX}:{token_id}:{random_part}"
    return body + checksum(body)


def hash_secret(key: bytes, secret: str) -> str:
    """HMAC-SHA256 of the whole secret. Keyed, so a copy of the database alone does not allow
    an offline guess; the random part makes every secret unguessable anyway."""
    return hmac.digest(key, secret.encode(), hashlib.sha256).hex()


# `idt:<token id>:<random part>`. Why a checksum is required of some secrets and not others
# (the format has no version mark, so the rule is drawn from what each generation can be):
# - secrets issued here now: 43 base62 characters and the 6 of the checksum, 49, only
#   0-9A-Za-z;
# - secrets issued here before checksums: exactly 43 characters of URL-safe base64, never 49
#   or more, so never checked;
# - secrets of another issuer, imported as a hash: 43 to 256 characters of [A-Za-z0-9_-].
# A random part of 49 or more characters, all base62, is read as the new format (R of at
# least 43 and C, as a scanner reads it) and must carry a valid checksum: a mistyped, cut
# or forged one is refused before it is hashed or looked up. Anything else of the old shape
# is looked up as before. The one ambiguity: an imported secret whose random part happens to
# be all base62 and 49+ long is refused (its checksum matches by chance 1 in 2**32); our own
# old secrets never are.
SECRET_SHAPE = re.compile(
    rf"{SECRET_PREFIX}:(TKN-[0-9]{{4}}-[0-9]{{4}}):"
    rf"(?:[0-9A-Za-z]{{{RANDOM_LENGTH},250}}([0-9A-Za-z]{{{CHECKSUM_LENGTH}}})"
    r"|[A-Za-z0-9_-]{43,256})")


def token_id_of(secret: str) -> str | None:
    """The token id a secret names, or None when the secret does not have the shape of one
    or its checksum does not match: then it is refused before it is hashed or sent to the
    database, however long it is."""
    match = SECRET_SHAPE.fullmatch(secret)
    if match is None:
        return None
    check = match.group(2)
    if check is not None:
        # Decoded and compared as a number: nothing allocated but the bytes CRC-32 reads.
        value = 0
        for char in check:
            value = value * 62 + _DIGIT[char]
        if value != zlib.crc32(secret[:-CHECKSUM_LENGTH].encode()):
            return None
    return match.group(1)


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
