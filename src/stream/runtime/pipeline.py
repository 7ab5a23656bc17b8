"""Runs a batch of articles through the ordered processors.  No Kafka here.

Both ``stream worker`` and ``stream process`` use :class:`Pipeline`, so a plugin behaves
the same in both.  Per batch, for each processor in order:

* time the call and record ``{"name", "version", "ms"}`` (ms per article) in every
  article's ``processing.plugins``;
* synchronous processors run in one dedicated thread, one call at a time, so that the
  event loop (Kafka heartbeats, the web server, the webhook dispatcher) only coordinates;
  stateful processors too (their tables are touched by that one thread only, and the
  stage reads their changes after the call);
* when ``process`` raises on a batch, it is called again with each article alone, and only
  the articles that still fail are taken out: to the dead letters (``on_error = "dlq"``)
  or passed on without this processor's enrichment (``on_error = "skip"``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, TypeVar

from ..errors import ConfigError, PluginError
from ..ops.logs import about
from ..processor import Context, Processor
from ..records import Article

__all__ = ["BatchResult", "Failure", "Pipeline", "split_stateful"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def split_stateful(processors: Sequence[Processor]) -> tuple[list[Processor], list[Processor]]:
    """``(stateless, stateful)``: the first processor with tables and all after it are the
    stateful stage (the order of the chain is kept)."""
    for n, proc in enumerate(processors):
        if proc.tables:
            return list(processors[:n]), list(processors[n:])
    return list(processors), []


@dataclass(slots=True)
class Failure:
    """An article a processor failed on."""

    article: Article
    stage: str
    error: BaseException


@dataclass(slots=True)
class BatchResult:
    """The articles that came through, in input order, and the ones that failed."""

    articles: list[Article] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


class Pipeline:
    """The ordered chain of processors.

    :param processors: already sorted (see :meth:`stream.plugins.PluginHost.processors`).
    """

    def __init__(self, processors: Sequence[Processor]):
        self.processors = list(processors)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-cpu")
        self._ready = False
        self._assigned = False
        #: Called after each processor's call on a batch with ``(name, seconds, articles)``
        #: (the worker's metrics).
        self.on_timing: Callable[[str, float, int], None] | None = None

    def setup(self, make_context: Callable[[Processor], Context]) -> None:
        """Call every processor's ``setup``.  :raises PluginError: naming the processor."""
        for proc in self.processors:
            try:
                proc.setup(make_context(proc))
            except (PluginError, ConfigError):
                raise  # already says what and where (a ConfigError names the file and line)
            except Exception as exc:
                raise PluginError(proc.name, f"setup failed: {exc}") from exc
        self._ready = True

    def close(self) -> None:
        for proc in reversed(self.processors):
            try:
                proc.close()
            except Exception:
                log.exception("processor %s failed to close", proc.name)
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _call(self, proc: Processor, articles: list[Article]) -> None:
        limit = proc.timeout * max(1, len(articles)) if proc.timeout else None
        if not inspect.iscoroutinefunction(proc.process):
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._executor, proc.process, articles)
            try:
                await asyncio.wait_for(future, limit)
            except TimeoutError:
                # The thread cannot be stopped: leave it, and give later batches a new one.
                self._executor.shutdown(wait=False)
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-cpu")
                raise TimeoutError(f"{proc.name} took longer than its limit of {limit:g}s") from None
            return
        result = proc.process(articles)  # async def: on the loop (it awaits what it does)
        if inspect.isawaitable(result):
            try:
                await asyncio.wait_for(result, limit)
            except TimeoutError:
                raise TimeoutError(f"{proc.name} took longer than its limit of {limit:g}s") from None

    async def in_thread(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in the thread of the synchronous processors: per-article CPU
        work of the stage around the processors (decoding the records, encoding the
        results) stays off the event loop too."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def assigned(self) -> None:
        """The stateful stage's partition was assigned to this worker: the processors'
        :meth:`~stream.Processor.on_assigned` run before the next batch (not now: a batch may
        be running)."""
        self._assigned = True

    async def run(self, batch: list[Article]) -> BatchResult:
        """Run ``batch`` through every processor.  Never raises for a processor's fault."""
        if not self._ready:
            raise RuntimeError("Pipeline.setup() must be called before run()")
        if self._assigned:
            self._assigned = False
            loop = asyncio.get_running_loop()
            for proc in self.processors:
                try:  # off the loop: rebuilding an index from a large table takes a while
                    await loop.run_in_executor(self._executor, proc.on_assigned)
                except Exception as exc:
                    raise PluginError(proc.name, f"on_assigned failed: {exc!r}") from exc
        alive = list(batch)
        failures: list[Failure] = []
        for proc in self.processors:
            if not alive:
                break
            start = time.perf_counter()
            try:
                await self._call(proc, alive)
                bad: list[Failure] = []
            except Exception as exc:
                bad = await self._isolate(proc, alive, exc)
            elapsed = time.perf_counter() - start
            if self.on_timing is not None:
                self.on_timing(proc.name, elapsed, len(alive))
            ms = round(elapsed * 1000 / len(alive), 3)
            entry = {"name": proc.name, "version": proc.version, "ms": ms}
            bad_ids = {id(f.article) for f in bad}
            for article in alive:
                if id(article) in bad_ids and proc.on_error == "skip":
                    article.plugins_run.append({**entry, "skipped": True})
                elif proc.name in article.skipped:
                    article.plugins_run.append({**entry, "skipped": True, "reason": article.skipped[proc.name]})
                else:
                    article.plugins_run.append(entry)
            if bad and proc.on_error == "dlq":
                failures.extend(bad)
                alive = [a for a in alive if id(a) not in bad_ids]
            elif bad:
                for f in bad:
                    log.warning(
                        "article %s: processor %s failed (%r); passed on without it",
                        f.article.id, proc.name, f.error, extra=about(f.article.id),
                    )
        return BatchResult(articles=alive, failures=failures)

    async def _isolate(
        self, proc: Processor, articles: list[Article], exc: Exception
    ) -> list[Failure]:
        """Find the articles ``proc`` fails on by calling it on each alone."""
        if len(articles) == 1:
            log.warning("processor %s failed on article %s", proc.name, articles[0].id, exc_info=exc,
                        extra=about(articles[0].id))
            return [Failure(articles[0], proc.name, exc)]
        log.info("processor %s failed on a batch of %d (%r); retrying one by one",
                 proc.name, len(articles), exc)
        bad: list[Failure] = []
        for article in articles:
            try:
                await self._call(proc, [article])
            except Exception as one:
                # The traceback goes to the log (dead letters carry a one-line message).
                log.warning("processor %s failed on article %s", proc.name, article.id, exc_info=one,
                            extra=about(article.id))
                bad.append(Failure(article, proc.name, one))
        return bad
