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
    """Readiness and liveness of one worker.

    Readiness is false during a rebalance and while a stage has trouble writing to Kafka
    (:meth:`trouble`: a broker away, a transaction aborted); the reasons are in
    :attr:`troubles`."""

    def __init__(self, metrics: WorkerMetrics, stall_timeout: float):
        self.metrics = metrics
        self.stall_timeout = stall_timeout
        self.assigned: set[tuple[str, int]] = set()
        self.rebalancing = True
        self.stalled: list[str] = []
        self.troubles: dict[str, str] = {}
        self._by_stage: dict[str, set[tuple[str, int]]] = {}
        self._moved: dict[tuple[str, int], tuple[int, float]] = {}  # tp -> (committed, since)
        self.checked_at = 0.0

    @property
    def ready(self) -> bool:
        return not self.rebalancing and not self.troubles

    def _gauge(self) -> None:
        self.metrics.ready_gauge.set(1 if self.ready else 0)

    def on_assigned(self, tps: Iterable[tuple[str, int]], stage: str = "") -> None:
        """``stage`` was given ``tps`` (its whole assignment)."""
        self._by_stage[stage] = set(tps)
        self.assigned = set().union(*self._by_stage.values())
        self.rebalancing = False
        self._gauge()

    def on_revoked(self) -> None:
        self.rebalancing = True
        self._gauge()

    def trouble(self, stage: str, reason: str | None) -> None:
        """``stage`` cannot write (``reason``), or can again (``None``)."""
        if reason is None:
            self.troubles.pop(stage, None)
        else:
            self.troubles[stage] = reason
        self._gauge()

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
