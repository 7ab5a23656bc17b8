"""The offset watch: every ``interval`` seconds, the group's committed offsets and the end
offsets of the worker's assigned input partitions.  They feed the lag gauges and the
health (:mod:`stream.ops.health`).  It only reads.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from ..ops.health import Health
from .security import KafkaTarget, client_options

__all__ = ["OffsetWatch"]

log = logging.getLogger(__name__)

class OffsetWatch:
    """Reads the group's committed offsets and the end offsets of the assigned input
    partitions every ``interval`` seconds; feeds the lag gauges and the health, and seeks
    back the partitions ``repairs`` names (with ``rewind``)."""

    def __init__(self, bootstrap: KafkaTarget | str, group: str, inputs: set[str], health: Health,
                 interval: float = 5.0):
        self.bootstrap, self.group, self.inputs = bootstrap, group, inputs
        self.health, self.interval = health, interval

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
