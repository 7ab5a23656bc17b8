"""The whole path on the real broker: `stream produce` -> `stream worker` -> topics."""

from __future__ import annotations

import asyncio
import base64
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream.runtime.kafka import read_records
from stream.tools.broker import LocalBroker

from ..conftest import SAMPLES, Topics

pytestmark = pytest.mark.integration
STREAM = [sys.executable, "-m", "stream"]


def read_all(broker: LocalBroker, topic: str, expected: int, timeout: float = 120) -> list[Any]:
    """Every record of ``topic``, waiting until at least ``expected`` arrived (then 2 s more)."""

    async def run() -> list[Any]:
        got: list[Any] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = [r async for r in read_records(broker.bootstrap, topic, timeout=2)]
            if len(got) >= expected:
                await asyncio.sleep(2)
                return [r async for r in read_records(broker.bootstrap, topic, timeout=2)]
            await asyncio.sleep(1)
        return got

    return asyncio.run(run())


@pytest.fixture
def worker(broker: LocalBroker, topics: Topics, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(tmp_path / "worker.log", "wb") as log:
        proc = subprocess.Popen([*STREAM, "worker"], env=topics.env(broker, tmp_path / "data"),
                                stdout=log, stderr=subprocess.STDOUT)
        yield proc
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=60) == 0, (tmp_path / "worker.log").read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()


