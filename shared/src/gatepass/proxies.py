"""Who the client is: the socket's peer, or what the operator's own proxies say in X-Forwarded-For.

A forwarding header is a claim anyone can make, so it is read only when the peer that sent it is
one of the operator's ``trusted_proxies`` (none by default). The chain is walked from the right
(each proxy appends the address it saw), through trusted proxies, to the first address that is
not one: that is the client. An entry that is not an IP address stops the walk at the last proxy
that vouched for the chain, so what reaches the app (``scope["client"]``, the address sessions
record and login throttling counts by) is always a valid IP address, in canonical form.

``X-Forwarded-Proto``, ``Forwarded`` and ``X-Real-IP`` are not read: nothing here needs the
scheme (the issuer URL is configured), and one header, one rule, is easier to get right.
uvicorn's own forwarding support is off (:mod:`gatepass.runner`), so its ``FORWARDED_ALLOW_IPS``
variable has no effect.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv6Address, ip_address

from starlette.types import ASGIApp, Receive, Scope, Send

from gatepass.settings import IPNetwork

__all__ = ["ClientAddressMiddleware", "client_address", "parse_address"]

IPAddress = IPv4Address | IPv6Address

_FORWARDED_FOR = b"x-forwarded-for"
_LONGEST_ADDRESS = 64  # an IPv6 address with a zone and a port fits; anything longer is not one


class ClientAddressMiddleware:
    """Set ``scope["client"]`` to the client's address, trusting only ``trusted`` peers."""

    def __init__(self, app: ASGIApp, *, trusted: Iterable[IPNetwork] = ()) -> None:
        self.app = app
        self.trusted = tuple(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Without trusted proxies the peer stands: a socket's peer is always a valid address.
        if self.trusted and scope["type"] in ("http", "websocket"):
            scope["client"] = client_address(scope, self.trusted)
        await self.app(scope, receive, send)


def client_address(scope: Scope, trusted: tuple[IPNetwork, ...]) -> tuple[str, int] | None:
    """The client's ``(host, port)`` (port 0 when a proxy named it), or None if unknown."""
    peer = scope.get("client")
    address = parse_address(peer[0]) if peer else None
    if peer is None or address is None:
        return None
    port = int(peer[1])
    if not _is_trusted(address, trusted):
        return (str(address), port)
    for hop in reversed(_forwarded_for(scope)):
        parsed = parse_address(hop)
        if parsed is None:
            break  # not an address: no one we trust wrote it
        address, port = parsed, 0
        if not _is_trusted(address, trusted):
            break
    return (str(address), port)


def _forwarded_for(scope: Scope) -> list[str]:
    """Every ``X-Forwarded-For`` entry, in order (several headers count as one list)."""
    hops: list[str] = []
    for name, value in scope.get("headers", ()):
        if name == _FORWARDED_FOR:
            hops.extend(part.strip() for part in value.decode("latin-1").split(","))
    return hops


def _is_trusted(address: IPAddress, trusted: tuple[IPNetwork, ...]) -> bool:
    return any(address in network for network in trusted)


@functools.lru_cache(maxsize=4096)
def parse_address(text: str) -> IPAddress | None:
    """An IP address from ``1.2.3.4``, ``1.2.3.4:80``, ``::1``, ``[::1]`` or ``[::1]:80``.

    IPv4-mapped IPv6 addresses (a dual-stack socket's view of an IPv4 peer) become IPv4. Anything
    else, including a host name, is None.
    """
    if len(text) > _LONGEST_ADDRESS:
        return None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not _is_port(rest)):
            return None
        text = host
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
        if not _is_port(":" + port):
            return None
        text = host
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_port(text: str) -> bool:
    """``:`` then 1 to 5 ASCII digits."""
    digits = text[1:]
    return text.startswith(":") and 0 < len(digits) <= 5 and digits.isascii() and digits.isdigit()
