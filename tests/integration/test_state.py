"""The state store against the real broker (issue 26): a restore reads the changelog to
its end, a clean store reads only what another owner wrote since, a dirty one rebuilds."""

from __future__ import annotations

import asyncio

import pytest

from stream.records import dumps
from stream.runtime.kafka import ensure_topics, make_producer
from stream.runtime.state import StateStore, changelog_topic
from stream.testing import StreamTopics
from stream.tools.broker import LocalBroker

pytestmark = pytest.mark.integration


async def _write(broker: LocalBroker, topic: str, records: list[tuple[str, object]]) -> list[int]:
    producer = make_producer(broker.bootstrap)
    await producer.start()
    try:
        futures = [await producer.send(topic, None if value is None else dumps(value), key=dumps(key))
                   for key, value in records]
        return [(await f).offset for f in futures]
    finally:
        await producer.stop()


def test_restore_reads_to_the_end_then_only_what_another_owner_wrote(broker: LocalBroker,
                                                                      topics: StreamTopics) -> None:
    async def run() -> None:
        topic = changelog_topic(topics.app_id, "dedup")
        await ensure_topics(broker.bootstrap, [(topic, 1, True)], 1)
        await _write(broker, topic, [("a:1", {"v": 1}), ("a:2", {"v": 2}), ("a:1", {"v": 3}), ("a:2", None)])
        store = StateStore(broker.bootstrap, topics.app_id, ("dedup",))
        assert await store.restore() == 4
        assert dict(store.tables["dedup"].items()) == {"a:1": {"v": 3}}
        # This worker's own write, confirmed: not read again.
        store.tables["dedup"]["a:5"] = {"v": 5}
        for t, _key, _value in store.take_writes():
            [offset] = await _write(broker, t, [("a:5", {"v": 5})])
            store.written(t, offset)
        assert await store.restore() == 0
        # Another owner's writes while the partition was away: read, and only those.
        await _write(broker, topic, [("a:6", {"v": 6}), ("a:1", None)])
        assert await store.restore() == 2
        assert dict(store.tables["dedup"].items()) == {"a:5": {"v": 5}, "a:6": {"v": 6}}
        # A change that never reached Kafka (a failed batch): the next restore rebuilds.
        store.tables["dedup"]["lost"] = 1
        store.invalidate()
        assert await store.restore() == 7
        assert dict(store.tables["dedup"].items()) == {"a:5": {"v": 5}, "a:6": {"v": 6}}

    asyncio.run(run())
