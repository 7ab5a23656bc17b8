"""The agents that wire the pipeline to Kafka.

Two stages (see ``docs/architecture.md``):

* **stage 1** (agent ``stream.process``) consumes ``articles.raw`` in batches
  (``stream.take_events``), decodes each record (failures go to ``articles.dlq`` at once)
  and runs the stateless processors (clean, ner: the CPU-heavy part, spread over the
  partitions of ``articles.raw`` and so over the workers);
* **stage 2** (agent ``stream.stateful``) consumes the one-partition topic
  ``articles.stateful`` and runs the stateful processors (dedup, alerts) with their faust
  Tables, so that every article meets the whole state, whichever worker read it first.

Without stateful processors, stage 1 publishes the results itself.  The results are
enriched records (``articles.enriched``), alerts (``alerts``, keyed by rule id) and dead
letters (``articles.dlq``).  A batch is acknowledged only after the broker confirmed every
output of it (:mod:`stream.runtime.outbox`); what may then be committed is the business of
:mod:`stream.runtime.positions`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import faust
from faust.exceptions import ProducerSendError

from ..errors import DeliveryError, RecordError
from ..ops.logs import about
from ..ops.metrics import WorkerMetrics
from ..plugins import PluginHost
from ..records import Article, DeadLetter, decode_article, dumps, encode_dead_letter, loads
from ..settings import Settings
from .app import ChangelogWrites, transactional_id
from .chain import collect_outputs, sanitize
from .kafka import fetch_records
from .outbox import NotSent, Outbox
from .pipeline import BatchResult, Pipeline
from .positions import Handled, Refetches, commit_between_batches

__all__ = ["wire_agents"]

log = logging.getLogger(__name__)


#: Added to a dead letter's reason when its original could not be read back.
_GONE = " (the original record could not be read from its topic: see source)"


@dataclass(slots=True)
class _Source:
    """Where an article came from: its input record's coordinates, and its key, value and
    headers when they are at hand (stage 1 has the record; stage 2 fetches it from the input
    topic only for a dead letter)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    value: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)

    @classmethod
    def of_event(cls, event: Any) -> _Source:
        msg = event.message
        value = event.value if isinstance(event.value, bytes) else (msg.value or b"")
        headers = list(msg.headers.items()) if isinstance(msg.headers, dict) else list(msg.headers or [])
        return cls(msg.topic, msg.partition, msg.offset, msg.key, value, [(k, v or b"") for k, v in headers])

    def coordinates(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}

    @classmethod
    def from_handoff(cls, data: dict[str, Any]) -> _Source:
        """From a hand-off record: ``source`` (coordinates only), or ``origin`` (written by
        stream 0.1 before this change: coordinates with the key, value and headers in base64)."""
        if "source" in data:
            src = data["source"]
            return cls(str(src["topic"]), int(src["partition"]), int(src["offset"]))
        origin = data["origin"]
        return cls(str(origin["topic"]), int(origin["partition"]), int(origin["offset"]),
                   base64.b64decode(origin["key"]) if origin.get("key") else None,
                   base64.b64decode(origin["value"]),
                   [(k, base64.b64decode(v)) for k, v in origin.get("headers", [])])


