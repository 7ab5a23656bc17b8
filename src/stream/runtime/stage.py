"""A stage's loop: one aiokafka consumer, batches, outputs confirmed, offsets committed.

The invariant, per input partition of the stage (``articles.raw`` for stage 1, the
hand-off ``APP_ID-stateful`` for stage 2):

* **Commit after confirm.**  The offset after a batch's last record of a partition is
  committed only after every record the batch sent was acknowledged by the broker
  (:class:`~stream.runtime.outbox.Outbox`).  Batches are processed one at a time, in fetch
  order; at-least-once, batch k is confirmed and committed while batch k+1 is processed
  (pipelined), and k+1 is committed only after k.  So every record below a committed offset
  was handled.  There is no other offset bookkeeping.
* **Batch size.**  A batch takes at most ``batch_size`` records, or up to ``BATCH_GROWTH``
  times as many while the chain is light: the limit doubles after each full batch processed
  in under ``LIGHT_BATCH`` seconds and halves back after one that took over
  ``HEAVY_BATCH``.  A chain without a model then pays the per-batch costs (the broker's round
  trips, the thread hops) over more records; a chain with one keeps ``batch_size``.
* **Revocation waits.**  When partitions are revoked, the batch in flight is given
  ``revoke_timeout`` seconds to confirm and commit; past that it is abandoned and commits
  nothing (its records are processed again by the next owner).
* **A failed send fails its batch.**  Transient failures are retried (the worker reports
  not-ready meanwhile, :mod:`stream.ops.health`); permanent ones stop the worker with the
  topic and the fix; a batch whose processing fails for a reason that is not about one
  article stops the worker.  Nothing of such a batch is committed.
* **Exactly-once** (``processing_guarantee = "exactly_once"``): one transactional producer
  per assigned input partition, ``transactional.id = APP_ID-STAGE-PARTITION``, started (and
  so the previous owner's open transaction fenced and aborted) before the partition's first
  batch and before the state is restored.  A batch writes each partition's outputs, state
  changes and ``send_offsets_to_transaction`` in that partition's transaction.  Any failure
  aborts it, the partition is sought back to its committed offset, the state store is
  rebuilt, and the stage goes on: no exit, no retry of a half transaction.  A batch that
  took most of ``transaction_timeout`` is split (the next batches are half as large); a
  single record that still cannot finish in time after three tries becomes a dead letter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from ..errors import DeliveryError
from ..ops.health import Health
from ..ops.metrics import WorkerMetrics
from ..settings import Settings
from .kafka import make_producer
from .outbox import Outbox, Retry, permanent
from .security import client_options

__all__ = ["FETCH_MAX_WAIT_MS", "GiveUp", "Handler", "Stage", "StageFailed", "stage_group"]

log = logging.getLogger(__name__)

#: The longest a fetch request waits at the broker for data, in milliseconds (the batch
#: timeout bounds how long a batch waits to fill).
FETCH_MAX_WAIT_MS = 100

#: aiokafka's ``ConsumerRecord`` (aiokafka ships no types).
Record = Any
#: ``handle(outbox, records)``: process a batch and send its records through the outbox.
Handler = Callable[[Outbox, list[Record]], Awaitable[None]]


def stage_group(settings: Settings, stage: str) -> str:
    """The consumer group of a stage: ``APP_ID`` for stage 1 (``raw``), ``APP_ID-STAGE``
    for the others.  A group per stage: a rebalance of one stage (workers joining, leaving)
    does not stop the other."""
    return settings.app_id if stage == "raw" else f"{settings.app_id}-{stage}"


class StageFailed(Exception):
    """The stage cannot go on (a permanent send failure, a programming error); the worker
    stops without committing the batch."""


@dataclass
class _Batch:
    records: list[Record]
    generation: int
    ends: dict[TopicPartition, int] = field(default_factory=dict)
    started: float = 0.0


#: A full batch processed faster than this (seconds) doubles the next batches' limit, up to
#: ``BATCH_GROWTH`` x ``batch_size``; one slower than ``HEAVY_BATCH`` halves it, down to
#: ``batch_size``.
LIGHT_BATCH = 0.1
HEAVY_BATCH = 0.5
BATCH_GROWTH = 8

#: A transaction aborted after this share of the transaction timeout counts as too slow.
SLOW_TRANSACTION = 0.8
#: Aborts of a one-record batch for slowness before its record goes to the dead letters.
GIVE_UP_AFTER = 3

#: ``give_up(outbox, records, reason)``: send a dead letter for each record.
GiveUp = Callable[[Outbox, list[Any], str], Awaitable[None]]


class Stage(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no types
    """Runs ``handle`` over the records of ``topic`` in batches (see the module docstring).

    :param prepare: awaited before the first batch after an assignment, with the partitions
        now assigned (stage 2 restores its state store there).
    :param abandoned: called when a batch's changes may not have reached Kafka (the state
        store is marked dirty).
    """

    def __init__(self, name: str, topic: str, settings: Settings, handle: Handler, *,
                 health: Health, metrics: WorkerMetrics,
                 prepare: Callable[[set[TopicPartition]], Awaitable[None]] | None = None,
                 abandoned: Callable[[], None] | None = None, give_up: GiveUp | None = None) -> None:
        self.name, self.topic, self.settings = name, topic, settings
        self.handle, self.health, self.metrics = handle, health, metrics
        self.prepare, self.abandoned, self.give_up = prepare, abandoned, give_up
        self.group = stage_group(settings, name)
        self.eos = settings.processing_guarantee == "exactly_once"
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None  # at-least-once: one per stage
        self.producers: dict[int, AIOKafkaProducer] = {}  # exactly-once: one per input partition
        self.generation = 0
        self.assigned: set[TopicPartition] = set()
        self._fresh: set[TopicPartition] | None = None  # assigned, not prepared yet
        self._inflight: asyncio.Future[None] | None = None
        self._finishing: asyncio.Future[None] | None = None  # at-least-once: confirm + commit of a batch
        self._stopping = asyncio.Event()
        self.batches = 0
        #: Records per batch: ``batch_size``, more for a light chain (see :meth:`_adapt`),
        #: halved for each exactly-once batch that did not finish within the transaction
        #: timeout, doubled back after each that did.
        self.limit = settings.batch_size
        self._timeouts = 0

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until :meth:`stop`.  :raises StageFailed: the worker must stop."""
        s = self.settings
        self.consumer = AIOKafkaConsumer(
            **client_options(s.kafka), group_id=self.group, client_id=f"{s.app_id}-{self.name}",
            enable_auto_commit=False, auto_offset_reset="earliest",
            isolation_level="read_committed" if self.eos else "read_uncommitted",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS, max_partition_fetch_bytes=max(1 << 20, s.max_article_bytes + 65536),
            session_timeout_ms=int(s.session_timeout * 1000),
            heartbeat_interval_ms=int(min(3.0, s.session_timeout / 3) * 1000),
            max_poll_interval_ms=int(s.max_poll_interval * 1000),
            rebalance_timeout_ms=int(s.max_poll_interval * 1000),
        )
        await self.consumer.start()
        try:
            self.consumer.subscribe([self.topic], listener=self)
            if not self.eos:
                self.producer = await self._new_producer(None)
            while not self._stopping.is_set():
                await self._surface()
                fetched = await self.consumer.getmany(timeout_ms=int(s.batch_timeout * 1000),
                                                      max_records=self.limit)
                if self._fresh is not None:
                    await self._settle()
                    await self._retrying("preparing the assigned partitions", self._prepare)
                records = [r for tp in sorted(fetched, key=lambda tp: tp.partition) for r in fetched[tp]
                           if tp in self.assigned]
                if not records:
                    continue
                self.metrics.on_consumed(self.name, len(records))
                self._inflight = asyncio.ensure_future(self._batch(_Batch(records, self.generation)))
                try:
                    await self._keep_polling(self._inflight)
                finally:
                    self._inflight = None
            await self._settle()
        finally:
            await self._close()

    async def _retrying(self, what: str, step: Callable[[], Awaitable[None]]) -> None:
        """Run ``step`` until it succeeds, through transient failures (the broker away), with
        a backoff from 0.5 to 30 s; the worker reports not-ready meanwhile.  A permanent
        failure (authorisation refused...) stops the worker."""
        delay = 0.5
        fresh = self._fresh
        while True:
            try:
                await step()
            except (StageFailed, asyncio.CancelledError):
                raise
            except Exception as exc:
                if permanent(exc):
                    raise StageFailed(f"stage {self.name}: {what} failed: {type(exc).__name__}: {exc}") from exc
                if self._stopping.is_set():
                    raise StageFailed(f"stage {self.name}: stopped while {what}") from exc
                self.health.trouble(self.name, f"{what}: {type(exc).__name__}")
                log.warning("%s: %s failed (%s: %s); trying again in %g s", self.name, what, type(exc).__name__, exc,
                            delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                if self._fresh is None:
                    self._fresh = fresh  # _prepare took them: give them back for the next try
                continue
            self.health.trouble(self.name, None)
            return

    async def _keep_polling(self, batch: asyncio.Future[None]) -> None:
        """Wait for ``batch``; if it takes long, keep polling with every partition paused, so
        that Kafka does not count this consumer as gone (``max_poll_interval``) while a slow
        batch runs (aiokafka checks the time between ``getmany`` calls)."""
        assert self.consumer is not None
        every = max(0.5, min(5.0, self.settings.max_poll_interval / 3))
        paused: set[TopicPartition] = set()
        try:
            while True:
                done, _pending = await asyncio.wait({batch}, timeout=every)
                if done:
                    batch.result()
                    return
                paused = set(self.consumer.assignment())
                self.consumer.pause(*paused)
                got = await self.consumer.getmany(timeout_ms=0)  # nothing: all paused
                for tp, records in got.items():
                    # Assigned during this call (a rebalance): read them again with the next batch.
                    if records:
                        self.consumer.seek(tp, records[0].offset)
        finally:
            if paused:
                still = paused & set(self.consumer.assignment())
                if still:
                    self.consumer.resume(*still)

    async def _surface(self) -> None:
        """Raise the failure of the batch being finished, if it failed."""
        finishing = self._finishing
        if finishing is not None and finishing.done():
            self._finishing = None
            finishing.result()

    async def _settle(self) -> None:
        """Wait until the batch being finished is committed (or failed: raised)."""
        finishing, self._finishing = self._finishing, None
        if finishing is not None:
            await finishing

    async def stop(self) -> None:
        """Finish the batch in flight (commit it) and leave the group."""
        self._stopping.set()

    async def _close(self) -> None:
        if self.consumer is not None:
            try:
                await self.consumer.stop()  # leaves the group: the partitions move at once
            except Exception as exc:  # already gone
                log.info("%s: consumer stop: %r", self.name, exc)
        for producer in [*self.producers.values(), *([self.producer] if self.producer else [])]:
            try:
                await producer.stop()
            except Exception as exc:
                log.info("%s: producer stop: %r", self.name, exc)
        self.producers.clear()
        self.producer = None

    # -- rebalance (aiokafka awaits these) -----------------------------------------------------

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # The batch being processed, then (pipelined) the one being committed, including the
        # one the first hands over to the second meanwhile; at most revoke_timeout in all.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.revoke_timeout
        while True:
            waits = [f for f in (self._inflight, self._finishing) if f is not None and not f.done()]
            if not waits:
                break
            try:
                await asyncio.wait_for(asyncio.shield(asyncio.gather(*waits)), max(0.0, deadline - loop.time()))
            except TimeoutError:
                log.warning("%s: the batch in flight did not finish within revoke_timeout = %g s; its offsets will "
                            "not be committed (the next owner processes it again)", self.name,
                            self.settings.revoke_timeout)
                break
            except Exception:
                pass  # the batch's own failure is handled where it runs
        self.generation += 1
        self.assigned = set()
        self.health.on_revoked()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.assigned = set(assigned)
        self._fresh = set(assigned)
        self.health.on_assigned(((tp.topic, tp.partition) for tp in assigned), self.name)

    async def _prepare(self) -> None:
        """Before the first batch of an assignment: (exactly-once) a fresh transactional
        producer per partition, which fences the previous owner's; then ``prepare``."""
        fresh, self._fresh = self._fresh or set(), None
        if self.eos:
            for partition in list(self.producers):
                if TopicPartition(self.topic, partition) not in fresh:
                    await self._drop_producer(partition)
            await asyncio.gather(*(self._fence(tp.partition) for tp in fresh))
        if self.prepare is not None and fresh:
            await self.prepare(fresh)

    async def _fence(self, partition: int) -> None:
        await self._drop_producer(partition)
        self.producers[partition] = await self._new_producer(partition)

    async def _drop_producer(self, partition: int) -> None:
        producer = self.producers.pop(partition, None)
        if producer is not None:
            try:
                await producer.stop()
            except Exception as exc:
                log.info("%s: producer of partition %d: stop: %r", self.name, partition, exc)

    async def _new_producer(self, partition: int | None) -> AIOKafkaProducer:
        s = self.settings
        options: dict[str, Any] = {"max_request_size": s.topic_max_message_bytes + 65536,
                                   "client_id": f"{s.app_id}-{self.name}"}
        if partition is not None:
            options["transactional_id"] = self.transactional_id(partition)
            options["transaction_timeout_ms"] = int(s.transaction_timeout * 1000)
        producer = make_producer(s.kafka, **options)
        try:
            await producer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        return producer

    def transactional_id(self, partition: int) -> str:
        """``APP_ID-STAGE-PARTITION``: the same for every owner of the partition, so a new
        owner fences the old one."""
        return f"{self.settings.app_id}-{self.name}-{partition}"

    # -- one batch ---------------------------------------------------------------------------

    async def _send(self, topic: str, key: bytes | None, value: bytes | None,
                    headers: list[tuple[str, bytes]] | None, partition: int | None) -> asyncio.Future[Any]:
        if self.eos:
            if partition is None:
                raise ValueError("exactly-once: a record must name its input partition")
            producer = self.producers[partition]
        else:
            assert self.producer is not None
            producer = self.producer
        future: asyncio.Future[Any] = await producer.send(topic, value, key=key, headers=headers)
        return future

    async def _reset_producer(self) -> None:
        """A new producer after a transient failure (a fresh producer id: the old one may be
        stuck on a sequence the broker no longer expects)."""
        new = await self._new_producer(None)  # raises while the broker is away: the old one stays
        old, self.producer = self.producer, new
        if old is not None:
            try:
                await asyncio.wait_for(old.stop(), 5)
            except Exception as exc:
                log.info("%s: old producer stop: %r", self.name, exc)

    def _retry(self) -> Retry | None:
        if self.eos:
            return None
        return Retry(trouble=lambda reason: self.health.trouble(self.name, reason), reset=self._reset_producer,
                     recovered=lambda: self.health.trouble(self.name, None))

    async def _batch(self, batch: _Batch) -> None:
        for record in batch.records:
            tp = TopicPartition(record.topic, record.partition)
            batch.ends[tp] = max(batch.ends.get(tp, 0), record.offset + 1)
        if self.eos:
            await self._transactional_batch(batch)
            return
        box = Outbox(self._send, retry=self._retry())
        started = asyncio.get_running_loop().time()
        try:
            await self.handle(box, batch.records)
        except Exception as exc:
            self._failed(batch, exc)
        self._adapt(len(batch.records), asyncio.get_running_loop().time() - started)
        # Pipelined: this batch's records are confirmed and its offsets committed while the
        # next batch is fetched and processed; commits stay in order (the previous batch is
        # committed, or has failed, before this one's confirm starts).
        previous, self._finishing = self._finishing, None
        if previous is not None:
            await previous
        self._finishing = asyncio.ensure_future(self._finish(batch, box))

    async def _finish(self, batch: _Batch, box: Outbox) -> None:
        try:
            await box.confirm()
        except Exception as exc:
            self._failed(batch, exc)
        await self._commit(batch)

    def _adapt(self, size: int, elapsed: float) -> None:
        """The next batches' limit after one of ``size`` records processed in ``elapsed``
        seconds (see the module docstring)."""
        base = self.settings.batch_size
        if self.limit < base:  # exactly-once, after a split: back towards batch_size
            self.limit = min(base, self.limit * 2)
        elif size >= self.limit and elapsed < LIGHT_BATCH:
            self.limit = min(base * BATCH_GROWTH, self.limit * 2)
        elif elapsed > HEAVY_BATCH and self.limit > base:
            self.limit = max(base, self.limit // 2)

    def _failed(self, batch: _Batch, exc: BaseException) -> None:
        if self.abandoned is not None:
            self.abandoned()
        first = batch.records[0]
        where = f"{first.topic}[{first.partition}]@{first.offset} (+{len(batch.records) - 1} more)"
        if isinstance(exc, DeliveryError):
            reason = f"batch {where} of stage {self.name} could not be written: {exc}"
        else:
            reason = f"batch {where} of stage {self.name} failed: {type(exc).__name__}: {exc}"
        log.critical("%s; stopping the worker without committing this batch (it is processed again after a "
                     "restart)", reason, exc_info=not isinstance(exc, DeliveryError))
        raise StageFailed(reason) from exc

    async def _commit(self, batch: _Batch) -> None:
        if batch.generation != self.generation:
            log.info("%s: not committing a batch of partitions revoked meanwhile (the next owner processes it)",
                     self.name)
            return
        assert self.consumer is not None
        offsets = {tp: end for tp, end in batch.ends.items() if tp in self.assigned}
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except Exception as exc:  # a rebalance took the partitions, or the broker is away: done again
            log.warning("%s: commit of %s failed (%r); these records are processed again by the next owner of "
                        "the partitions", self.name, _offsets_text(offsets), exc)
            self.health.trouble(f"{self.name} commit", f"commit failed: {type(exc).__name__}")
            return
        self.health.trouble(f"{self.name} commit", None)
        self.batches += 1

    async def _transactional_batch(self, batch: _Batch) -> None:
        partitions = sorted({tp.partition for tp in batch.ends})
        begun: list[int] = []
        batch.started = asyncio.get_running_loop().time()
        try:
            for partition in partitions:
                await self.producers[partition].begin_transaction()
                begun.append(partition)
            box = Outbox(self._send)
            try:
                await self.handle(box, batch.records)
            except DeliveryError:
                raise
            except Exception as exc:
                await self._abort(begun)
                self._failed(batch, exc)
            handled = asyncio.get_running_loop().time() - batch.started
            await box.confirm()
            if batch.generation != self.generation:
                raise _Revoked()
            elapsed = asyncio.get_running_loop().time() - batch.started
            if elapsed > SLOW_TRANSACTION * self.settings.transaction_timeout:
                # The broker may abort it any moment: abort it ourselves, and split.
                raise TimeoutError(f"the batch took {elapsed:.1f} s of the transaction timeout of "
                                   f"{self.settings.transaction_timeout:g} s")
            for partition in partitions:
                tp = TopicPartition(self.topic, partition)
                producer = self.producers[partition]
                await producer.send_offsets_to_transaction({tp: OffsetAndMetadata(batch.ends[tp], "")}, self.group)
                await producer.commit_transaction()
                begun.remove(partition)
            self.batches += 1
            self._timeouts = 0
            self._adapt(len(batch.records), handled)
        except StageFailed:
            raise
        except Exception as exc:
            if isinstance(exc, DeliveryError) and permanent(exc):
                await self._abort(begun)
                self._failed(batch, exc)
            await self._recover(batch, begun, exc)

    async def _abort(self, partitions: list[int]) -> None:
        for partition in partitions:
            producer = self.producers.get(partition)
            if producer is None:
                continue
            try:
                await asyncio.wait_for(producer.abort_transaction(), 30)
            except Exception as exc:  # fenced, or the broker away: a new producer aborts it
                log.info("%s: abort of the transaction of partition %d: %r", self.name, partition, exc)
                await self._drop_producer(partition)

    async def _recover(self, batch: _Batch, begun: list[int], exc: BaseException) -> None:
        """Exactly-once: abort, seek back to the committed offsets, rebuild the state, go on."""
        revoked = isinstance(exc, _Revoked)
        elapsed = asyncio.get_running_loop().time() - batch.started
        slow = elapsed > SLOW_TRANSACTION * self.settings.transaction_timeout
        if not revoked:
            log.warning("%s: transaction of %s aborted after %.1f s (%s: %s); processing it again from the committed "
                        "offsets", self.name, _offsets_text(batch.ends), elapsed, type(exc).__name__, exc)
            self.health.trouble(self.name, f"transaction aborted: {type(exc).__name__}")
        if slow and not revoked:
            # Too slow for one transaction: split it, and give up on a record that alone
            # cannot finish in time (a dead letter), rather than retry it forever.
            self._timeouts += 1
            if self.limit > 1:
                self.limit = max(1, self.limit // 2)
                log.warning("%s: the batch took %.0f s of the transaction timeout of %g s: batches of %d records "
                            "from now on", self.name, elapsed, self.settings.transaction_timeout, self.limit)
            elif self._timeouts >= GIVE_UP_AFTER and self.give_up is not None:
                await self._abort(begun)
                if self.abandoned is not None:
                    self.abandoned()
                    self._fresh = set(self.assigned)  # the state is rebuilt before the next batch
                try:
                    await self._give_up(batch, elapsed)
                    return
                except Exception as failed:  # the broker away meanwhile: recover as from any abort
                    log.warning("%s: the dead letters of %s could not be written (%r)", self.name,
                                _offsets_text(batch.ends), failed)
                    begun = [p for p in begun if p in self.producers]
        await self._abort(begun)
        if self.abandoned is not None:
            self.abandoned()
        if revoked or self.consumer is None:
            return
        assert self.consumer is not None
        for tp in batch.ends:
            if tp not in self.assigned:
                continue
            committed = await self.consumer.committed(tp)
            if committed is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, committed)
        # Fresh producers (fencing whatever was left open) and a rebuilt state, as after an
        # assignment; a short pause so that a broker away is not hammered.
        await asyncio.sleep(1.0)
        self._fresh = {tp for tp in self.assigned}
        await self._retrying("recovering from an aborted transaction", self._prepare)


    async def _give_up(self, batch: _Batch, elapsed: float) -> None:
        """Exactly-once: a dead letter for each record of ``batch`` (one record that could not
        be processed within the transaction timeout), committed with its offset."""
        assert self.give_up is not None
        reason = (f"not processed within the transaction timeout of {self.settings.transaction_timeout:g} s "
                  f"(setting transaction_timeout; it took {elapsed:.0f} s in {GIVE_UP_AFTER} tries)")
        await self._fence_all(batch)
        partitions = sorted({tp.partition for tp in batch.ends})
        for partition in partitions:
            await self.producers[partition].begin_transaction()
        box = Outbox(self._send)
        await self.give_up(box, batch.records, reason)
        await box.confirm()
        for partition in partitions:
            tp = TopicPartition(self.topic, partition)
            producer = self.producers[partition]
            await producer.send_offsets_to_transaction({tp: OffsetAndMetadata(batch.ends[tp], "")}, self.group)
            await producer.commit_transaction()
        self._timeouts = 0
        self.health.trouble(self.name, None)

    async def _fence_all(self, batch: _Batch) -> None:
        for tp in batch.ends:
            if tp.partition not in self.producers:
                await self._fence(tp.partition)


class _Revoked(Exception):
    """The batch's partitions were revoked before its transaction committed."""


def _offsets_text(offsets: dict[TopicPartition, int]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]@{o}" for tp, o in sorted(offsets.items()))

