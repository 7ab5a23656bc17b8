"""What each stage does with a batch of records (the loop around it is
:class:`~stream.runtime.stage.Stage`).

* **stage 1** reads ``articles.raw``, decodes each record (failures go to ``articles.dlq``
  at once) and runs the stateless processors (clean, ner: the CPU-heavy part, spread over
  the partitions of ``articles.raw`` and so over the workers);
* **stage 2** reads the one-partition hand-off ``APP_ID-stateful`` and runs the stateful
  processors (dedup, alerts) with the state store (:mod:`stream.runtime.state`), so that
  every article meets the whole state, whichever worker read it first.

Without stateful processors, stage 1 publishes the results itself.  The results are
enriched records (``articles.enriched``), alerts (``alerts``, keyed by rule id) and dead
letters (``articles.dlq``), all sent through the batch's
:class:`~stream.runtime.outbox.Outbox`.  Whatever is about one article is routed here (a
dead letter); anything else escapes, and the stage stops the worker without committing.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from ..errors import RecordError
from ..ops.logs import about
from ..ops.metrics import WorkerMetrics
from ..plugins import PluginHost
from ..records import Article, DeadLetter, decode_article, dumps, encode_dead_letter, loads
from ..settings import Settings
from .chain import Outputs, collect_outputs, sanitize
from .kafka import fetch_records
from .outbox import Outbox
from .pipeline import BatchResult, Pipeline
from .state import StateStore

__all__ = ["Handlers", "make_handlers"]

log = logging.getLogger(__name__)

#: aiokafka's ``ConsumerRecord`` (aiokafka ships no types).
Record = Any

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
    def of_record(cls, record: Record) -> _Source:
        headers = [(k, v or b"") for k, v in (record.headers or ())]
        return cls(record.topic, record.partition, record.offset, record.key, record.value or b"", headers)

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


@dataclass(slots=True)
class _Inputs:
    """The articles of a batch that were read, each with its source and input partition
    (by ``id(article)``: articles are not hashable)."""

    articles: list[Article] = field(default_factory=list)
    sources: dict[int, _Source] = field(default_factory=dict)
    partitions: dict[int, int] = field(default_factory=dict)

    def add(self, article: Article, source: _Source, partition: int) -> None:
        self.articles.append(article)
        self.sources[id(article)] = source
        self.partitions[id(article)] = partition


@dataclass(frozen=True)
class Handlers:
    """The batch handlers of the two stages (``stage2`` is ``None`` without stateful
    processors)."""

    stage1: Any
    stage2: Any | None
    #: ``give_up(outbox, records, reason)`` of each stage: a dead letter per record
    #: (exactly-once, a record that cannot be processed within the transaction timeout).
    give_up1: Any = None
    give_up2: Any = None


def make_handlers(settings: Settings, host: PluginHost, stage1: Pipeline, stage2: Pipeline | None,
                  metrics: WorkerMetrics, store: StateStore | None) -> Handlers:
    """The batch handlers of both stages; count what they do in ``metrics``.

    :param store: stage 2's state store; its changes of a batch are written with the batch.
    """
    m = metrics
    stage1.on_timing = m.on_plugin
    if stage2 is not None:
        stage2.on_timing = m.on_plugin
    worker = settings.worker_id()
    eos = settings.processing_guarantee == "exactly_once"

    async def dead_letter(box: Outbox, letter: DeadLetter, source: _Source, partition: int) -> None:
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
                       partition=partition, what=f"dead letter of article {letter.article_id or '?'}",
                       then=written)

    async def fetch_missing(sources: list[_Source]) -> None:
        """Read the original records of stage-2 dead letters from their input topic."""
        missing = [s for s in sources if s.value is None]
        if not missing:
            return
        try:
            found = await fetch_records(settings.kafka, [(s.topic, s.partition, s.offset) for s in missing])
        except Exception as exc:  # the broker away: the dead letters name their source instead
            log.warning("the originals of %d dead letters could not be read (%r)", len(missing), exc)
            return
        for src in missing:
            rec = found.get((src.topic, src.partition, src.offset))
            if rec is not None:
                src.key, src.value, src.headers = rec.key, rec.value or b"", list(rec.headers)

    def encode_outputs(result: BatchResult) -> Outputs:
        return collect_outputs(result, worker=worker, max_record_bytes=settings.max_record_bytes, original={},
                               route_duplicates=settings.route_duplicates)

    async def publish(box: Outbox, pipeline: Pipeline, result: BatchResult, sources: dict[int, _Source],
                      partitions: dict[int, int]) -> None:
        """Send a processed batch's records (encoded in ``pipeline``'s thread); ``sources``
        and ``partitions`` (the input partition of each) by ``id(article)``."""
        out = await pipeline.in_thread(encode_outputs, result)
        for topic, records in ((settings.topic_enriched, out.enriched), (settings.topic_duplicates, out.duplicates)):
            for key, value, article in records:
                def published(topic: str = topic, article: Article = article) -> None:
                    m.on_published(topic, 1)
                    m.on_article(article.dedup, article.entity_summary)

                await box.send(topic, key, value, partition=partitions[id(article)],
                               what=f"article {article.id}", then=published)
        for key, value, alert, article in out.alerts:
            def raised(alert: dict[str, Any] = alert, article: Article = article) -> None:
                m.on_alert(settings.topic_alerts, alert, article.clean_text or article.text)
                host.notify("stream_alert_raised", alert=alert)

            await box.send(settings.topic_alerts, key, value, partition=partitions[id(article)],
                           what=f"alert {alert.get('alert_id')} of article {article.id}", then=raised)
        for topic, key, record, article, value in out.records:
            shown = None
            if topic == settings.topic_stories and isinstance(value, dict):
                def shown(summary: dict[str, Any] = value) -> None:  # on the dashboard once acknowledged
                    m.on_story(summary)

            await box.send(topic, key, record, partition=partitions[id(article)],
                           what=f"a {topic} record of article {article.id}", then=shown)
        await fetch_missing([sources[id(article)] for article, _letter in out.dead])
        for article, letter in out.dead:
            await dead_letter(box, letter, sources[id(article)], partitions[id(article)])

    def decode_raw(records: list[Record]) -> list[tuple[_Source, int, Article | RecordError]]:
        decoded: list[tuple[_Source, int, Article | RecordError]] = []
        for record in records:
            source = _Source.of_record(record)
            try:
                decoded.append((source, record.partition,
                                decode_article(source.value or b"", max_bytes=settings.max_article_bytes)))
            except RecordError as exc:
                decoded.append((source, record.partition, exc))
        return decoded

    def encode_handoffs(articles: list[Article], sources: dict[int, _Source]) -> list[bytes | Exception]:
        encoded: list[bytes | Exception] = []
        for article in articles:
            try:
                encoded.append(dumps({"article": article.to_state(), "source": sources[id(article)].coordinates()}))
            except Exception as exc:  # a value JSON cannot hold, put into the article by a processor
                encoded.append(exc)
        return encoded

    async def batch_of_raw(box: Outbox, records: list[Record]) -> None:
        read = _Inputs()
        for source, partition, article in await stage1.in_thread(decode_raw, records):
            if isinstance(article, RecordError):
                # The record's key is the article id (stream produce keys by id), when there is one.
                key = source.key
                await dead_letter(box, DeadLetter(error_type="RecordError", message=sanitize(article.reason),
                                                  stage="decode", original=b"",
                                                  article_id=key.decode("utf-8", "replace") if key else None),
                                  source, partition)
                continue
            read.add(article, source, partition)
        if not read.articles:
            return
        sources, partitions = read.sources, read.partitions
        result = await stage1.run(read.articles)
        if stage2 is None:
            await publish(box, stage1, result, sources, partitions)
            return
        for failure in result.failures:
            await dead_letter(box, DeadLetter(
                error_type=type(failure.error).__name__, message=sanitize(str(failure.error)),
                stage=failure.stage, original=b"", article_id=failure.article.id,
            ), sources[id(failure.article)], partitions[id(failure.article)])
        encoded = await stage1.in_thread(encode_handoffs, result.articles, sources)
        for article, value in zip(result.articles, encoded, strict=True):
            source = sources[id(article)]
            partition = partitions[id(article)]
            if isinstance(value, Exception):
                exc = value
                await dead_letter(box, DeadLetter(
                    error_type="EncodeError", stage="handoff", original=b"", article_id=article.id,
                    message=sanitize(f"the article cannot be encoded as JSON ({exc}); a processor put a value "
                                     "JSON cannot hold (such as a set or an object) into it")), source, partition)
                continue
            if len(value) > settings.max_record_bytes:
                # The enriched record would be at least as large: the same dead letter as
                # stage 2 would write for it (stage "publish").
                await dead_letter(box, DeadLetter(
                    error_type="RecordTooLarge", stage="publish", original=b"", article_id=article.id,
                    message=f"the article with its enrichment is {len(value)} bytes, over the limit of "
                            f"{settings.max_record_bytes} (setting max_record_bytes)"), source, partition)
                continue
            await box.send(settings.stateful_topic, article.id.encode(), value, partition=partition,
                           what=f"article {article.id} (hand-off to stage 2)")

    def giving_up(stage: str) -> Any:
        async def give_up(box: Outbox, records: list[Record], reason: str) -> None:
            for record in records:
                source = _Source.of_record(record)
                article_id = (record.key or b"").decode("utf-8", "replace") or None
                if stage == "stateful":
                    # Not a hand-off record: the record itself is the original.
                    with contextlib.suppress(Exception):
                        source = _Source.from_handoff(loads(record.value or b""))
                    await fetch_missing([source])
                await dead_letter(box, DeadLetter(error_type="TransactionTimeout", stage=stage, original=b"",
                                                  article_id=article_id, message=reason), source, record.partition)
        return give_up

    if stage2 is None:
        return Handlers(batch_of_raw, None, giving_up("raw"))
    stateful_stage = stage2

    def decode_handoffs(records: list[Record]) -> list[tuple[Article, _Source] | Exception]:
        decoded: list[tuple[Article, _Source] | Exception] = []
        for record in records:
            try:
                data = loads(record.value or b"")
                decoded.append((Article.from_state(data["article"]), _Source.from_handoff(data)))
            except Exception as exc:  # not a hand-off record this version can read
                decoded.append(exc)
        return decoded

    async def batch_of_handoff(box: Outbox, records: list[Record]) -> None:
        read = _Inputs()
        for record, decoded in zip(records, await stateful_stage.in_thread(decode_handoffs, records), strict=True):
            if isinstance(decoded, Exception):
                exc = decoded
                here = _Source.of_record(record)
                await dead_letter(box, DeadLetter(
                    error_type="RecordError", stage="handoff", original=b"",
                    article_id=(here.key or b"").decode("utf-8", "replace") or None,
                    message=sanitize(f"the hand-off record between the worker's stages cannot be read "
                                     f"({type(exc).__name__}: {exc})")), here, record.partition)
                continue
            article, source = decoded
            read.add(article, source, record.partition)
        if not read.articles:
            return
        sources, partitions = read.sources, read.partitions
        result = await stateful_stage.run(read.articles)
        if store is not None:
            state = store
            # The state changes of the batch go first: with at-least-once they are confirmed
            # before any output is sent, so that no output is visible whose state could be
            # lost; with exactly-once they are in the same transaction as the outputs.
            offset = str(records[-1].offset).encode()
            for topic, key, value in state.take_writes():
                def written(meta: Any, topic: str = topic) -> None:
                    state.written(topic, meta.offset)

                await box.send(topic, key, value, headers=[("stream-source-offset", offset)],
                               partition=records[-1].partition, what="state change", written=written)
            if not eos:
                await box.confirm()
        await publish(box, stateful_stage, result, sources, partitions)

    return Handlers(batch_of_raw, batch_of_handoff, giving_up("raw"), giving_up("stateful"))
