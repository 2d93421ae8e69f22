"""Client addresses and IP allowlists (issue 11).

Three pure pieces, no I/O:

- `canonical_allowlist` checks a token's `ipAllowlist` and returns its canonical networks
  (`to_stored`/`from_stored` turn them into the column's text and back).
- `Allowlist.of(stored)` compiles that text once into sorted integer ranges per family, so
  `allows(address)` is a cached parse and a bisection.
- `TrustedProxies.parse(setting).client_address(peer, forwarded_for)` is the client's address:
  the socket's peer, or, behind a trusted proxy, the X-Forwarded-For hop the proxies vouch for.

Addresses are compared as IPv4 or IPv6 integers; an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`)
is IPv4 everywhere (a dual-stack socket reports IPv4 clients that way, and an allowlist of
`10.0.0.0/8` must match them). Every unknown or malformed address is None, and None is allowed
by no allowlist: an address is never guessed.
"""

import re
from bisect import bisect_right
from collections.abc import Iterable
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from tokenhouse.kit.problems import ValidationFailed
from tokenhouse.kit.settings import ConfigurationError

MAX_NETWORKS = 50
# The longest way to write a network is 49 characters
# (`0000:0000:0000:0000:0000:ffff:255.255.255.255/128`).
MAX_ENTRY_LENGTH = 64

type Address = IPv4Address | IPv6Address
type Network = IPv4Network | IPv6Network

# The characters of an address in either family, and a decimal prefix length. Checked before
# `ipaddress` sees the text: it would also take a netmask after the slash (`/255.0.0.0`) and
# a zone id (`%eth0`), neither of which is CIDR notation.
_ADDRESS = re.compile(r"[0-9A-Fa-f:.]+")
_CIDR = re.compile(r"[0-9A-Fa-f:.]+(?:/[0-9]{1,3})?")
_PORT = re.compile(r":[0-9]{1,5}")
_VISIBLE = re.compile(r"[!-~]+")
_EXAMPLES = "such as 10.0.0.0/8 or 2001:db8::/32"
# Distinct peers, X-Forwarded-For hops and allowlists kept parsed. Bounded: a client that
# sends ever new hops only costs itself misses.
_CACHED_ADDRESSES = 65_536
_CACHED_ALLOWLISTS = 8_192


def _shown(entry: str) -> str:
    """The entry as a message quotes it: as it is, or as a literal when it has spaces or
    characters that would not be seen."""
    return entry if _VISIBLE.fullmatch(entry) else repr(entry)


def _unmapped(address: Address) -> Address:
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _network(entry: str) -> Network:
    """The canonical network an entry names; ValueError with the message to show."""
    if len(entry) > MAX_ENTRY_LENGTH:
        raise ValueError(f"{_shown(entry[:20])}... is longer than {MAX_ENTRY_LENGTH} characters;"
                         f" write a network {_EXAMPLES}.")
    if not entry:
        raise ValueError(f"An entry is empty; write a network {_EXAMPLES}.")
    shown = _shown(entry)
    if any(char.isspace() for char in entry):
        raise ValueError(f"{shown} contains whitespace; write a network {_EXAMPLES}.")
    if "%" in entry:
        raise ValueError(f"{shown} has a zone id (after %); zone ids are not allowed.")
    not_cidr = f"{shown} is not an IPv4 or IPv6 network in CIDR notation ({_EXAMPLES})."
    if not _CIDR.fullmatch(entry):
        raise ValueError(not_cidr)
    text, slash, prefix_text = entry.partition("/")
    try:
        address = ip_address(text)
    except ValueError:
        raise ValueError(not_cidr) from None
    prefix = int(prefix_text) if slash else address.max_prefixlen
    if prefix > address.max_prefixlen:
        raise ValueError(f"{shown} has a prefix longer than /{address.max_prefixlen}.")
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        # The mapped block is ::ffff:0:0/96; a shorter prefix reaches outside it, and is
        # neither an IPv4 network nor one a client could ever be matched against.
        if prefix < 96:
            raise ValueError(f"{shown} is an IPv4-mapped IPv6 network shorter than /96; "
                             f"write the IPv4 network instead.")
        address, prefix = address.ipv4_mapped, prefix - 96
    network: Network = (IPv4Network((int(address), prefix), strict=False)
                        if isinstance(address, IPv4Address)
                        else IPv6Network((int(address), prefix), strict=False))
    # Host bits are refused, not cleared: `10.0.0.1/8` may mean /32 as well as 10.0.0.0/8,
    # and silently widening an allowlist to 16 million addresses is not ours to decide.
    if network.network_address != address:
        raise ValueError(f"{shown} has host bits set; did you mean {network}?")
    return network


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, str):
        return "a string"
    return "null" if value is None else type(value).__name__


