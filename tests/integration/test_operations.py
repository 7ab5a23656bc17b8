"""Operations on a real worker: Prometheus metrics, health, and the live dashboard in
headless Chromium (Debian's chromium and chromedriver, driven by Selenium)."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import orjson
import pytest

from stream.testing import StreamTopics, StreamWorker, produce, wait_for
from stream.tools.broker import LocalBroker

from ..webhook_server import Receiver

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "examples" / "articles").glob("*.txt"))
ARTIFACTS = ROOT / "test-artifacts"
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _samples() -> list[dict[str, Any]]:
    return [{"id": p.stem, "text": p.read_text()} for p in SAMPLES]


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total, found = 0.0, False
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if not m:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total, found = total + float(m.group(2)), True
    assert found, f"no sample {name}{labels} in /metrics"
    return total


@pytest.fixture
def sink() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def running(broker: LocalBroker, topics: StreamTopics, tmp_path: Path, sink: Receiver) -> Iterator[StreamWorker]:
    hooks = tmp_path / "webhooks.toml"
    hooks.write_text(f'[[endpoints]]\nid = "sink"\nurl = "http://127.0.0.1:{sink.port}/hook"\nsecret = "{SECRET}"\n')
    tag = topics.app_id
    worker = StreamWorker(broker, topics, tmp_path, "ops", STREAM_WEBHOOKS=str(hooks),
                          STREAM_WEBHOOKS_ALLOW_LOOPBACK="1", STREAM_TOPIC_WEBHOOKS_RETRY=f"{tag}.retry",
                          STREAM_TOPIC_WEBHOOKS_FAILED=f"{tag}.failed", STREAM_TOPIC_WEBHOOKS_EVENTS=f"{tag}.events",
                          STREAM_STALL_TIMEOUT="20", STREAM_PLUGINS="clean,ner,dedup,stories,alerts",
                          STREAM_TOPIC_STORIES=f"{tag}.stories")
    yield worker
    assert worker.stop() == 0, worker.log()


def test_metrics_and_health_of_a_worker_after_the_sample_feed(
        broker: LocalBroker, topics: StreamTopics, running: StreamWorker, sink: Receiver) -> None:
    url = running.web_url()
    deadline = time.monotonic() + 90
    while _get(f"{url}/health/ready")[0] != 200:  # not ready before it has its partitions
        assert time.monotonic() < deadline, running.log()
        time.sleep(0.3)
    articles = _samples()
    copy = {**articles[0], "id": "copy-of-" + articles[0]["id"]}  # an exact duplicate
    produce(broker, topics.raw, [*articles, copy])
    produce_raw(broker, topics.raw, b'{"id": "broken", "text": "no closing brace"')
    wait_for(broker, topics.enriched, {a["id"] for a in articles} | {copy["id"]}, workers=[running])
    deadline = time.monotonic() + 60
    while len(sink.requests) < 3:
        assert time.monotonic() < deadline, "the webhook sink got no alerts"
        time.sleep(0.3)
    time.sleep(6)  # one more round of the offset watch
    status, body = _get(f"{url}/metrics")
    assert status == 200
    text = body.decode()
    assert metric(text, "stream_articles_in_total", stage="raw") == len(articles) + 2
    assert metric(text, "stream_articles_out_total", topic=topics.enriched) == len(articles) + 1
    for plugin in ("clean", "ner", "dedup", "alerts"):
        assert metric(text, "stream_plugin_seconds_count", plugin=plugin) > 0
        assert metric(text, "stream_plugin_seconds_sum", plugin=plugin) > 0
    assert metric(text, "stream_dead_letters_total", reason="RecordError", stage="decode") == 1
    assert metric(text, "stream_duplicates_total", kind="exact") == 1
    assert metric(text, "stream_alerts_total", rule="military-escalation") >= 3
    assert metric(text, "stream_webhook_results_total", endpoint="sink", result="ok") == len(sink.requests)
    assert metric(text, "stream_webhook_attempts_total", endpoint="sink") == len(sink.requests)
    assert metric(text, "stream_committed_offset", topic=topics.raw) == len(articles) + 2
    assert metric(text, "stream_consumer_lag", topic=topics.raw) == 0
    assert metric(text, "stream_ready") == 1 and metric(text, "stream_live") == 1
    assert _get(f"{url}/health/live")[0] == 200
    status, body = _get(f"{url}/health/ready")
    assert status == 200 and f"{topics.raw}[0]" in orjson.loads(body)["partitions"]


def produce_raw(broker: LocalBroker, topic: str, value: bytes) -> None:
    env = {**os.environ, "STREAM_BROKER": broker.bootstrap, "STREAM_TOPIC_RAW": topic}
    subprocess.run([sys.executable, "-m", "stream", "produce", "-"], input=value, env=env, check=True,
                   capture_output=True)


def _chrome() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1000"):
        options.add_argument(flag)
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(options=options, service=service)


def test_dashboard_in_headless_chromium_shows_the_alert_and_updates(
        broker: LocalBroker, topics: StreamTopics, running: StreamWorker) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url = running.web_url()
    articles = _samples()
    produce(broker, topics.raw, articles[:1])
    browser = _chrome()
    try:
        browser.get(url + "/")
        assert browser.title == "stream worker"
        wait = WebDriverWait(browser, 90, poll_frequency=0.3)
        # The alert raised by the first sample article appears, with its snippet.
        first = articles[0]["id"]
        def escalation(b: Any) -> list[Any]:
            return [li for li in b.find_elements(By.CSS_SELECTOR, f'li.alert[data-article="{first}"]')
                    if "] military-escalation " in li.text]

        item = wait.until(escalation)[0]
        assert "[high]" in item.text and "invasion" in item.text  # the rule, its severity, the snippet
        assert int(browser.find_element(By.ID, "total-in").text) == 1
        # The page updates itself: more articles arrive, the totals change without a reload.
        updates = int(browser.find_element(By.ID, "updates").text)
        produce(broker, topics.raw, articles[1:])
        wait.until(lambda b: b.find_element(By.ID, "total-out").text == str(len(articles)))
        assert browser.find_element(By.ID, "total-in").text == str(len(articles))
        assert int(browser.find_element(By.ID, "updates").text) > updates
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "li.alert")) >= 3)
        entities = browser.find_element(By.ID, "entities").text
        assert "Russia" in entities
        assert "ner" in browser.find_element(By.ID, "plugins").text
        # The stories panel: the samples' stories, with their article and source counts.
        story = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "li.story"))[0]
        assert re.search(r"\d+ articles? · \d+ sources?", story.text), story.text
        ARTIFACTS.mkdir(exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
    finally:
        browser.quit()


def test_json_logs_one_object_per_line_with_the_article_id(
        broker: LocalBroker, topics: StreamTopics, tmp_path: Path) -> None:
    worker = StreamWorker(broker, topics, tmp_path, "json", STREAM_LOG_FORMAT="json")
    try:
        produce(broker, topics.raw, [{"id": "empty-1", "text": ""}])
        wait_for(broker, topics.dlq, {"empty-1"}, workers=[worker])
    finally:
        assert worker.stop() == 0, worker.log()
    lines = [orjson.loads(line) for line in worker.log_path.read_text().splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    [dead] = [line for line in lines if line.get("article_id") == "empty-1"]
    assert dead["level"] == "warning" and "field 'text' is empty" in dead["message"]
