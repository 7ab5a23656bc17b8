"""Fetching feeds and pages with the checks of webhook targets, and what webhooks do not need.

Every request goes to an address checked like a webhook target's
(:func:`stream.webhooks.safety.resolve_target`: no loopback, private, link-local,
unique-local, carrier-grade NAT or 6to4-wrapped private address unless allowed), and to the
address that was checked (no DNS-rebinding gap).  Redirects are followed by hand, a few at
most, each hop checked again.  A response is read up to a size cap and refused beyond it;
a host gets a few requests at a time; every request has a timeout.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import urljoin, urlsplit

import httpx

from .. import __version__
from ..webhooks.errors import WebhookError
from ..webhooks.safety import Network, TargetCache
from .base import SourceError

__all__ = ["FetchError", "Fetcher", "Page"]

_REDIRECTS = (301, 302, 303, 307, 308)


class FetchError(SourceError):
    """A fetch failed: refused address, too many redirects, too large, timeout, no answer,
    or (with :meth:`Fetcher.get`'s ``ok_only``) an error status.  :attr:`status`: the HTTP
    status when there was one."""

    def __init__(self, reason: str, message: str, *, url: str, status: int | None = None):
        self.url = url
        self.status = status
        super().__init__(reason, message)


@dataclass(frozen=True)
class Page:
    """A fetched response: the final ``url`` (after redirects), ``status``, ``headers``
    (lower-case names) and the ``content`` bytes."""

    url: str
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes = b""

    @property
    def charset(self) -> str | None:
        ctype = self.headers.get("content-type", "")
        for part in ctype.split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                return value.strip("\"'")
        return None


class Fetcher:
    """The checked HTTP client of the ingester (one per process; close it with :meth:`close`).

    :param allow_loopback: allow loopback targets (tests, local development).
    :param allow_networks: private networks the operator trusts.
    :param timeout: seconds per request (connect, each read).
    :param max_bytes: largest response body read; a larger one fails (``too_large``).
    :param per_host: requests in flight to one host at a time.
    :param max_redirects: redirect hops followed, each checked again.
    """

    def __init__(self, *, allow_loopback: bool = False, allow_networks: tuple[Network, ...] = (),
                 timeout: float = 20.0, max_bytes: int = 5_000_000, per_host: int = 2, max_redirects: int = 5,
                 user_agent: str = f"stream-ingest/{__version__}"):
        self.allow_loopback = allow_loopback
        self.allow_networks = allow_networks
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.user_agent = user_agent
        self._per_host = per_host
        self._hosts: defaultdict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(self._per_host))
        self._targets = TargetCache()
        self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False,
                                         limits=httpx.Limits(max_connections=100))

    async def get(self, url: str, headers: Mapping[str, str] | None = None, *, ok_only: bool = True) -> Page:
        """GET ``url``, following redirects (each hop checked).

        :param headers: extra request headers (``If-None-Match``, ...).
        :param ok_only: raise :class:`FetchError` for a status other than 2xx and 304.
        :raises FetchError: with ``reason`` ``refused``, ``redirects``, ``too_large``,
            ``timeout``, ``connection``, or ``http_STATUS``.
        """
        current = url
        for _hop in range(self.max_redirects + 1):
            page = await self._one(current, headers or {})
            if page.status in _REDIRECTS and "location" in page.headers:
                current = urljoin(current, page.headers["location"])
                continue
            if ok_only and not (200 <= page.status < 300 or page.status == 304):
                raise FetchError(f"http_{page.status}", f"{current} answered {page.status}", url=current,
                                 status=page.status)
            return page
        raise FetchError("redirects", f"{url}: more than {self.max_redirects} redirects", url=url)

    async def _one(self, url: str, headers: Mapping[str, str]) -> Page:
        try:
            target = await self._targets.resolve(url, allow_loopback=self.allow_loopback,
                                                 allow_networks=self.allow_networks)
        except WebhookError as exc:
            message = str(exc).split(" (", 1)[0]  # without the webhook settings' hint
            hint = (" (allow_loopback = true in the sources file, for tests)" if "loopback" in message else
                    " (trust a network of your own with allow_networks in the sources file)")
            raise FetchError("dns" if exc.retryable else "refused", f"{url}: {message}{'' if exc.retryable else hint}",
                             url=url) from None
        host_header = target.host if target.port in (80, 443) else f"{target.host}:{target.port}"
        sent = {"host": host_header, "user-agent": self.user_agent, "accept-encoding": "gzip, deflate",
                **dict(headers)}
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        async with self._hosts[urlsplit(url).hostname or ""]:
            try:
                request = self._client.build_request("GET", target.connect_url, headers=sent, timeout=self.timeout,
                                                     extensions=extensions)
                response = await self._client.send(request, stream=True)
                try:
                    length = response.headers.get("content-length")
                    if length and length.isdigit() and int(length) > self.max_bytes:
                        raise FetchError("too_large", f"{url}: {length} bytes, over the cap of {self.max_bytes}",
                                         url=url, status=response.status_code)
                    chunks, size = [], 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise FetchError("too_large", f"{url}: over the cap of {self.max_bytes} bytes",
                                             url=url, status=response.status_code)
                        chunks.append(chunk)
                finally:
                    await response.aclose()
            except httpx.TimeoutException:
                raise FetchError("timeout", f"{url}: no answer within {self.timeout:g}s", url=url) from None
            except httpx.HTTPError as exc:
                raise FetchError("connection", f"{url}: {type(exc).__name__}: {exc}", url=url) from None
        return Page(url, response.status_code, {k.lower(): v for k, v in response.headers.items()}, b"".join(chunks))

    async def close(self) -> None:
        await self._client.aclose()
