from __future__ import annotations

from types import SimpleNamespace

from stream.runtime.app import _Refetches


def event(topic: str, partition: int, offset: int) -> SimpleNamespace:
    return SimpleNamespace(message=SimpleNamespace(topic=topic, partition=partition, offset=offset))


def test_a_record_fetched_again_after_processing_is_skipped_per_partition() -> None:
    seen = _Refetches()
    first = [event("raw", 0, 5), event("raw", 0, 6), event("raw", 1, 2)]
    assert [seen.fresh(e) for e in first] == [True, True, True]
    # faust's recovery seeks back to the committed offset: the same records come again
    again = [event("raw", 0, 5), event("raw", 0, 6), event("raw", 0, 7), event("raw", 1, 2), event("raw", 1, 3)]
    assert [seen.fresh(e) for e in again] == [False, False, True, False, True]
    assert seen.skipped == 3


def test_a_record_dropped_by_faust_and_fetched_again_passes() -> None:
    # faust drops a record fetched while a rebalance suspends the flow (offset 6 here) and
    # delivers it again after seeking back to the committed offset: it was never handled.
    seen = _Refetches()
    assert [seen.fresh(e) for e in (event("raw", 0, 5), event("raw", 0, 7))] == [True, True]
    again = [event("raw", 0, 5), event("raw", 0, 6), event("raw", 0, 7), event("raw", 0, 8)]
    assert [seen.fresh(e) for e in again] == [False, True, False, True]


def test_the_last_record_not_handled_while_no_batch_runs_counts_as_waiting() -> None:
    from stream.runtime.app import Handled

    seen = _Refetches()
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
    from faust.types import TP

    seen = _Refetches()
    assert seen.fresh(event("raw", 0, 4)) and seen.fresh(event("raw", 1, 4))
    seen.forget({TP("raw", 0)})
    assert seen.fresh(event("raw", 0, 4))  # not a re-fetch once the partition came back
    assert not seen.fresh(event("raw", 1, 4))
