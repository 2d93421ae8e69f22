"""IP allowlists and the client's address behind trusted proxies (kit/addresses.py, issue 11).

Plain functions, no app: each rule of the issue with IPv4 and IPv6 examples, then hypothesis
properties checked against Python's `ipaddress` as the oracle.
"""

import ipaddress
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenhouse.kit.addresses import (
    MAX_NETWORKS,
    Allowlist,
    TrustedProxies,
    canonical_allowlist,
    from_stored,
    to_stored,
)
from tokenhouse.kit.problems import ValidationFailed
from tokenhouse.kit.settings import ConfigurationError

PROPERTIES = settings(max_examples=150, deadline=None)


def errors_of(entries: object, **kwargs: str) -> dict[str, list[str]]:
    with pytest.raises(ValidationFailed) as caught:
        canonical_allowlist(entries, **kwargs)
    assert caught.value.errors
    return caught.value.errors


# ---- canonical_allowlist ------------------------------------------------------------------

@pytest.mark.parametrize(("entry", "canonical"), [
    ("10.0.0.0/8", "10.0.0.0/8"),
    ("10.1.2.3", "10.1.2.3/32"),
    ("0.0.0.0/0", "0.0.0.0/0"),
    ("192.168.1.128/25", "192.168.1.128/25"),
    ("10.0.0.0/08", "10.0.0.0/8"),
    ("2001:db8::/32", "2001:db8::/32"),
    ("2001:DB8:0000:0000::/32", "2001:db8::/32"),
    ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1/128"),
    ("::1", "::1/128"),
    ("::/0", "::/0"),
    ("fe80::/10", "fe80::/10"),
    # IPv4-mapped IPv6 is IPv4.
    ("::ffff:10.1.2.3", "10.1.2.3/32"),
    ("::FFFF:a01:203", "10.1.2.3/32"),
    ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
    ("::ffff:0.0.0.0/96", "0.0.0.0/0"),
    ("0:0:0:0:0:ffff:c000:200/120", "192.0.2.0/24"),
    # IPv4-compatible (not mapped) addresses stay IPv6.
    ("::10.1.2.3", "::a01:203/128"),
])
def test_entries_are_stored_canonical(entry: str, canonical: str) -> None:
    assert canonical_allowlist([entry]) == [canonical]


def test_null_and_empty_mean_any_address() -> None:
    assert canonical_allowlist(None) is None
    assert canonical_allowlist([]) is None
    assert to_stored(None) is None and to_stored([]) is None
    assert from_stored(None) is None and from_stored("") is None
    assert Allowlist.of(None) is None and Allowlist.of("") is None


def test_duplicates_after_canonicalisation_are_dropped_first_kept_in_order() -> None:
    entries = ["2001:DB8::/32", "10.1.2.3", "::ffff:10.1.2.3", "10.0.0.0/8", "10.1.2.3/32",
               "2001:db8:0::/32", "::ffff:10.0.0.0/104"]
    assert canonical_allowlist(entries) == ["2001:db8::/32", "10.1.2.3/32", "10.0.0.0/8"]


def test_stored_text_round_trips() -> None:
    networks = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"]
    assert to_stored(networks) == "10.0.0.0/8,2001:db8::/32,192.0.2.7/32"
    assert from_stored(to_stored(networks)) == networks


@pytest.mark.parametrize(("entry", "suggestion"), [
    ("10.0.0.1/8", "10.0.0.0/8"),
    ("192.168.1.200/25", "192.168.1.128/25"),
    ("2001:db8::1/32", "2001:db8::/32"),
    ("2001:DB8::1/32", "2001:db8::/32"),
    ("::ffff:10.0.0.1/104", "10.0.0.0/8"),
])
def test_host_bits_are_an_error_naming_the_entry(entry: str, suggestion: str) -> None:
    errors = errors_of(["192.0.2.0/24", entry])
    assert errors == {"ipAllowlist[1]": [f"{entry} has host bits set; did you mean {suggestion}?"]}


@pytest.mark.parametrize("entry", ["::ffff:0:0/95", "::ffff:10.0.0.0/80", "::ffff:0.0.0.0/0"])
def test_a_mapped_network_shorter_than_96_is_an_error(entry: str) -> None:
    (message,) = errors_of([entry])["ipAllowlist[0]"]
    assert entry in message and "IPv4-mapped" in message and "/96" in message


