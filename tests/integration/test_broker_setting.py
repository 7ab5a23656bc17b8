"""The broker setting in faust's URL form and as a list, end to end (issue 16)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stream.testing import StreamTopics, StreamWorker, wait_for
from stream.tools.broker import LocalBroker

pytestmark = pytest.mark.integration


def test_a_worker_produce_and_tail_take_kafka_urls_and_lists(broker: LocalBroker, topics: StreamTopics,
                                                              tmp_path: Path) -> None:
    servers = broker.client_env()["STREAM_BROKER"]  # the SASL_SSL listeners when the tests run over them
    url = f"kafka://{servers},{servers}"
    article = tmp_path / "a.json"
    article.write_text('{"id": "url-form", "text": "Troops crossed the border, officials said."}')
    env = topics.env(broker, tmp_path / "cli", STREAM_BROKER=url)
    worker = StreamWorker(broker, topics, tmp_path, "w", STREAM_BROKER=url)
    try:
        sent = subprocess.run([sys.executable, "-m", "stream", "produce", str(article)], env=env,
                              capture_output=True, text=True, timeout=120)
        assert sent.returncode == 0, sent.stderr
        wait_for(broker, topics.enriched, {"url-form"}, workers=(worker,))
        tail = subprocess.run([sys.executable, "-m", "stream", "tail", topics.enriched, "-n", "1"], env=env,
                              capture_output=True, text=True, timeout=120)
    finally:
        assert worker.stop() == 0, worker.log()
    assert tail.returncode == 0 and "url-form" in tail.stdout, tail.stderr


def test_a_malformed_broker_setting_stops_the_worker_at_start(broker: LocalBroker, topics: StreamTopics,
                                                              tmp_path: Path) -> None:
    env = topics.env(broker, tmp_path / "d", STREAM_BROKER="http://127.0.0.1:9092")
    done = subprocess.run([sys.executable, "-m", "stream", "worker"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 78  # EX_CONFIG
    assert "STREAM_BROKER" in done.stderr and "kafka://host:port" in done.stderr
