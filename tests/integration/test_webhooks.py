"""Webhook delivery on the real broker, to real HTTP servers on localhost."""

from __future__ import annotations

import asyncio
import base64
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream.ops.metrics import WorkerMetrics
from stream.settings import Settings
from stream.testing import StreamTopics, produce
from stream.tools.broker import LocalBroker
from stream.webhooks.config import parse_subscriptions
from stream.webhooks.delivery import DIGEST_GRACE, Dispatcher, webhook_id
from stream.webhooks.signing import verify

from ..webhook_server import Receiver, stable_port

pytestmark = pytest.mark.integration

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def alert(n: int, severity: str = "high") -> dict[str, Any]:
    return {"id": f"al-{n}", "alert_id": f"al-{n}", "rule_id": "troops", "article_id": f"a{n}",
            "severity": severity, "kind": "keyword", "created_at": "2026-11-23T10:00:00.000Z", "snippet": "x"}


def subscriptions(*endpoints: tuple[str, str], schedule: str = "[0, 0.5, 0.5]", extra: str = "") -> str:
    out = f"[delivery]\nschedule = {schedule}\n"
    for ident, url in endpoints:
        out += f'[[endpoints]]\nid = "{ident}"\nurl = "{url}"\nsecret = "{SECRET}"\n{extra}'
    return out


def settings_for(broker: LocalBroker, topics: StreamTopics) -> Settings:
    tag = topics.app_id
    return Settings(broker=broker.bootstrap, app_id=tag, topic_alerts=topics.alerts, partitions=2,
                    topic_webhooks_retry=f"{tag}.retry", topic_webhooks_failed=f"{tag}.failed",
                    topic_webhooks_events=f"{tag}.events")


class Running:
    """A Dispatcher in a thread of its own, stopped cleanly at the end."""

    def __init__(self, settings: Settings, subs_text: str, metrics: WorkerMetrics | None = None):
        self.dispatcher = Dispatcher(settings, parse_subscriptions(subs_text), allow_loopback=True, metrics=metrics)
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()
        # A new dispatcher group starts at the end of the alerts: produce only after that.
        assert self.dispatcher.prepared.wait(60), "the dispatcher did not start"

    def _main(self) -> None:
        async def run() -> None:
            self.stop_event = asyncio.Event()
            await self.dispatcher.run(self.stop_event)

        try:
            self.loop.run_until_complete(run())
        finally:
            self.loop.close()

    def stop(self) -> None:
        while self.stop_event is None:
            time.sleep(0.05)
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(30)


def test_500_then_200_is_one_success_with_the_same_webhook_id(broker: LocalBroker, topics: StreamTopics) -> None:
    server = Receiver(statuses=[500]).start()
    running = Running(settings_for(broker, topics), subscriptions(("ops", server.url)))
    try:
        produce(broker, topics.alerts, [alert(1)])
        first, second = server.wait(2)[:2]
    finally:
        running.stop()
        server.stop()
    assert first.status == 500 and second.status == 200
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == webhook_id("al-1", "ops")
    for req in (first, second):  # a fresh timestamp and signature on every attempt
        assert verify(SECRET, req.headers["webhook-id"], req.headers["webhook-timestamp"], req.body,
                      req.headers["webhook-signature"])
    assert orjson.loads(second.body)["data"]["alert_id"] == "al-1"
    time.sleep(1)
    assert len(server.requests) == 2


def test_an_endpoint_that_was_down_receives_the_alert_when_it_comes_back(
    broker: LocalBroker, topics: StreamTopics
) -> None:
    port = stable_port()  # nothing listens on it yet: the endpoint is down
    running = Running(settings_for(broker, topics),
                      subscriptions(("ops", f"http://127.0.0.1:{port}/hook"), schedule="[0, 1, 1, 1, 1, 1]"))
    try:
        produce(broker, topics.alerts, [alert(2)])
        time.sleep(1.5)  # at least one attempt failed: connection refused
        server = Receiver(port=port).start()
        try:
            [req] = server.wait(1, timeout=30)
        finally:
            server.stop()
    finally:
        running.stop()
    assert orjson.loads(req.body)["data"]["alert_id"] == "al-2"


def test_a_slow_endpoint_does_not_delay_a_fast_one(broker: LocalBroker, topics: StreamTopics) -> None:
    slow = Receiver(delay=4).start()
    fast = Receiver().start()
    running = Running(settings_for(broker, topics),
                      subscriptions(("slow", slow.url), ("fast", fast.url), extra="concurrency = 1\ntimeout = 30\n"))
    try:
        start = time.time()
        produce(broker, topics.alerts, [alert(n) for n in range(3, 8)])
        fast.wait(5, timeout=30)
        fast_done = max(r.at for r in fast.requests) - start
        slow.wait(5, timeout=60)
    finally:
        running.stop()
        slow.stop()
        fast.stop()
    # concurrency 1 and 4 s per request: the slow endpoint needs ~20 s for five alerts;
    # the fast one got all five while the slow one was still on its first or second.
    assert fast_done < 8, fast_done
    assert max(r.at for r in slow.requests) - start > 12


