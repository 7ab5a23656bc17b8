"""Consumer positions: what a worker may commit, when it seeks a partition back, and which
records it skips as re-fetches.  The other modules ask this one.

The invariant, per input partition (``articles.raw``, ``APP_ID-stateful``):

1. **Commit.**  An offset ``C`` may be committed only when every record below ``C`` that the
   broker returned to this worker has been acknowledged, and a record is acknowledged only
   after its batch's outputs were confirmed by the broker (:mod:`stream.runtime.outbox`).
   Offsets the broker never returns as records (transaction markers, aborted records: the
   gaps faust records) count as acknowledged; a fetched record never does
   (:func:`next_commit`, used by the transport's consumer).  With exactly-once, commits
   wait until no batch is being processed (:func:`commit_between_batches`).  After a batch
   failed in a way that is not about one article, nothing more is committed at all
   (``_Consumer.halt`` in :mod:`stream.runtime.transport`).
2. **Seek back.**  A partition is sought back to its committed offset ``C`` when it has lag,
   the record at ``C`` was fetched and not handled by this worker, and either a later record
   of the partition was handled (faust dropped the one at ``C`` during a rebalance) or no
   batch of its topic has run for ``idle_after`` seconds (faust dropped the last record);
   and this has held for ``repair_after`` seconds (:class:`Repairs`, asked by the offset
   watch, :mod:`stream.runtime.watch`).  After the seek, faust's read offset is held at ``C``
   until the record at ``C`` is delivered (:class:`ReadOffsets`).
3. **Skip.**  A record whose offset this process already handled on its partition, since the
   partition was last assigned to it, is a re-fetch: its outputs exist, it is skipped and
   acknowledged with its batch (:class:`Refetches`).  A revoked partition is forgotten.

Why these rules exist (each measured; the details are at each class): faust-streaming
0.15.3 resumes fetching before it seeks to the committed offsets at a worker's start,
drops records fetched while a rebalance suspends the flow, lets a commit pass one missing
offset, and counts the record that ends a gap twice (faust-streaming issues #312, #318 and
#241 are of this family).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from typing import Any, Callable

from faust.types import TP
from faust.utils.functional import consecutive_numbers

__all__ = ["Handled", "ReadOffsets", "Refetches", "Repairs", "commit_between_batches", "next_commit"]

log = logging.getLogger(__name__)


def next_commit(acked: list[int], acked_index: Any, gaps: Any, fetched: set[int],
                committed: int | None) -> int | None:
    """The offset to commit for one partition (invariant 1), or ``None`` for no commit now:
    after the run of consecutive acknowledged offsets, where the offsets of the gaps faust
    recorded (transaction markers, aborted records) count as acknowledged, but never the
    offset of a record that was fetched and not acknowledged.

    ``acked``, ``acked_index`` and ``gaps`` are faust's (``Consumer._acked``,
    ``_acked_index``, ``_gap`` of the partition); ``fetched`` the offsets the broker returned
    and that are not committed yet; all are updated for the offsets now committed.

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
      then sees the commit held back and seeks back to it (invariant 2).
    """
    if not acked:
        return None
    max_offset = max(acked)
    if gaps:
        found = sorted(gaps.overlap(0, max_offset), key=lambda interval: interval.begin)
        if found:
            filled = [o for interval in found for o in range(interval.begin, interval.end)]
            acked.extend(o for o in filled if o not in fetched)
            gaps.chop(0, max(filled[-1], max_offset + 1))
    acked[:] = sorted(set(acked))
    if committed and (acked[0] - committed > 1 or (acked[0] > committed and committed in fetched)):
        return None
    run = next(consecutive_numbers(acked))
    del acked[: len(run)]
    acked_index.difference_update(run)
    new_offset = int(run[-1]) + 1
    fetched.difference_update([o for o in fetched if o < new_offset])
    return new_offset


class ReadOffsets(defaultdict[TP, "int | None"]):
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


class Refetches:
    """Skips records this process has already handled.

    faust's recovery resumes the fetcher before it seeks the stream partitions to their
    committed offsets (seen at every worker start): records fetched in between are processed,
    then fetched and processed again.  A record whose offset this process has already handled
    on its partition is such a re-fetch; its outputs were already produced, so it is skipped
    (and acknowledged with its batch).  The handled offsets are kept as a set, not as the
    highest one: faust can drop a record it fetched while a rebalance suspended the flow and
    deliver it again after seeking back, after later records were handled; it must then pass.
    Records redelivered to another process after a rebalance or a restart are not affected.
    """

    #: Handled offsets kept per partition; the lowest are forgotten beyond this (they are long
    #: committed: a worker commits every ``commit_interval`` seconds).
    keep = 100_000

    def __init__(self) -> None:
        self.handled: dict[tuple[str, int], set[int]] = {}
        self.skipped = 0

    def fresh(self, event: Any) -> bool:
        msg = event.message
        handled = self.handled.setdefault((msg.topic, msg.partition), set())
        if msg.offset in handled:
            self.skipped += 1
            log.info("skipped %s[%d]@%d: fetched again after it was processed by this worker",
                     msg.topic, msg.partition, msg.offset)
            return False
        handled.add(msg.offset)
        if len(handled) > self.keep:
            for offset in sorted(handled)[: self.keep // 2]:
                handled.discard(offset)
        return True

    def forget(self, tps: Any) -> None:
        """Forget the partitions ``tps`` (revoked: after they come back, they are read again
        from their committed offsets, and what this worker handled before is not a re-fetch)."""
        for tp in tps:
            self.handled.pop((tp.topic, tp.partition), None)

    def skipped_over(self, topic: str, partition: int, committed: int) -> bool:
        """True when this worker has handled records after ``committed`` but not the record
        at ``committed`` itself: faust dropped it (see :class:`Handled`)."""
        handled = self.handled.get((topic, partition))
        return handled is not None and bool(handled) and committed not in handled and max(handled) > committed


class Handled:
    """What the agents of this worker have handled, per input partition.

    faust can drop records it fetched while a rebalance suspended the flow (seen when a
    second worker joins or leaves under load: the two records at the committed offset of a
    partition that moved were never delivered, later ones were).  Its commits then stop at
    the first dropped record, and the records would only come again after a restart.  The
    worker's offset watch asks :meth:`dropped` and seeks such a partition back to its
    committed offset (``stream/runtime/worker.py``); records already handled are skipped.
    """

    def __init__(self, **by_topic: Refetches) -> None:
        self.by_topic = by_topic
        #: Batches in progress per input topic.
        self.busy: dict[str, int] = dict.fromkeys(by_topic, 0)

    def dropped(self, topic: str, partition: int, committed: int) -> bool:
        seen = self.by_topic.get(topic)
        return seen is not None and seen.skipped_over(topic, partition, committed)

    def waiting(self, topic: str, partition: int, committed: int) -> bool:
        """True when the record at ``committed`` was not handled by this worker and no batch
        of ``topic`` is in progress: when it was fetched and stays so, faust dropped it, even
        if nothing after it was handled (the last records of a partition, a worker's start)."""
        seen = self.by_topic.get(topic)
        if seen is None or self.busy.get(topic, 0):
            return False
        return committed not in seen.handled.get((topic, partition), set())


class Repairs:
    """Which partitions to seek back to their committed offset (invariant 2).

    :param handled: what this worker's agents handled.
    :param was_fetched: ``(topic, partition, offset)``: True when the broker returned a record
        at that offset to this worker (a transaction marker never is one: with exactly-once,
        the committed offset often points at one, and it is never delivered).
    :param idle_after: seconds without a batch of the topic after which a fetched, unhandled
        record at the committed offset counts as dropped although nothing after it was
        handled (a record waits in faust's take buffer at most ``batch_timeout``).
    :param repair_after: seconds the condition must hold before the seek.
    """

    def __init__(self, handled: Handled, was_fetched: Callable[[str, int, int], bool], *,
                 idle_after: float, repair_after: float):
        self.handled, self.was_fetched = handled, was_fetched
        self.idle_after, self.repair_after = idle_after, repair_after
        self._idle: dict[tuple[str, int], tuple[int, float]] = {}  # tp -> (committed, since)
        self._held: dict[tuple[str, int], tuple[int, float]] = {}  # tp -> (committed, since)

    def dropped(self, topic: str, partition: int, committed: int, now: float) -> bool:
        """True when the record at ``committed`` was fetched and dropped (not handled)."""
        if not self.was_fetched(topic, partition, committed):
            return False
        if self.handled.dropped(topic, partition, committed):
            return True  # later records were handled, not this one
        tp = (topic, partition)
        if not self.handled.waiting(topic, partition, committed):
            self._idle.pop(tp, None)
            return False
        at, since = self._idle.get(tp, (committed, now))
        if at != committed:
            since = now
        self._idle[tp] = (committed, since)
        return now - since >= self.idle_after

    def due(self, topic: str, partition: int, committed: int, end: int, now: float | None = None) -> bool:
        """True when the partition is to be sought back to ``committed`` now (then the
        condition starts over)."""
        now = time.monotonic() if now is None else now
        tp = (topic, partition)
        if end <= committed or not self.dropped(topic, partition, committed, now):
            self._held.pop(tp, None)
            return False
        since = self._held.setdefault(tp, (committed, now))
        if since[0] != committed:
            self._held[tp] = (committed, now)
            return False
        if now - since[1] >= self.repair_after:
            self._held.pop(tp, None)
            return True
        return False


def commit_between_batches(app: Any, locks: tuple[asyncio.Lock, ...]) -> None:
    """Make faust's commits (exactly-once: one transaction per input partition) wait until
    no batch is being processed, so that a transaction holds whole batches.

    The lock is taken around ``Consumer.commit``, before faust computes the offsets to commit:
    taken around the transaction commit only, a batch that finished while the commit waited
    had its outputs committed without its offsets (one batch repeated per SIGKILL)."""
    consumer: Any = app.consumer
    if getattr(consumer, "_stream_guarded", False):
        return
    commit = consumer.commit

    async def guarded(*args: Any, **kwargs: Any) -> bool:
        async with contextlib.AsyncExitStack() as stack:
            for lock in locks:
                await stack.enter_async_context(lock)
            return bool(await commit(*args, **kwargs))

    consumer.commit = guarded
    consumer._stream_guarded = True
