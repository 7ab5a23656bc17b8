"""A real HTTP receiver on 127.0.0.1 for webhook tests, in its own thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


def stable_port() -> int:
    """A free port below the kernel's ephemeral range, so that no outgoing connection takes
    it as its local port once it is released (a test can stop a receiver and bind the same
    port again later)."""
    import random
    import socket

    low = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            low = int(fh.read().split()[0])
    except (OSError, ValueError):
        pass
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, min(low, 32000))
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float
    status: int


@dataclass
class Receiver:
    """Answers request n with ``statuses[n]`` (then ``default``), after ``delay`` seconds
    (only for bodies that contain ``delay_when``, when it is set)."""

    statuses: list[int] = field(default_factory=list)
    default: int = 200
    delay: float = 0.0
    delay_when: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    error: OSError | None = None

    def start(self) -> Receiver:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            n = len(self.requests)
            status = self.statuses[n] if n < len(self.statuses) else self.default
            self.requests.append(Received(dict(request.headers), body, time.time(), status))
            if self.delay and (not self.delay_when or self.delay_when in body):
                await asyncio.sleep(self.delay)
            return web.Response(status=status, headers=self.headers if status != 200 else {})

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/{tail:.*}", handle)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            # reuse_address: a test may bind again the port of a receiver it just stopped.
            site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
            await site.start()
            self.port = self._runner.addresses[0][1]
            ready.set()

        def main() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(serve())
            except OSError as exc:
                self.error = exc
                ready.set()
                self._loop.run_until_complete(self._runner.cleanup())
                self._loop.close()
                return
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()
        ready.wait(10)
        if self.error is not None:
            self._thread.join(10)
            raise self.error
        return self

    def stop(self) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def wait(self, count: int, timeout: float = 30, check: Callable[[], Any] | None = None) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            if check:
                check()
            time.sleep(0.05)
        assert len(self.requests) >= count, f"{len(self.requests)} of {count} requests arrived"
        return self.requests
