"""The offset watch: every ``interval`` seconds, the group's committed offsets and the end
offsets of the worker's assigned input partitions.  They feed the lag gauges and the
health (:mod:`stream.ops.health`): a broker that does not answer within
:data:`ANSWER_WITHIN` seconds makes the worker not ready until it answers again.  It only
reads.
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

#: Seconds the watch waits for Kafka's answer before it reports the worker not ready.
ANSWER_WITHIN = 5


class OffsetWatch:
    """Reads the group's committed offsets and the end offsets of the assigned input
    partitions every ``interval`` seconds; feeds the lag gauges and the health, and seeks
    back the partitions ``repairs`` names (with ``rewind``).

    :param groups: input topic -> the consumer group that reads it (a group per stage)."""

    def __init__(self, bootstrap: KafkaTarget | str, groups: dict[str, str], health: Health,
                 interval: float = 5.0):
        self.bootstrap, self.groups = bootstrap, groups
        self.health, self.interval = health, interval

    async def run(self) -> None:
        admin = AIOKafkaAdminClient(**client_options(self.bootstrap), request_timeout_ms=ANSWER_WITHIN * 1000)
        consumer = AIOKafkaConsumer(**client_options(self.bootstrap), enable_auto_commit=False,
                                    request_timeout_ms=ANSWER_WITHIN * 1000)
        await admin.start()
        await consumer.start()
        try:
            while True:
                try:
                    await asyncio.wait_for(self.check(admin, consumer), 2 * ANSWER_WITHIN)
                except Exception as exc:  # the broker may be away for a while: report, not ready, go on
                    log.warning("offset watch: Kafka did not answer (%r)", exc)
                    self.health.trouble("kafka", f"Kafka did not answer the offset watch: {type(exc).__name__}")
                else:
                    self.health.trouble("kafka", None)
                await asyncio.sleep(self.interval)
        finally:
            await consumer.stop()
            await admin.close()

    async def check(self, admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer) -> None:
        tps = [TopicPartition(t, p) for t, p in sorted(self.health.assigned) if t in self.groups]
        if not tps:
            self.health.observe([])
            return
        committed = {}
        for group in sorted(set(self.groups.values())):
            mine = [tp for tp in tps if self.groups[tp.topic] == group]
            if mine:
                committed.update(await admin.list_consumer_group_offsets(group, partitions=mine))
        ends = await consumer.end_offsets(tps)
        rows = []
        for tp in tps:
            meta = committed.get(tp)
            rows.append((tp.topic, tp.partition, max(0, meta.offset if meta else 0), ends.get(tp, 0)))
        self.health.metrics.on_offsets(rows)
        self.health.observe(rows)
