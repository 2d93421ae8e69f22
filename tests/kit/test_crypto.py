"""Secrets and their checksum (kit/crypto.py), and the gitleaks rule that finds them."""

import math
import re
import secrets
import tomllib
import zlib
from pathlib import Path

import pytest

from tokenhouse.kit import crypto

ROOT = Path(__file__).resolve().parents[2]
# The alphabet written out here, not taken from the code under test.
ALPHABET = "0123456789" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" + "abcdefghijklmnopqrstuvwxyz"
TOKEN_ID = "TKN-1234-5678"


def expected_checksum(body: str) -> str:
    """The scheme as the issue states it, done by hand: CRC-32 of the UTF-8 bytes, base62,
    most significant digit first, six digits."""
    value = zlib.crc32(body.encode("utf-8"))
    digits = ""
    for _ in range(6):
        value, digit = divmod(value, 62)
        digits = ALPHABET[digit] + digits
    assert value == 0
    return digits


def test_a_known_vector():
    body = f"idt:{TOKEN_ID}:{ALPHABET[:43]}"
    assert zlib.crc32(body.encode()) == 3071013880
    assert expected_checksum(body) == "3Lpezw"
    assert crypto.checksum(body) == "3Lpezw"
    assert crypto.token_id_of(body + "3Lpezw") == TOKEN_ID


def test_new_secrets_have_the_shape_and_a_valid_checksum():
    made = {crypto.new_secret(TOKEN_ID) for _ in range(200)}
    assert len(made) == 200
    for secret in made:
        prefix, token_id, rest = secret.split(":")
        assert (prefix, token_id) == ("idt", TOKEN_ID)
        assert len(rest) == 49 and set(rest) <= set(ALPHABET)
        assert rest[-6:] == expected_checksum(secret[:-6])
        assert crypto.token_id_of(secret) == TOKEN_ID
    # At least 256 bits in the random part.
    assert 43 * math.log2(62) >= 256
    # Every position of the random part takes many values (it is not padded or fixed).
    for position in range(18, 18 + 43):
        assert len({secret[position] for secret in made}) > 20


def test_changing_any_character_is_refused():
    """CRC-32 catches every change of one byte: the id, the random part or the checksum."""
    secret = crypto.new_secret(TOKEN_ID)
    for position in range(8, len(secret)):
        if secret[position] in "-:":
            continue
        pool = "0123456789" if position < 17 else ALPHABET
        for replacement in (pool[(pool.index(secret[position]) + 1) % len(pool)],
                            pool[(pool.index(secret[position]) + 17) % len(pool)]):
            changed = secret[:position] + replacement + secret[position + 1:]
            assert crypto.token_id_of(changed) is None, (position, changed)


def test_swapped_cut_or_extended_secrets_are_refused():
    secret = crypto.new_secret(TOKEN_ID)
    rest = secret.split(":")[2]
    swapped = next(secret[:i] + secret[i + 1] + secret[i] + secret[i + 2:]
                   for i in range(18, len(secret) - 1) if secret[i] != secret[i + 1])
    for changed in (swapped, secret + "0", secret + "A", secret + secret[-6:],
                    f"idt:TKN-8765-4321:{rest}", secret.replace("idt:", "IDT:")):
        assert crypto.token_id_of(changed) is None, changed
    # Cut below 49 characters, a random part has the shape of a secret of before (43 to 48,
    # imported): nothing tells them apart, so it is looked up, and the database refuses it
    # (tests/auth/test_checksum.py).
    assert crypto.token_id_of(secret[:-1]) == crypto.token_id_of(secret[:-6]) == TOKEN_ID


def test_the_checksum_is_six_digits_left_padded():
    assert crypto.base62(0, 6) == "000000"
    assert crypto.base62(2**32 - 1, 6) == "4gfFC3"
    assert crypto.base62(61, 6) == "00000z"
    # A body whose CRC-32 is below 62**4 (found by counting): its checksum starts with "00".
    # R of 50 here (at least 43): without its zeros the rest is still long enough to be read
    # as the new format.
    body = next(b for n in range(100_000)
                if zlib.crc32((b := f"idt:{TOKEN_ID}:{n:050d}").encode()) < 62**4)
    assert crypto.checksum(body) == expected_checksum(body)
    assert crypto.checksum(body).startswith("00")
    assert crypto.token_id_of(body + crypto.checksum(body)) == TOKEN_ID
    # The padding is part of it: the checksum without its zeros is refused.
    assert crypto.token_id_of(body + crypto.checksum(body).lstrip("0")) is None


@pytest.mark.parametrize("random_part", [
    "-" + "a" * 42,  # made by secrets.token_urlsafe(32) before checksums
    "abc_DEF-" + "x" * 35,
    ALPHABET[:43],  # an old one that happens to be all base62: 43, never checked
    "Z" * 44, "Z" * 48,  # imported, all base62 but shorter than R + C
    "a" * 100 + "_", "_" + "b" * 255,  # imported, up to 256, not all base62
])
def test_secrets_of_before_keep_their_shape(random_part):
    assert crypto.token_id_of(f"idt:{TOKEN_ID}:{random_part}") == TOKEN_ID


def test_old_secrets_are_never_checked():
    for _ in range(2000):
        assert crypto.token_id_of(f"idt:{TOKEN_ID}:{secrets.token_urlsafe(32)}") == TOKEN_ID


@pytest.mark.parametrize("random_part", ["a" * 49, "a" * 100, ALPHABET * 4, "a" * 42,
                                         "a" * 257, "a" * 250 + "!"])
def test_a_new_shape_without_its_checksum_is_refused(random_part):
    assert crypto.token_id_of(f"idt:{TOKEN_ID}:{random_part}") is None


def gitleaks_rule() -> dict:
    with (ROOT / "docs" / "gitleaks.toml").open("rb") as handle:
        config = tomllib.load(handle)
    [rule] = config["rules"]
    return rule


def test_the_gitleaks_rule_finds_new_secrets():
    rule = gitleaks_rule()
    assert rule["id"] and rule["description"]
    assert "idt:TKN-" in rule["keywords"]
    pattern = re.compile(rule["regex"])
    for _ in range(100):
        secret = crypto.new_secret(TOKEN_ID)
        for text in (secret, f'TOKENHOUSE_TOKEN="{secret}"\n', f"Bearer {secret} and more",
                     f"url?token={secret}&x=1", f"'{secret}',"):
            found = pattern.search(text)
            assert found is not None, text
            assert found.group(rule["secretGroup"]) == secret


@pytest.mark.parametrize("text", [
    "idt:TKN-1234-5678:", "idt:TKN-1234-5678:short", "idt:TKN-12345678:" + "a" * 49,
    "idt:ACC-1234-5678:" + "a" * 49, "idt:TKN-1234-5678:" + "a" * 48,
    # an old secret (URL-safe base64, 43 characters), and a longer look-alike cut by '-'
    "idt:TKN-1234-5678:" + "a" * 43, "idt:TKN-1234-5678:" + "a" * 60 + "-x",
    "idt:TKN-1234-5678:" + "a" * 257, "garbage " * 20,
])
def test_the_gitleaks_rule_ignores_look_alikes(text):
    assert re.search(gitleaks_rule()["regex"], text) is None


def test_the_readme_gives_the_same_regular_expression():
    readme = (ROOT / "README.md").read_text()
    assert gitleaks_rule()["regex"] in readme