def canonical_allowlist(entries: object, *, field: str = "ipAllowlist") -> list[str] | None:
    """The canonical networks of an allowlist in order, duplicates dropped (the first kept),
    or None for null or [] (any address). ValidationFailed names `field`, or `field[i]` for
    the offending entries (all of them, not only the first)."""
    if entries is None:
        return None
    if not isinstance(entries, list | tuple):
        raise ValidationFailed({field: [
            f"The {field} must be an array of networks in CIDR notation ({_EXAMPLES}), "
            f"or null for any address; got {_json_type(entries)}."]})
    if len(entries) > MAX_NETWORKS:
        raise ValidationFailed({field: [
            f"The {field} has {len(entries)} entries; at most {MAX_NETWORKS} are allowed."]})
    networks: list[str] = []
    errors: dict[str, list[str]] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, str):
            errors[f"{field}[{index}]"] = [
                f"Each entry must be a string {_EXAMPLES}; got {_json_type(entry)}."]
            continue
        try:
            network = str(_network(entry))
        except ValueError as exc:
            errors[f"{field}[{index}]"] = [str(exc)]
            continue
        if network not in networks:
            networks.append(network)
    if errors:
        raise ValidationFailed(errors)
    return networks or None


def to_stored(networks: list[str] | None) -> str | None:
    """The column's text: the canonical networks comma-separated, or NULL for any address."""
    return ",".join(networks) if networks else None


def from_stored(text: str | None) -> list[str] | None:
    return text.split(",") if text else None