@pytest.mark.parametrize(("entry", "words"), [
    ("", "empty"),
    (" 10.0.0.0/8", "whitespace"),
    ("10.0.0.0/8 ", "whitespace"),
    ("10.0.0.0 /8", "whitespace"),
    ("2001:db8::\t/32", "whitespace"),
    ("fe80::1%eth0", "zone id"),
    ("fe80::%1/64", "zone id"),
    ("10.0.0.0/33", "longer than /32"),
    ("2001:db8::/129", "longer than /128"),
    ("10.0.0.0/255.0.0.0", "CIDR notation"),
    ("10.0.0.0/0.255.255.255", "CIDR notation"),
    ("10.0.0.0/", "CIDR notation"),
    ("10.0.0.0/-8", "CIDR notation"),
    ("10.0.0.0/+8", "CIDR notation"),
    ("10.0.0.0/8/8", "CIDR notation"),
    ("010.0.0.0/8", "CIDR notation"),
    ("10.0.0/8", "CIDR notation"),
    ("10.0.0.256", "CIDR notation"),
    ("1:2:3:4:5:6:7:8:9", "CIDR notation"),
    ("2001:db8:::/48", "CIDR notation"),
    ("localhost", "CIDR notation"),
    ("10.0.0.0/８", "CIDR notation"),
    ("١٠.0.0.0/8", "CIDR notation"),
    ("2001:db8::/32,10.0.0.0/8", "CIDR notation"),
    ("1" * 65, "longer than 64 characters"),
])
def test_malformed_entries_are_errors_that_say_why(entry: str, words: str) -> None:
    (message,) = errors_of(["10.0.0.0/8", entry])["ipAllowlist[1]"]
    assert words in message
    if 0 < len(entry) <= 64 and entry.isascii() and entry.isprintable() and " " not in entry:
        assert entry in message


def test_a_long_entry_is_quoted_only_in_part() -> None:
    entry = "10.0.0.0/8" + "0" * 1000
    (message,) = errors_of([entry])["ipAllowlist[0]"]
    assert len(message) < 200


@pytest.mark.parametrize(("entry", "kind"), [
    (10, "a number"), (1.5, "a number"), (True, "a boolean"), (None, "null"),
    ({"cidr": "10.0.0.0/8"}, "an object"), (["10.0.0.0/8"], "an array"),
])
def test_entries_that_are_not_strings_are_errors(entry: object, kind: str) -> None:
    (message,) = errors_of([entry])["ipAllowlist[0]"]
    assert "must be a string" in message and kind in message


@pytest.mark.parametrize(("value", "kind"), [
    ("10.0.0.0/8", "a string"), ({"a": 1}, "an object"), (7, "a number"), (False, "a boolean"),
])
def test_an_allowlist_that_is_not_an_array_is_an_error(value: object, kind: str) -> None:
    (message,) = errors_of(value)["ipAllowlist"]
    assert "array" in message and kind in message


def test_at_most_fifty_networks() -> None:
    fifty = [f"10.0.{i}.0/24" for i in range(MAX_NETWORKS)]
    assert canonical_allowlist(fifty) == fifty
    # Counted as sent: duplicates do not make room.
    (message,) = errors_of([*fifty, "10.0.0.0/24"])["ipAllowlist"]
    assert "51" in message and "50" in message


def test_every_bad_entry_is_reported_and_the_field_name_is_chosen_by_the_caller() -> None:
    errors = errors_of(["10.0.0.0/8", "10.0.0.1/8", 3, "fe80::1%eth0"],
                       field="tokens[2].ipAllowlist")
    assert set(errors) == {"tokens[2].ipAllowlist[1]", "tokens[2].ipAllowlist[2]",
                           "tokens[2].ipAllowlist[3]"}
    assert "tokens[2].ipAllowlist" in errors_of("10.0.0.0/8", field="tokens[2].ipAllowlist")


# ---- Allowlist ----------------------------------------------------------------------------

def test_allowlist_matches_ipv4_and_ipv6_networks() -> None:
    allowlist = Allowlist.of("10.0.0.0/8,192.0.2.7/32,2001:db8::/32")
    assert allowlist is not None
    assert allowlist.networks == ("10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32")
    for address in ["10.0.0.0", "10.255.255.255", "192.0.2.7", "2001:db8::", "2001:db8::1",
                    "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"]:
        assert allowlist.allows(address), address
    for address in ["9.255.255.255", "11.0.0.0", "192.0.2.6", "192.0.2.8", "2001:db9::",
                    "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", "::", "::a00:1"]:
        assert not allowlist.allows(address), address