def wire_agents(app: faust.App, settings: Settings, host: PluginHost, stage1: Pipeline,
                stage2: Pipeline | None, metrics: WorkerMetrics | None = None,
                changelog: ChangelogWrites | None = None) -> Handled:
    """Define the agents of the two stages on ``app``; count what they do in ``metrics``.

    :param changelog: the state tables' changelog writes (see :func:`make_table`), confirmed
        with each stage-2 batch.
    :return: what the agents handle, for the worker's offset watch."""
    m = metrics or WorkerMetrics()
    stage1.on_timing = m.on_plugin
    if stage2 is not None:
        stage2.on_timing = m.on_plugin
    raw = app.topic(settings.topic_raw, key_type=bytes, value_type=bytes,
                    key_serializer="raw", value_serializer="raw")
    handoff = app.topic(settings.stateful_topic, partitions=1, key_serializer="raw",
                        value_serializer="raw")
    worker = settings.worker_id()
    writes = changelog or ChangelogWrites()

    eos = settings.processing_guarantee == "exactly_once"
    # Exactly-once: a batch is processed, published and acknowledged under its agent's lock,
    # and faust's commits (a transaction per input partition) take both locks, so that a
    # transaction never holds part of a batch.
    locks = (asyncio.Lock(), asyncio.Lock())

    async def producer_send(topic: str, key: bytes | None, value: bytes,
                            headers: list[tuple[str, bytes]] | None, tid: str | None) -> asyncio.Future[Any]:
        """Hand a record to faust's producer (aiokafka's, acks=all, idempotent) and return its
        delivery future.  Called directly rather than through ``faust.Topic.send``: that path
        adds a message object, a channel and sensor calls per record, about half of a no-op
        worker's time (profiled).

        ``tid`` (exactly-once): the transactional id of the input partition the record comes
        from (:func:`transactional_id`), whose offsets faust commits in that transaction."""
        try:
            future: Any = await app.producer.send(
                topic, key, value, partition=None, timestamp=None, headers=headers, transactional_id=tid)
        except ProducerSendError:
            # No open transaction for the input partition: it was revoked (or this worker was
            # fenced) during the batch; its new owner processes these records again, and
            # faust discards this worker's commit of the revoked partition.
            log.info("not published to %s: the input partition of %s moved to another worker", topic, tid)
            return NotSent.future()
        sent: asyncio.Future[Any] = future
        return sent

    async def dead_letter(box: Outbox, letter: DeadLetter, source: _Source, tid: str | None) -> None:
        letter.topic, letter.partition, letter.offset = source.topic, source.partition, source.offset
        if source.value is not None:
            letter.original = source.value
        elif not letter.message.endswith(_GONE):
            letter.message += _GONE
        headers_size = sum(len(k) + len(v) for k, v in source.headers) + 1024
        value = encode_dead_letter(letter, limit=settings.topic_max_message_bytes, headers_size=headers_size)

        def written() -> None:
            m.on_dead_letter(settings.topic_dlq, letter.error_type, letter.stage, letter.article_id, letter.message)
            log.warning("article %s -> %s: %s in %s: %s", letter.article_id or "?",
                        settings.topic_dlq, letter.error_type, letter.stage, letter.message,
                        extra=about(letter.article_id))
            host.notify("stream_article_failed", dead_letter=letter)

        await box.send(settings.topic_dlq, source.key, value, headers=source.headers + letter.headers(),
                        transactional_id=tid, what=f"dead letter of article {letter.article_id or '?'}",
                        then=written)

    async def fetch_missing(sources: list[_Source]) -> None:
        """Read the original records of stage-2 dead letters from their input topic."""
        missing = [s for s in sources if s.value is None]
        if not missing:
            return
        found = await fetch_records(settings.kafka, [(s.topic, s.partition, s.offset) for s in missing])
        for src in missing:
            rec = found.get((src.topic, src.partition, src.offset))
            if rec is not None:
                src.key, src.value, src.headers = rec.key, rec.value or b"", list(rec.headers)

    async def publish(box: Outbox, result: BatchResult, sources: dict[int, _Source],
                      tids: dict[int, str]) -> None:
        """Send a processed batch's records; ``sources`` and ``tids`` by ``id(article)``."""
        out = collect_outputs(result, worker=worker, max_record_bytes=settings.max_record_bytes,
                              original={}, route_duplicates=settings.route_duplicates)
        for topic, records in ((settings.topic_enriched, out.enriched), (settings.topic_duplicates, out.duplicates)):
            for key, value, article in records:
                def published(topic: str = topic, article: Article = article) -> None:
                    m.on_published(topic, 1)
                    m.on_article(article.dedup, article.entity_summary)

                await box.send(topic, key, value, transactional_id=tids.get(id(article)),
                               what=f"article {article.id}", then=published)
        for key, value, alert, article in out.alerts:
            def raised(alert: dict[str, Any] = alert) -> None:
                m.on_alert(settings.topic_alerts, alert)
                host.notify("stream_alert_raised", alert=alert)

            await box.send(settings.topic_alerts, key, value, transactional_id=tids.get(id(article)),
                           what=f"alert {alert.get('alert_id')} of article {article.id}", then=raised)
        await fetch_missing([sources[id(article)] for article, _letter in out.dead])
        for article, letter in out.dead:
            await dead_letter(box, letter, sources[id(article)], tids.get(id(article)))

    raw_seen, handoff_seen = Refetches(), Refetches()
    handled = Handled(**{settings.topic_raw: raw_seen, settings.stateful_topic: handoff_seen})

    async def forget_revoked(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        revoked = args[0] if args else kwargs.get("revoked", set())
        raw_seen.forget(revoked)
        handoff_seen.forget(revoked)

    revoked_signal: Any = app.on_partitions_revoked  # faust types its receivers narrower than it calls them
    revoked_signal.connect(forget_revoked)

    def tid_of(event: Any) -> str | None:
        return transactional_id(app, event.message.topic, event.message.partition) if eos else None

    async def batch_of_raw(box: Outbox, events: list[Any]) -> None:
        articles: list[Article] = []
        sources: dict[int, _Source] = {}
        tids: dict[int, str] = {}
        for event in filter(raw_seen.fresh, events):
            source = _Source.of_event(event)
            tid = tid_of(event)
            try:
                article = decode_article(source.value or b"", max_bytes=settings.max_article_bytes)
            except RecordError as exc:
                # The record's key is the article id (stream produce keys by id), when there is one.
                key = source.key
                await dead_letter(box, DeadLetter(error_type="RecordError", message=sanitize(exc.reason),
                                                  stage="decode", original=b"",
                                                  article_id=key.decode("utf-8", "replace") if key else None),
                                  source, tid)
                continue
            articles.append(article)
            sources[id(article)] = source
            if tid is not None:
                tids[id(article)] = tid
        if not articles:
            return
        result = await stage1.run(articles)
        if stage2 is None:
            await publish(box, result, sources, tids)
            return
        for failure in result.failures:
            await dead_letter(box, DeadLetter(
                error_type=type(failure.error).__name__, message=sanitize(str(failure.error)),
                stage=failure.stage, original=b"", article_id=failure.article.id,
            ), sources[id(failure.article)], tids.get(id(failure.article)))
        for article in result.articles:
            source = sources[id(article)]
            tid = tids.get(id(article))
            try:
                value = dumps({"article": article.to_state(), "source": source.coordinates()})
            except Exception as exc:  # a value JSON cannot hold, put into the article by a processor
                await dead_letter(box, DeadLetter(
                    error_type="EncodeError", stage="handoff", original=b"", article_id=article.id,
                    message=sanitize(f"the article cannot be encoded as JSON ({exc}); a processor put a value "
                                     "JSON cannot hold (such as a set or an object) into it")), source, tid)
                continue
            if len(value) > settings.max_record_bytes:
                # The enriched record would be at least as large: the same dead letter as
                # stage 2 would write for it (stage "publish").
                await dead_letter(box, DeadLetter(
                    error_type="RecordTooLarge", stage="publish", original=b"", article_id=article.id,
                    message=f"the article with its enrichment is {len(value)} bytes, over the limit of "
                            f"{settings.max_record_bytes} (setting max_record_bytes)"), source, tid)
                continue
            await box.send(settings.stateful_topic, article.id.encode(), value, transactional_id=tid,
                           what=f"article {article.id} (hand-off to stage 2)")

    # At-least-once: a commit after every batch (coalesced: one in flight at a time), not only
    # every commit_interval, so that a crash repeats the batches in flight, not a second of
    # work (measured in the crash test: see docs/operations.md "Guarantees").
    commit_wanted = asyncio.Event()
    committer: list[asyncio.Future[None]] = []

    async def commit_loop() -> None:
        while True:
            await commit_wanted.wait()
            commit_wanted.clear()
            await app.consumer.commit()

    def commit_soon() -> None:
        commit_wanted.set()
        if committer and not committer[0].done():
            return
        if committer and not committer[0].cancelled() and committer[0].exception() is not None:
            log.warning("commit after a batch failed (%r); faust's timer commits too", committer[0].exception())
        committer[:] = [asyncio.ensure_future(commit_loop())]

    async def run_batches(stream: Any, lock: asyncio.Lock, stage: str,
                          body: Callable[[Outbox, list[Any]], Awaitable[None]]) -> None:
        if eos:
            commit_between_batches(app, locks)
        # take_events exists on faust's Stream but not on its StreamT protocol.
        async for events in stream.take_events(settings.batch_size, within=settings.batch_timeout):
            m.on_consumed(stage, len(events))
            topic = events[0].message.topic
            handled.busy[topic] = handled.busy.get(topic, 0) + 1
            try:
                await run_batch(stream, lock, stage, body, events)
            finally:
                handled.busy[topic] -= 1

    async def run_batch(stream: Any, lock: asyncio.Lock, stage: str,
                        body: Callable[[Outbox, list[Any]], Awaitable[None]], events: list[Any]) -> None:
        if not eos:
            await _guarded(app, stage, body, events)
            # Acknowledged now (take_events acknowledges them again, a no-op), then committed.
            for event in events:
                await stream.ack(event)
            commit_soon()
            return
        async with lock:
            await _guarded(app, stage, body, events)
            # Acknowledged here, under the lock (faust's take_events acknowledges them again,
            # a no-op), so that a commit sees the whole batch or none of it.
            for event in events:
                await stream.ack(event)

    async def _guarded(app: faust.App, stage: str, body: Callable[[Outbox, list[Any]], Awaitable[None]],
                       events: list[Any]) -> None:
        """Run one batch and confirm every record it sent.  Whatever is about one article was
        routed by ``body`` (dead letters); anything else that escapes (a record the broker
        refused, a programming error) stops the worker without committing this batch: faust
        would acknowledge a batch whose body raised, and go on with the next one."""
        box = Outbox(producer_send)
        try:
            await body(box, events)
            await box.confirm()
        except Exception as exc:
            first = events[0].message
            where = f"{first.topic}[{first.partition}]@{first.offset} (+{len(events) - 1} more)"
            reason = f"batch {where} of stage {stage} failed: {type(exc).__name__}: {sanitize(str(exc), 1000)}"
            consumer: Any = app.consumer
            consumer.halt(reason)
            log.critical("%s; stopping the worker without committing this batch (it is processed again "
                         "after a restart)", reason, exc_info=not isinstance(exc, DeliveryError))
            await app.crash(exc)
            raise

    @app.agent(raw, name="stream.process")
    async def process(stream: faust.StreamT[bytes]) -> None:
        await run_batches(stream, locks[0], "raw", batch_of_raw)

    if stage2 is None:
        return handled
    stateful_stage = stage2

    async def batch_of_handoff(box: Outbox, events: list[Any]) -> None:
        articles: list[Article] = []
        sources: dict[int, _Source] = {}
        tids: dict[int, str] = {}
        for event in filter(handoff_seen.fresh, events):
            tid = tid_of(event)
            value = event.value if isinstance(event.value, bytes) else (event.message.value or b"")
            try:
                data = loads(value)
                article = Article.from_state(data["article"])
                source = _Source.from_handoff(data)
            except Exception as exc:  # not a hand-off record this version can read
                here = _Source.of_event(event)
                await dead_letter(box, DeadLetter(
                    error_type="RecordError", stage="handoff", original=b"",
                    article_id=(here.key or b"").decode("utf-8", "replace") or None,
                    message=sanitize(f"the hand-off record between the worker's stages cannot be read "
                                     f"({type(exc).__name__}: {exc})")), here, tid)
                continue
            articles.append(article)
            sources[id(article)] = source
            if tid is not None:
                tids[id(article)] = tid
        if not articles:
            return
        writes.take()
        result = await stateful_stage.run(articles)
        # The tables' changelog writes are buffered by faust (send_soon): have them sent and
        # answered before any output of this batch is published, so that no worker can see an
        # output whose state was lost; they are confirmed with the outputs.  (With exactly-once
        # they go in the transaction of the handoff partition: the table's changelog has one
        # partition, in the same partition group.)
        await app.producer.flush()
        for future in writes.take():
            box.watch(future, "changelog", "state table write")
        await publish(box, result, sources, tids)

    async def stateful_assigned(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned = args[0] if args else kwargs.get("assigned", set())
        if any(tp.topic == settings.stateful_topic for tp in assigned):
            stateful_stage.assigned()

    assigned_signal: Any = app.on_partitions_assigned
    assigned_signal.connect(stateful_assigned)

    @app.agent(handoff, name="stream.stateful")
    async def stateful(stream: faust.StreamT[bytes]) -> None:
        await run_batches(stream, locks[1], "stateful", batch_of_handoff)

    return handled
