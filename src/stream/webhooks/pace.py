"""The pace of deliveries to one endpoint: its ``rate`` (a token bucket) and the pause a
``429 Too Many Requests`` with ``Retry-After`` asks for.

A bucket holds at most ``max(1, rate)`` tokens and gains ``rate`` a second; each attempt
takes one, waiting when there is none, so over any long stretch the endpoint gets at most
``rate`` deliveries a second (and a burst of one second's worth after a quiet time).  A
429 with ``Retry-After`` pauses *every* delivery to the endpoint until then, not only the
one that was refused: the endpoint said it is overloaded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["Pace"]


class Pace:
    def __init__(self, rate: float | None = None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.rate = rate
        self.capacity = max(1.0, rate or 1.0)
        self.tokens = self.capacity
        self._clock, self._sleep = clock, sleep
        self._last = clock()
        self.paused_until = 0.0

    async def take(self) -> None:
        """Wait until the endpoint may get one more delivery, and count it."""
        while True:
            now = self._clock()
            if now < self.paused_until:
                await self._sleep(self.paused_until - now)
                continue
            if self.rate is None:
                return
            self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
            self._last = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await self._sleep((1 - self.tokens) / self.rate)

    def pause(self, seconds: float) -> None:
        """No delivery for ``seconds`` from now (a 429's ``Retry-After``)."""
        self.paused_until = max(self.paused_until, self._clock() + seconds)

    @property
    def paused(self) -> bool:
        return self._clock() < self.paused_until