def test_allowlist_treats_mapped_addresses_as_ipv4_and_keeps_the_families_apart() -> None:
    v4 = Allowlist.of("10.0.0.0/8")
    v6 = Allowlist.of("::/0")
    everything_v4 = Allowlist.of("0.0.0.0/0")
    assert v4 is not None and v6 is not None and everything_v4 is not None
    assert v4.allows("::ffff:10.1.2.3")
    assert not v6.allows("10.1.2.3") and not v6.allows("::ffff:10.1.2.3")
    assert v6.allows("2001:db8::1") and not everything_v4.allows("2001:db8::1")


def test_an_unknown_address_is_never_allowed() -> None:
    allowlist = Allowlist.of("0.0.0.0/0,::/0")
    assert allowlist is not None
    for address in [None, "", "testclient", "unknown", "10.0.0.1:80", "fe80::1%eth0",
                    "10.0.0.0/8", " 10.0.0.1"]:
        assert not allowlist.allows(address), address


def test_damaged_stored_entries_match_nothing() -> None:
    allowlist = Allowlist.of("10.0.0.1/8,bogus,2001:db8::/32")
    assert allowlist is not None and allowlist.networks == ("2001:db8::/32",)
    assert not allowlist.allows("10.0.0.1") and allowlist.allows("2001:db8::5")
    nothing = Allowlist.of("bogus")
    assert nothing is not None and not nothing.allows("10.0.0.1")


def test_allowlists_are_compiled_once_per_text() -> None:
    assert Allowlist.of("10.0.0.0/8,2001:db8::/32") is Allowlist.of("10.0.0.0/8,2001:db8::/32")


def test_overlapping_and_adjacent_networks() -> None:
    allowlist = Allowlist.of("10.0.0.0/8,10.1.0.0/16,11.0.0.0/8,13.0.0.0/8,2001:db8::/48,"
                             "2001:db8::/32")
    assert allowlist is not None
    inside = ["10.1.2.3", "11.255.255.255", "13.0.0.0", "2001:db8:1::"]
    outside = ["12.0.0.0", "12.255.255.255", "14.0.0.0", "2001:db9::"]
    assert all(allowlist.allows(address) for address in inside)
    assert not any(allowlist.allows(address) for address in outside)


def test_a_one_address_gap_between_networks_stays_closed() -> None:
    allowlist = Allowlist.of("10.0.0.0/32,10.0.0.2/31,2001:db8::/128,2001:db8::2/128")
    assert allowlist is not None
    assert [allowlist.allows(f"10.0.0.{i}") for i in range(5)] == [True, False, True, True, False]
    assert [allowlist.allows(f"2001:db8::{i}") for i in range(3)] == [True, False, True]


# ---- TrustedProxies -----------------------------------------------------------------------

def test_parse_takes_networks_and_addresses_with_spaces_around() -> None:
    proxies = TrustedProxies.parse(" 10.0.0.0/8 ,192.0.2.7,  2001:DB8::/32,::ffff:198.51.100.1, ")
    assert proxies.networks == ("10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32",
                                "198.51.100.1/32")
    assert TrustedProxies.parse("").networks == ()
    assert TrustedProxies.parse("  ").networks == ()


