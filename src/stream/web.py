"""The worker's web server: ``/metrics`` (Prometheus), ``/health/live``, ``/health/ready``,
the live dashboard (``/``) and its data (``/api/dashboard``).

Liveness tracks progress, not just the process: a worker whose assigned input partitions
have lag while their committed offsets have not moved for ``stall_timeout`` seconds answers
503 (a known way faust workers fail: the process runs, the agent is stuck).  Readiness is
false until the worker has joined its group and has its partitions (the plugins, and with
them the model, are set up before the worker connects).
"""

from __future__ import annotations

import asyncio
import logging
import time
from importlib.resources import files
from typing import Any, Callable, Iterable

from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .metrics import WorkerMetrics
from .records import dumps

__all__ = ["Health", "OffsetWatch", "serve"]

log = logging.getLogger(__name__)


class Health:
    """Readiness and liveness of one worker."""

    def __init__(self, metrics: WorkerMetrics, stall_timeout: float):
        self.metrics = metrics
        self.stall_timeout = stall_timeout
        self.assigned: set[tuple[str, int]] = set()
        self.ready = False
        self.rebalancing = True
        self.stalled: list[str] = []
        self._moved: dict[tuple[str, int], tuple[int, float]] = {}  # tp -> (committed, since)
        self.checked_at = 0.0

    def on_assigned(self, tps: Iterable[tuple[str, int]]) -> None:
        self.assigned = set(tps)
        self.rebalancing = False
        self.ready = True
        self.metrics.ready_gauge.set(1)

    def on_revoked(self) -> None:
        self.rebalancing = True
        self.ready = False
        self.metrics.ready_gauge.set(0)

    def observe(self, rows: list[tuple[str, int, int, int]], now: float | None = None) -> None:
        """``(topic, partition, committed, end)`` per assigned input partition."""
        now = time.monotonic() if now is None else now
        stalled = []
        for topic, partition, committed, end in rows:
            tp = (topic, partition)
            last = self._moved.get(tp)
            if last is None or last[0] != committed or end <= committed:
                self._moved[tp] = (committed, now)
            elif now - last[1] > self.stall_timeout:
                stalled.append(f"{topic}[{partition}]: lag {end - committed}, committed offset {committed} "
                               f"unchanged for {now - last[1]:.0f}s")
        self.stalled = stalled
        self.checked_at = now
        self.metrics.live_gauge.set(0 if stalled else 1)

    @property
    def live(self) -> bool:
        return not self.stalled


class OffsetWatch:
    """Reads the group's committed offsets and the end offsets of the assigned input
    partitions every ``interval`` seconds; feeds the lag gauges and the liveness check."""

    def __init__(self, bootstrap: str, group: str, inputs: set[str], health: Health, interval: float = 5.0):
        self.bootstrap, self.group, self.inputs = bootstrap, group, inputs
        self.health, self.interval = health, interval

    async def run(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await admin.start()
        await consumer.start()
        try:
            while True:
                try:
                    await self.check(admin, consumer)
                except Exception as exc:  # the broker may be away for a while: report, go on
                    log.warning("offset watch: %r", exc)
                await asyncio.sleep(self.interval)
        finally:
            await consumer.stop()
            await admin.close()

    async def check(self, admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer) -> None:
        tps = [TopicPartition(t, p) for t, p in sorted(self.health.assigned) if t in self.inputs]
        if not tps:
            self.health.observe([])
            return
        committed = await admin.list_consumer_group_offsets(self.group, partitions=tps)
        ends = await consumer.end_offsets(tps)
        rows = []
        for tp in tps:
            meta = committed.get(tp)
            rows.append((tp.topic, tp.partition, max(0, meta.offset if meta else 0), ends.get(tp, 0)))
        self.health.metrics.on_offsets(rows)
        self.health.observe(rows)


def _app(metrics: WorkerMetrics, health: Health) -> web.Application:
    page = files("stream").joinpath("dashboard.html").read_bytes()

    async def metrics_view(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def live(request: web.Request) -> web.Response:
        body = {"live": health.live, "stalled": health.stalled}
        return web.Response(body=dumps(body), status=200 if health.live else 503, content_type="application/json")

    async def ready(request: web.Request) -> web.Response:
        body = {"ready": health.ready, "partitions": sorted(f"{t}[{p}]" for t, p in health.assigned)}
        return web.Response(body=dumps(body), status=200 if health.ready else 503, content_type="application/json")

    async def dashboard(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html", charset="utf-8")

    async def data(request: web.Request) -> web.Response:
        snap = metrics.snapshot()
        snap["health"] = {"live": health.live, "ready": health.ready, "stalled": health.stalled}
        return web.Response(body=dumps(snap), content_type="application/json")

    app = web.Application()
    app.add_routes([web.get("/metrics", metrics_view), web.get("/health/live", live),
                    web.get("/health/ready", ready), web.get("/", dashboard),
                    web.get("/api/dashboard", data)])
    return app


async def serve(address: str, metrics: WorkerMetrics, health: Health,
                on_bound: Callable[[str], Any] | None = None) -> None:
    """Serve until cancelled.  ``address`` is ``host:port`` (port 0: a free one)."""
    host, _, port = address.rpartition(":")
    runner = web.AppRunner(_app(metrics, health), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host or "127.0.0.1", int(port))
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname() if sockets else (host, port)
    url = f"http://{bound[0]}:{bound[1]}"
    log.info("stream web: %s (dashboard), %s/metrics, %s/health/live, %s/health/ready", url, url, url, url)
    if on_bound is not None:
        on_bound(url)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
