"""Checking webhook targets: only http(s), and no private, loopback, link-local,
unique-local or carrier-grade NAT address, checked on every resolved address; the request
then goes to the address that was checked (no DNS-rebinding gap)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

from .errors import WebhookError

__all__ = ["Target", "TargetCache", "check_url", "resolve_target"]

_CGNAT = ipaddress.ip_network("100.64.0.0/10")


@dataclass(frozen=True)
class Target:
    """Where to connect: the checked ``address``, and the ``host`` for Host and TLS SNI."""

    scheme: str
    host: str
    port: int
    address: str
    path: str

    @property
    def connect_url(self) -> str:
        literal = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{literal}:{self.port}{self.path}"


def check_url(url: str) -> tuple[str, str, int, str]:
    """``(scheme, host, port, path)`` of a valid webhook URL.  :raises ValueError:"""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"only http and https URLs are allowed, not {parts.scheme or '(none)'!r}")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    if parts.username or parts.password:
        raise ValueError("credentials in the URL are not allowed; use headers")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, path


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: tuple[str, ...] | list[str]) -> tuple[Network, ...]:
    """The networks of the ``webhooks_allow_networks`` setting.  :raises ValueError: naming the bad one."""
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not a network such as 10.20.0.0/16") from None
    return tuple(out)


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_loopback: bool,
             allow_networks: tuple[Network, ...] = ()) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    elif isinstance(address, ipaddress.IPv6Address) and address.sixtofour:
        # 6to4 (2002::/16) is judged by the IPv4 address it embeds: 2002:7f00:1::1 is
        # 127.0.0.1 behind a relay, not the "global" address Python calls it.
        address = address.sixtofour
    if any(address.version == net.version and address in net for net in allow_networks):
        return None  # a network the operator trusts explicitly (a private deployment's own)
    if address.is_loopback:
        return None if allow_loopback else "loopback"
    if address.is_link_local:
        return "link-local"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "carrier-grade NAT"
    if isinstance(address, ipaddress.IPv6Address) and address in ipaddress.ip_network("fc00::/7"):
        return "unique-local"
    if address.is_private or address.is_reserved or address.is_multicast or address.is_unspecified:
        return "private or reserved"
    return None


async def resolve_target(url: str, *, allow_loopback: bool, allow_networks: tuple[Network, ...] = ()) -> Target:
    """Resolve ``url``'s host, check every address, return the first as the target.

    :raises WebhookError: the URL is invalid, does not resolve, or resolves to a refused address.
    """
    try:
        scheme, host, port, path = check_url(url)
    except ValueError as exc:
        raise WebhookError(str(exc), url=url) from None
    try:
        found = [str(ipaddress.ip_address(host))]
    except ValueError:  # a name, not an address literal: resolve it (in the loop's resolver thread)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise WebhookError(f"cannot resolve {host!r}: {exc.strerror}", url=url, retryable=True) from None
        found = [str(info[4][0]) for info in infos]
    addresses = []
    for text in found:
        address = ipaddress.ip_address(text)
        reason = _refused(address, allow_loopback, allow_networks)
        if reason:
            hint = (" (set STREAM_WEBHOOKS_ALLOW_LOOPBACK=1 for local development)" if reason == "loopback" else
                    " (trust a network of your own with the setting webhooks_allow_networks)")
            raise WebhookError(f"{host} resolves to {address}, a {reason} address: refused{hint}", url=url)
        addresses.append(str(address))
    if not addresses:
        raise WebhookError(f"{host!r} resolves to no address", url=url, retryable=True)
    return Target(scheme, host, port, addresses[0], path)


class TargetCache:
    """Checked targets by URL, reused for ``ttl`` seconds.

    A delivery then skips the resolver (a hop to the loop's thread pool per request: about a
    fifth of the dispatcher's time per delivery to a local sink, measured by R9).  The cached
    target keeps the address that was checked, so reusing it opens no DNS-rebinding gap; the
    TTL bounds how long a changed DNS record goes unseen.  Refusals and failures are not
    cached: they raise each time.
    """

    def __init__(self, ttl: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.clock = clock
        self._targets: dict[tuple[str, bool, tuple[Network, ...]], tuple[float, Target]] = {}

    async def resolve(self, url: str, *, allow_loopback: bool, allow_networks: tuple[Network, ...] = ()) -> Target:
        key = (url, allow_loopback, allow_networks)
        hit = self._targets.get(key)
        now = self.clock()
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        target = await resolve_target(url, allow_loopback=allow_loopback, allow_networks=allow_networks)
        self._targets[key] = (now, target)
        return target