def test_a_4xx_is_not_retried_and_an_exhausted_alert_lands_in_webhooks_failed(
    broker: LocalBroker, topics: StreamTopics
) -> None:
    settings = settings_for(broker, topics)
    bad = Receiver(default=404).start()
    down = Receiver(default=503).start()
    running = Running(settings, subscriptions(("bad", bad.url), ("down", down.url), schedule="[0, 0.2, 0.2]"))
    try:
        produce(broker, topics.alerts, [alert(9)])
        deadline = time.time() + 60
        records: list[dict[str, Any]] = []
        while time.time() < deadline and len(records) < 2:
            records = _read(broker, settings.topic_webhooks_failed)
            time.sleep(0.5)
    finally:
        running.stop()
        bad.stop()
        down.stop()
    by_endpoint = {r["endpoint"]: r for r in records}
    assert len(bad.requests) == 1 and [a["status"] for a in by_endpoint["bad"]["attempts"]] == [404]
    assert len(down.requests) == 3 and [a["status"] for a in by_endpoint["down"]["attempts"]] == [503, 503, 503]
    assert by_endpoint["down"]["alert"]["alert_id"] == "al-9" and by_endpoint["down"]["reason"] == "HTTP 503"


def wait_until_started(broker: LocalBroker, group: str, topic: str, timeout: float = 60) -> None:
    """Until the dispatcher group has its start offsets on ``topic`` (it delivers what is
    raised from then on)."""
    from aiokafka.admin import AIOKafkaAdminClient

    async def run() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(group)
            return any(tp.topic == topic for tp in offsets)
        finally:
            await admin.close()

    deadline = time.time() + timeout
    while not asyncio.run(run()):
        assert time.time() < deadline, f"group {group} has no offsets on {topic}"
        time.sleep(0.3)


def _read(broker: LocalBroker, topic: str) -> list[dict[str, Any]]:
    from stream.runtime.kafka import read_records

    async def run() -> list[dict[str, Any]]:
        return [orjson.loads(r.value) async for r in read_records(broker.bootstrap, topic, timeout=1)]

    return asyncio.run(run())


def test_a_dispatcher_killed_during_a_retry_delivers_after_a_restart(
    broker: LocalBroker, topics: StreamTopics, tmp_path: Path
) -> None:
    settings = settings_for(broker, topics)
    server = Receiver(statuses=[500]).start()
    subs = tmp_path / "webhooks.toml"
    subs.write_text(subscriptions(("ops", server.url), schedule="[0, 3, 3]"))
    env = topics.env(broker, tmp_path / "d", STREAM_WEBHOOKS=str(subs), STREAM_WEBHOOKS_ALLOW_LOOPBACK="1",
                     STREAM_TOPIC_WEBHOOKS_RETRY=settings.topic_webhooks_retry,
                     STREAM_TOPIC_WEBHOOKS_FAILED=settings.topic_webhooks_failed,
                     STREAM_TOPIC_WEBHOOKS_EVENTS=settings.topic_webhooks_events, STREAM_PARTITIONS="2")
    command = [sys.executable, "-m", "stream", "webhooks", "run"]
    try:
        first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until_started(broker, f"{topics.app_id}-webhooks", topics.alerts)
        produce(broker, topics.alerts, [alert(10)])
        server.wait(1, timeout=60)  # the first attempt got a 500; the retry is due in 3 s
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        time.sleep(4)
        assert len(server.requests) == 1  # nobody delivered while no dispatcher ran
        second = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            requests = server.wait(2, timeout=60)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0
    finally:
        server.stop()
    assert requests[1].status == 200
    assert requests[0].headers["webhook-id"] == requests[1].headers["webhook-id"]


def test_a_rate_limited_endpoint_gets_its_rate_and_no_more(broker: LocalBroker, topics: StreamTopics) -> None:
    """#20: ``rate = 4``: 40 alerts at once reach the endpoint at 4 a second (after a first
    second's burst), within 10 %."""
    server = Receiver().start()
    running = Running(settings_for(broker, topics), subscriptions(("ops", server.url), extra="rate = 4\n"))
    try:
        produce(broker, topics.alerts, [alert(n) for n in range(100, 140)])
        got = server.wait(40, timeout=60)
    finally:
        running.stop()
        server.stop()
    times = sorted(r.at for r in got)
    steady = times[4:]  # the bucket starts full: one second's worth goes at once
    rate = (len(steady) - 1) / (steady[-1] - steady[0])
    assert abs(rate - 4) <= 0.4, rate
    assert len({r.headers["webhook-id"] for r in got}) == 40


