"""stream's faust transport: the worker consumer long-polls briefly, and every producer
batches in large batches (see stream/runtime/transport.py and stream/runtime/kafka.py for the measurements)."""

from __future__ import annotations

from typing import Any

import pytest
from faust.transport.drivers import aiokafka as driver

from stream.runtime import transport
from stream.runtime.app import create_app
from stream.runtime.kafka import BATCH_BYTES, make_producer
from stream.settings import Settings


def test_the_app_uses_streams_transport() -> None:
    app = create_app(Settings())
    assert type(app.transport) is transport._Transport
    assert app.transport.Consumer is transport._Consumer


def test_worker_consumer_fetch_wait_is_short(monkeypatch: pytest.MonkeyPatch) -> None:
    class Created:
        _fetch_max_wait_ms = 1500  # faust's value

    monkeypatch.setattr(driver.AIOKafkaConsumerThread, "_create_worker_consumer",
                        lambda self, t: Created())
    consumer: Any = object.__new__(transport._ConsumerThread)._create_worker_consumer(None)
    # With 1500 ms a worker stalled ~1.4 s every ~1,200 records (stream/runtime/transport.py).
    assert consumer._fetch_max_wait_ms == transport.FETCH_MAX_WAIT_MS <= 100


@pytest.mark.asyncio
async def test_producers_batch_large() -> None:
    app = create_app(Settings())
    assert app.conf.producer_max_batch_size == BATCH_BYTES
    producer = make_producer("127.0.0.1:9")
    # aiokafka's default is 16 KiB: two to four articles per produce request.
    assert producer._message_accumulator._batch_size == BATCH_BYTES >= 256 * 1024
    assert BATCH_BYTES < 1024 * 1024  # under the broker's default message.max.bytes
    await producer.stop()


def _bookkeeping(consumer_class: Any) -> Any:
    from collections import defaultdict

    from intervaltree import IntervalTree

    consumer = object.__new__(consumer_class)
    consumer._gap = defaultdict(IntervalTree)
    consumer._acked = defaultdict(list)
    consumer._acked_index = defaultdict(set)
    consumer._committed_offset = defaultdict(lambda: None)
    consumer._fetched = {}  # made by _Consumer.__init__, which object.__new__ skips
    return consumer


def _after_markers(consumer: Any, tp: Any) -> None:
    """What faust records after a seek to offset 1024, where three transaction markers sit
    (1024-1026), once records 1027-1154 were handled: its drain loop's gap ends *on* 1027."""
    consumer._committed_offset[tp] = 1024
    consumer._gap[tp].addi(1025, 1028)
    consumer._acked[tp].extend(range(1027, 1155))
    consumer._acked_index[tp].update(range(1027, 1155))


def test_a_gap_ending_on_a_handled_record_does_not_hold_the_commit_back() -> None:
    from faust.transport.consumer import Consumer as FaustConsumer
    from faust.types import TP

    tp = TP("handoff", 0)
    theirs = _bookkeeping(driver.Consumer)  # faust's aiokafka consumer, not ours
    _after_markers(theirs, tp)
    # faust's own bookkeeping stops at the repeated 1027: the commit is one round behind
    # (with exactly-once, that round's transaction held outputs of 1028-1154 without offsets).
    assert FaustConsumer._new_offset(theirs, tp) == 1028
    ours = _bookkeeping(transport._Consumer)
    _after_markers(ours, tp)
    assert ours._new_offset(tp) == 1155
    assert ours._acked[tp] == [] and not ours._acked_index[tp]


def test_the_offset_bookkeeping_still_stops_at_a_record_not_handled() -> None:
    from faust.types import TP

    tp = TP("raw", 0)
    ours = _bookkeeping(transport._Consumer)
    ours._committed_offset[tp] = 100
    ours._acked[tp].extend([100, 101, 102, 104, 105])
    ours._acked_index[tp].update([100, 101, 102, 104, 105])
    assert ours._new_offset(tp) == 103  # 103 is not handled yet
    assert ours._acked[tp] == [104, 105]
    ours._committed_offset[tp] = 103
    ours._acked[tp].append(103)
    assert ours._new_offset(tp) == 106
    # Two missing at the committed position: nothing to commit (faust's rule).
    ours._committed_offset[tp] = 200
    ours._acked[tp].extend([202, 203])
    assert ours._new_offset(tp) is None


def test_a_fetched_record_that_was_dropped_is_never_committed_over() -> None:
    from faust.types import TP

    tp = TP("stateful", 0)
    # faust's own bookkeeping lets the commit pass one missing offset at the committed
    # position: a record faust dropped there (2431) would be lost.
    theirs = _bookkeeping(driver.Consumer)
    theirs._committed_offset[tp] = 2431
    theirs._acked[tp].extend(range(2432, 2441))
    assert driver.Consumer._new_offset(theirs, tp) == 2441
    ours = _bookkeeping(transport._Consumer)
    ours._committed_offset[tp] = 2431
    for offset in range(2431, 2441):  # the broker returned all of them
        ours._fetched_offsets(tp).add(offset)
    ours._acked[tp].extend(range(2432, 2441))
    assert ours._new_offset(tp) is None  # held at 2431 until it is handled
    ours._acked[tp].append(2431)
    assert ours._new_offset(tp) == 2441
    assert not ours._fetched_offsets(tp)  # committed offsets are forgotten


def test_a_transaction_marker_at_the_committed_offset_is_passed() -> None:
    from faust.types import TP

    tp = TP("stateful", 0)
    ours = _bookkeeping(transport._Consumer)
    ours._committed_offset[tp] = 2431  # a marker: never fetched
    ours._fetched_offsets(tp).update(range(2432, 2441))
    ours._acked[tp].extend(range(2432, 2441))
    assert ours._new_offset(tp) == 2441


def test_a_gap_never_covers_a_fetched_record_that_was_not_handled() -> None:
    from faust.types import TP

    tp = TP("stateful", 0)
    ours = _bookkeeping(transport._Consumer)
    ours._committed_offset[tp] = 100
    ours._fetched_offsets(tp).update([100, 101, 102, 105, 106])  # 103-104: a marker and an aborted record
    ours._acked[tp].extend([100, 101, 102, 106])  # 105 was dropped
    ours._gap[tp].addi(103, 106)  # faust's gap ends on the next delivered record, 105
    assert ours._new_offset(tp) == 105  # 103-104 passed, 105 not
