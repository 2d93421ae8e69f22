"""Where a webhook may send: http(s) URLs whose address is global.

A tenant must not make the server call into its own networks (SSRF): a target in a private,
loopback, link-local or any other non-global network is refused, unless the operator allows
it (TOKENHOUSE_WEBHOOK_ALLOW_PRIVATE). A literal address is judged when the webhook is saved;
every address is judged when it is connected to, on what the name resolves to at that
moment: a name that resolved to a public address when saved may resolve to 127.0.0.1 later.

`GuardedBackend` is the check and the connection in one step: it resolves the name, judges
the addresses and connects to the address it judged, so nothing can change between the two
(DNS rebinding). TLS is still begun with the URL's name (SNI and certificate checks are
httpcore's, on the name), and the Host header is the URL's.
"""

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable

import httpcore
import httpx

MAX_URL = 2048
# DNS's limits (RFC 1035): a name of at most 253 characters, each label at most 63, written
# in ASCII (an internationalised label as its IDNA A-label, `xn--...`).
MAX_HOST = 253
LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# NAT64's well-known prefix: the last 32 bits are an IPv4 address the translator reaches.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class TargetRefused(httpcore.ConnectError):
    """The target's address is not one a webhook may reach; no connection was made."""


def is_public(address: IPAddress) -> bool:
    """Whether `address` is a global unicast address, and so is any IPv4 address it
    carries (v4-mapped, 6to4, NAT64). `is_global` alone lets multicast through, and older
    Pythons judged a v4-mapped address by its IPv6 form."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and not is_public(embedded):
            return False
    return (address.is_global and not address.is_multicast and not address.is_reserved
            and not address.is_unspecified)


def url_problems(url: str, *, allow_private: bool) -> list[str]:
    """Why `url` cannot be a webhook's target (empty: it can)."""
    if len(url) > MAX_URL:
        return [f"At most {MAX_URL} characters."]
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return ["Not a valid URL."]
    if parsed.scheme not in ("http", "https"):
        return ["Only http and https URLs are allowed."]
    if not parsed.raw_host:
        return ["The URL must name a host."]
    host = host_problem(parsed)
    if host:
        return [host]
    if parsed.userinfo:
        # It would be stored and shown as part of the URL: credentials belong elsewhere.
        return ["The URL must not carry a user name or password."]
    if parsed.fragment:
        return ["The URL must not have a fragment."]
    try:
        literal = ipaddress.ip_address(parsed.raw_host.decode("ascii"))
    except ValueError:
        return []  # a name: judged on what it resolves to, at each delivery
    if not allow_private and not is_public(literal):
        return [f"{literal} is not a public address; webhooks may not call private, "
                "loopback or link-local networks."]
    return []


def host_problem(parsed: httpx.URL) -> str | None:
    """Why the URL's host is no name DNS can look up nor an IP address (None: it is one).
    Judged when saved, so that no delivery meets a host the resolver rejects (`xn--`, a
    300-character label or a space raised from getaddrinfo, outside its OSError)."""
    raw = parsed.raw_host.decode("ascii")  # httpx has IDNA-encoded it, or %-escaped it
    try:
        ipaddress.ip_address(raw)
        return None
    except ValueError:
        pass
    name = raw[:-1] if raw.endswith(".") else raw
    try:
        parsed.host  # noqa: B018 - decodes each A-label: a malformed one raises
    except ValueError:  # idna.IDNAError is a UnicodeError, a ValueError
        return "The host is not a valid internationalised domain name."
    if len(name) > MAX_HOST or not all(LABEL.fullmatch(label) for label in name.split(".")):
        return (f"The host must be a domain name of at most {MAX_HOST} characters, labels "
                "of letters, digits and hyphens of at most 63 characters each, or an IP "
                "address.")
    return None


def redacted(url: str) -> str:
    """`url` as an audit record keeps it: scheme, host and port, and `…` where a path or a
    query was. Records never change and are pushed to other webhooks, and a receiver's path
    or query often carries its credential (`/hooks/<secret>`, `?token=`); no hash of them
    either (a short secret could be guessed from it)."""
    try:
        parsed = httpx.URL(url)
        port = f":{parsed.port}" if parsed.port is not None else ""
        base = f"{parsed.scheme}://{parsed.raw_host.decode('ascii')}{port}/"
    except (httpx.InvalidURL, TypeError, ValueError):
        return "…"  # not a URL that was accepted: nothing of it is shown
    elided = parsed.raw_path not in (b"", b"/")
    return base + ("…" if elided else "")


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses `is_public` allows (any,
    with `allow_private`)."""

    def __init__(self, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                found = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except (OSError, ValueError) as error:
            # ValueError: a name the resolver's IDNA codec rejects raises UnicodeError (a
            # host saved before names were checked on save, or one httpx passes through).
            raise httpcore.ConnectError(f"{host} could not be resolved "
                                        f"({type(error).__name__})") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).partition("%")[0])
                     for info in found]
        allowed = [a for a in addresses if self._allow_private or is_public(a)]
        if not allowed:
            shown = ", ".join(sorted({str(a) for a in addresses}))
            # For the server's log only: the tenant sees that the target is refused, not
            # what names resolve to inside the network (delivery.py).
            raise TargetRefused(f"{host} resolves to {shown}, not a public address: refused "
                                "(TOKENHOUSE_WEBHOOK_ALLOW_PRIVATE)")
        last: Exception | None = None
        for address in allowed:  # as a client tries each address of a name in turn
            try:
                return await self._backend.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                last = error
        assert last is not None
        raise last

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise TargetRefused("webhooks do not connect to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


def guarded_transport(allow_private: bool, max_connections: int) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections go through `GuardedBackend`."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx takes no network backend: its pool is replaced by the same pool with one (the
    # only way in, short of re-implementing httpx's transport and its error mapping).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=max_connections, max_keepalive_connections=max_connections,
        keepalive_expiry=30.0, network_backend=GuardedBackend(allow_private))
    return transport