def test_a_429_with_retry_after_pauses_every_delivery_to_the_endpoint(
    broker: LocalBroker, topics: StreamTopics
) -> None:
    server = Receiver(statuses=[429], headers={"Retry-After": "3"}).start()
    running = Running(settings_for(broker, topics), subscriptions(("ops", server.url), schedule="[0, 1, 1]"))
    try:
        produce(broker, topics.alerts, [alert(200)])
        [refused] = server.wait(1, timeout=30)
        produce(broker, topics.alerts, [alert(n) for n in range(201, 204)])
        got = server.wait(5, timeout=60)
    finally:
        running.stop()
        server.stop()
    assert refused.status == 429
    later = [r for r in got if r is not refused]
    # the other alerts waited for the endpoint's Retry-After too, not only the refused one
    assert min(r.at for r in later) - refused.at >= 2.8, [round(r.at - refused.at, 2) for r in later]
    assert {orjson.loads(r.body)["data"]["alert_id"] for r in later} == {"al-200", "al-201", "al-202", "al-203"}


def test_a_slack_endpoint_receives_a_signed_slack_message(broker: LocalBroker, topics: StreamTopics) -> None:
    from stream.webhooks.formats import slack_problems

    server = Receiver().start()
    running = Running(settings_for(broker, topics), subscriptions(("chat", server.url), extra='format = "slack"\n'))
    try:
        produce(broker, topics.alerts, [{**alert(300), "title": "Troops at the border", "url": "https://e.x/a"}])
        [req] = server.wait(1, timeout=30)
    finally:
        running.stop()
        server.stop()
    message = orjson.loads(req.body)
    assert slack_problems(message) == [] and "<https://e.x/a|Troops at the border>" in str(message["blocks"])
    assert req.headers["webhook-id"] == webhook_id("al-300", "chat")
    assert verify(SECRET, req.headers["webhook-id"], req.headers["webhook-timestamp"], req.body,
                  req.headers["webhook-signature"])


def _digests(server: Receiver) -> dict[str, list[str]]:
    """webhook-id -> the alert ids of that digest (a redelivery has the same id)."""
    out: dict[str, list[str]] = {}
    for req in server.requests:
        body = orjson.loads(req.body)
        assert body["type"] == "alert.digest", body["type"]  # never a single alert.created
        out[req.headers["webhook-id"]] = [a["alert_id"] for a in body["data"]["alerts"]]
    return out


def _wait_digested(server: Receiver, count: int, timeout: float = 40) -> None:
    """Until ``count`` alerts have arrived in digests (then a second more, for any extra)."""
    deadline = time.monotonic() + timeout
    while sum(len(v) for v in _digests(server).values()) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)


def test_a_digest_endpoint_gets_one_delivery_per_window_with_its_alerts(
    broker: LocalBroker, topics: StreamTopics
) -> None:
    """#20: ``digest = { minutes = 0.1, max = 3 }``: 7 alerts in one 6-second window arrive
    in digests of at most 3 (per partition of the alerts topic), each alert in one."""
    server = Receiver().start()
    running = Running(settings_for(broker, topics),
                      subscriptions(("ops", server.url), extra="digest = { minutes = 0.1, max = 3 }\n"))
    try:
        produce(broker, topics.alerts, [alert(n) for n in range(400, 407)])
        _wait_digested(server, 7)
    finally:
        running.stop()
        server.stop()
    digests = _digests(server)
    every = [a for ids in digests.values() for a in ids]
    assert sorted(every) == [f"al-{n}" for n in range(400, 407)]  # each alert once
    assert all(len(ids) <= 3 for ids in digests.values()) and len(digests) >= 3
    first = orjson.loads(server.requests[0].body)["data"]
    assert first["window_end"] > first["window_start"] and first["count"] == len(first["alerts"])


