"""The consumer positions (stream/runtime/positions.py): re-fetches skipped, records faust
dropped repaired, the read offset held after a rewind.  The commit rule (next_commit) is
tested through the consumer in test_transport.py."""

from __future__ import annotations

from types import SimpleNamespace

from faust.types import TP

from stream.runtime.positions import Handled, ReadOffsets, Refetches, Repairs


def event(topic: str, partition: int, offset: int) -> SimpleNamespace:
    return SimpleNamespace(message=SimpleNamespace(topic=topic, partition=partition, offset=offset))


def test_a_record_fetched_again_after_processing_is_skipped_per_partition() -> None:
    seen = Refetches()
    first = [event("raw", 0, 5), event("raw", 0, 6), event("raw", 1, 2)]
    assert [seen.fresh(e) for e in first] == [True, True, True]
    # faust's recovery seeks back to the committed offset: the same records come again
    again = [event("raw", 0, 5), event("raw", 0, 6), event("raw", 0, 7), event("raw", 1, 2), event("raw", 1, 3)]
    assert [seen.fresh(e) for e in again] == [False, False, True, False, True]
    assert seen.skipped == 3


def test_a_record_dropped_by_faust_and_fetched_again_passes() -> None:
    # faust drops a record fetched while a rebalance suspends the flow (offset 6 here) and
    # delivers it again after seeking back to the committed offset: it was never handled.
    seen = Refetches()
    assert [seen.fresh(e) for e in (event("raw", 0, 5), event("raw", 0, 7))] == [True, True]
    again = [event("raw", 0, 5), event("raw", 0, 6), event("raw", 0, 7), event("raw", 0, 8)]
    assert [seen.fresh(e) for e in again] == [False, True, False, True]


def test_the_last_record_not_handled_while_no_batch_runs_counts_as_waiting() -> None:
    seen = Refetches()
    handled = Handled(raw=seen)
    assert [seen.fresh(e) for e in (event("raw", 0, 0), event("raw", 0, 1))] == [True, True]
    # Offset 2 was fetched and dropped by faust at a start: nothing after it was handled,
    # so "later ones were handled" cannot tell; it is waiting, unless a batch is running.
    assert not handled.dropped("raw", 0, 2)
    assert handled.waiting("raw", 0, 2)
    handled.busy["raw"] = 1
    assert not handled.waiting("raw", 0, 2)  # maybe in the batch being processed
    handled.busy["raw"] = 0
    assert not handled.waiting("raw", 0, 1)  # handled


def test_a_revoked_partition_is_forgotten() -> None:


    seen = Refetches()
    assert seen.fresh(event("raw", 0, 4)) and seen.fresh(event("raw", 1, 4))
    seen.forget({TP("raw", 0)})
    assert seen.fresh(event("raw", 0, 4))  # not a re-fetch once the partition came back
    assert not seen.fresh(event("raw", 1, 4))


TP0 = TP("articles.raw", 0)


def drain(offsets: ReadOffsets, tp: TP, delivered: list[int], incoming: list[int]) -> None:
    """faust's drain loop (transport/consumer.py ``_drain_messages``), for one partition."""
    for offset in incoming:
        read = offsets[tp]
        if read is None or offset >= read:
            delivered.append(offset)
            offsets[tp] = offset


def test_after_a_rewind_the_records_of_the_batch_in_flight_do_not_hide_the_rewound_ones() -> None:
    offsets = ReadOffsets()
    delivered: list[int] = []
    drain(offsets, TP0, delivered, [10, 11, 12])
    offsets.hold(TP0, 5)  # the watch seeks back to 5 (faust dropped it)
    drain(offsets, TP0, delivered, [13, 14])  # fetched before the seek
    drain(offsets, TP0, delivered, [5, 6, 7])  # fetched again from the rewind point
    assert delivered == [10, 11, 12, 13, 14, 5, 6, 7]
    assert offsets[TP0] == 7 and not offsets.holding


