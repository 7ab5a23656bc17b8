"""The Kafka transport of stream's faust app: faust's aiokafka driver with a short fetch
long-poll, and an offset bookkeeping that does not hold a commit back by one round.

faust creates its worker consumer with ``fetch_max_wait_ms=1500`` (hard-coded).  aiokafka
keeps one fetch request in flight per broker, and a request only names the partitions that
have no records buffered; so while the records of ``articles.raw`` are being handled, the
next fetch names only partitions without new data (the assignor's ``__assignor-__leader``
topic, an idle handoff partition) and the broker holds it for the whole 1.5 s.  Measured on
a worker with a no-op plugin: 5,000 articles at 546 messages/s with stalls of about 1.4 s
every ~1,200 records; with a 100 ms wait, 1,591 messages/s and no stalls.  An idle worker
then sends ten fetch requests a second, which the broker answers from memory.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Mapping

import faust
from faust.transport import by_url
from faust.transport.drivers import aiokafka as driver
from faust.types import TP
from faust.utils.functional import consecutive_numbers

__all__ = ["FETCH_MAX_WAIT_MS", "StreamApp"]

log = logging.getLogger(__name__)

#: The longest a fetch request waits at the broker for data, in milliseconds.
FETCH_MAX_WAIT_MS = 100


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it creates its fetcher.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class _ReadOffsets(defaultdict[TP, "int | None"]):
    """faust's read offsets (``Consumer._read_offset``): per partition, the offset of the last
    record its drain loop delivered; a record below it is dropped as already seen.

    After a seek back (the offset watch's repair of a record faust dropped), the drain loop
    may still be delivering a batch fetched before the seek, from further on: each of those
    records moved the read offset past the rewound ones again, and faust then dropped them
    all ("DROPPED MESSAGE ROFF"): the repair failed, and the partition's commits stayed held
    back until the worker stopped (measured: the stage-2 committed offset stuck at 832-896
    across three workers of the crash test, and 2,500-2,800 repeated articles per SIGKILL).
    A rewound partition's read offset is held at the rewind point until the record there has
    been delivered.  Any other seek (faust's own, at an assignment) releases the hold.
    """

    def __init__(self) -> None:
        super().__init__(lambda: None)
        self.holding: dict[TP, int] = {}

    def hold(self, tp: TP, offset: int) -> None:
        self.holding[tp] = offset
        super().__setitem__(tp, offset)

    def __setitem__(self, tp: TP, offset: int | None) -> None:
        held = self.holding.get(tp)
        if held is not None:
            if offset is not None and offset > held:
                return  # a record from before the seek: keep the rewound ones deliverable
            del self.holding[tp]  # the record at the rewind point was delivered
        super().__setitem__(tp, offset)

    def __delitem__(self, tp: TP) -> None:
        self.holding.pop(tp, None)
        super().__delitem__(tp)

    def pop(self, tp: TP, *default: Any) -> Any:
        self.holding.pop(tp, None)
        return super().pop(tp, *default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        changes = dict(*args, **kwargs)
        for tp in changes:
            self.holding.pop(tp, None)
        super().update(changes)


class _Consumer(driver.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_offsets = _ReadOffsets()
        self._read_offset = self._read_offsets
        #: Offsets of the records fetched per partition and not committed yet.
        self._fetched: dict[TP, set[int]] = {}
        #: Why this worker must stop without committing anything more (see :meth:`halt`).
        self.halted: str | None = None

    def halt(self, reason: str) -> None:
        """Commit nothing from now on: a batch failed in a way that is not about one article
        (a record the broker refused, a programming error).  faust acknowledges a batch whose
        body raised (``take_events`` acks in a ``finally``); with commits refused here, the
        acknowledgment never reaches Kafka, and the batch is processed again after a restart."""
        self.halted = reason

    async def _commit_offsets(self, offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        if self.halted is not None:
            log.warning("offsets not committed (%s): %s", self.halted,
                        ", ".join(f"{tp.topic}[{tp.partition}]@{o}" for tp, o in offsets.items()))
            return False
        return bool(await super()._commit_offsets(offsets, start_new_transaction=start_new_transaction))

    async def seek(self, partition: TP, offset: int) -> None:
        self._read_offsets.holding.pop(partition, None)
        await super().seek(partition, offset)

    async def rewind(self, partition: TP, offset: int) -> None:
        """Seek ``partition`` back to ``offset`` and deliver every record from there, even
        those the drain loop had already passed (see :class:`_ReadOffsets`)."""
        await self.seek(partition, offset)
        self._read_offsets.hold(partition, offset)

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _fetched_offsets(self, tp: TP) -> set[int]:
        return self._fetched.setdefault(tp, set())

    def was_fetched(self, topic: str, partition: int, offset: int) -> bool:
        """True when the broker returned a record at ``offset`` (not yet committed) to this
        consumer: a real record, not a transaction marker."""
        return offset in self._fetched_offsets(TP(topic, partition))

    def _to_message(self, tp: TP, record: Any) -> Any:
        # Every record the broker returned, until its offset is committed: a record that was
        # fetched is a real record (a transaction marker never is), so the commit must not
        # pass it before it is acknowledged (see _new_offset).
        self._fetched_offsets(tp).add(record.offset)
        return super()._to_message(tp, record)

    def _new_offset(self, tp: TP) -> int | None:
        """The offset to commit for ``tp``: after the run of consecutive acknowledged
        offsets, where the offsets of the gaps faust recorded (transaction markers, aborted
        records) count as acknowledged, but never the offset of a record that was fetched and
        not acknowledged.

        Two faults of faust's own version (``transport/consumer.py``), both measured:

        * It merges the gaps into the acknowledged offsets as a list, and a gap it records ends
          *on* the next delivered record (``_add_gap(tp, r_offset + 1, offset)``), so that
          record is counted twice; the run of consecutive numbers stops at the repeat and the
          commit stays one round behind.  With exactly-once, that round's transaction committed
          the outputs of records whose offsets it did not commit: a worker killed then repeated
          them (60-130 repeated articles per SIGKILL).  Here the offsets are a set.
        * It lets a commit pass one missing offset at the committed position (meant for a
          transaction marker there after a seek), and a gap covers the record it ends on.  A
          record faust dropped while a rebalance suspended the flow (it cancels the delivery
          and moves its read offset on) was then committed over and lost: seen once in the
          at-least-once crash test (one of 5,000, the record after the last one a killed
          worker had handled).  Here a fetched record must be acknowledged; the offset watch
          (``stream/runtime/watch.py``) then sees the commit held back and seeks back to it.
        """
        acked = self._acked[tp]
        if not acked:
            return None
        fetched = self._fetched_offsets(tp)
        max_offset = max(acked)
        gaps = self._gap[tp]
        if gaps:
            found = sorted(gaps.overlap(0, max_offset), key=lambda interval: interval.begin)
            if found:
                filled = [o for interval in found for o in range(interval.begin, interval.end)]
                acked.extend(o for o in filled if o not in fetched)
                gaps.chop(0, max(filled[-1], max_offset + 1))
        acked[:] = sorted(set(acked))
        committed = self._committed_offset[tp]
        if committed and (acked[0] - committed > 1 or (acked[0] > committed and committed in fetched)):
            return None
        run = next(consecutive_numbers(acked))
        del acked[: len(run)]
        self._acked_index[tp].difference_update(run)
        new_offset = int(run[-1]) + 1
        fetched.difference_update([o for o in fetched if o < new_offset])
        return new_offset


class _Transport(driver.Transport):
    Consumer = _Consumer


class StreamApp(faust.App):
    """faust's App with :class:`_Transport` for ``kafka://`` brokers."""

    def _new_transport(self) -> Any:
        url = self.conf.broker_consumer[0]
        if by_url(url) is driver.Transport:
            return _Transport(self.conf.broker_consumer, self)
        return super()._new_transport()
