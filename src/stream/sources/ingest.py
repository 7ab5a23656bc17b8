"""``stream ingest``: the sources polled as a process of their own, apart from the workers.

Guarantees (``docs/sources.md``):

* ``articles.raw`` receives an item only from a poll; the item's key is remembered (the
  entry's :class:`~stream.sources.base.Memory`, a record of the compacted topic
  ``topic_sources_seen``) only after the broker acknowledged its article, and the memory is
  written after every poll.  A restarted ingester sends nothing it remembered.  A crash
  between the acknowledgement and the memory's write repeats that one poll's items, under
  their stable ids (a replay to the workers' dedup).
* When an article is not acknowledged, the poll is forgotten, the source's own state too
  (a feed's ETag): the next poll sends it again.
* Several ingesters share the entries through Kafka: the entries are records of the
  compacted topic ``topic_sources``, spread evenly over its partitions, and the ingesters
  read it as one consumer group (``APP_ID-ingest``); each polls the entries of its
  partitions.  An ingester that takes an entry over reads the memories again first, and the
  one that gave it up finishes its poll in flight before the rebalance completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from ..errors import StreamError
from ..records import dumps, loads, make_id
from ..runtime.kafka import make_producer, read_records
from ..runtime.plan import apply_plan, topic_plan
from ..runtime.security import client_options
from ..settings import Settings
from .base import Found, Memory, Source, SourceContext, SourceError
from .config import Entry, SourcesFile
from .fetch import Fetcher
from .metrics import IngestMetrics

__all__ = ["Ingester", "PollOutcome"]

log = logging.getLogger("stream.ingest")

#: Longest wait between two polls of a failing entry (exponential backoff from ``every``).
MAX_BACKOFF = 3600.0
#: Seconds an ingester giving entries up waits for their polls in flight.
REVOKE_WAIT = 30.0


@dataclass
class PollOutcome:
    entry: str
    sent: int = 0
    result: str = "nothing_new"  # new, nothing_new, not_modified, error
    reason: str | None = None
    message: str | None = None


@dataclass
class _Owned:
    entry: Entry
    partition: int
    source: Source
    task: asyncio.Task[None] | None = None
    busy: asyncio.Lock = field(default_factory=asyncio.Lock)


class Ingester:
    """Polls the entries of a sources file and sends what is new to ``topic_raw``.

    :param settings: the validated settings (topics, Kafka, ``max_article_bytes``).
    :param sources: the sources file.
    :param kinds: the installed sources, by kind.
    """

    def __init__(self, settings: Settings, sources: SourcesFile, kinds: Mapping[str, type[Source]],
                 metrics: IngestMetrics | None = None):
        self.settings = settings
        self.file = sources
        self.kinds = dict(kinds)
        self.metrics = metrics or IngestMetrics()
        opts = sources.options
        self.fetcher = Fetcher(allow_loopback=bool(opts["allow_loopback"]), allow_networks=sources.allow_networks,
                               timeout=float(opts["timeout"]), max_bytes=int(opts["max_bytes"]),
                               per_host=int(opts["per_host"]), max_redirects=int(opts["max_redirects"]))
        self.producer = make_producer(settings.kafka)
        self.memories: dict[str, Memory] = {}
        self.owned: dict[str, _Owned] = {}
        self._slots = asyncio.Semaphore(int(opts["concurrency"]))
        self.ready = False
        # Entries are taken on only once the memories of an assignment are read: aiokafka
        # fetches the new partitions while on_partitions_assigned is still running.
        self._memories_read = False
        self.heartbeat = time.monotonic()

    # ---- topics, the entry list, the memories -------------------------------------------------
    async def prepare(self) -> None:
        s = self.settings
        await apply_plan(s, topic_plan(s, None, ["ingest"]), ["ingest"], "the ingester")
        await self.producer.start()

    async def load_memories(self) -> None:
        """Read every entry's memory (the compacted topic, to its end)."""
        memories: dict[str, Memory] = {}
        async for rec in read_records(self.settings.kafka, self.settings.topic_sources_seen, timeout=5):
            key = (rec.key or b"").decode()
            if rec.value is None:
                memories.pop(key, None)
            else:
                memories[key] = Memory.from_record(loads(rec.value))
        self.memories = memories

    async def publish_entries(self) -> tuple[int, int]:
        """Make ``topic_sources`` hold the file's entries: new and changed ones written, the
        ones no longer in the file deleted (tombstones).  A kept entry keeps its partition; a
        new one goes to the partition with the fewest.  :return: (written, deleted)."""
        topic = self.settings.topic_sources
        current: dict[str, tuple[int, bytes]] = {}
        async for rec in read_records(self.settings.kafka, topic, timeout=5):
            key = (rec.key or b"").decode()
            if rec.value is None:
                current.pop(key, None)
            else:
                current[key] = (rec.partition, rec.value)
        partitions = sorted((await self.producer.partitions_for(topic)) or {0})
        load = {p: 0 for p in partitions}
        for part, _value in current.values():
            load[part] = load.get(part, 0) + 1
        futures = []
        wanted = {e.id: e for e in self.file.entries}
        for entry_id, entry in sorted(wanted.items()):
            value = dumps({"kind": entry.kind, "key": entry.key, "config": entry.config, "file": self.file.path})
            if entry_id in current:
                part, old = current[entry_id]
                if old == value:
                    continue
            else:
                part = min(load, key=lambda p: (load[p], p))
                load[part] += 1
            futures.append(await self.producer.send(topic, value=value, key=entry_id.encode(), partition=part))
        deleted = 0
        for entry_id, (part, _value) in current.items():
            if entry_id not in wanted:
                futures.append(await self.producer.send(topic, value=None, key=entry_id.encode(), partition=part))
                deleted += 1
        await asyncio.gather(*futures)
        return len(futures) - deleted, deleted

    # ---- one poll -----------------------------------------------------------------------------
    def make_source(self, entry: Entry) -> Source:
        cls = self.kinds[entry.kind]
        context = SourceContext(self.settings, self.fetcher, logging.getLogger(f"stream.sources.{entry.kind}"),
                                self.file.options)
        return cls(entry.config, context)

    def _article(self, found: Found, entry: Entry) -> tuple[str, bytes, str]:
        article = dict(found.article)
        if not article.get("source") and entry.config.get("source"):
            article["source"] = entry.config["source"]
        if not article.get("id"):
            article["id"] = make_id(article.get("url"), article.get("text") or article.get("html") or found.key)
        value = dumps(article)
        limit = self.settings.max_article_bytes
        if len(value) > limit and article.get("text"):
            # Cut the text at a paragraph to fit (a page of a novel's length): the worker
            # takes articles up to max_article_bytes, and the broker refuses larger records.
            article["text_truncated"] = True
            text = article["text"]
            while len(value) > limit and "\n\n" in text:
                text = text[: text.rfind("\n\n", 0, max(1, len(text) - (len(value) - limit)))]
                article["text"] = text
                value = dumps(article)
            if len(value) > limit:
                article["text"] = text[: max(0, len(text) - (len(value) - limit) - 64)]
                value = dumps(article)
        return str(article["id"]), value, str(article.get("text_from") or ("html" if "html" in article else "text"))

    async def poll(self, entry: Entry, source: Source) -> PollOutcome:
        """Poll ``entry`` once: send its new items, wait for the acknowledgements, then
        remember them and write the memory."""
        memory = self.memories.setdefault(entry.id, Memory())
        before = memory.to_record()
        memory.not_modified = False
        outcome = PollOutcome(entry.id)
        futures: list[asyncio.Future[Any]] = []
        keys: list[str] = []
        kinds: list[str] = []
        try:
            async for found in source.poll(memory):
                if found.key in memory or found.key in keys:
                    continue
                ident, value, text_from = self._article(found, entry)
                futures.append(await self.producer.send(self.settings.topic_raw, value=value, key=ident.encode()))
                keys.append(found.key)
                kinds.append(text_from)
            outcome.result = "new" if keys else "not_modified" if memory.not_modified else "nothing_new"
        except SourceError as exc:
            outcome.result, outcome.reason, outcome.message = "error", exc.reason, str(exc)
        except Exception as exc:  # a source's bug: reported, and the other entries go on
            log.exception("%s: the %s source raised", entry.id, entry.kind)
            outcome.result, outcome.reason, outcome.message = "error", "crash", f"{type(exc).__name__}: {exc}"
        results = await asyncio.gather(*futures, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            # Not acknowledged: forget the whole poll (the source's state too: a feed's ETag
            # would answer 304 and hide the entries), so the next poll sends it again.
            self.memories[entry.id] = Memory.from_record(before)
            outcome.sent = sum(1 for r in results if not isinstance(r, BaseException))
            outcome.result, outcome.reason = "error", "send"
            outcome.message = f"{len(failed)} of {len(results)} articles not acknowledged: {failed[0]!r}"
            return outcome
        memory.add(keys)
        outcome.sent = len(keys)
        for text_from in kinds:
            self.metrics.text_from.labels(entry.kind, text_from).inc()
        if keys or memory.to_record() != before:
            try:
                await (await self.producer.send(self.settings.topic_sources_seen, value=dumps(memory.to_record()),
                                                key=entry.id.encode()))
            except Exception as exc:  # the articles are on the broker; a restart would repeat them
                log.error("%s: %d articles sent, but their memory was not written (%r); a restart before the next "
                          "poll sends them again", entry.id, len(keys), exc)
        return outcome

    def _report(self, entry: Entry, outcome: PollOutcome) -> None:
        state = self.metrics.entry(entry.id, entry.kind, entry.config.get("every", 300))
        self.metrics.on_poll(state, outcome.sent, outcome.result, outcome.reason, outcome.message)
        if outcome.result == "error":
            log.warning("%s: poll failed (%s): %s%s", entry.id, outcome.reason, outcome.message,
                        f"; {outcome.sent} sent before" if outcome.sent else "")
        elif outcome.sent:
            log.info("%s: %d new, acknowledged by the broker", entry.id, outcome.sent)

    # ---- --once -------------------------------------------------------------------------------
    async def run_once(self) -> list[PollOutcome]:
        """Poll every entry of the file once (at most ``concurrency`` at a time)."""
        await self.prepare()
        try:
            await self.load_memories()
            sources = {e.id: self.make_source(e) for e in self.file.entries}

            async def one(entry: Entry) -> PollOutcome:
                async with self._slots:
                    outcome = await self.poll(entry, sources[entry.id])
                self._report(entry, outcome)
                return outcome

            try:
                return list(await asyncio.gather(*(one(e) for e in self.file.entries)))
            finally:
                for source in sources.values():
                    await source.close()
        finally:
            await self.close()

    async def close(self) -> None:
        await self.producer.stop()
        await self.fetcher.close()

    # ---- the long-running ingester -----------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Publish the file's entries, join the ingesters' group, poll the entries of the
        partitions this ingester gets, until ``stop`` is set."""
        await self.prepare()
        try:
            written, deleted = await self.publish_entries()
            log.info("settings from %s", self.settings.source or "the defaults and the environment (no settings file)")
            log.info("%s: %d entries (%d written to %s, %d deleted)", self.file.path, len(self.file.entries),
                     written, self.settings.topic_sources, deleted)
            consumer = AIOKafkaConsumer(**client_options(self.settings.kafka),
                                        group_id=f"{self.settings.app_id}-ingest", enable_auto_commit=False,
                                        auto_offset_reset="earliest",
                                        session_timeout_ms=int(self.settings.session_timeout * 1000),
                                        rebalance_timeout_ms=int((REVOKE_WAIT + 30) * 1000))
            consumer.subscribe([self.settings.topic_sources], listener=_Listener(self, consumer))
            await consumer.start()
            try:
                while not stop.is_set():
                    self.heartbeat = time.monotonic()
                    batches = await consumer.getmany(timeout_ms=1000)
                    for tp, records in batches.items():
                        for rec in records:
                            if self._memories_read:  # else delivered again by the seek in _Listener
                                await self._on_entry(tp.partition, (rec.key or b"").decode(), rec.value)
            finally:
                self.ready = False
                await self._give_up(set(self.owned))
                await consumer.stop()
        finally:
            await self.close()

    async def _on_entry(self, partition: int, entry_id: str, value: bytes | None) -> None:
        old = self.owned.get(entry_id)
        if value is None:
            if old is not None:
                await self._give_up({entry_id})
            return
        data = loads(value)
        entry = Entry(data["kind"], data["key"], data["config"], 0)
        if old is not None:
            if old.entry == entry:
                return
            await self._give_up({entry_id})
        if entry.kind not in self.kinds:
            log.error("%s: no installed source reads [[%s]] (installed: %s); not polled here", entry.id, entry.kind,
                      ", ".join(sorted(self.kinds)) or "none")
            return
        owned = _Owned(entry, partition, self.make_source(entry))
        owned.task = asyncio.create_task(self._loop(owned), name=f"ingest {entry.id}")
        self.owned[entry_id] = owned
        self.metrics.entries.set(len(self.owned))
        self.metrics.entry(entry.id, entry.kind, entry.config.get("every", 300))

    async def _loop(self, owned: _Owned) -> None:
        entry = owned.entry
        every = float(entry.config.get("every", 300))
        state = self.metrics.entry(entry.id, entry.kind, every)
        delay = random.uniform(0, min(every, 2.0))  # spread the first polls
        while True:
            state.next_poll = time.time() + delay
            await asyncio.sleep(delay)
            async with self._slots, owned.busy:
                outcome = await self.poll(entry, owned.source)
            self._report(entry, outcome)
            if outcome.result == "error":
                base = min(every * 2 ** state.failures_in_a_row, max(every, MAX_BACKOFF))
            else:
                base = every
            delay = base * random.uniform(0.9, 1.1)

    async def _give_up(self, entry_ids: set[str]) -> None:
        """Stop polling ``entry_ids``: a poll in flight finishes first (up to
        :data:`REVOKE_WAIT` seconds), so its items are remembered before another ingester
        takes the entry."""
        for entry_id in entry_ids:
            owned = self.owned.pop(entry_id, None)
            if owned is None or owned.task is None:
                continue
            try:
                await asyncio.wait_for(owned.busy.acquire(), REVOKE_WAIT)
            except TimeoutError:
                log.warning("%s: its poll did not finish within %.0fs; cancelled (the next owner may send its items "
                            "again)", entry_id, REVOKE_WAIT)
            owned.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await owned.task
            if owned.busy.locked():
                owned.busy.release()
            await owned.source.close()
        self.metrics.entries.set(len(self.owned))


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, ingester: Ingester, consumer: AIOKafkaConsumer):
        self.ingester = ingester
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        parts = {tp.partition for tp in revoked}
        self.ingester.ready = False
        self.ingester._memories_read = False
        await self.ingester._give_up({i for i, o in self.ingester.owned.items() if o.partition in parts})

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # The previous owners wrote their memories before giving the entries up: read them
        # before any entry is polled (records fetched meanwhile were skipped), then read the
        # entries again from the beginning.  The protocol is eager: every entry was given up
        # in on_partitions_revoked, so no poll holds a memory replaced here.
        await self.ingester.load_memories()
        log.info("ingester: partitions %s of %s (the memories of %d entries read)",
                 sorted(tp.partition for tp in assigned), self.ingester.settings.topic_sources,
                 len(self.ingester.memories))
        self.ingester._memories_read = True
        for tp in assigned:
            await self.consumer.seek_to_beginning(tp)
        self.ingester.ready = True


def describe(outcomes: list[PollOutcome]) -> str:
    sent = sum(o.sent for o in outcomes)
    failed = [o for o in outcomes if o.result == "error"]
    line = f"{len(outcomes)} entries polled, {sent} new article{'s' if sent != 1 else ''} sent"
    if failed:
        line += f"; {len(failed)} failed: " + "; ".join(f"{o.entry} ({o.reason}: {o.message})" for o in failed)
    return line


class IngestError(StreamError):
    """``stream ingest --once``: some entries failed (named in the message)."""
