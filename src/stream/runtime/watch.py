"""Watching the worker's progress: readiness, liveness, lag, and records faust dropped.

Liveness tracks progress, not just the process: a worker whose assigned input partitions
have lag while their committed offsets have not moved for ``stall_timeout`` seconds is not
live (a known way faust workers fail: the process runs, the agent is stuck).  Readiness is
false until the worker has joined its group and has its partitions (the plugins, and with
them the model, are set up before the worker connects), and during a rebalance.

The same watch repairs a fault of faust's: a record dropped during a rebalance (see
:class:`stream.runtime.app.Handled`) holds the partition's committed offset back; the watch seeks
the partition back to it, and the record is processed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from ..ops.metrics import WorkerMetrics
from .security import KafkaTarget, client_options

__all__ = ["Health", "OffsetWatch"]

log = logging.getLogger(__name__)

#: ``(topic, partition, committed)``: seek the partition back to its committed offset.
Rewind = Callable[[str, int, int], Awaitable[None]]
#: ``(topic, partition, committed)``: True when this worker handled records after the
#: committed offset but not the one at it.
Dropped = Callable[[str, int, int], bool]


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
    partitions every ``interval`` seconds; feeds the lag gauges and the liveness check, and
    rewinds a partition whose committed offset is held back by a record faust dropped (when
    it has been so for ``repair_after`` seconds)."""

    def __init__(self, bootstrap: KafkaTarget | str, group: str, inputs: set[str], health: Health,
                 interval: float = 5.0, *, dropped: Dropped | None = None, rewind: Rewind | None = None,
                 repair_after: float = 10.0):
        self.bootstrap, self.group, self.inputs = bootstrap, group, inputs
        self.health, self.interval = health, interval
        self.dropped, self.rewind, self.repair_after = dropped, rewind, repair_after
        self._held: dict[tuple[str, int], tuple[int, float]] = {}
        self.rewinds = 0

    async def run(self) -> None:
        admin = AIOKafkaAdminClient(**client_options(self.bootstrap))
        consumer = AIOKafkaConsumer(**client_options(self.bootstrap), enable_auto_commit=False)
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
        await self.repair(rows)

    async def repair(self, rows: list[tuple[str, int, int, int]], now: float | None = None) -> None:
        if self.dropped is None or self.rewind is None:
            return
        now = time.monotonic() if now is None else now
        for topic, partition, committed, end in rows:
            tp = (topic, partition)
            if end <= committed or not self.dropped(topic, partition, committed):
                self._held.pop(tp, None)
                continue
            since = self._held.setdefault(tp, (committed, now))
            if since[0] != committed:
                self._held[tp] = (committed, now)
            elif now - since[1] >= self.repair_after:
                log.warning("%s[%d]: the record at the committed offset %d was dropped by faust during a "
                            "rebalance (later ones were handled); seeking back to it", topic, partition, committed)
                await self.rewind(topic, partition, committed)
                self.rewinds += 1
                self._held.pop(tp, None)