def test_without_the_hold_faust_drops_the_rewound_records() -> None:
    plain: dict[TP, int | None] = {}
    delivered: list[int] = []
    for offset in [13, 14, 5, 6, 7]:  # the same sequence after a plain seek to 5
        read = plain.get(TP0, 5)
        if offset >= read:
            delivered.append(offset)
            plain[TP0] = offset
    assert delivered == [13, 14]  # 5, 6, 7 dropped: the fault the hold repairs


def test_any_other_seek_or_a_revocation_releases_the_hold() -> None:
    offsets = ReadOffsets()
    offsets.hold(TP0, 5)
    offsets.update({TP0: 40})  # faust's perform_seek after an assignment
    assert offsets[TP0] == 40 and not offsets.holding
    offsets.hold(TP0, 5)
    offsets.pop(TP0, None)  # revoked
    assert not offsets.holding and offsets[TP0] is None


async def test_a_partition_held_back_by_a_record_faust_dropped_is_rewound() -> None:
    from stream.ops.health import Health
    from stream.ops.metrics import WorkerMetrics
    from stream.runtime.watch import OffsetWatch

    seen = Refetches()
    for offset in (10, 11, 14, 15):  # 12 and 13 never came: dropped during a rebalance
        seen.fresh(event("raw", 0, offset))
    rewound: list[tuple[str, int, int]] = []

    async def rewind(topic: str, partition: int, offset: int) -> None:
        rewound.append((topic, partition, offset))

    fetched = {10, 11, 12, 13, 14, 15}  # 16 not yet
    repairs = Repairs(Handled(raw=seen), lambda t, p, offset: offset in fetched, idle_after=2, repair_after=10)
    watch = OffsetWatch("127.0.0.1:1", "g", {"raw"}, Health(WorkerMetrics(), 60), repairs=repairs, rewind=rewind)
    await watch.repair([("raw", 0, 12, 16)], now=0)
    await watch.repair([("raw", 0, 12, 16)], now=9)
    assert rewound == []  # not before repair_after
    await watch.repair([("raw", 0, 12, 16)], now=10)
    assert rewound == [("raw", 0, 12)]
    # A committed offset whose record was not fetched yet is left alone.
    await watch.repair([("raw", 0, 16, 20)], now=100)
    await watch.repair([("raw", 0, 16, 20)], now=200)
    assert rewound == [("raw", 0, 12)]

def test_the_last_record_fetched_and_never_delivered_is_repaired_after_the_idle_time() -> None:
    # Nothing after offset 2 was handled (the end of the partition, a worker's start), so
    # "later ones were handled" cannot tell: it counts as dropped once no batch of its topic
    # ran for idle_after seconds, and is sought back repair_after seconds later.
    seen = Refetches()
    handled = Handled(raw=seen)
    for offset in (0, 1):
        seen.fresh(event("raw", 0, offset))
    repairs = Repairs(handled, lambda t, p, offset: offset == 2, idle_after=2, repair_after=0.5)
    assert not repairs.due("raw", 0, 2, 3, now=0)
    assert not repairs.due("raw", 0, 2, 3, now=1.9)  # maybe still in faust's take buffer
    handled.busy["raw"] = 1
    assert not repairs.due("raw", 0, 2, 3, now=5)  # maybe in the batch being processed
    handled.busy["raw"] = 0
    assert not repairs.due("raw", 0, 2, 3, now=6)
    assert not repairs.due("raw", 0, 2, 3, now=8.1)  # idle for 2 s: held from now
    assert repairs.due("raw", 0, 2, 3, now=8.6)
    assert not repairs.due("raw", 0, 3, 3, now=20)  # no lag: nothing to repair
    # A transaction marker at the committed offset is never fetched: never "dropped".
    markers = Repairs(handled, lambda t, p, offset: False, idle_after=0, repair_after=0)
    assert not markers.due("raw", 0, 2, 5, now=100) and not markers.due("raw", 0, 2, 5, now=200)
