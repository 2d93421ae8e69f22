"""Object IDs: a prefix and groups of four random digits (``TKN-1234-5678``)."""

import secrets


def new_id(prefix: str, groups: int = 2) -> str:
    """A random ID. Random, not sequential, so IDs leak nothing about volume or order;
    callers check for a collision before use, as the space is only 10^8."""
    return "-".join([prefix, *(f"{secrets.randbelow(10_000):04d}" for _ in range(groups))])
