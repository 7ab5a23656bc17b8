"""Alert state (burst windows, cooldowns) on the real broker, across a worker restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from stream.runtime.kafka import read_records
from stream.testing import StreamWorker as Worker
from stream.testing import produce, wait_for
from stream.tools.broker import LocalBroker

from ..conftest import Topics

pytestmark = pytest.mark.integration

RULES = """
[[rules]]
id = "troops-burst"
any = ["troops"]
burst = { count = 3, minutes = 60 }

[[rules]]
id = "invasion-cooldown"
any = ["invasion"]
cooldown = { minutes = 60 }
"""


def alerts_on_topic(broker: LocalBroker, topic: str) -> list[dict]:  # type: ignore[type-arg]
    async def run() -> list[dict]:  # type: ignore[type-arg]
        return [orjson.loads(r.value) async for r in read_records(broker.bootstrap, topic, timeout=3)]

    return asyncio.run(run())


def article(n: int, words: str) -> dict[str, str]:
    return {"id": f"a{n}", "text": f"Report number {n} from the region, where {words} were seen on the road "
                                   f"near the town of Station{n} early on day {n} of the month."}


def test_a_burst_and_a_cooldown_hold_across_a_worker_restart(
    broker: LocalBroker, topics: Topics, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    worker = Worker(broker, topics, tmp_path, "w1", STREAM_RULES=str(rules))
    try:
        produce(broker, topics.raw, [article(1, "troops and an invasion force"), article(2, "troops")])
        wait_for(broker, topics.enriched, {"a1", "a2"}, workers=(worker,))
    finally:
        assert worker.stop() == 0, worker.log()
    worker = Worker(broker, topics, tmp_path, "w2", STREAM_RULES=str(rules))
    try:
        produce(broker, topics.raw, [article(3, "troops and an invasion force")])
        records = wait_for(broker, topics.enriched, {"a1", "a2", "a3"}, workers=(worker,))
    finally:
        assert worker.stop() == 0, worker.log()
    kinds = {(a["rule_id"], a["kind"], a["article_id"]) for r in records.values() for a in r["alerts"]}
    # The third troops article, after the restart, completes the burst of three.
    assert ("troops-burst", "burst", "a3") in kinds
    # The invasion rule fired on a1; a3 falls in its cooldown although a new worker read it.
    assert ("invasion-cooldown", "keyword", "a1") in kinds
    assert ("invasion-cooldown", "keyword", "a3") not in kinds
    published = alerts_on_topic(broker, topics.alerts)
    bursts = [a for a in published if a["kind"] == "burst"]
    # At-least-once: a redelivered article may publish its burst alert again, always with
    # the same alert_id and the same articles, so consumers de-duplicate on alert_id.
    assert len({b["alert_id"] for b in bursts}) == 1, bursts
    assert all(b["articles"] == ["a1", "a2", "a3"] and b["rule_id"] == "troops-burst" for b in bursts)
