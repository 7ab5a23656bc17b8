"""A three-node KRaft cluster: one broker is SIGKILLed while 2,000 articles flow through a
worker with dedup, alerts and webhooks on; nothing acknowledged is lost, and the broker
catches up after its restart."""

from __future__ import annotations

import asyncio
import base64
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from stream.runtime.kafka import ensure_topics, make_producer, read_records
from stream.testing import StreamTopics, StreamWorker
from stream.tools.broker import LocalBroker

from ..webhook_server import Receiver
from .test_crash import article

pytestmark = pytest.mark.integration

COUNT = 2000
KILL_AT, RESTART_AT = 600, 1400
SECRET = "whsec_" + base64.b64encode(b"cluster-test-secret-0123456789ab").decode()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    port = int(os.environ.get("STREAM_TEST_CLUSTER_PORT", "19500"))
    local = LocalBroker(port, nodes=3, directory=tmp_path_factory.mktemp("cluster"))
    local.start(timeout=180)
    yield local
    local.stop()


class Producer(threading.Thread):
    """Sends COUNT articles at a steady pace, each acknowledged (acks=all, idempotence); a
    send that fails for good is sent again, as a client would.  ``acked``: the ids the
    cluster acknowledged, in order."""

    def __init__(self, cluster: LocalBroker, topic: str):
        super().__init__(daemon=True)
        self.cluster, self.topic = cluster, topic
        self.acked: list[str] = []
        self.failures: list[str] = []

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        producer = make_producer(self.cluster.target(), request_timeout_ms=15000)
        await producer.start()
        try:
            pending: list[tuple[str, Any]] = []
            for n in range(COUNT):
                record = article(n)
                pending.append((record["id"], await producer.send(
                    self.topic, value=orjson.dumps(record), key=record["id"].encode())))
                if len(pending) >= 20:
                    await self._confirm(producer, pending)
                    await asyncio.sleep(0.05)
            await self._confirm(producer, pending)
        finally:
            await producer.stop()

    async def _confirm(self, producer: Any, pending: list[tuple[str, Any]]) -> None:
        for ident, future in pending:
            while True:
                try:
                    await future
                    self.acked.append(ident)
                    break
                except Exception as exc:
                    self.failures.append(f"{ident}: {exc!r}")
                    record = article(int(ident[1:]))
                    future = await producer.send(self.topic, value=orjson.dumps(record), key=ident.encode())
        pending.clear()


def _ids(cluster: LocalBroker, topic: str) -> set[str]:
    async def run() -> set[str]:
        return {orjson.loads(r.value or b"{}").get("id", "") async for r in
                read_records(cluster.target(), topic, timeout=3)}

    return asyncio.run(run())


def _alert_ids(cluster: LocalBroker, topic: str) -> set[str]:
    async def run() -> set[str]:
        return {orjson.loads(r.value or b"{}")["alert_id"] async for r in
                read_records(cluster.target(), topic, timeout=3)}

    return asyncio.run(run())


async def _describe(cluster: LocalBroker, topic: str) -> tuple[list[dict[str, Any]], str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                                  {"min.insync.replicas": None})])
        entries = response.to_object()["resources"][0]["config_entries"]
        min_isr = next(e["config_value"] for e in entries if e["config_names"] == "min.insync.replicas")
        return described["partitions"], min_isr
    finally:
        await admin.close()


def test_a_broker_killed_while_articles_flow_loses_nothing_and_catches_up(
        cluster: LocalBroker, topics: StreamTopics, tmp_path: Path) -> None:
    receiver = Receiver().start()
    subs = tmp_path / "webhooks.toml"
    subs.write_text(f'[delivery]\nschedule = [0, 0.5, 1, 2]\n[[endpoints]]\nid = "sink"\nurl = "{receiver.url}"\n'
                    f'secret = "{SECRET}"\n')
    asyncio.run(ensure_topics(cluster.target(), [(topics.raw, 3, False)]))  # replication from the cluster
    worker = StreamWorker(cluster, topics, tmp_path, "w", STREAM_PLUGINS="clean,dedup,alerts",
                          STREAM_WEBHOOKS=str(subs), STREAM_WEBHOOKS_ALLOW_LOOPBACK="1",
                          STREAM_SESSION_TIMEOUT="10")
    try:
        worker.web_url(timeout=180)
        producer = Producer(cluster, topics.raw)
        producer.start()
        while len(producer.acked) < KILL_AT and producer.is_alive():
            time.sleep(0.05)
        cluster.kill_node(2)
        while len(producer.acked) < RESTART_AT and producer.is_alive():
            time.sleep(0.05)
        assert worker.proc.poll() is None, worker.log()
        cluster.start(timeout=180)
        producer.join(300)
        assert not producer.is_alive()
        acked = set(producer.acked)
        assert len(acked) == COUNT, producer.failures[:5]

        deadline = time.monotonic() + 300
        missing = acked
        while time.monotonic() < deadline:
            missing = acked - _ids(cluster, topics.enriched) - _ids(cluster, topics.dlq)
            if not missing:
                break
            assert worker.proc.poll() is None, worker.log()
            time.sleep(2)
        assert not missing, f"{len(missing)} acknowledged ids lost, e.g. {sorted(missing)[:5]}"
        alerts = _alert_ids(cluster, topics.alerts)
        assert alerts, "the articles raise alerts (troops)"
        deadline = time.monotonic() + 180
        delivered: set[str] = set()
        while time.monotonic() < deadline:
            delivered = {orjson.loads(r.body)["data"]["alert_id"] for r in list(receiver.requests) if r.status == 200}
            if delivered >= alerts:
                break
            time.sleep(1)
        assert alerts <= delivered, f"{len(alerts - delivered)} alerts not delivered"

        # The topics the worker made: three replicas, min.insync.replicas 2; the restarted
        # broker is back in every partition's in-sync replicas.
        deadline = time.monotonic() + 120
        while True:
            partitions, min_isr = asyncio.run(_describe(cluster, topics.enriched))
            if all(len(p["isr"]) == 3 for p in partitions) or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert min_isr == "2"
        assert all(len(p["replicas"]) == 3 for p in partitions)
        assert all(len(p["isr"]) == 3 for p in partitions), partitions
    finally:
        status = worker.stop()
        receiver.stop()
    assert status == 0, worker.log()
    print(f"\ncluster test: {COUNT} acknowledged, {len(producer.failures)} sends retried by the producer; "
          f"{len(alerts)} alerts delivered")
