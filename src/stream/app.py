"""The faust application: topics, tables and the agents that wire the pipeline to Kafka.

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
letters (``articles.dlq``).  faust acknowledges a batch's offsets only after the body of the
loop has run, i.e. after every output of the batch was handed to the producer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
from typing import Any, Callable, MutableMapping

import faust
from faust.exceptions import ProducerSendError
from faust.serializers import codecs

from .chain import collect_outputs, sanitize
from .errors import RecordError
from .kafka import BATCH_BYTES, ensure_topics
from .logs import about
from .metrics import WorkerMetrics
from .pipeline import BatchResult, Pipeline
from .plugins import PluginHost
from .records import Article, DeadLetter, decode_article, dumps, loads
from .settings import Settings
from .transport import StreamApp

__all__ = ["OrjsonCodec", "create_app", "make_table", "prepare_topics", "wire_agents"]

log = logging.getLogger(__name__)


class OrjsonCodec(codecs.Codec):
    """faust codec ``"orjson"``: JSON with orjson."""

    def _dumps(self, obj: Any) -> bytes:
        return dumps(obj)

    def _loads(self, s: bytes) -> Any:
        return loads(s)


codecs.register("orjson", OrjsonCodec())


def _broker_url(bootstrap: str) -> list[str]:
    return [f"kafka://{hp.strip()}" for hp in bootstrap.split(",") if hp.strip()]


async def prepare_topics(settings: Settings, host: PluginHost, *, stateful: bool,
                         tables: tuple[str, ...] = ()) -> list[str]:
    """Create stream's topics, the plugins' topics and the state tables' changelogs that do
    not exist yet.

    The changelogs (``APP_ID-NAME-changelog``, compacted, one partition) are created here,
    before faust starts: faust creates them itself, but a worker can join its group before
    they exist, and a table whose changelog was missing at assignment fails on first use
    (seen in CI: "Ignoring missing topic ... -alerts-changelog", then TypeErrors).
    """
    wanted = [
        (settings.topic_raw, settings.partitions, False),
        (settings.topic_enriched, settings.partitions, False),
        (settings.topic_alerts, settings.partitions, False),
        (settings.topic_dlq, settings.partitions, False),
    ]
    if stateful:
        wanted.append((settings.stateful_topic, 1, False))
    wanted += [(f"{settings.app_id}-{name}-changelog", 1, True) for name in tables]
    if settings.route_duplicates:
        wanted.append((settings.topic_duplicates, settings.partitions, False))
    wanted += [(t.name, t.partitions or settings.partitions, t.compacted) for t in host.topics()]
    return await ensure_topics(settings.broker, wanted, settings.replication_factor)


def create_app(settings: Settings) -> faust.App:
    """The faust app for ``stream worker`` (no agents yet: see :func:`wire_agents`)."""
    return StreamApp(
        settings.app_id,
        broker=_broker_url(settings.broker),
        store="memory://",
        datadir=settings.data_dir,
        web_enabled=False,
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        producer_acks=-1,
        producer_max_batch_size=BATCH_BYTES,
        producer_max_request_size=max(settings.max_record_bytes, settings.max_article_bytes) * 2 + 65536,
        consumer_auto_offset_reset="earliest",
        processing_guarantee=settings.processing_guarantee,
        broker_session_timeout=settings.session_timeout,
        broker_commit_interval=settings.commit_interval,
        broker_max_poll_interval=settings.max_poll_interval,
        broker_heartbeat_interval=min(3.0, settings.session_timeout / 3),
        stream_buffer_maxsize=max(4096, settings.batch_size * 4),
        key_serializer="raw",
        value_serializer="raw",
    )


def make_table(app: faust.App, name: str) -> MutableMapping[str, Any]:
    """A state table for a stateful processor: one partition (like ``articles.stateful``),
    keys and values in JSON (faust's json codec), backed by the compacted changelog
    ``APPID-NAME-changelog``.  ``use_partitioner`` lets a batch write to it: with one
    partition every key goes to partition 0, which the stateful stage's worker owns."""
    table: MutableMapping[str, Any] = app.Table(name, default=None, partitions=1, use_partitioner=True)
    return table


def _origin(event: Any) -> dict[str, Any]:
    msg = event.message
    value = event.value if isinstance(event.value, bytes) else (msg.value or b"")
    headers = list(msg.headers.items()) if isinstance(msg.headers, dict) else list(msg.headers or [])
    return {
        "topic": msg.topic, "partition": msg.partition, "offset": msg.offset,
        "key": base64.b64encode(msg.key).decode() if msg.key else None,
        "value": base64.b64encode(value).decode(),
        "headers": [[k, base64.b64encode(v or b"").decode()] for k, v in headers],
    }


def _origin_in(origins: dict[int, dict[str, Any]], article: Article) -> dict[str, Any]:
    return origins[id(article)]


def _event_origin(events: dict[int, Any], article: Article) -> dict[str, Any]:
    return _origin(events[id(article)])


def _unpack(origin: dict[str, Any]) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    key = base64.b64decode(origin["key"]) if origin.get("key") else None
    headers = [(k, base64.b64decode(v)) for k, v in origin.get("headers", [])]
    return key, base64.b64decode(origin["value"]), headers


class _Refetches:
    """Skips records this process has already handled.

    faust's recovery resumes the fetcher before it seeks the stream partitions to their
    committed offsets (seen at every worker start): records fetched in between are processed,
    then fetched and processed again.  A record whose offset this process has already handled
    on its partition is such a re-fetch; its outputs were already produced, so it is skipped
    (and acknowledged with its batch).  The handled offsets are kept as a set, not as the
    highest one: faust can drop a record it fetched while a rebalance suspended the flow and
    deliver it again after seeking back, after later records were handled; it must then pass.
    Records redelivered to another process after a rebalance or a restart are not affected.
    """

    #: Handled offsets kept per partition; the lowest are forgotten beyond this (they are long
    #: committed: a worker commits every ``commit_interval`` seconds).
    keep = 100_000

    def __init__(self) -> None:
        self.handled: dict[tuple[str, int], set[int]] = {}
        self.skipped = 0

    def fresh(self, event: Any) -> bool:
        msg = event.message
        handled = self.handled.setdefault((msg.topic, msg.partition), set())
        if msg.offset in handled:
            self.skipped += 1
            log.info("skipped %s[%d]@%d: fetched again after it was processed by this worker",
                     msg.topic, msg.partition, msg.offset)
            return False
        handled.add(msg.offset)
        if len(handled) > self.keep:
            for offset in sorted(handled)[: self.keep // 2]:
                handled.discard(offset)
        return True

    def skipped_over(self, topic: str, partition: int, committed: int) -> bool:
        """True when this worker has handled records after ``committed`` but not the record
        at ``committed`` itself: faust dropped it (see :class:`Handled`)."""
        handled = self.handled.get((topic, partition))
        return handled is not None and bool(handled) and committed not in handled and max(handled) > committed


class Handled:
    """What the agents of this worker have handled, per input partition.

    faust can drop records it fetched while a rebalance suspended the flow (seen when a
    second worker joins or leaves under load: the two records at the committed offset of a
    partition that moved were never delivered, later ones were).  Its commits then stop at
    the first dropped record, and the records would only come again after a restart.  The
    worker's offset watch asks :meth:`dropped` and seeks such a partition back to its
    committed offset (``stream/worker.py``); records already handled are skipped.
    """

    def __init__(self, **by_topic: _Refetches) -> None:
        self.by_topic = by_topic

    def dropped(self, topic: str, partition: int, committed: int) -> bool:
        seen = self.by_topic.get(topic)
        return seen is not None and seen.skipped_over(topic, partition, committed)


def transactional_id(app: faust.App, topic: str, partition: int) -> str:
    """The id of faust's transactional producer for an input partition (exactly-once).

    faust opens one transaction per assigned partition group member,
    ``APP_ID-GROUP-PARTITION``, and commits each input partition's offsets in it; but its
    own ``send`` picks the transaction by the partition of the *output* record (faust-streaming
    issues #177 and #517: with it, our two-stage worker published 814 of 5,000 articles twice
    after three SIGKILLs).  stream names the transaction of the input record instead.
    """
    return f"{app.conf.id}-{app.assignor.group_for_topic(topic)}-{partition}"


def _commit_between_batches(app: faust.App, locks: tuple[asyncio.Lock, ...]) -> None:
    """Make faust's commits (exactly-once: one transaction per input partition) wait until
    no batch is being processed, so that a transaction holds whole batches.

    The lock is taken around ``Consumer.commit``, before faust computes the offsets to commit:
    taken around the transaction commit only, a batch that finished while the commit waited
    had its outputs committed without its offsets (one batch repeated per SIGKILL)."""
    consumer: Any = app.consumer
    if getattr(consumer, "_stream_guarded", False):
        return
    commit = consumer.commit

    async def guarded(*args: Any, **kwargs: Any) -> bool:
        async with contextlib.AsyncExitStack() as stack:
            for lock in locks:
                await stack.enter_async_context(lock)
            return bool(await commit(*args, **kwargs))

    consumer.commit = guarded
    consumer._stream_guarded = True


def wire_agents(app: faust.App, settings: Settings, host: PluginHost, stage1: Pipeline,
                stage2: Pipeline | None, metrics: WorkerMetrics | None = None) -> Handled:
    """Define the agents of the two stages on ``app``; count what they do in ``metrics``.
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

    eos = settings.processing_guarantee == "exactly_once"
    # Exactly-once: a batch is processed, published and acknowledged under its agent's lock,
    # and faust's commits (a transaction per input partition) take both locks, so that a
    # transaction never holds part of a batch.
    locks = (asyncio.Lock(), asyncio.Lock())

    async def send(topic: str, key: bytes | None, value: bytes,
                   headers: list[tuple[str, bytes]] | None = None, tid: str | None = None) -> None:
        """Hand a record to faust's producer (aiokafka's, acks=all, idempotent).  Called
        directly rather than through ``faust.Topic.send``: that path adds a message object,
        a channel and sensor calls per record, about half of a no-op worker's time (profiled).
        faust flushes this same producer before it commits offsets, so an input offset is
        never committed before the outputs sent for it are acknowledged.

        ``tid`` (exactly-once): the transactional id of the input partition the record comes
        from (:func:`transactional_id`), whose offsets faust commits in that transaction.
        faust itself would pick the transaction of the *output* partition (see
        :func:`transactional_id`)."""
        try:
            await app.producer.send(topic, key, value, partition=None, timestamp=None, headers=headers,
                                    transactional_id=tid)
        except ProducerSendError:
            # No open transaction for the input partition: it was revoked (or this worker was
            # fenced) during the batch; its new owner processes these records again.
            log.info("not published to %s: the input partition of %s moved to another worker", topic, tid)

    async def send_dead(letter: DeadLetter, origin: dict[str, Any], tid: str | None = None) -> None:
        key, value, headers = _unpack(origin)
        letter.original = value
        letter.topic, letter.partition, letter.offset = origin["topic"], origin["partition"], origin["offset"]
        await send(settings.topic_dlq, key, dumps(letter.to_dict()), headers + letter.headers(), tid)
        m.on_dead_letter(settings.topic_dlq, letter.error_type, letter.stage, letter.article_id, letter.message)
        log.warning("article %s -> %s: %s in %s: %s", letter.article_id or "?",
                    settings.topic_dlq, letter.error_type, letter.stage, letter.message,
                    extra=about(letter.article_id))
        host.notify("stream_article_failed", dead_letter=letter)

    async def publish(result: BatchResult, origin_of: Callable[[Article], dict[str, Any]],
                      tids: dict[str, str]) -> None:
        """``origin_of``: an article's input record (called only for a dead letter); ``tids``:
        article id -> transactional id of its input partition (exactly-once), else empty."""
        out = collect_outputs(result, worker=worker, max_record_bytes=settings.max_record_bytes,
                              original={}, route_duplicates=settings.route_duplicates)
        for key, value in out.enriched:
            await send(settings.topic_enriched, key, value, tid=tids.get(key.decode()))
        for key, value in out.duplicates:
            await send(settings.topic_duplicates, key, value, tid=tids.get(key.decode()))
        m.on_published(settings.topic_enriched, len(out.enriched))
        m.on_published(settings.topic_duplicates, len(out.duplicates))
        dead_ids = {id(article) for article, _letter in out.dead}
        for article in result.articles:
            if id(article) not in dead_ids:
                m.on_article(article.dedup, article.entity_summary)
        for key, value, alert in out.alerts:
            await send(settings.topic_alerts, key, value, tid=tids.get(str(alert.get("article_id"))))
            m.on_alert(settings.topic_alerts, alert)
            host.notify("stream_alert_raised", alert=alert)
        for article, letter in out.dead:
            await send_dead(letter, origin_of(article), tids.get(article.id))

    raw_seen, handoff_seen = _Refetches(), _Refetches()
    handled = Handled(**{settings.topic_raw: raw_seen, settings.stateful_topic: handoff_seen})

    def tid_of(event: Any) -> str | None:
        return transactional_id(app, event.message.topic, event.message.partition) if eos else None

    async def batch_of_raw(events: list[Any]) -> None:
        articles: list[Article] = []
        # The event of each article; its origin (with the original bytes in base64) is built
        # only for a dead letter or the handoff to stage 2, not on the common path.
        origins: dict[int, Any] = {}
        origin_of = functools.partial(_event_origin, origins)
        tids: dict[str, str] = {}
        for event in filter(raw_seen.fresh, events):
            value = event.value if isinstance(event.value, bytes) else (event.message.value or b"")
            try:
                article = decode_article(value, max_bytes=settings.max_article_bytes)
            except RecordError as exc:
                # The record's key is the article id (stream produce keys by id), when there is one.
                key = event.message.key
                await send_dead(DeadLetter(error_type="RecordError", message=sanitize(exc.reason),
                                           stage="decode", original=value,
                                           article_id=key.decode("utf-8", "replace") if key else None),
                                _origin(event), tid_of(event))
                continue
            articles.append(article)
            origins[id(article)] = event
            if eos:
                tids[article.id] = transactional_id(app, event.message.topic, event.message.partition)
        if not articles:
            return
        result = await stage1.run(articles)
        if stage2 is None:
            await publish(result, origin_of, tids)
            return
        for failure in result.failures:
            await send_dead(DeadLetter(
                error_type=type(failure.error).__name__, message=sanitize(str(failure.error)),
                stage=failure.stage, original=b"", article_id=failure.article.id,
            ), origin_of(failure.article), tids.get(failure.article.id))
        for article in result.articles:
            await send(settings.stateful_topic, article.id.encode(), dumps(
                {"article": article.to_state(), "origin": origin_of(article)}), tid=tids.get(article.id))

    async def run_batches(stream: Any, lock: asyncio.Lock, stage: str, body: Callable[[list[Any]], Any]) -> None:
        if eos:
            _commit_between_batches(app, locks)
        # take_events exists on faust's Stream but not on its StreamT protocol.
        async for events in stream.take_events(settings.batch_size, within=settings.batch_timeout):
            m.on_consumed(stage, len(events))
            if not eos:
                await body(events)
                continue
            async with lock:
                await body(events)
                # Acknowledged here, under the lock (faust's take_events acknowledges them again,
                # a no-op), so that a commit sees the whole batch or none of it.
                for event in events:
                    await stream.ack(event)

    @app.agent(raw, name="stream.process")
    async def process(stream: faust.StreamT[bytes]) -> None:
        await run_batches(stream, locks[0], "raw", batch_of_raw)

    if stage2 is None:
        return handled
    stateful_stage = stage2

    async def batch_of_handoff(events: list[Any]) -> None:
        articles: list[Article] = []
        origins: dict[int, dict[str, Any]] = {}
        tids: dict[str, str] = {}
        for event in filter(handoff_seen.fresh, events):
            data = loads(event.value if isinstance(event.value, bytes) else event.message.value)
            article = Article.from_state(data["article"])
            articles.append(article)
            origins[id(article)] = data["origin"]
            if eos:
                tids[article.id] = transactional_id(app, event.message.topic, event.message.partition)
        if not articles:
            return
        result = await stateful_stage.run(articles)
        # The tables' changelog writes are buffered by faust (send_soon): make them
        # durable (acknowledged by the broker) before any output of this batch is
        # published, so that no worker can see an output whose state was lost.  (With
        # exactly-once they go in the transaction of the handoff partition: the table's
        # changelog has one partition, in the same partition group.)
        await app.producer.flush()
        await publish(result, functools.partial(_origin_in, origins), tids)

    @app.agent(handoff, name="stream.stateful")
    async def stateful(stream: faust.StreamT[bytes]) -> None:
        await run_batches(stream, locks[1], "stateful", batch_of_handoff)

    return handled
