"""Faults on the real broker: a broker restart in the middle of a run, scaling from one
worker to two and back under load, and a batch slower than the consumer's poll interval.

After each, the invariant of docs/operations.md is checked by a fresh consumer reading from
the start: every acknowledged input id is in ``articles.enriched`` or ``articles.dlq``,
never in both; a repeat is identical apart from ``processing``; the group's committed
offsets reach the end of the input.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from stream.runtime.kafka import end_offsets, ensure_topics
from stream.testing import StreamTopics, StreamWorker, produce
from stream.tools.broker import LocalBroker

from .test_crash import _read, _wait_count, article, comparable

pytestmark = pytest.mark.integration

PLUGINS = "clean,dedup,alerts"  # the delivery is under test; NER would only make it slower


def committed(broker: LocalBroker, group: str, topic: str) -> dict[int, int]:
    from aiokafka.admin import AIOKafkaAdminClient

    async def run() -> dict[int, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(group)
        finally:
            await admin.close()
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}

    return asyncio.run(run())


def check_invariant(broker: LocalBroker, topics: StreamTopics, ids: set[str]) -> tuple[int, int]:
    """:return: (enriched records, repeated ids)."""
    enriched = _read(broker, topics.enriched)
    dead = {r.get("article_id") for r in _read(broker, topics.dlq)}
    got = {r["id"] for r in enriched}
    assert got | dead >= ids, f"lost: {sorted(ids - got - dead)[:10]}"
    assert not got & dead, f"in two topics: {sorted(got & dead)[:10]}"
    by_id: dict[str, set[bytes]] = {}
    for r in enriched:
        by_id.setdefault(r["id"], set()).add(comparable(r))
    assert all(len(v) == 1 for v in by_id.values())  # a repeat is identical but for processing
    return len(enriched), len(enriched) - len(got)


def wait_committed(broker: LocalBroker, topics: StreamTopics, timeout: float = 60) -> None:
    ends = asyncio.run(end_offsets(broker.bootstrap, topics.raw))
    deadline = time.monotonic() + timeout
    while committed(broker, topics.app_id, topics.raw) != ends:
        assert time.monotonic() < deadline, (committed(broker, topics.app_id, topics.raw), ends)
        time.sleep(0.5)


def setup_input(broker: LocalBroker, topics: StreamTopics, count: int, prefix: str = "c") -> set[str]:
    asyncio.run(ensure_topics(broker.bootstrap, [(topics.raw, 3, False)], 1))
    articles = [article(n) | {"id": f"{prefix}{n}"} for n in range(count)]
    produce(broker, topics.raw, articles)
    return {a["id"] for a in articles}


def test_broker_restart_in_the_middle_of_a_run(broker: LocalBroker, topics: StreamTopics, tmp_path: Path) -> None:
    ids = setup_input(broker, topics, 1500)
    worker = StreamWorker(broker, topics, tmp_path, "w", STREAM_PLUGINS=PLUGINS, STREAM_BATCH_SIZE="32")
    try:
        _wait_count(broker, topics.enriched, 300, worker)
        broker.stop()
        time.sleep(5)  # the worker keeps running without a broker
        assert worker.proc.poll() is None, worker.log()
        broker.start()
        _wait_count(broker, topics.enriched, len(ids), worker, timeout=240)  # it reconnects on its own
        wait_committed(broker, topics)
    finally:
        assert worker.stop() == 0, worker.log()
    records, repeats = check_invariant(broker, topics, ids)
    print(f"\nbroker restart: {len(ids)} articles, {records} enriched records, {repeats} repeats")


def test_one_worker_then_two_then_one_under_load(broker: LocalBroker, topics: StreamTopics, tmp_path: Path) -> None:
    ids = setup_input(broker, topics, 3000)
    env = {"STREAM_PLUGINS": PLUGINS, "STREAM_BATCH_SIZE": "32", "STREAM_SESSION_TIMEOUT": "10"}
    first = StreamWorker(broker, topics, tmp_path, "first", **env)
    second: StreamWorker | None = None
    try:
        _wait_count(broker, topics.enriched, 500, first)
        second = StreamWorker(broker, topics, tmp_path, "second", **env)  # scale out: a rebalance
        _wait_count(broker, topics.enriched, 1800, second)
        assert first.stop(signal.SIGTERM) == 0, first.log()  # scale in: its partitions move
        _wait_count(broker, topics.enriched, len(ids), second, timeout=240)
        wait_committed(broker, topics)
    finally:
        if first.proc.poll() is None:
            first.stop()
        if second is not None:
            assert second.stop() == 0, second.log()
    records, repeats = check_invariant(broker, topics, ids)
    workers = {r["processing"]["worker"] for r in _read(broker, topics.enriched)}
    assert workers == {"first", "second"}  # both did part of the work
    print(f"\n1 -> 2 -> 1 workers: {len(ids)} articles, {records} enriched records, {repeats} repeats")


def test_a_batch_slower_than_the_poll_interval(broker: LocalBroker, topics: StreamTopics, tmp_path: Path) -> None:
    ids = setup_input(broker, topics, 200)
    produce(broker, topics.raw, [article(0) | {"id": "slow-1"}])
    ids.add("slow-1")
    produce(broker, topics.raw, [article(n) | {"id": f"after{n}"} for n in range(200)])
    ids |= {f"after{n}" for n in range(200)}
    worker = StreamWorker(broker, topics, tmp_path, "w", STREAM_PLUGINS="clean,slow,dedup,alerts",
                          STREAM_PLUGIN_SLOW_ENABLED="1", STREAM_PLUGIN_SLOW_SECONDS="12",
                          STREAM_MAX_POLL_INTERVAL="5", STREAM_BATCH_SIZE="16", STREAM_SESSION_TIMEOUT="6")
    try:
        _wait_count(broker, topics.enriched, len(ids), worker, timeout=180)
        wait_committed(broker, topics)
        assert worker.proc.poll() is None
    finally:
        assert worker.stop() == 0, worker.log()
    records, repeats = check_invariant(broker, topics, ids)
    slow: list[dict[str, Any]] = [r for r in _read(broker, topics.enriched) if r["id"] == "slow-1"]
    assert slow and all(r["extra"]["slow"] for r in slow)
    print(f"\nslow batch (12 s, poll interval 5 s): {len(ids)} articles, {records} records, {repeats} repeats")


def _ready(worker: StreamWorker, base: str) -> tuple[int, dict[str, Any]]:
    import urllib.error
    import urllib.request

    import orjson

    try:
        with urllib.request.urlopen(base + "/health/ready", timeout=3) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read() or b"{}")
    except OSError:
        return 0, {}


#: Longer than the producer's and the consumer's request timeout (aiokafka: 40 s), so that
#: sends in flight fail and are sent again, and commits fail.
FREEZE_SECONDS = 45


def test_a_broker_frozen_longer_than_the_producer_timeout_loses_nothing(
        broker: LocalBroker, topics: StreamTopics, tmp_path: Path) -> None:
    """SIGSTOP on the broker under load (issue 26): the worker stays up, reports not-ready
    while Kafka does not answer, and once the broker runs again every id comes out."""
    ids = setup_input(broker, topics, 3000)
    worker = StreamWorker(broker, topics, tmp_path, "w", STREAM_PLUGINS=PLUGINS, STREAM_BATCH_SIZE="32")
    frozen = False
    try:
        base = worker.web_url()
        _wait_count(broker, topics.enriched, 300, worker)
        broker.freeze(1)
        frozen = True
        seen: set[int] = set()
        troubles: dict[str, Any] = {}
        deadline = time.monotonic() + FREEZE_SECONDS
        while time.monotonic() < deadline:
            status, body = _ready(worker, base)
            seen.add(status)
            troubles.update(body.get("troubles") or {})
            assert worker.proc.poll() is None, worker.log()
            time.sleep(1)
        broker.thaw(1)
        frozen = False
        assert 503 in seen, f"never reported not-ready while the broker was frozen: {seen}"
        _wait_count(broker, topics.enriched, len(ids), worker, timeout=240)
        wait_committed(broker, topics, timeout=120)
        deadline = time.monotonic() + 60
        while _ready(worker, base)[0] != 200:
            assert time.monotonic() < deadline, _ready(worker, base)
            time.sleep(1)
    finally:
        if frozen:
            broker.thaw(1)
        assert worker.stop() == 0, worker.log()
    records, repeats = check_invariant(broker, topics, ids)
    print(f"\nbroker frozen {FREEZE_SECONDS} s: {len(ids)} articles, {records} enriched records, {repeats} repeats; "
          f"not ready for: {sorted(troubles)}")
