"""The webhook dispatcher on the real broker, where the last review found it lacking (issue
15): bad records, bounded jobs, where a new subscription starts, explicit backfills, and
several workers with webhooks scaled 1 -> 3 -> 1 while alerts flow."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream.ops.metrics import WorkerMetrics
from stream.runtime.kafka import ensure_topics, make_producer, read_records
from stream.testing import StreamTopics, StreamWorker, produce, wait_for
from stream.tools.broker import LocalBroker
from stream.webhooks.delivery import webhook_id

from ..webhook_server import Receiver
from .test_webhooks import SECRET, Running, alert, settings_for, subscriptions

pytestmark = pytest.mark.integration


def _send_raw(broker: LocalBroker, topic: str, values: list[bytes]) -> None:
    async def run() -> None:
        producer = make_producer(broker.bootstrap)
        await producer.start()
        try:
            for value in values:
                await (await producer.send(topic, value=value))
        finally:
            await producer.stop()

    asyncio.run(run())


def _read(broker: LocalBroker, topic: str) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        return [orjson.loads(r.value) async for r in read_records(broker.bootstrap, topic, timeout=1)]

    return asyncio.run(run())


def _ids(requests: list[Any]) -> list[str]:
    return [orjson.loads(r.body)["data"]["alert_id"] for r in requests]


def _digested(receiver: Receiver) -> dict[str, set[str]]:
    """alert id -> the webhook-ids of the digests it arrived in (one, however often sent)."""
    out: dict[str, set[str]] = {}
    for r in list(receiver.requests):
        if r.status == 200:
            for one in orjson.loads(r.body)["data"]["alerts"]:
                out.setdefault(one["alert_id"], set()).add(r.headers["webhook-id"])
    return out


def test_records_that_are_no_alert_or_job_are_kept_in_webhooks_failed_and_delivery_goes_on(
    broker: LocalBroker, topics: StreamTopics
) -> None:
    settings = settings_for(broker, topics)
    server = Receiver().start()
    running = Running(settings, subscriptions(("ops", server.url)))
    try:
        _send_raw(broker, topics.alerts, [b"not json at all", b'["a", "list"]', b'{"no": "alert_id"}'])
        _send_raw(broker, settings.topic_webhooks_retry, [b"\xff\xfe", b'{"webhook_id": "x"}'])
        produce(broker, topics.alerts, [alert(1)])
        server.wait(1)
        failed: list[dict[str, Any]] = []
        deadline = time.time() + 30
        while len(failed) < 5 and time.time() < deadline:
            failed = _read(broker, settings.topic_webhooks_failed)
            time.sleep(0.3)
        assert running.thread.is_alive()
    finally:
        running.stop()
        server.stop()
    assert _ids(server.requests) == ["al-1"]
    reasons = sorted(r["reason"] for r in failed)
    assert len(reasons) == 5, reasons
    assert sum("not JSON" in r for r in reasons) == 2 and sum("not a retry job" in r for r in reasons) == 1
    assert any("not a JSON object but list" in r for r in reasons) and any("not an alert" in r for r in reasons)
    assert all(r["source"]["topic"] in (topics.alerts, settings.topic_webhooks_retry) for r in failed)


def test_jobs_in_flight_are_bounded_and_all_are_delivered(broker: LocalBroker, topics: StreamTopics) -> None:
    settings = settings_for(broker, topics)
    slow = Receiver(delay=0.3).start()
    subs = subscriptions(("slow", slow.url), extra="concurrency = 1\n").replace(
        "[delivery]\n", "[delivery]\nmax_in_flight = 4\n")
    running = Running(settings, subs)
    peak = 0
    try:
        produce(broker, topics.alerts, [alert(n) for n in range(40)])
        deadline = time.time() + 90
        while len(slow.requests) < 40 and time.time() < deadline:
            peak = max(peak, len(running.dispatcher.tasks))
            time.sleep(0.01)
    finally:
        running.stop()
        slow.stop()
    assert sorted(set(_ids(slow.requests))) == sorted(f"al-{n}" for n in range(40))
    assert 1 <= peak <= 4, peak  # without the bound, the 40 alerts come in one read: 40 jobs
    assert running.dispatcher.paused is False


def test_retries_waiting_for_their_time_never_hold_up_the_other_endpoints(
    broker: LocalBroker, topics: StreamTopics
) -> None:
    """A dead endpoint's retries wait hours for their time.  They have a bound of their own:
    at it, only the retry topic stops being read, and the others' alerts keep going out
    (they used to count as jobs in flight, and 4 of them here stopped every delivery)."""
    settings = settings_for(broker, topics)
    dead, live = Receiver(default=503).start(), Receiver().start()
    subs = (f"[delivery]\nschedule = [0, 3600]\nmax_in_flight = 4\n"
            f'[[endpoints]]\nid = "dead"\nurl = "{dead.url}"\nsecret = "{SECRET}"\nrules = ["troops"]\n'
            f'[[endpoints]]\nid = "live"\nurl = "{live.url}"\nsecret = "{SECRET}"\nrules = ["invasion"]\n')
    metrics = WorkerMetrics()
    running = Running(settings, subs, metrics)
    try:
        produce(broker, topics.alerts, [alert(n) for n in range(8)])
        dead.wait(8)
        deadline = time.monotonic() + 30
        while not running.dispatcher.retries_paused and time.monotonic() < deadline:
            time.sleep(0.05)
        produce(broker, topics.alerts, [{**alert(n), "rule_id": "invasion"} for n in range(100, 110)])
        live.wait(10, timeout=30)
        waiting, paused, retries_paused = (running.dispatcher.waiting, running.dispatcher.paused,
                                           running.dispatcher.retries_paused)
        gauge = metrics.registry.get_sample_value("stream_webhook_jobs", {"state": "waiting"})
    finally:
        running.stop()
        dead.stop()
        live.stop()
    assert sorted(_ids(live.requests)) == sorted(f"al-{n}" for n in range(100, 110))
    assert len(dead.requests) == 8  # the first attempts; every retry is an hour away
    assert 4 <= waiting <= 8 and retries_paused and not paused, (waiting, retries_paused, paused)
    assert gauge is not None and 4 <= gauge <= 8, gauge


def test_a_slow_endpoint_holds_only_its_share_and_its_overflow_waits_in_the_retry_topic(
    broker: LocalBroker, topics: StreamTopics
) -> None:
    """An endpoint that answers after its timeout, with 40 alerts queued behind a
    concurrency of 1: beyond its share of ``max_in_flight`` (8 / 2 endpoints) its jobs are
    handed to ``webhooks.retry`` for later, and the other endpoint's alerts go out at once
    (they used to wait until the slow endpoint's attempts had timed out: about 70 s here)."""
    settings = settings_for(broker, topics)
    slow, fast = Receiver(delay=20).start(), Receiver().start()
    subs = (f"[delivery]\nschedule = [0, 3600]\nmax_in_flight = 8\n"
            f'[[endpoints]]\nid = "slow"\nurl = "{slow.url}"\nsecret = "{SECRET}"\nrules = ["troops"]\n'
            f"concurrency = 1\ntimeout = 2\n"
            f'[[endpoints]]\nid = "fast"\nurl = "{fast.url}"\nsecret = "{SECRET}"\nrules = ["invasion"]\n')
    running = Running(settings, subs)
    try:
        produce(broker, topics.alerts, [alert(n) for n in range(40)])
        slow.wait(1)
        started = time.monotonic()
        produce(broker, topics.alerts, [{**alert(n), "rule_id": "invasion"} for n in range(100, 110)])
        fast.wait(10, timeout=60)
        took = time.monotonic() - started
        deferred = running.dispatcher.counts["slow:deferred"]
    finally:
        running.stop()
        slow.stop()
        fast.stop()
    assert sorted(_ids(fast.requests)) == sorted(f"al-{n}" for n in range(100, 110))
    assert took < 15, took
    parked = {j["webhook_id"]: j for j in _read(broker, settings.topic_webhooks_retry) if j.get("deferred")}
    assert deferred >= 30 and len(parked) >= 30, (deferred, len(parked))
    assert {j["endpoint"] for j in parked.values()} == {"slow"}
    assert all(j["attempts"] == [] for j in parked.values())  # deferred before any attempt: none counted


def test_disabling_and_enabling_an_endpoint_reach_the_running_dispatchers(
    broker: LocalBroker, topics: StreamTopics, tmp_path: Path
) -> None:
    """Two dispatchers share the alerts.  One gets ``410 Gone`` and disables the endpoint:
    the other stops delivering to it too.  ``stream webhooks enable`` turns it on in both,
    without a restart, and ``redeliver --failed`` sends what it missed, same webhook-ids."""
    settings = settings_for(broker, topics)
    server = Receiver(statuses=[410]).start()
    subs = subscriptions(("ops", server.url))
    first, second = Running(settings, subs), Running(settings, subs)
    dispatchers = (first.dispatcher, second.dispatcher)

    def settle(condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 30
        while not condition():
            assert time.monotonic() < deadline, what
            time.sleep(0.05)

    hooks = tmp_path / "webhooks.toml"
    hooks.write_text(subs)
    env = topics.env(broker, tmp_path / "d", STREAM_WEBHOOKS=str(hooks), STREAM_WEBHOOKS_ALLOW_LOOPBACK="1",
                     STREAM_TOPIC_WEBHOOKS_RETRY=settings.topic_webhooks_retry,
                     STREAM_TOPIC_WEBHOOKS_FAILED=settings.topic_webhooks_failed,
                     STREAM_TOPIC_WEBHOOKS_EVENTS=settings.topic_webhooks_events, STREAM_PARTITIONS="2")
    try:
        produce(broker, topics.alerts, [alert(1)])
        server.wait(1)
        settle(lambda: all("ops" in d.disabled for d in dispatchers), "a dispatcher does not know of the 410")
        produce(broker, topics.alerts, [alert(n) for n in range(2, 12)])  # both partitions: both dispatchers
        settle(lambda: len(_read(broker, settings.topic_webhooks_failed)) >= 11, "not every alert failed")
        assert len(server.requests) == 1  # none after the 410, from either dispatcher

        enabled = subprocess.run([sys.executable, "-m", "stream", "webhooks", "enable", "ops"], env=env,
                                 capture_output=True, text=True)
        assert enabled.returncode == 0, enabled.stderr
        settle(lambda: not any("ops" in d.disabled for d in dispatchers), "a dispatcher did not see the enable")
        produce(broker, topics.alerts, [alert(n) for n in range(12, 16)])
        server.wait(5)
        redelivered = subprocess.run([sys.executable, "-m", "stream", "webhooks", "redeliver", "--failed",
                                      "--endpoint", "ops"], env=env, capture_output=True, text=True)
        assert redelivered.returncode == 0, redelivered.stderr
        server.wait(16)
        time.sleep(1)
    finally:
        first.stop()
        second.stop()
        server.stop()
    failed = _read(broker, settings.topic_webhooks_failed)
    reasons = sorted(f["reason"] for f in failed)
    assert len(reasons) == 11 and reasons.count("endpoint disabled: 410 Gone") == 10, reasons
    delivered = [r for r in server.requests if r.status == 200]
    assert sorted(_ids(delivered)) == sorted(f"al-{n}" for n in range(1, 16))
    assert all(r.headers["webhook-id"] == webhook_id(_ids([r])[0], "ops") for r in delivered)
    assert {d.group for d in dispatchers} == {f"{topics.app_id}-webhooks"}


def test_a_new_subscription_receives_only_new_alerts_and_a_backfill_is_explicit(
    broker: LocalBroker, topics: StreamTopics, tmp_path: Path
) -> None:
    settings = settings_for(broker, topics)
    old, new = Receiver().start(), Receiver().start()
    try:
        produce(broker, topics.alerts, [alert(n) for n in range(1, 4)])  # history before any dispatcher
        running = Running(settings, subscriptions(("old", old.url)))
        try:
            produce(broker, topics.alerts, [alert(4)])
            old.wait(1)
            time.sleep(2)
        finally:
            running.stop()
        assert _ids(old.requests) == ["al-4"]  # the group started at the end: no history

        produce(broker, topics.alerts, [alert(5)])  # raised while no dispatcher runs
        time.sleep(1.1)  # alert 5's timestamp is well before the new endpoint is added
        running = Running(settings, subscriptions(("old", old.url), ("new", new.url)))
        try:
            produce(broker, topics.alerts, [alert(6)])
            old.wait(3)
            new.wait(1)
            time.sleep(2)
        finally:
            running.stop()
        assert sorted(_ids(old.requests)) == ["al-4", "al-5", "al-6"]  # the backlog of an existing endpoint
        assert _ids(new.requests) == ["al-6"]  # only what was raised after it was added

        hooks = tmp_path / "webhooks.toml"
        hooks.write_text(subscriptions(("old", old.url), ("new", new.url)))
        env = topics.env(broker, tmp_path / "d", STREAM_WEBHOOKS=str(hooks), STREAM_WEBHOOKS_ALLOW_LOOPBACK="1",
                         STREAM_TOPIC_WEBHOOKS_RETRY=settings.topic_webhooks_retry,
                         STREAM_TOPIC_WEBHOOKS_FAILED=settings.topic_webhooks_failed,
                         STREAM_TOPIC_WEBHOOKS_EVENTS=settings.topic_webhooks_events, STREAM_PARTITIONS="2")
        done = subprocess.run([sys.executable, "-m", "stream", "webhooks", "redeliver", "--endpoint", "new",
                               "--since", "2000-01-01T00:00:00Z"], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "6 alerts queued" in done.stdout and "for endpoint new" in done.stdout
        running = Running(settings, subscriptions(("old", old.url), ("new", new.url)))
        try:
            new.wait(7)
            time.sleep(2)
        finally:
            running.stop()
    finally:
        old.stop()
        new.stop()
    assert sorted(_ids(new.requests)) == ["al-1", "al-2", "al-3", "al-4", "al-5", "al-6", "al-6"]
    assert {r.headers["webhook-id"] for r in new.requests if _ids([r]) == ["al-6"]} == {webhook_id("al-6", "new")}
    assert sorted(_ids(old.requests)) == ["al-4", "al-5", "al-6"]  # a backfill of one endpoint only


def _articles(start: int, count: int) -> list[dict[str, Any]]:
    return [{"id": f"a{n}", "title": f"Report {n}",
             "text": f"Troops massed near the border in report {n}; officials feared an invasion."}
            for n in range(start, start + count)]


def test_workers_with_webhooks_scaled_1_3_1_stay_up_and_deliver_every_alert(
    broker: LocalBroker, topics: StreamTopics, tmp_path: Path
) -> None:
    receiver = Receiver(statuses=[500, 200, 500, 200, 503]).start()  # a few retries on the way
    digests = Receiver().start()  # and an endpoint that takes digests (issue 26: one digest per alert)
    hooks = tmp_path / "webhooks.toml"
    hooks.write_text(f"[delivery]\nschedule = [0, 1, 1, 1, 1]\n"
                     f'[[endpoints]]\nid = "sink"\nurl = "{receiver.url}"\nsecret = "{SECRET}"\n'
                     f'[[endpoints]]\nid = "digests"\nurl = "{digests.url}"\nsecret = "{SECRET}"\n'
                     f"digest = {{ minutes = 0.1, max = 20 }}\n")
    tag = topics.app_id
    env = {"STREAM_WEBHOOKS": str(hooks), "STREAM_WEBHOOKS_ALLOW_LOOPBACK": "1",
           "STREAM_TOPIC_WEBHOOKS_RETRY": f"{tag}.retry", "STREAM_TOPIC_WEBHOOKS_FAILED": f"{tag}.failed",
           "STREAM_TOPIC_WEBHOOKS_EVENTS": f"{tag}.events", "STREAM_SESSION_TIMEOUT": "10"}
    asyncio.run(ensure_topics(broker.bootstrap, [(topics.raw, 3, False)], 1))  # three workers' worth
    workers = [StreamWorker(broker, topics, tmp_path, "w1", **env)]
    try:
        produce(broker, topics.raw, _articles(0, 40))
        wait_for(broker, topics.enriched, {f"a{n}" for n in range(40)}, workers=workers)
        workers += [StreamWorker(broker, topics, tmp_path, f"w{n}", **env) for n in (2, 3)]
        for worker in workers[1:]:  # members of the group before the load and the shrink
            worker.wait_ready()
        for start in range(40, 160, 40):  # alerts flow while the group grows
            produce(broker, topics.raw, _articles(start, 40))
            time.sleep(3)
        wait_for(broker, topics.enriched, {f"a{n}" for n in range(160)}, workers=workers)
        for n, worker in enumerate(workers[1:]):  # and shrinks
            assert worker.stop() == 0, worker.log()
            produce(broker, topics.raw, _articles(160 + 20 * n, 20))
        wait_for(broker, topics.enriched, {f"a{n}" for n in range(200)}, workers=workers[:1])
        alerts = {a["alert_id"] for a in _read(broker, topics.alerts)}
        assert len(alerts) >= 200  # every article raises at least one alert
        deadline = time.time() + 120
        while time.time() < deadline and not (alerts <= set(_ids([r for r in receiver.requests if r.status == 200]))
                                              and alerts <= set(_digested(digests))):
            assert workers[0].proc.poll() is None, workers[0].log()
            time.sleep(0.5)
    finally:
        statuses = [w.stop() for w in workers]
        receiver.stop()
        digests.stop()
    assert statuses == [0, 0, 0], [w.log() for w in workers]
    for worker in workers:
        assert "IllegalStateError" not in worker.log_path.read_text(errors="replace")
    delivered = [r for r in receiver.requests if r.status == 200]
    missing = alerts - set(_ids(delivered))
    assert not missing, f"{len(missing)} of {len(alerts)} alerts never delivered"
    by_alert: dict[str, set[str]] = {}
    for r in receiver.requests:
        by_alert.setdefault(_ids([r])[0], set()).add(r.headers["webhook-id"])
    assert all(len(ids) == 1 for ids in by_alert.values())  # one webhook-id per alert, across retries
    in_digests = _digested(digests)
    assert alerts <= set(in_digests), f"{len(alerts - set(in_digests))} alerts in no digest"
    # One digest per alert: also an alert read again after a move of its partition, and an
    # alert raised twice (an at-least-once repeat of its article's stage-2 batch after a
    # rebalance: two records with one alert id).
    twice = {a: ids for a, ids in in_digests.items() if len(ids) > 1}
    assert not twice, twice
