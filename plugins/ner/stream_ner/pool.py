"""The model in several processes (``[plugins.ner] processes``).

spaCy holds the GIL while it runs, so one worker process uses one core for NER however
many the machine has.  A :class:`ModelPool` keeps ``processes`` child processes, each with
the models loaded once (in its initializer), and runs the batches it is given
(:meth:`ModelPool.each`: the NER processor gives it a few groups of texts per process, cut
by :func:`shares`), yielding each group's ``(start, end, label)`` per text as its child
finishes it.  The children are started with ``spawn`` (the worker has threads: forking it
would copy locks held by other threads).

A child that dies (killed, out of memory, a crash in the model) breaks the pool: the call
raises :class:`ModelPoolError`, which fails that batch like any processor error (the
pipeline then retries its articles one by one), and the next call starts a new pool.  A
child whose worker died (even by SIGKILL) exits within ``PARENT_POLL`` seconds.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Iterator

__all__ = ["ModelPool", "ModelPoolError", "grouped_pipe", "usable_cores"]

#: Most characters given to the model in one ``nlp.pipe`` batch (spaCy's working memory
#: follows the characters of a batch: one 990 KB article took 2.4 GB in one batch of pieces).
BATCH_CHARS = 200_000

Span = tuple[int, int, str]
#: Seconds the children of a pool wait for each other to load the model.
START_TIMEOUT = 300.0
#: Seconds between a child's checks that its worker is alive.
PARENT_POLL = 1.0


class ModelPoolError(RuntimeError):
    """A model process died; the batch failed and the pool will be started again."""


def usable_cores(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The cores this process may use, at least 1: its CPU affinity, capped by a cgroup CPU
    quota rounded up (a container's ``--cpus``, a Kubernetes CPU limit), so that one worker
    in a container with a limit of 2 starts 2 model processes, not one per core of the host."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup)
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in cores (``cpu.max`` of cgroup v2, else
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` of v1); ``None`` when there is none."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota_us / period_us if quota_us > 0 and period_us > 0 else None
    except (OSError, ValueError):
        return None


def grouped_pipe(nlp: Any, texts: list[str], batch_size: int) -> Iterator[Any]:
    """``nlp.pipe`` over ``texts`` in groups of at most ``batch_size`` texts and
    ``BATCH_CHARS`` characters."""
    group: list[str] = []
    chars = 0
    for text in texts:
        if group and (len(group) >= batch_size or chars + len(text) > BATCH_CHARS):
            yield from nlp.pipe(group, batch_size=batch_size)
            group, chars = [], 0
        group.append(text)
        chars += len(text)
    if group:
        yield from nlp.pipe(group, batch_size=batch_size)


# -- in the child ---------------------------------------------------------------------------

_models: dict[str, str] = {}
_nlps: dict[str, Any] = {}
_batch_size = 64


def _watch_parent(parent: int) -> None:
    """Exit when the worker is gone.  A worker killed with SIGKILL closes nothing, and the
    children hold both ends of their task queue's pipe, so they would wait for work forever
    (each with a model loaded)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL)
    os._exit(0)


def _start(models: dict[str, str], default: str, batch_size: int, loaded: Any) -> None:
    global _batch_size
    from . import NerProcessor

    threading.Thread(target=_watch_parent, args=(os.getppid(),), name="stream-ner-parent", daemon=True).start()

    _models.update(models)
    _batch_size = batch_size
    _nlps[default] = NerProcessor._load(models[default])
    # Every child waits here until all have loaded the model: a child that loaded first would
    # otherwise take the start's "ready" calls, and the first batches, of the others.
    loaded.wait(START_TIMEOUT)


def _spans(language: str, texts: list[str]) -> list[list[Span]]:
    from . import NerProcessor

    nlp = _nlps.get(language)
    if nlp is None:
        nlp = _nlps[language] = NerProcessor._load(_models[language])
    return [[(e.start_char, e.end_char, e.label_) for e in doc.ents]
            for doc in grouped_pipe(nlp, texts, _batch_size)]


def _ready() -> int:
    return os.getpid()


# -- in the worker --------------------------------------------------------------------------


def shares(texts: list[str], n: int) -> list[tuple[int, int]]:
    """``texts`` cut into at most ``n`` contiguous ``(start, end)`` index ranges of about
    equal characters."""
    total = sum(len(t) for t in texts)
    out: list[tuple[int, int]] = []
    start, chars = 0, 0
    for i, text in enumerate(texts):
        chars += len(text)
        if len(out) < n - 1 and chars >= total * (len(out) + 1) / n and i + 1 < len(texts):
            out.append((start, i + 1))
            start = i + 1
    out.append((start, len(texts)))
    return out


class ModelPool:
    """``processes`` children with the models loaded."""

    def __init__(self, processes: int, models: dict[str, str], default: str, batch_size: int):
        self.processes = processes
        self._args = (dict(models), default, batch_size)
        self._executor: ProcessPoolExecutor | None = None
        self._starting: list[Future[int]] = []
        self._loaded: Any = None
        #: batches given to the children (for tests and the log)
        self.batches = 0

    def start(self, wait: bool = True) -> list[int]:
        """Start the children; with ``wait``, wait until every one has loaded the default
        model (else :meth:`spans` waits).  :return: their process ids."""
        if self._executor is None:
            context = multiprocessing.get_context("spawn")
            self._loaded = context.Barrier(self.processes)
            self._executor = ProcessPoolExecutor(
                max_workers=self.processes, mp_context=context,
                initializer=_start, initargs=(*self._args, self._loaded))
            # One call per child: the executor spawns a child for each call while none is idle.
            self._starting = [self._executor.submit(_ready) for _ in range(self.processes)]
        if wait:
            self._wait_started()
        return self.pids()

    def _wait_started(self) -> None:
        try:
            for future in self._starting:
                future.result()
        except BrokenProcessPool as exc:
            self.close()
            raise ModelPoolError(f"ner: a model process died while starting: {exc}") from exc
        self._starting = []

    @property
    def started(self) -> bool:
        return self._executor is not None

    def pids(self) -> list[int]:
        processes = getattr(self._executor, "_processes", None) or {}
        return sorted(processes)

    def each(self, language: str, batches: list[list[str]]) -> Iterator[tuple[int, list[list[Span]]]]:
        """Run each of ``batches`` in a child; yield ``(its index, the entities of each of its
        texts)`` as the children finish them, in that order."""
        self.start()
        assert self._executor is not None
        self.batches += 1
        futures: dict[Future[list[list[Span]]], int] = {}
        try:
            futures = {self._executor.submit(_spans, language, texts): n for n, texts in enumerate(batches)}
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BrokenProcessPool as exc:
            self.close()
            raise ModelPoolError(f"ner: a model process died during the batch ({exc}); the batch "
                                 f"failed and a new pool starts with the next one") from exc
        finally:
            for future in futures:
                future.cancel()  # the caller stopped early (an error): the rest is not needed

    def close(self) -> None:
        if self._executor is not None:
            self._loaded.abort()  # children still waiting for a dead one give up now
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
            self._starting = []
