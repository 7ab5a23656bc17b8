"""Readiness and liveness of a worker.

Liveness tracks progress, not just the process: a worker whose assigned input partitions
have lag while their committed offsets have not moved for ``stall_timeout`` seconds is not
live (a known way faust workers fail: the process runs, the agent is stuck).  Readiness is
false until the worker has joined its group and has its partitions (the plugins, and with
them the model, are set up before the worker connects), and during a rebalance.  The
offset watch (:mod:`stream.runtime.watch`) feeds it.
"""

from __future__ import annotations

import time
from typing import Iterable

from .metrics import WorkerMetrics

__all__ = ["Health"]


class Health:
    """Readiness and liveness of one worker."""

    def __init__(self, metrics: WorkerMetrics, stall_timeout: float):
        self.metrics = metrics
        self.stall_timeout = stall_timeout
        self.assigned: set[tuple[str, int]] = set()
        self.ready = False
        self.rebalancing = True
        self.stalled: list[str] = []
        self._moved: dict[tuple[str, int], tuple[int, float]] = {}  # tp -> (committed, since)
        self.checked_at = 0.0

    def on_assigned(self, tps: Iterable[tuple[str, int]]) -> None:
        self.assigned = set(tps)
        self.rebalancing = False
        self.ready = True
        self.metrics.ready_gauge.set(1)

    def on_revoked(self) -> None:
        self.rebalancing = True
        self.ready = False
        self.metrics.ready_gauge.set(0)

    def observe(self, rows: list[tuple[str, int, int, int]], now: float | None = None) -> None:
        """``(topic, partition, committed, end)`` per assigned input partition."""
        now = time.monotonic() if now is None else now
        stalled = []
        for topic, partition, committed, end in rows:
            tp = (topic, partition)
            last = self._moved.get(tp)
            if last is None or last[0] != committed or end <= committed:
                self._moved[tp] = (committed, now)
            elif now - last[1] > self.stall_timeout:
                stalled.append(f"{topic}[{partition}]: lag {end - committed}, committed offset {committed} "
                               f"unchanged for {now - last[1]:.0f}s")
        self.stalled = stalled
        self.checked_at = now
        self.metrics.live_gauge.set(0 if stalled else 1)

    @property
    def live(self) -> bool:
        return not self.stalled
