"""The address of the client behind our own reverse proxies: one function for every caller.

The login throttle, the audit log, the session list and the import jobs all record "the
client's address". Behind a proxy the TCP peer is the proxy, and the client's address is in a
header the proxy appends to. That header is a list the client starts: whatever the client
sent comes first, each proxy appends the address it received the request from. Only the
entries our own proxies appended can be believed, so the client is the **rightmost** entry
that is not one of our proxies (RFC 7239 §8.1; PITFALLS "Proxies, hosts and packaging").
Taking the leftmost entry would let a client pick a new address for every password guess.

Headers are read only when the TCP peer itself is a trusted proxy: a client that reaches the
service directly cannot name another address at all.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal

from starlette.datastructures import Headers
from starlette.types import Scope

if TYPE_CHECKING:  # core.settings imports this module for its types
    from core.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ForwardedHeader = Literal["x-forwarded-for", "forwarded"]

# Stored addresses are at most this long (audit and session columns are String(64)).
MAX_ADDRESS_LENGTH = 64
# A chain of proxies is short; entries past this many (counted from the right) are not read,
# so a client cannot make us parse a header of thousands of entries.
MAX_HOPS = 32

# RFC 7239 §4: for=node, where node is an IPv4 address, "[IPv6]" with an optional ":port",
# "unknown" or an obfuscated "_name". Parameters are separated by ";", elements by ",".
_FORWARDED_FOR = re.compile(r'(?:^|;)\s*for\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)', re.IGNORECASE)


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Addresses or CIDR blocks, as written in COMMUNE_SSO_TRUSTED_PROXIES.

    Raises ValueError naming the entry that is neither (a typo must not silently trust
    nothing, or worse, everything).
    """
    networks: list[IPNetwork] = []
    for value in values:
        text = value.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address or CIDR block") from None
    return tuple(networks)


def _parse_address(text: str) -> IPAddress | None:
    """One hop as proxies write it: ``1.2.3.4``, ``1.2.3.4:5678``, ``[2001:db8::1]:443`` or a
    bare IPv6 address; None for anything else (``unknown``, ``_hidden``, garbage)."""
    text = text.strip().strip('"')
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has two or more
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _x_forwarded_for_hops(headers: Headers) -> list[str]:
    # Several header lines are one list, in order (RFC 9110 §5.3).
    return [hop for line in headers.getlist("x-forwarded-for") for hop in line.split(",")]


def _forwarded_hops(headers: Headers) -> list[str]:
    hops: list[str] = []
    for line in headers.getlist("forwarded"):
        for element in line.split(","):
            match = _FORWARDED_FOR.search(element)
            # An element without for= still stands for a hop we cannot name.
            hops.append(match.group(1) if match else "")
    return hops


def _is_trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(address in network for network in trusted)


def is_trusted_proxy(peer: str | None, trusted_proxies: Sequence[IPNetwork]) -> bool:
    """Whether the TCP peer ``peer`` is one of our own proxies, whose headers we believe."""
    if peer is None or not trusted_proxies:
        return False
    address = _parse_address(peer)
    return address is not None and _is_trusted(address, trusted_proxies)


def client_address_of(
    peer: str | None,
    headers: Headers,
    *,
    trusted_proxies: Sequence[IPNetwork],
    header: ForwardedHeader = "x-forwarded-for",
) -> str | None:
    """The client's address: the rightmost hop that is not a trusted proxy.

    ``peer`` is the TCP peer's address. When it is not a trusted proxy it is the client, and
    no header is read. Otherwise the hops in ``header`` are walked from the right, skipping
    trusted proxies; the first other address is the client. A hop that is not an address
    ("unknown", a name) ends the walk at the last trusted proxy: it is the nearest hop we can
    name, and nothing to its left can be believed.
    """
    if not trusted_proxies or peer is None:
        return _bounded(peer)
    nearest = _parse_address(peer)
    if nearest is None or not _is_trusted(nearest, trusted_proxies):
        return _bounded(peer)
    hops = (
        _x_forwarded_for_hops(headers) if header == "x-forwarded-for" else _forwarded_hops(headers)
    )
    for hop in reversed(hops[-MAX_HOPS:]):
        address = _parse_address(hop)
        if address is None:
            break
        nearest = address
        if not _is_trusted(address, trusted_proxies):
            break
    return _bounded(str(nearest))


def client_address(
    scope: Scope,
    *,
    trusted_proxies: Sequence[IPNetwork],
    header: ForwardedHeader = "x-forwarded-for",
) -> str | None:
    """:func:`client_address_of` for an ASGI request scope (a Starlette ``Request`` is one:
    pass ``request.scope``)."""
    client = scope.get("client")
    peer = client[0] if client else None
    if not trusted_proxies:  # the common case costs one lookup
        return _bounded(peer)
    return client_address_of(
        peer, Headers(scope=scope), trusted_proxies=trusted_proxies, header=header
    )


def configured_client_address(scope: Scope, settings: Settings) -> str | None:
    """:func:`client_address` as configured (COMMUNE_SSO_TRUSTED_PROXIES and
    COMMUNE_SSO_FORWARDED_HEADER): what every caller records and checks."""
    return client_address(
        scope, trusted_proxies=settings.trusted_proxies, header=settings.forwarded_header
    )


def _bounded(address: str | None) -> str | None:
    return address[:MAX_ADDRESS_LENGTH] if address is not None else None