@pytest.mark.parametrize(("setting", "named"), [
    ("10.0.0.0/8, proxy.internal", "proxy.internal"),
    ("10.0.0.1/8", "10.0.0.0/8"),
    ("fe80::1%eth0", "fe80::1%eth0"),
    ("10.0.0.0/8 10.1.0.0/16", "10.0.0.0/8 10.1.0.0/16"),
    ("2001:db8::/200", "2001:db8::/200"),
])
def test_parse_names_the_bad_entry(setting: str, named: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        TrustedProxies.parse(setting)
    assert "TOKENHOUSE_TRUSTED_PROXIES" in str(caught.value) and named in str(caught.value)


NONE = TrustedProxies.parse("")
PROXIES = TrustedProxies.parse("10.0.0.0/8, 2001:db8:ffff::/48, 192.0.2.1")


@pytest.mark.parametrize(("peer", "client"), [
    ("203.0.113.9", "203.0.113.9"),
    ("2001:DB8:0:0::1", "2001:db8::1"),
    ("::ffff:203.0.113.9", "203.0.113.9"),
    ("::ffff:cb00:7109", "203.0.113.9"),
    ("fe80::1%eth0", "fe80::1"),
    (None, None),
    ("testclient", None),
    ("", None),
    ("/run/tokenhouse.sock", None),
    ("010.0.0.1", None),
])
def test_without_trusted_proxies_the_peer_is_the_client(peer: str | None,
                                                       client: str | None) -> None:
    assert NONE.client_address(peer, []) == client
    assert NONE.client_address(peer, ["198.51.100.1", "2001:db8::7"]) == client


def test_without_trusted_proxies_the_header_is_not_even_read() -> None:
    class Unreadable(list[str]):
        def __iter__(self) -> Iterator[str]:
            raise AssertionError("X-Forwarded-For was read")

        __reversed__ = __iter__

    assert NONE.client_address("203.0.113.9", Unreadable(["198.51.100.1"])) == "203.0.113.9"
    assert PROXIES.client_address("203.0.113.9", Unreadable(["198.51.100.1"])) == "203.0.113.9"


@pytest.mark.parametrize(("peer", "forwarded_for", "client"), [
    # An untrusted peer: the header is its own claim, and ignored.
    ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),
    ("2001:db8::9", ["198.51.100.1"], "2001:db8::9"),
    # A trusted peer: the nearest untrusted hop, right to left.
    ("10.0.0.1", ["198.51.100.1"], "198.51.100.1"),
    ("10.0.0.1", ["203.0.113.50, 198.51.100.1, 10.0.0.2"], "198.51.100.1"),
    ("2001:db8:ffff::1", ["2001:DB8::77, 2001:db8:ffff::2"], "2001:db8::77"),
    ("192.0.2.1", ["2001:db8::77, 10.9.9.9"], "2001:db8::77"),
    ("::ffff:10.0.0.1", ["::ffff:198.51.100.1"], "198.51.100.1"),
    # Mapped entries count as IPv4: ::ffff:10.0.0.2 is a trusted proxy, skipped.
    ("10.0.0.1", ["198.51.100.1, ::ffff:10.0.0.2"], "198.51.100.1"),
    # All header lines, joined in order.
    ("10.0.0.1", ["198.51.100.1, 10.0.0.3", "10.0.0.2"], "198.51.100.1"),
    ("10.0.0.1", ["203.0.113.5", "198.51.100.1"], "198.51.100.1"),
    # Ports are dropped.
    ("10.0.0.1", ["198.51.100.1:5678"], "198.51.100.1"),
    ("10.0.0.1", ["[2001:db8::1]:443"], "2001:db8::1"),
    ("10.0.0.1", ["[2001:db8::1]"], "2001:db8::1"),
    ("10.0.0.1", ["198.51.100.1, 10.0.0.2:80, [2001:db8:ffff::3]:8443"], "198.51.100.1"),
    # Every hop trusted: the leftmost is the client; no header: the peer itself.
    ("10.0.0.1", ["10.0.0.3, 10.0.0.2"], "10.0.0.3"),
    ("10.0.0.1", ["2001:db8:ffff::9, 10.0.0.2"], "2001:db8:ffff::9"),
    ("10.0.0.1", [], "10.0.0.1"),
    # Empty list elements are no entries (RFC 9110, 5.6.1).
    ("10.0.0.1", ["", " ", "198.51.100.1,, 10.0.0.2 ,"], "198.51.100.1"),
    # A malformed entry left of the client is never reached.
    ("10.0.0.1", ["unknown, 198.51.100.1"], "198.51.100.1"),
    # A malformed entry met during the walk: unknown, never a guess.
    ("10.0.0.1", ["198.51.100.1, unknown"], None),
    ("10.0.0.1", ["198.51.100.1, 10.0.0.2, garbage"], None),
    ("10.0.0.1", ["198.51.100.1", "10.0.0.2 10.0.0.3"], None),
    ("10.0.0.1", ["fe80::1%eth0"], None),
    ("10.0.0.1", ["198.51.100.1:99999"], None),
    ("10.0.0.1", ["198.51.100.1:"], None),
    ("10.0.0.1", ["198.51.100.1:http"], None),
    ("10.0.0.1", ["[198.51.100.1]:80"], None),
    ("10.0.0.1", ["[2001:db8::1"], None),
    ("10.0.0.1", ["[2001:db8::1]443"], None),
    ("10.0.0.1", ["2001:db8::1:443:1:1:1:1:1"], None),
    ("10.0.0.1", ["198.51.100.1/32"], None),
    ("10.0.0.1", ["010.1.2.3"], None),
    ("10.0.0.1", ['"198.51.100.1"'], None),
    ("10.0.0.1", ["for=198.51.100.1"], None),
    ("10.0.0.1", ["1" * 100], None),
    # An unknown peer stays unknown whatever the header says.
    (None, ["198.51.100.1"], None),
    ("testclient", ["198.51.100.1"], None),
])
def test_behind_trusted_proxies(peer: str | None, forwarded_for: list[str],
                                client: str | None) -> None:
    assert PROXIES.client_address(peer, forwarded_for) == client


