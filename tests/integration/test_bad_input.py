"""Bad input on the real broker: every kind goes to the DLQ with its reason and original
bytes, the cleanable kinds come through clean, and the worker keeps going."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from stream.runtime.kafka import make_producer, read_records
from stream.testing import StreamTopics, StreamWorker, produce, wait_for
from stream.tools.broker import LocalBroker

pytestmark = pytest.mark.integration

BAD: dict[str, tuple[bytes, str]] = {
    "invalid-json": (b'{"id": "x", "text": ', "not valid JSON"),
    "invalid-utf8": (b'{"id": "u", "text": "\xff\xfe broken"}', "not valid JSON"),
    "not-an-object": (b'["troops", "invasion"]', "must be a JSON object, not list"),
    "missing-text": (b'{"id": "m", "title": "no text"}', "missing required field 'text'"),
    "empty-text": (b'{"id": "e", "text": "   "}', "'text' is empty"),
    "text-not-string": (b'{"id": "n", "text": 42}', "'text' must be a string"),
    "wrong-type": (b'{"id": "w", "text": "ok", "url": 7}', "'url' must be a string"),
    "too-big": (b'{"id": "b", "text": "' + b"a" * 6000 + b'"}', "over the limit of 5000"),
    "deep": (b'{"id": "d", "text": "x", "n": ' + b"[" * 2000 + b"]" * 2000 + b"}", "not valid JSON"),
    "huge-int": (b'{"id": "h", "text": "x", "n": 123456789012345678901234567890}', "beyond 64-bit"),
    "lone-surrogate": (b'{"id": "s", "text": "\\ud800 troops"}', "not valid JSON"),
}


async def _send_raw(broker: LocalBroker, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = make_producer(broker.bootstrap)
    await producer.start()
    try:
        for key, value in records:
            await (await producer.send(topic, value=value, key=key, headers=[("trace-id", key)]))
    finally:
        await producer.stop()


def _dead(broker: LocalBroker, topic: str) -> list[tuple[dict, dict]]:  # type: ignore[type-arg]
    async def run() -> list[tuple[dict, dict]]:  # type: ignore[type-arg]
        records = read_records(broker.bootstrap, topic, timeout=2)
        return [(orjson.loads(r.value), dict(r.headers)) async for r in records]

    return asyncio.run(run())


def test_every_kind_of_bad_input_goes_to_the_dlq_and_the_worker_goes_on(
    broker: LocalBroker, topics: StreamTopics, tmp_path: Path
) -> None:
    worker = StreamWorker(broker, topics, tmp_path, "w", STREAM_MAX_ARTICLE_BYTES="5000",
                          STREAM_MAX_RECORD_BYTES="4000")
    try:
        records = [(name.encode(), value) for name, (value, _reason) in BAD.items()]
        asyncio.run(_send_raw(broker, topics.raw, records))
        oversized = {"id": "grows", "text": "Officials met in Geneva to discuss the talks. " * 60}  # ~2.8 KB in
        cleanable = [
            {"id": "zero-width", "text": "Russian in\u200bva\u202esion of Ukraine feared.\u2066"},
            {"id": "html", "text": "<p>Troops moved.</p><script>steal(document.cookie)</script><p>Talks went on.</p>"},
        ]
        produce(broker, topics.raw, [oversized, *cleanable])
        good = wait_for(broker, topics.enriched, {"zero-width", "html"}, workers=(worker,))
        dead = {}
        for _ in range(60):
            dead = {h["trace-id"].decode(): (d, h) for d, h in _dead(broker, topics.dlq) if "trace-id" in h}
            if len(dead) == len(BAD):
                break
            asyncio.run(asyncio.sleep(1))
        produce(broker, topics.raw, [{"id": "after", "text": "Troops returned to barracks, officials said."}])
        wait_for(broker, topics.enriched, {"after"}, workers=(worker,))  # still running
    finally:
        assert worker.stop() == 0, worker.log()

    assert set(dead) == set(BAD)
    for name, (letter, headers) in dead.items():
        original, reason = BAD[name]
        assert reason in letter["error"]["message"], (name, letter["error"])
        assert letter["error"]["plugin"] == letter["error"]["stage"] == "decode"
        assert base64.b64decode(letter["original"]) == original  # byte for byte
        assert headers["trace-id"] == name.encode() and headers["stream-source-topic"] == topics.raw.encode()
        assert headers["stream-error-type"] == b"RecordError"
    grown = [d for d, _h in _dead(broker, topics.dlq) if d["article_id"] == "grows"]
    assert grown and grown[0]["error"]["type"] == "RecordTooLarge" and grown[0]["error"]["plugin"] == "publish"
    assert good["zero-width"]["clean_text"] == "Russian invasion of Ukraine feared."
    assert [a["rule_id"] for a in good["zero-width"]["alerts"]][:1] == ["military-escalation"]
    assert good["html"]["clean_text"] == "Troops moved.\n\nTalks went on."

    env = topics.env(broker, tmp_path / "d")
    dry = subprocess.run([sys.executable, "-m", "stream", "dlq", "replay", "--stage", "decode", "--dry-run"],
                         env=env, capture_output=True, text=True, check=True)
    assert f"would replay {len(BAD)} of {len(BAD) + 1} dead letter(s)" in dry.stdout
    done = subprocess.run([sys.executable, "-m", "stream", "dlq", "replay", "--stage", "publish"],
                          env=env, capture_output=True, text=True, check=True)
    assert f"replayed 1 of {len(BAD) + 1} dead letter(s) to {topics.raw}" in done.stdout
    again = subprocess.run([sys.executable, "-m", "stream", "dlq", "replay", "--stage", "publish"],
                           env=env, capture_output=True, text=True, check=True)
    assert "replayed 0 of" in again.stdout and "skipped 1 replayed before" in again.stdout, again.stdout


def test_a_dead_letter_cut_to_fit_is_replayed_whole_from_its_source(
    broker: LocalBroker, topics: StreamTopics, tmp_path: Path
) -> None:
    """A 90 KB article whose enriched record is over max_record_bytes: its dead letter holds
    only the start of it (the topic takes max_record_bytes + 64 KiB); the replay reads the
    whole original back from articles.raw, and a second replay skips it."""
    worker = StreamWorker(broker, topics, tmp_path, "w", STREAM_MAX_ARTICLE_BYTES="200000",
                          STREAM_MAX_RECORD_BYTES="4000", STREAM_PLUGINS="clean")
    big = {"id": "big", "text": "Officials met in Geneva to discuss the talks again. " * 1800}
    try:
        produce(broker, topics.raw, [big])
        letters: list[dict] = []  # type: ignore[type-arg]
        for _ in range(60):
            letters = [d for d, _h in _dead(broker, topics.dlq) if d["article_id"] == "big"]
            if letters:
                break
            asyncio.run(asyncio.sleep(1))
    finally:
        assert worker.stop() == 0, worker.log()
    [letter] = letters
    assert letter["error"]["stage"] == "publish" and letter["original_truncated"], letter["error"]
    assert letter["original_size"] > len(base64.b64decode(letter["original"]))

    env = topics.env(broker, tmp_path / "d")
    done = subprocess.run([sys.executable, "-m", "stream", "dlq", "replay"], env=env, capture_output=True,
                          text=True, check=True)
    assert f"replayed 1 of 1 dead letter(s) to {topics.raw}" in done.stdout, done.stdout

    async def raw_values() -> list[bytes]:
        return [r.value or b"" async for r in read_records(broker.target(), topics.raw, timeout=2)]

    sent = asyncio.run(raw_values())
    assert len(sent) == 2 and sent[1] == sent[0] and len(sent[1]) == letter["original_size"]
    again = subprocess.run([sys.executable, "-m", "stream", "dlq", "replay"], env=env, capture_output=True,
                           text=True, check=True)
    assert "replayed 0 of 1" in again.stdout and "skipped 1 replayed before" in again.stdout, again.stdout
