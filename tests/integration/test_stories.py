"""Stories on the real broker: the ``story`` field and the compacted ``stories`` topic, with
the state restored by another worker after the first was killed."""

from __future__ import annotations

import asyncio
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream.runtime.kafka import read_records
from stream.testing import StreamWorker as Worker
from stream.testing import produce, wait_for
from stream.tools.broker import LocalBroker
from stream_alerts import alert_id
from stream_stories.evaluate import load

from ..conftest import Topics

pytestmark = pytest.mark.integration

PLUGINS = "clean,ner,dedup,stories,alerts"


def _summaries(broker: LocalBroker, topic: str) -> dict[str, dict[str, Any]]:
    """The latest summary of each story (what compaction keeps)."""
    async def run() -> dict[str, dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        async for rec in read_records(broker.target(), topic, timeout=3):
            latest[(rec.key or b"").decode()] = orjson.loads(rec.value or b"null")
        return latest

    return asyncio.run(run())


def test_a_story_grows_across_a_killed_worker_and_its_summary_is_on_the_stories_topic(
        broker: LocalBroker, topics: Topics, tmp_path: Path) -> None:
    labelled = {a["id"]: {k: v for k, v in a.items() if k not in ("story", "copy_of")} for a in load()}
    quake = [f"s02{c}" for c in "abcdefgh"]
    strike = [f"s01{c}" for c in "abcdefg"]
    stories_topic = f"{topics.raw}.stories"
    env = {"STREAM_PLUGINS": PLUGINS, "STREAM_TOPIC_STORIES": stories_topic}

    first = Worker(broker, topics, tmp_path, "w1", **env)
    try:
        produce(broker, topics.raw, [labelled[i] for i in quake[:4] + strike[:3] + ["x04"]])
        wait_for(broker, topics.enriched, set(quake[:4] + strike[:3] + ["x04"]), workers=(first,))
    finally:
        assert first.stop(signal.SIGKILL) != 0
    second = Worker(broker, topics, tmp_path, "w2", **env)  # the state comes back from its changelog
    try:
        produce(broker, topics.raw, [labelled[i] for i in quake[4:] + strike[3:]])
        records = wait_for(broker, topics.enriched, set(quake + strike + ["x04"]), workers=(second,))
        with urllib.request.urlopen(second.web_url() + "/api/dashboard", timeout=10) as r:
            panel = orjson.loads(r.read())["stories"]
    finally:
        assert second.stop() == 0, second.log()
    # The worker says where its settings come from (here: no file).
    assert "settings from the defaults and the environment (no settings file)" in second.log_path.read_text()

    quake_story = {records[i]["story"]["id"] for i in quake}
    strike_story = {records[i]["story"]["id"] for i in strike}
    assert len(quake_story) == 1 and len(strike_story) == 1 and quake_story != strike_story, records
    assert records["x04"]["story"]["id"] not in quake_story | strike_story  # Izmir's tourism is not the quake
    assert max(records[i]["story"]["articles"] for i in quake) == 8
    assert set(records["s01g"]["story"]["languages"]) == {"en", "fr"}

    summaries = _summaries(broker, stories_topic)
    quake_summary = summaries[quake_story.pop()]
    assert quake_summary["articles"] == 8 and sorted(quake_summary["article_ids"]) == sorted(quake)
    assert len(quake_summary["sources"]) == 8 and set(quake_summary["languages"]) == {"en", "fr"}
    assert any(p["geo"] and p["geo"]["country_code"] == "TR" for p in quake_summary["places"]), quake_summary
    assert quake_summary["title"] in {labelled[i]["title"] for i in quake}
    # The dashboard of the worker that published the summaries lists the story (its articles
    # of this run: the first four were published by the killed worker).
    shown = {s["id"]: s for s in panel}
    assert quake_summary["id"] in shown and shown[quake_summary["id"]]["articles"] == 8, panel


STORY_RULE = """[[rules]]
id = "quake-picked-up"
kind = "story"
any = ["earthquake", "quake", "séisme"]
min_sources = 3
within_minutes = 1440
severity = "high"
"""


def _all(broker: LocalBroker, topic: str) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        return [orjson.loads(r.value or b"null") async for r in read_records(broker.target(), topic, timeout=3)]

    return asyncio.run(run())


def test_a_story_rule_alerts_once_across_two_workers_and_a_sigkill_of_the_stage_2_worker(
        broker: LocalBroker, topics: Topics, tmp_path: Path) -> None:
    """The story's articles come in on both workers' partitions; the worker that runs stage 2
    is killed right after the article that brings the third source is produced.  One alert id
    (one webhook-id), on that article, whatever happened first."""
    from tests.webhook_server import Receiver

    labelled = {a["id"]: {k: v for k, v in a.items() if k not in ("story", "copy_of")} for a in load()}
    sink = Receiver().start()
    rules = tmp_path / "rules.toml"
    rules.write_text(STORY_RULE)
    hooks = tmp_path / "webhooks.toml"
    hooks.write_text(f'[[endpoints]]\nid = "sink"\nurl = "{sink.url}"\nsecret = "whsec_'
                     f'MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="\n')
    tag = topics.app_id
    env = {"STREAM_PLUGINS": PLUGINS, "STREAM_TOPIC_STORIES": f"{topics.raw}.stories", "STREAM_RULES": str(rules),
           "STREAM_WEBHOOKS": str(hooks), "STREAM_WEBHOOKS_ALLOW_LOOPBACK": "1",
           "STREAM_TOPIC_WEBHOOKS_RETRY": f"{tag}.retry", "STREAM_TOPIC_WEBHOOKS_FAILED": f"{tag}.failed",
           "STREAM_TOPIC_WEBHOOKS_EVENTS": f"{tag}.events"}
    workers = {"wa": Worker(broker, topics, tmp_path, "wa", **env), "wb": Worker(broker, topics, tmp_path, "wb", **env)}
    try:
        produce(broker, topics.raw, [labelled["s02a"], labelled["s02b"]])  # Reuters, Anadolu: two sources
        first = wait_for(broker, topics.enriched, {"s02a", "s02b"}, workers=tuple(workers.values()))
        assert first["s02a"]["story"]["id"] == first["s02b"]["story"]["id"]
        owner = first["s02b"]["processing"]["worker"]  # the worker that published it ran stage 2
        other = "wb" if owner == "wa" else "wa"
        produce(broker, topics.raw, [labelled["s02c"]])  # AP: the third source
        assert workers[owner].stop(signal.SIGKILL) != 0
        wait_for(broker, topics.enriched, {"s02c"}, timeout=240, workers=(workers[other],))
        produce(broker, topics.raw, [labelled[i] for i in ("s02d", "s02e", "s02f", "s02g", "s02h")])
        workers[owner + "2"] = Worker(broker, topics, tmp_path, owner + "2", **env)  # back: stage 2 may move again
        wait_for(broker, topics.enriched, {f"s02{c}" for c in "abcdefgh"}, timeout=240,
                 workers=(workers[other], workers[owner + "2"]))
        sink.wait(1, timeout=60)
        time.sleep(5)  # anything late (a replay after the moves) would come now
    finally:
        for name, worker in workers.items():
            if name != owner:
                assert worker.stop() == 0, worker.log()
        sink.stop()
    alerts = [a for a in _all(broker, topics.alerts) if a.get("kind") == "story"]
    assert {a["alert_id"] for a in alerts} == {alert_id("quake-picked-up", first["s02a"]["story"]["id"], kind="story")}
    assert {a["article_id"] for a in alerts} == {"s02c"}  # at-least-once may have written it twice
    assert sorted(alerts[0]["sources"]) == ["AP", "Anadolu Agency", "Reuters"]
    webhook_ids = {r.headers["webhook-id"] for r in sink.requests if b"quake-picked-up" in r.body}
    assert len(webhook_ids) == 1, [r.headers for r in sink.requests]
