"""The held read offset after a rewind (stream/runtime/transport.py): faust's drain loop drops a
record below a partition's read offset, so after a seek back the records of the batch it
was delivering must not move it past the rewound records."""

from __future__ import annotations

from faust.types import TP

from stream.runtime.transport import _ReadOffsets

TP0 = TP("articles.raw", 0)


def drain(offsets: _ReadOffsets, tp: TP, delivered: list[int], incoming: list[int]) -> None:
    """faust's drain loop (transport/consumer.py ``_drain_messages``), for one partition."""
    for offset in incoming:
        read = offsets[tp]
        if read is None or offset >= read:
            delivered.append(offset)
            offsets[tp] = offset


def test_after_a_rewind_the_records_of_the_batch_in_flight_do_not_hide_the_rewound_ones() -> None:
    offsets = _ReadOffsets()
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
    offsets = _ReadOffsets()
    offsets.hold(TP0, 5)
    offsets.update({TP0: 40})  # faust's perform_seek after an assignment
    assert offsets[TP0] == 40 and not offsets.holding
    offsets.hold(TP0, 5)
    offsets.pop(TP0, None)  # revoked
    assert not offsets.holding and offsets[TP0] is None