def test_the_client_address_feeds_the_allowlist() -> None:
    allowlist = Allowlist.of("198.51.100.0/24")
    assert allowlist is not None
    assert allowlist.allows(PROXIES.client_address("10.0.0.1", ["198.51.100.1:5678"]))
    assert not allowlist.allows(PROXIES.client_address("10.0.0.1", ["198.51.100.1, bad"]))
    assert not allowlist.allows(NONE.client_address("10.0.0.1", ["198.51.100.1"]))


# ---- properties, against ipaddress --------------------------------------------------------

def unmapped(address: ipaddress.IPv4Address | ipaddress.IPv6Address
             ) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def oracle_network(network: ipaddress.IPv4Network | ipaddress.IPv6Network
                   ) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if (isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96
            and network.network_address.ipv4_mapped is not None):
        return ipaddress.IPv4Network(
            (network.network_address.ipv4_mapped, network.prefixlen - 96))
    return network


@st.composite
def networks(draw: st.DrawFn) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if draw(st.booleans()):
        return ipaddress.IPv4Network(
            (draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 32))), strict=False)
    return ipaddress.IPv6Network(
        (draw(st.integers(0, 2**128 - 1)), draw(st.integers(0, 128))), strict=False)


@st.composite
def written(draw: st.DrawFn, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """One of the ways a client may write the network."""
    forms = [str(network), network.exploded, str(network).upper()]
    if network.prefixlen == network.max_prefixlen:
        forms.append(str(network.network_address))
    if isinstance(network, ipaddress.IPv4Network):
        mapped = ipaddress.IPv6Address(0xFFFF_0000_0000 + int(network.network_address))
        forms += [f"::ffff:{network.network_address}/{network.prefixlen + 96}",
                  f"{mapped}/{network.prefixlen + 96}"]
    return draw(st.sampled_from(forms))


written_networks = networks().flatmap(written)


@PROPERTIES
@given(st.lists(written_networks, max_size=MAX_NETWORKS))
def test_canonical_allowlist_is_idempotent_and_agrees_with_ipaddress(entries: list[str]) -> None:
    canonical = canonical_allowlist(entries)
    expected: list[str] = []
    for entry in entries:
        network = str(oracle_network(ipaddress.ip_network(entry)))
        if network not in expected:
            expected.append(network)
    assert canonical == (expected or None)
    assert canonical_allowlist(canonical) == canonical
    assert from_stored(to_stored(canonical)) == canonical


@PROPERTIES
@given(st.lists(st.text(alphabet="0123456789abcdefABCDEF:./%x ", max_size=24), max_size=4))
def test_any_text_is_refused_or_canonical(entries: list[str]) -> None:
    try:
        canonical = canonical_allowlist(entries)
    except ValidationFailed as exc:
        assert exc.errors and all(key.startswith("ipAllowlist") for key in exc.errors)
        return
    assert canonical_allowlist(canonical) == canonical
    for network in canonical or []:
        assert str(ipaddress.ip_network(network)) == network


@st.composite
def address_near(draw: st.DrawFn, network: ipaddress.IPv4Network | ipaddress.IPv6Network
                 ) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address at or just beyond one of the network's edges, or anywhere in its family."""
    top = 2**network.max_prefixlen - 1
    value = draw(st.one_of(
        st.integers(-2, 2).map(lambda step: int(network.network_address) + step),
        st.integers(-2, 2).map(lambda step: int(network.broadcast_address) + step),
        st.integers(0, top)))
    return type(network.network_address)(min(max(value, 0), top))


@PROPERTIES
@given(st.lists(written_networks, min_size=1, max_size=MAX_NETWORKS), st.data())
def test_allows_exactly_the_addresses_inside_the_networks(entries: list[str],
                                                          data: st.DataObject) -> None:
    canonical = canonical_allowlist(entries)
    assert canonical is not None
    allowlist = Allowlist.of(to_stored(canonical))
    assert allowlist is not None
    parsed = [ipaddress.ip_network(network) for network in canonical]
    for _ in range(10):
        near = data.draw(st.sampled_from(parsed).flatmap(address_near))
        # An IPv4-mapped address is IPv4 (kit/addresses.py): an IPv6 network that spans the
        # mapped range (`::/80`) does not admit it.
        probe = near.ipv4_mapped if isinstance(near, ipaddress.IPv6Address) else None
        expected = any((probe or near) in network for network in parsed)
        assert allowlist.allows(str(near)) is expected, (near, canonical)
        if isinstance(near, ipaddress.IPv4Address):
            assert allowlist.allows(f"::ffff:{near}") is expected


TRUSTED = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8:ffff::/48"),
           ipaddress.ip_network("192.0.2.1/32")]


def trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return any(address in network for network in TRUSTED)


trusted_addresses = st.one_of(
    st.integers(0x0A00_0000, 0x0AFF_FFFF).map(ipaddress.IPv4Address),
    st.integers(0, 2**80 - 1).map(
        lambda low: ipaddress.IPv6Address(int(TRUSTED[1].network_address) + low)),
    st.just(ipaddress.IPv4Address("192.0.2.1")))
any_addresses = st.one_of(st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
                          st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address))
MALFORMED = ["unknown", "", "garbage", "1.2.3", "fe80::1%eth0", "[1.2.3.4]:80", "1.2.3.4:99999",
             "_hidden", "10.0.0.1/8", "010.0.0.1", "1.2.3.4 5.6.7.8"]


@st.composite
def hop_text(draw: st.DrawFn, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """An X-Forwarded-For entry for the address: plain, mapped, with a port, spaced."""
    forms = [str(address), address.exploded]
    port = draw(st.integers(0, 65_535))
    if isinstance(address, ipaddress.IPv4Address):
        forms += [f"{address}:{port}", f"::ffff:{address}", f"[::ffff:{address}]:{port}"]
    else:
        forms += [f"[{address}]:{port}", f"[{address}]"]
    return draw(st.sampled_from(forms)).center(len(str(address)) + draw(st.integers(0, 2)))


# A hop is (its address, or None when malformed, and the text the header holds).
hops = st.one_of(
    trusted_addresses.flatmap(lambda address: hop_text(address).map(lambda t: (address, t))),
    any_addresses.flatmap(lambda address: hop_text(address).map(lambda t: (address, t))),
    st.sampled_from(MALFORMED).filter(lambda text: text.strip()).map(lambda t: (None, t)))


def as_lines(texts: list[str], cuts: list[int]) -> list[str]:
    """The entries as header lines, cut at the given places."""
    lines, start = [], 0
    for cut in sorted(set(cut % (len(texts) + 1) for cut in cuts)) + [len(texts)]:
        if cut > start:
            lines.append(",".join(texts[start:cut]))
            start = cut
    return lines


@PROPERTIES
@given(st.one_of(trusted_addresses, any_addresses), st.lists(hops, max_size=8),
       st.lists(st.integers(0, 8), max_size=3))
def test_the_walk_never_believes_what_lies_left_of_an_untrusted_hop(
        peer: ipaddress.IPv4Address | ipaddress.IPv6Address,
        chain: list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address | None, str]],
        cuts: list[int]) -> None:
    result = PROXIES.client_address(str(peer), as_lines([text for _, text in chain], cuts))
    # The hops nearest last, the peer the nearest of all, mapped forms as IPv4.
    addresses = [None if address is None else unmapped(address) for address, _ in chain]
    addresses.append(unmapped(peer))
    # The property: nothing left of the rightmost untrusted (or malformed) hop is returned.
    stops = [index for index, address in enumerate(addresses)
             if address is None or not trusted(address)]
    if result is not None:
        index = max(index for index, address in enumerate(addresses)
                    if address is not None and str(address) == result)
        assert not stops or index >= stops[-1]
    # And exactly: the rightmost stop decides; with none, the leftmost hop is the client.
    if not stops:
        assert result == str(addresses[0])
    else:
        assert result == (None if addresses[stops[-1]] is None else str(addresses[stops[-1]]))


@PROPERTIES
@given(st.one_of(any_addresses.map(str), st.text(max_size=12)),
       st.lists(st.one_of(st.text(max_size=30), hops.map(lambda hop: hop[1])), max_size=4))
def test_without_trusted_proxies_the_header_never_matters(peer: str,
                                                          forwarded_for: list[str]) -> None:
    try:
        expected: str | None = str(unmapped(ipaddress.ip_address(peer.partition("%")[0])))
    except ValueError:
        expected = None
    assert NONE.client_address(peer, forwarded_for) == expected
    assert NONE.client_address(peer, []) == expected
