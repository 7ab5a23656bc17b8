from __future__ import annotations

from types import SimpleNamespace

from stream.app import _Refetches


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
