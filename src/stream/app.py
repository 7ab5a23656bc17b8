"""The faust application: topics and the agent that wires the pipeline to Kafka.

One agent consumes ``articles.raw`` in batches (``stream.take_events``), decodes each
record (failures go to ``articles.dlq`` at once), runs the chain on the rest, and publishes
enriched records to ``articles.enriched``, alerts to ``alerts`` (keyed by rule id) and dead
letters to ``articles.dlq``.  Offsets of a batch are acknowledged by faust only after the
body of the loop has run, i.e. after every output of the batch was handed to the producer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from faust.serializers import codecs

from .chain import collect_outputs, sanitize
from .errors import RecordError
from .kafka import ensure_topics
from .pipeline import Pipeline
from .plugins import PluginHost
from .records import Article, DeadLetter, decode_article, dumps, loads
from .settings import Settings

__all__ = ["OrjsonCodec", "create_app", "prepare_topics"]

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


async def prepare_topics(settings: Settings, host: PluginHost) -> list[str]:
    """Create stream's topics and the plugins' topics that do not exist yet."""
    wanted = [
        (settings.topic_raw, settings.partitions, False),
        (settings.topic_enriched, settings.partitions, False),
        (settings.topic_alerts, settings.partitions, False),
        (settings.topic_dlq, settings.partitions, False),
    ]
    wanted += [(t.name, t.partitions or settings.partitions, t.compacted) for t in host.topics()]
    return await ensure_topics(settings.broker, wanted, settings.replication_factor)


def create_app(settings: Settings, host: PluginHost, pipeline: Pipeline) -> faust.App:
    """The faust app for ``stream worker``; the pipeline must be set up already."""
    app = faust.App(
        settings.app_id,
        broker=_broker_url(settings.broker),
        store="memory://",
        datadir=settings.data_dir,
        web_enabled=False,
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        producer_acks=-1,
        producer_max_request_size=max(settings.max_record_bytes, settings.max_article_bytes) + 65536,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=max(4096, settings.batch_size * 4),
        key_serializer="raw",
        value_serializer="raw",
    )
    raw = app.topic(settings.topic_raw, key_type=bytes, value_type=bytes,
                    key_serializer="raw", value_serializer="raw")
    enriched = app.topic(settings.topic_enriched, key_serializer="raw", value_serializer="raw")
    alerts = app.topic(settings.topic_alerts, key_serializer="raw", value_serializer="raw")
    dlq = app.topic(settings.topic_dlq, key_serializer="raw", value_serializer="raw")
    worker = settings.worker_id()

    async def send_dead(letter: DeadLetter, key: bytes | None, headers: Any) -> None:
        extra = letter.headers()
        original = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        await dlq.send(key=key, value=dumps(letter.to_dict()), headers=original + extra)
        log.warning("article %s -> %s: %s in %s: %s", letter.article_id or "?",
                    settings.topic_dlq, letter.error_type, letter.stage, letter.message)
        host.notify("stream_article_failed", dead_letter=letter)

    @app.agent(raw, name="stream.process")
    async def process(stream: faust.StreamT[bytes]) -> None:
        # take_events exists on faust's Stream but not on its StreamT protocol.
        batches = stream.take_events(  # type: ignore[attr-defined]
            settings.batch_size, within=settings.batch_timeout
        )
        async for events in batches:
            articles: list[Article] = []
            origin: dict[int, Any] = {}
            for event in events:
                msg = event.message
                value = event.value if isinstance(event.value, bytes) else (msg.value or b"")
                try:
                    article = decode_article(value, max_bytes=settings.max_article_bytes)
                except RecordError as exc:
                    await send_dead(DeadLetter(
                        error_type="RecordError", message=sanitize(exc.reason), stage="decode",
                        original=value, topic=msg.topic, partition=msg.partition,
                        offset=msg.offset,
                    ), msg.key, msg.headers)
                    continue
                articles.append(article)
                origin[id(article)] = event
            if not articles:
                continue
            result = await pipeline.run(articles)
            out = collect_outputs(
                result, worker=worker, max_record_bytes=settings.max_record_bytes,
                original={k: (e.value if isinstance(e.value, bytes) else b"") for k, e in origin.items()},
            )
            for key, value in out.enriched:
                await enriched.send(key=key, value=value)
            for key, value, alert in out.alerts:
                await alerts.send(key=key, value=value)
                host.notify("stream_alert_raised", alert=alert)
            for article, letter in out.dead:
                msg = origin[id(article)].message
                letter.topic, letter.partition, letter.offset = msg.topic, msg.partition, msg.offset
                await send_dead(letter, msg.key, msg.headers)
            log.debug("batch of %d: %d enriched, %d dead", len(events), len(out.enriched), len(out.dead))

    @app.task  # type: ignore[untyped-decorator]  # faust's decorators are untyped
    async def _ready() -> None:
        await asyncio.sleep(0)
        log.info("stream worker %s: consuming %s, chain: %s", worker, settings.topic_raw,
                 ", ".join(p.name for p in pipeline.processors) or "(empty)")

    return app