def test_sample_articles_come_out_enriched_once_each_and_bad_input_goes_to_the_dlq(
    broker: LocalBroker, topics: Topics, tmp_path: Path, worker: subprocess.Popen[bytes]
) -> None:
    env = topics.env(broker, tmp_path / "data")
    out = subprocess.run([*STREAM, "produce", *map(str, SAMPLES)], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == f"sent {len(SAMPLES)} records to {topics.raw}"
    malformed = b'{"id": "broken", "text": "no closing brace"'
    out = subprocess.run([*STREAM, "produce", "-"], input=malformed.decode(), env=env,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"sent 1 record to {topics.raw}"

    enriched = [orjson.loads(r.value) for r in read_all(broker, topics.enriched, len(SAMPLES))]
    assert sorted(r["id"] for r in enriched) == sorted(p.stem for p in SAMPLES)
    for record in enriched:
        assert record["schema_version"] == 1
        assert [p["name"] for p in record["processing"]["plugins"]] == ["clean", "ner", "dedup", "alerts"]
        assert record["clean_text"] and "Pages" not in record["clean_text"].split("\n\n")[-1]
        for m in record["entities"]:
            assert record["clean_text"][m["start"]:m["end"]] == m["text"]
    lavrov = {e["canonical"] for r in enriched for e in r["entity_summary"] if e["label"] == "PERSON"}
    assert {"Sergei Lavrov", "Antony Blinken", "Vladimir Putin"} <= lavrov

    # Alerts: every alert listed in an enriched record is on the alerts topic, keyed by rule id.
    listed = {(a["alert_id"], a["rule_id"]) for r in enriched for a in r["alerts"]}
    on_topic = read_all(broker, topics.alerts, len(listed))
    assert {(orjson.loads(r.value)["alert_id"], r.key.decode()) for r in on_topic} == listed
    fired = {(r["id"][:3], a["rule_id"], a["kind"]) for r in enriched for a in r["alerts"]}
    assert {("000", "military-escalation", "keyword"), ("001", "military-escalation", "keyword"),
            ("002", "military-escalation", "keyword")} <= fired
    assert any(kind == "burst" for _a, _r, kind in fired)  # 5 Ukraine articles within the hour

    [dead] = [orjson.loads(r.value) for r in read_all(broker, topics.dlq, 1)]
    assert dead["error"]["type"] == "RecordError" and dead["error"]["plugin"] == "decode"
    assert "not valid JSON" in dead["error"]["message"]
    assert base64.b64decode(dead["original"]) == malformed
    assert dead["source"]["topic"] == topics.raw and dead["source"]["offset"] >= 0



def test_a_french_article_gets_french_entities_and_a_german_one_places_only_and_the_reason(
    broker: LocalBroker, topics: Topics, tmp_path: Path, worker: subprocess.Popen[bytes]
) -> None:
    from ..unit.test_language import FRENCH, GERMAN

    env = topics.env(broker, tmp_path / "data")
    lines = "\n".join(orjson.dumps({"id": i, "text": t}).decode() for i, t in (("fr-1", FRENCH), ("de-1", GERMAN)))
    subprocess.run([*STREAM, "produce", "-"], input=lines, env=env, capture_output=True, text=True, check=True)
    records = {r["id"]: r for r in (orjson.loads(x.value) for x in read_all(broker, topics.enriched, 2))}
    fr, de = records["fr-1"], records["de-1"]
    assert (fr["language"], de["language"]) == ("fr", "de")
    assert fr["language_confidence"] > 0.9
    assert {"Emmanuel Macron", "Olaf Scholz"} <= {e["canonical"] for e in fr["entity_summary"]
                                                   if e["label"] == "PERSON"}
    # no German model: the gazetteer's places and the entity list's names, no guesses
    assert [(e["text"], e["label"]) for e in de["entities"]] == [
        ("Berlin", "GPE"), ("Deutschland", "GPE"), ("Ukraine", "GPE")]
    assert all(e["source"] in ("gazetteer", "list") and "geo" in e for e in de["entities"])
    [ner] = [p for p in de["processing"]["plugins"] if p["name"] == "ner"]
    assert ner["skipped"] is True and "no NER model for language 'de'" in ner["reason"]


def test_a_worker_with_two_model_processes_enriches_every_article_and_stops_cleanly(
    broker: LocalBroker, topics: Topics, tmp_path: Path
) -> None:
    """``[plugins.ner] processes = 2``: batches go to two model processes (their start is
    logged), every article comes out with its entities, and SIGTERM stops the worker and
    its children."""
    env = topics.env(broker, tmp_path / "data", STREAM_PLUGIN_NER_PROCESSES="2",
                     STREAM_PLUGIN_NER_PARALLEL_MIN_CHARS="1000")
    lines = "\n".join(orjson.dumps({"id": f"p{n}-{path.stem[:3]}", "text": path.read_text()}).decode()
                      for n in range(3) for path in SAMPLES)
    subprocess.run([*STREAM, "produce", "-"], input=lines, env=env, capture_output=True, text=True, check=True)
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([*STREAM, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            records = [orjson.loads(x.value) for x in read_all(broker, topics.enriched, 3 * len(SAMPLES))]
            assert len({r["id"] for r in records}) == 3 * len(SAMPLES)
            assert all(r["entities"] for r in records)
            assert "goes to the model processes" in log_path.read_text()
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
    assert code == 0, log_path.read_text()[-3000:]


def test_health_live_answers_within_a_second_at_full_load_with_two_model_processes(
    broker: LocalBroker, topics: Topics, tmp_path: Path
) -> None:
    """Issue 26: the event loop only coordinates.  Cleaning, NER, dedup and alerts run off
    it, so ``/health/live`` answers within a second while a worker with two model processes
    works through a backlog (every plugin on)."""
    import statistics
    import urllib.request

    from stream.runtime.kafka import end_offsets
    from stream.testing import StreamWorker

    env = topics.env(broker, tmp_path / "d")
    lines = "\n".join(orjson.dumps({"id": f"l{n}-{path.stem[:3]}", "text": path.read_text()}).decode()
                      for n in range(12) for path in SAMPLES)
    subprocess.run([*STREAM, "produce", "-"], input=lines, env=env, capture_output=True, text=True, check=True)
    expected = 12 * len(SAMPLES)
    worker = StreamWorker(broker, topics, tmp_path, "loaded", STREAM_PLUGIN_NER_PROCESSES="2",
                          STREAM_PLUGIN_NER_PARALLEL_MIN_CHARS="1000")
    latencies: list[float] = []
    try:
        url = worker.web_url() + "/health/live"
        deadline = time.monotonic() + 240
        checked = 0.0
        while time.monotonic() < deadline:
            start = time.monotonic()
            with urllib.request.urlopen(url, timeout=5) as response:
                response.read()
            latencies.append(time.monotonic() - start)
            if time.monotonic() - checked > 2:
                checked = time.monotonic()
                if sum(asyncio.run(end_offsets(broker.bootstrap, topics.enriched)).values()) >= expected:
                    break
            assert worker.proc.poll() is None, worker.log()
            time.sleep(0.2)
        else:
            raise AssertionError(f"not every article enriched within 240 s:\n{worker.log()}")
        assert "goes to the model processes" in worker.log_path.read_text()
    finally:
        assert worker.stop() == 0, worker.log()
    print(f"\n/health/live under load: {len(latencies)} requests, median {statistics.median(latencies) * 1000:.1f} ms, "
          f"max {max(latencies) * 1000:.1f} ms")
    assert max(latencies) < 1.0, sorted(latencies)[-5:]


def test_a_watch_list_entity_the_model_misses_is_found_and_a_rule_on_entity_ids_fires(
    broker: LocalBroker, topics: Topics, tmp_path: Path
) -> None:
    """Issue 27: an entity list (``entities_file``) and an alert rule on its ``kb_id``,
    through a real worker, in English and in German (no model: the gazetteer's places and
    the listed entities)."""
    watch = tmp_path / "watch.toml"
    watch.write_text('[[entity]]\nname = "Gazprom"\nlabel = "ORG"\nkb_id = "Q102673"\n')
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\nid = "gas-watch"\nany = ["gas"]\nentity_ids = ["Q102673"]\n')
    env = {**topics.env(broker, tmp_path / "data"), "STREAM_PLUGIN_NER_ENTITIES_FILE": str(watch),
           "STREAM_RULES": str(rules), "STREAM_PLUGIN_NER_PROCESSES": "1"}
    articles = [{"id": "gas-1", "text": "Gazprom cut gas supplies to Europe on Monday, the company said."},
                {"id": "gas-2", "text": "Gas prices rose in Europe on Monday, traders said."},
                {"id": "gas-de", "language": "de",
                 "text": "Gazprom liefert seit Montag kein Gas mehr nach Passau und Regensburg in Bayern."}]
    with open(tmp_path / "worker.log", "wb") as log:
        proc = subprocess.Popen([*STREAM, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            lines = "\n".join(orjson.dumps(a).decode() for a in articles)
            subprocess.run([*STREAM, "produce", "-"], input=lines, env=env, capture_output=True, text=True,
                           check=True)
            records = {r["id"]: r for r in (orjson.loads(x.value) for x in read_all(broker, topics.enriched, 3))}
            alerts = [orjson.loads(x.value) for x in read_all(broker, topics.alerts, 2, timeout=30)]
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, (tmp_path / "worker.log").read_text()[-3000:]
    [gazprom] = [e for e in records["gas-1"]["entity_summary"] if e["canonical"] == "Gazprom"]
    assert gazprom["label"] == "ORG" and gazprom["kb_id"] == "Q102673"
    assert sorted((a["rule_id"], a["article_id"]) for a in alerts) == [("gas-watch", "gas-1"), ("gas-watch", "gas-de")]
    german = {e["text"]: e for e in records["gas-de"]["entities"]}
    assert german["Gazprom"]["kb_id"] == "Q102673" and german["Gazprom"]["source"] == "list"
    for place, name in (("Passau", "Passau"), ("Regensburg", "Regensburg"), ("Bayern", "Bavaria")):
        assert german[place]["source"] == "gazetteer" and german[place]["geo"]["name"] == name, german[place]
        assert german[place]["geo"]["country_code"] == "DE"
