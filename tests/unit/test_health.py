"""Liveness tracks progress: lag with committed offsets that do not move is unhealthy."""

from __future__ import annotations

from stream.ops.health import Health
from stream.ops.metrics import WorkerMetrics


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