class _Ranges:
    """Networks as merged, sorted [first, last] integer ranges per family."""

    __slots__ = ("_v4", "_v6")

    def __init__(self, networks: Iterable[Network]):
        spans: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for network in networks:
            spans[network.version].append(
                (int(network.network_address), int(network.broadcast_address)))
        self._v4 = self._merged(spans[4])
        self._v6 = self._merged(spans[6])

    @staticmethod
    def _merged(spans: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
        firsts: list[int] = []
        lasts: list[int] = []
        for first, last in sorted(spans):
            if lasts and first <= lasts[-1] + 1:
                lasts[-1] = max(lasts[-1], last)
            else:
                firsts.append(first)
                lasts.append(last)
        return firsts, lasts

    def __contains__(self, key: tuple[int, int]) -> bool:
        version, value = key
        firsts, lasts = self._v4 if version == 4 else self._v6
        index = bisect_right(firsts, value) - 1
        return index >= 0 and value <= lasts[index]


@lru_cache(maxsize=_CACHED_ADDRESSES)
def _key(address: str) -> tuple[int, int] | None:
    """(family, integer) of an address without port or zone, None if it is not one."""
    if not _ADDRESS.fullmatch(address):
        return None
    try:
        parsed = _unmapped(ip_address(address))
    except ValueError:
        return None
    return parsed.version, int(parsed)


class _Networks:
    """Networks, kept canonical (`networks`) and compiled for look-ups (`_ranges`)."""

    __slots__ = ("networks", "_ranges")

    def __init__(self, networks: Iterable[Network]):
        networks = tuple(networks)
        self.networks = tuple(str(network) for network in networks)
        self._ranges = _Ranges(networks)


class Allowlist(_Networks):
    """A token's allowlist, compiled: `allows(address)` costs a cached parse and a bisection."""

    __slots__ = ()

    @classmethod
    def of(cls, stored: str | None) -> "Allowlist | None":
        """The allowlist of a token's stored text; None when any address is allowed."""
        return _compiled(stored) if stored else None

    def allows(self, address: str | None) -> bool:
        if address is None:
            return False  # an unknown address: fail closed
        key = _key(address)
        return key is not None and key in self._ranges

    def __repr__(self) -> str:
        return f"Allowlist({list(self.networks)!r})"


@lru_cache(maxsize=_CACHED_ALLOWLISTS)
def _compiled(stored: str) -> Allowlist:
    networks: list[Network] = []
    for entry in stored.split(","):
        try:
            networks.append(_network(entry))
        except ValueError:
            # Only canonical_allowlist writes the column, so this is damage (a hand edit).
            # Such an entry matches nothing: the allowlist narrows, never widens, and one
            # left with no valid entry allows no address at all.
            continue
    return Allowlist(networks)


def canonical_address(text: str) -> str | None:
    """An address as a client reports it (IPv4 or IPv6, no network, no zone), canonical, or
    None when it is none (introspection's `clientIp`)."""
    return _peer(text) if "%" not in text else None


@lru_cache(maxsize=_CACHED_ADDRESSES)
def _peer(peer: str | None) -> str | None:
    """The canonical address of the socket's peer. A zone id (`fe80::1%eth0`, a link-local
    peer) names our interface, not the client, and is dropped; a peer that is no IP address
    (a Unix socket, a test client's name) is unknown."""
    if peer is None:
        return None
    text = peer.partition("%")[0]
    if not _ADDRESS.fullmatch(text):
        return None
    try:
        return str(_unmapped(ip_address(text)))
    except ValueError:
        return None


@lru_cache(maxsize=_CACHED_ADDRESSES)
def _hop(entry: str) -> tuple[str, tuple[int, int]] | None:
    """An X-Forwarded-For entry (`1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
    `[2001:db8::1]:443`) as its canonical address and key, the port dropped; None if it is
    malformed (a zone id, a name, `unknown`, a bracketed IPv4 address)."""
    if len(entry) > MAX_ENTRY_LENGTH:
        return None
    if entry.startswith("["):
        text, bracket, port = entry[1:].partition("]")
        if not bracket or ":" not in text:
            return None
    elif entry.count(":") == 1:
        text, colon, port = entry.partition(":")
        port = colon + port
    else:
        text, port = entry, ""
    if port and (not _PORT.fullmatch(port) or int(port[1:]) > 65_535):
        return None
    if not _ADDRESS.fullmatch(text):
        return None
    try:
        address = _unmapped(ip_address(text))
    except ValueError:
        return None
    return str(address), (address.version, int(address))


class TrustedProxies(_Networks):
    """The proxies whose X-Forwarded-For is believed (TOKENHOUSE_TRUSTED_PROXIES)."""

    __slots__ = ()

    @classmethod
    def parse(cls, setting: str) -> "TrustedProxies":
        """Networks or addresses, comma-separated; spaces around them and empty items are
        ignored. A bad entry is a ConfigurationError that names it."""
        networks: list[Network] = []
        for item in setting.split(","):
            entry = item.strip()
            if not entry:
                continue
            try:
                networks.append(_network(entry))
            except ValueError as exc:
                raise ConfigurationError(f"TOKENHOUSE_TRUSTED_PROXIES: {exc}") from None
        return cls(networks)

    def client_address(self, peer: str | None, forwarded_for: list[str]) -> str | None:
        """The client's canonical address, or None when it is unknown.

        `forwarded_for` holds the request's X-Forwarded-For lines in order. With no trusted
        proxy it is never read: a client cannot choose its own address.
        """
        if not self.networks:
            return _peer(peer)
        client = _peer(peer)
        if client is None:
            return None
        key = _key(client)
        if key is None or key not in self._ranges:
            return client
        # The hops, nearest last: [X-Forwarded-For entries..., peer]. Each trusted hop vouches
        # for the one on its left, so the client is the nearest hop that is not a trusted
        # proxy; everything left of it is what that client wrote, and is not believed. When
        # every hop is trusted, the farthest is the client.
        for line in reversed(forwarded_for):
            for item in reversed(line.split(",")):
                entry = item.strip()
                if not entry:
                    continue  # an empty list element is no entry (RFC 9110, 5.6.1)
                hop = _hop(entry)
                if hop is None:
                    # The chain is broken here, and what lies beyond cannot be trusted or
                    # told apart from a forgery: the client is unknown.
                    return None
                client, key = hop
                if key not in self._ranges:
                    return client
        return client