def test_a_digest_survives_a_restart_with_no_alert_lost_and_none_in_two_digests(
    broker: LocalBroker, topics: StreamTopics
) -> None:
    settings = settings_for(broker, topics)
    subs = subscriptions(("ops", "URL"), extra="digest = { minutes = 0.1, max = 50 }\n")
    server = Receiver().start()
    try:
        # 1. alerts read, the dispatcher stopped before their window closed: nothing sent
        first = Running(settings, subs.replace("URL", server.url))
        produce(broker, topics.alerts, [alert(n) for n in range(500, 506)])
        time.sleep(1.5)
        first.stop()
        assert server.requests == []
        # 2. a new dispatcher (same group) reads them again and sends their digests
        second = Running(settings, subs.replace("URL", server.url))
        try:
            _wait_digested(server, 6)
        finally:
            second.stop()
        sent = dict(_digests(server))
        # 3. a third start sends nothing more: the digests were committed
        third = Running(settings, subs.replace("URL", server.url))
        time.sleep(10)  # longer than a window and its grace
        third.stop()
    finally:
        server.stop()
    every = [a for ids in _digests(server).values() for a in ids]
    assert sorted(every) == [f"al-{n}" for n in range(500, 506)]  # none lost, none in two digests
    assert _digests(server) == sent


def test_an_alert_read_again_after_a_restart_goes_out_in_the_digest_it_was_in(
    broker: LocalBroker, topics: StreamTopics
) -> None:
    """Review finding 4 (issue 26): a slow endpoint holds the committed offset of the alerts
    partition below alerts whose digests were already sent to another endpoint.  After a
    restart those alerts are read again: each must go out under the webhook-id of the digest
    it was in (a redelivery), never in a new page with a new id (it used to: the pages were
    cut again from the first alert read)."""
    settings = settings_for(broker, topics)
    digests = Receiver().start()
    slow = Receiver(delay=30, delay_when=b'"al-701"').start()
    subs = (subscriptions(("ops", digests.url), extra="digest = { minutes = 0.1, max = 2 }\n")
            + subscriptions(("slow", slow.url)).split("\n", 2)[2])
    try:
        first = Running(settings, subs)
        produce(broker, topics.alerts, [alert(n) for n in range(700, 705)])  # one partition (one rule)
        _wait_digested(digests, 5)
        first.stop()  # "slow" still has al-701 in flight: the commit stays at it
        second = Running(settings, subs)
        try:
            deadline = time.monotonic() + 40
            while len(digests.requests) < 4 and time.monotonic() < deadline:  # 3 pages, then the redelivery
                time.sleep(0.2)
            time.sleep(2)
        finally:
            second.stop()
    finally:
        digests.stop()
        slow.stop()
    pages: dict[str, set[str]] = {}
    for req in digests.requests:
        for one in orjson.loads(req.body)["data"]["alerts"]:
            pages.setdefault(one["alert_id"], set()).add(req.headers["webhook-id"])
    assert sorted(pages) == [f"al-{n}" for n in range(700, 705)]
    assert all(len(ids) == 1 for ids in pages.values()), pages  # each alert in one digest id
    assert len(digests.requests) > 3  # the re-read alerts were sent again (same ids)


def test_an_alert_raised_twice_goes_out_in_one_digest(broker: LocalBroker, topics: StreamTopics) -> None:
    """Issue 26 (NOTES lead 0k): an alert raised twice (an at-least-once repeat of its
    article's stage-2 batch: a second record with the same alert id, at a later offset and
    time) is in one digest, whether the repeat is read in the same window, in a later
    window, or by a restarted dispatcher."""
    settings = settings_for(broker, topics)
    subs = subscriptions(("ops", "URL"), extra="digest = { minutes = 0.1, max = 50 }\n")
    server = Receiver().start()
    try:
        first = Running(settings, subs.replace("URL", server.url))
        try:
            # al-901 twice in one window
            produce(broker, topics.alerts, [alert(900), alert(901), alert(901), alert(902)])
            _wait_digested(server, 3)
            sent = len(server.requests)
            # al-900 again, in a later window (6-second windows)
            time.sleep(6.5)
            produce(broker, topics.alerts, [alert(900), alert(903)])
            _wait_digested(server, 4, timeout=30)
            time.sleep(DIGEST_GRACE + 1)
        finally:
            first.stop()
        # al-902 again, read by a restarted dispatcher
        second = Running(settings, subs.replace("URL", server.url))
        try:
            produce(broker, topics.alerts, [alert(902), alert(904)])
            _wait_digested(server, 5, timeout=30)
            time.sleep(DIGEST_GRACE + 1)
        finally:
            second.stop()
    finally:
        server.stop()
    in_digests: dict[str, set[str]] = {}
    for digest_id, ids in _digests(server).items():
        assert len(ids) == len(set(ids)), ids  # no alert twice in a page
        for one in ids:
            in_digests.setdefault(one, set()).add(digest_id)
    assert sorted(in_digests) == [f"al-{n}" for n in range(900, 905)]
    assert all(len(ids) == 1 for ids in in_digests.values()), in_digests
    assert sent >= 1 and len(server.requests) == sent + 2  # the later windows: al-903, then al-904 alone
