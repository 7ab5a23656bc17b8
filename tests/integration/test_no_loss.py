"""No silent loss (issue 15), on the real broker at its real limits: large valid articles
are enriched, an article over ``max_article_bytes`` is a dead letter that is really written,
a value a plugin cannot encode is a dead letter while the rest of its batch is published,
and a record the broker refuses stops the worker without committing its input."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from stream.runtime.kafka import ensure_topics, make_producer, read_records
from stream.testing import StreamTopics, StreamWorker, wait_for
from stream.tools.broker import LocalBroker

from ..conftest import SAMPLES

pytestmark = pytest.mark.integration

BODY = "\n\n".join(p.read_text() for p in SAMPLES)


def article_of(ident: str, size: int) -> bytes:
    """A valid JSON article of exactly ``size`` bytes: the sample articles, repeated."""
    head = orjson.dumps({"id": ident, "title": f"Article {ident}", "text": ""})
    room = size - len(head)
    text = (BODY * (room // len(BODY) + 2)).encode()
    encoded = orjson.dumps({"id": ident, "title": f"Article {ident}", "text": text[: room].decode(errors="ignore")})
    cut = room
    while len(encoded) > size:  # escapes (quotes, newlines) make the JSON longer than the text
        cut -= len(encoded) - size
        encoded = orjson.dumps({"id": ident, "title": f"Article {ident}",
                                "text": text[:cut].decode(errors="ignore")})
    pad = " " * (size - len(encoded))  # spaces take one byte each in JSON
    encoded = orjson.dumps({"id": ident, "title": f"Article {ident}", "text": text[:cut].decode(errors="ignore") + pad})
    return encoded


async def _send(broker: LocalBroker, topic: str, records: list[tuple[str, bytes]]) -> None:
    """With a plain Kafka producer (as any client of stream would), each acknowledged."""
    producer = make_producer(broker.bootstrap)
    await producer.start()
    try:
        for key, value in records:
            await (await producer.send(topic, value=value, key=key.encode()))
    finally:
        await producer.stop()


def _records(broker: LocalBroker, topic: str) -> list[dict]:  # type: ignore[type-arg]
    async def run() -> list[dict]:  # type: ignore[type-arg]
        return [orjson.loads(r.value) async for r in read_records(broker.bootstrap, topic, timeout=3)]

    return asyncio.run(run())


async def _set_limit(broker: LocalBroker, topic: str, limit: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                  {"max.message.bytes": str(limit)})])
    finally:
        await admin.close()


async def _committed(broker: LocalBroker, group: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)
    finally:
        await admin.close()


def test_articles_of_400_and_990_kb_are_enriched_and_one_over_the_limit_is_a_written_dead_letter(
    broker: LocalBroker, topics: StreamTopics, tmp_path: Path
) -> None:
    records = [("big-400", article_of("big-400", 400_000)), ("big-990", article_of("big-990", 990_000)),
               ("over-1020", article_of("over-1020", 1_020_000)),
               ("small", orjson.dumps({"id": "small", "text": "Troops crossed the border at dawn, officials said."}))]
    assert [len(v) for _k, v in records[:3]] == [400_000, 990_000, 1_020_000]
    worker = StreamWorker(broker, topics, tmp_path, "w")
    try:
        asyncio.run(_send(broker, topics.raw, records))
        good = wait_for(broker, topics.enriched, {"big-400", "big-990", "small"}, timeout=300, workers=(worker,))
        dead = wait_for(broker, topics.dlq, {"over-1020"}, timeout=60, workers=(worker,))
        assert worker.proc.poll() is None, worker.log()
    finally:
        assert worker.stop() == 0, worker.log()
    for ident in ("big-400", "big-990"):
        sent = orjson.loads(dict(records)[ident])
        assert good[ident]["text"] == sent["text"]
        assert len(good[ident]["entities"]) > 100 and good[ident]["entity_summary"]
    assert good["big-400"]["alerts"] and good["big-990"]["dedup"]["status"] in ("exact", "near")  # same stories
    letter = dead["over-1020"]
    assert letter["error"]["type"] == "RecordError" and "over the limit of 1000000" in letter["error"]["message"]
    assert base64.b64decode(letter["original"]) == dict(records)["over-1020"]  # the whole original, byte for byte
    assert letter["original_size"] == 1_020_000 and letter["original_truncated"] is False


def test_a_value_a_plugin_cannot_encode_is_a_dead_letter_and_the_rest_of_the_batch_is_published(
    broker: LocalBroker, topics: StreamTopics, tmp_path: Path
) -> None:
    worker = StreamWorker(broker, topics, tmp_path, "w", STREAM_PLUGINS="clean,ner,slow,dedup,alerts",
                          STREAM_PLUGIN_SLOW_ENABLED="1", STREAM_BATCH_TIMEOUT="2")
    try:
        batch = [(f"ok-{n}", orjson.dumps({"id": f"ok-{n}", "text": f"Report {n}: troops moved near Kharkiv."}))
                 for n in range(5)]
        batch.insert(2, ("set-1", orjson.dumps({"id": "set-1", "text": "A plugin will put a set here."})))
        batch.insert(4, ("boom-1", orjson.dumps({"id": "boom-1", "text": "A plugin will fail on this one."})))
        asyncio.run(_send(broker, topics.raw, batch))
        good = wait_for(broker, topics.enriched, {f"ok-{n}" for n in range(5)}, workers=(worker,))
        dead = wait_for(broker, topics.dlq, {"set-1", "boom-1"}, workers=(worker,))
        assert worker.proc.poll() is None
    finally:
        assert worker.stop() == 0, worker.log()
    assert "set-1" not in good and "boom-1" not in good
    assert dead["set-1"]["error"]["type"] == "EncodeError" and "set" in dead["set-1"]["error"]["message"]
    assert dead["boom-1"]["error"]["plugin"] == "slow" and "on purpose" in dead["boom-1"]["error"]["message"]
    assert orjson.loads(base64.b64decode(dead["set-1"]["original"]))["id"] == "set-1"


def test_a_record_the_broker_refuses_stops_the_worker_without_committing_and_comes_through_after_the_fix(
    broker: LocalBroker, topics: StreamTopics, tmp_path: Path
) -> None:
    first = StreamWorker(broker, topics, tmp_path, "w1")
    try:
        asyncio.run(_send(broker, topics.raw, [("warm", orjson.dumps({"id": "warm", "text": "Talks resumed."}))]))
        wait_for(broker, topics.enriched, {"warm"}, workers=(first,))
        # The enriched topic now takes 3,000 bytes: an enriched record of ~6 KB is refused.
        asyncio.run(_set_limit(broker, topics.enriched, 3000))
        asyncio.run(_send(broker, topics.raw, [("refused", article_of("refused", 3000))]))
        status = first.proc.wait(timeout=120)
    finally:
        first.stop()
    log = first.log_path.read_text(errors="replace")
    assert status != 0, log
    assert "was not written" in log and "max.message.bytes" in log and topics.enriched in log
    assert "refused" not in {r["id"] for r in _records(broker, topics.enriched)}
    stateful = f"{topics.app_id}-stateful"
    handoff_committed = asyncio.run(_committed(broker, f"{topics.app_id}-stateful", stateful))
    assert handoff_committed == 1  # "warm" only: the batch of "refused" was not committed

    asyncio.run(_set_limit(broker, topics.enriched, 8_000_000 + 65536))
    second = StreamWorker(broker, topics, tmp_path, "w2")
    try:
        again = wait_for(broker, topics.enriched, {"refused"}, workers=(second,))
    finally:
        assert second.stop() == 0, second.log()
    assert again["refused"]["text"] == orjson.loads(article_of("refused", 3000))["text"]


def test_a_worker_refuses_to_start_when_a_topic_cannot_take_the_records_it_may_write(
    broker: LocalBroker, topics: StreamTopics, tmp_path: Path
) -> None:
    limited = {topics.enriched: {"max.message.bytes": "500000"}}
    asyncio.run(ensure_topics(broker.bootstrap, [(topics.enriched, 3, False)], configs=limited))
    worker = StreamWorker(broker, topics, tmp_path, "w")
    status = worker.proc.wait(timeout=120)
    log = worker.log_path.read_text(errors="replace")
    worker.stop()
    assert status == 78, log[-3000:]  # EX_CONFIG
    assert f"{topics.enriched}: accepts records up to 500000 bytes" in log
    assert "--add-config max.message.bytes=" in log and "lower max_record_bytes" in log
