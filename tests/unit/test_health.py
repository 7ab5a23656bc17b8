"""Liveness tracks progress: lag with committed offsets that do not move is unhealthy."""

from __future__ import annotations

from stream.ops.metrics import WorkerMetrics
from stream.runtime.watch import Health


def test_a_partition_with_lag_and_no_commit_for_the_stall_timeout_is_not_live() -> None:
    health = Health(WorkerMetrics(), stall_timeout=30)
    health.on_assigned([("raw", 0), ("raw", 1)])
    assert health.ready
    health.observe([("raw", 0, 10, 50), ("raw", 1, 5, 5)], now=0)
    health.observe([("raw", 0, 10, 80), ("raw", 1, 5, 5)], now=29)
    assert health.live  # not yet past the timeout
    health.observe([("raw", 0, 10, 90), ("raw", 1, 5, 5)], now=31)
    assert not health.live and health.stalled[0].startswith("raw[0]: lag 80")
    health.observe([("raw", 0, 11, 90), ("raw", 1, 5, 5)], now=32)  # it moved again
    assert health.live


def test_no_lag_is_live_however_long_nothing_arrives() -> None:
    health = Health(WorkerMetrics(), stall_timeout=1)
    for now in range(0, 100, 10):
        health.observe([("raw", 0, 7, 7)], now=float(now))
    assert health.live


def test_not_ready_during_a_rebalance() -> None:
    health = Health(WorkerMetrics(), stall_timeout=1)
    assert not health.ready
    health.on_assigned([("raw", 0)])
    health.on_revoked()
    assert not health.ready
    health.on_assigned([])
    assert health.ready  # a worker with no partitions (more workers than partitions) is ready



async def test_a_partition_held_back_by_a_record_faust_dropped_is_rewound() -> None:
    from stream.runtime.app import Handled, _Refetches
    from stream.runtime.watch import OffsetWatch

    from .test_refetch import event

    seen = _Refetches()
    for offset in (10, 11, 14, 15):  # 12 and 13 never came: dropped during a rebalance
        seen.fresh(event("raw", 0, offset))
    rewound: list[tuple[str, int, int]] = []

    async def rewind(topic: str, partition: int, offset: int) -> None:
        rewound.append((topic, partition, offset))

    watch = OffsetWatch("127.0.0.1:1", "g", {"raw"}, Health(WorkerMetrics(), 60),
                        dropped=Handled(raw=seen).dropped, rewind=rewind, repair_after=10)
    await watch.repair([("raw", 0, 12, 16)], now=0)
    await watch.repair([("raw", 0, 12, 16)], now=9)
    assert rewound == []  # not before repair_after
    await watch.repair([("raw", 0, 12, 16)], now=10)
    assert rewound == [("raw", 0, 12)]
    # A committed offset whose record is simply not processed yet is left alone.
    await watch.repair([("raw", 0, 16, 20)], now=100)
    await watch.repair([("raw", 0, 16, 20)], now=200)
    assert rewound == [("raw", 0, 12)]


def test_a_taken_web_port_stops_the_worker_at_start_with_the_fix() -> None:
    import socket

    import pytest

    from stream.errors import ConfigError
    from stream.runtime.worker import _check_web_address
    from stream.settings import Settings

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"web = '127.0.0.1:{port}' cannot be used.*port 0"):
            _check_web_address(Settings(web=f"127.0.0.1:{port}"))
    _check_web_address(Settings(web=""))  # off: nothing to check
    _check_web_address(Settings(web="127.0.0.1:0"))
