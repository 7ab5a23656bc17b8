"""Delivering alerts to webhook endpoints, durably.

The dispatcher consumes ``alerts`` and ``webhooks.retry`` in its own consumer group
(``APP_ID-webhooks``).  For each alert and each endpoint that subscribed to it, a *job*
makes the first attempt at once (or after ``schedule[0]`` seconds).  A failure that may
pass (connection error, timeout, 5xx, 408, 429) is written to ``webhooks.retry`` with the
time of the next attempt and every attempt so far; the retry records are scheduled from
there.  After the last attempt the job goes to ``webhooks.failed`` with all its attempts.

Nothing is lost: an offset is committed only when every job of the records up to it is
finished (delivered, or handed to ``webhooks.retry`` or ``webhooks.failed`` with the
broker's acknowledgment).  After a crash the unfinished jobs run again: a consumer may get
a delivery twice, always with the same ``webhook-id``.

Each endpoint has its own concurrency limit, so a slow or dead endpoint never delays the
deliveries to the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from ..kafka import ensure_topics, make_producer
from ..metrics import WorkerMetrics
from ..records import dumps, loads, utcnow
from ..settings import Settings
from .config import Endpoint, Subscriptions
from .errors import WebhookError
from .safety import Network, TargetCache, parse_networks, resolve_target
from .signing import sign

__all__ = ["Dispatcher", "Outcome", "attempt_delivery", "payload", "webhook_id"]

log = logging.getLogger(__name__)
_RETRY_STATUS = {408, 429}


def webhook_id(alert_id: str, endpoint_id: str) -> str:
    """Stable for one alert to one endpoint, across retries and redeliveries."""
    return "msg_" + hashlib.blake2b(f"{alert_id}\0{endpoint_id}".encode(), digest_size=16).hexdigest()


def payload(alert: dict[str, Any]) -> bytes:
    """The Standard Webhooks payload: ``{"type", "timestamp", "data"}``."""
    kind = "alert.burst" if alert.get("kind") == "burst" else "alert.created"
    return dumps({"type": kind, "timestamp": alert.get("created_at") or utcnow(), "data": alert})


@dataclass
class Outcome:
    """One attempt: ``result`` is ``ok``, ``retry``, ``final`` or ``gone`` (410)."""

    result: str
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None
    ms: float = 0.0

    def record(self, attempt: int) -> dict[str, Any]:
        return {"attempt": attempt, "at": utcnow(), "result": self.result, "status": self.status,
                "error": self.error, "ms": round(self.ms, 1)}


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


async def attempt_delivery(client: httpx.AsyncClient, endpoint: Endpoint, msg_id: str, body: bytes, *,
                           allow_loopback: bool, allow_networks: tuple[Network, ...] = (),
                           targets: TargetCache | None = None) -> Outcome:
    """One signed POST to ``endpoint``: a fresh timestamp and signature, the same id.
    ``targets``: checked targets to reuse (else the URL is resolved and checked now)."""
    start = time.perf_counter()
    try:
        resolve = targets.resolve if targets is not None else resolve_target
        target = await resolve(endpoint.url, allow_loopback=allow_loopback, allow_networks=allow_networks)
    except WebhookError as exc:
        return Outcome("retry" if exc.retryable else "final", error=str(exc))
    timestamp = int(time.time())
    headers = {
        "host": target.host if target.port in (80, 443) else f"{target.host}:{target.port}",
        "content-type": "application/json",
        "user-agent": "stream-webhooks/1",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(endpoint.secrets, msg_id, timestamp, body),
        **dict(endpoint.headers),
    }
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    try:
        response = await client.post(target.connect_url, content=body, headers=headers,
                                     timeout=endpoint.timeout, extensions=extensions)
    except httpx.TimeoutException:
        return Outcome("retry", error="timeout", ms=(time.perf_counter() - start) * 1000)
    except httpx.HTTPError as exc:
        elapsed = (time.perf_counter() - start) * 1000
        return Outcome("retry", error=f"connection error: {type(exc).__name__}", ms=elapsed)
    ms = (time.perf_counter() - start) * 1000
    status = response.status_code
    if 200 <= status < 300:
        return Outcome("ok", status, ms=ms)
    if status == 410:
        return Outcome("gone", status, error="410 Gone", ms=ms)
    if status >= 500 or status in _RETRY_STATUS:
        wait = _retry_after(response.headers.get("retry-after"))
        return Outcome("retry", status, error=f"HTTP {status}", retry_after=wait, ms=ms)
    reason = "redirects are not followed" if 300 <= status < 400 else "client error, not retried"
    return Outcome("final", status, error=f"HTTP {status}: {reason}", ms=ms)


@dataclass
class _Offsets:
    """Per partition: the offsets in flight; commit below the lowest unfinished one."""

    pending: dict[TopicPartition, dict[int, int]] = field(default_factory=lambda: defaultdict(dict))
    highest: dict[TopicPartition, int] = field(default_factory=dict)

    def add(self, tp: TopicPartition, offset: int, jobs: int) -> None:
        self.highest[tp] = offset
        if jobs:
            self.pending[tp][offset] = jobs

    def done(self, tp: TopicPartition, offset: int) -> None:
        left = self.pending[tp].get(offset, 0) - 1
        if left <= 0:
            self.pending[tp].pop(offset, None)
        else:
            self.pending[tp][offset] = left

    def committable(self) -> dict[TopicPartition, int]:
        out = {}
        for tp, high in self.highest.items():
            waiting = self.pending.get(tp)
            out[tp] = min(waiting) if waiting else high + 1
        return out


class Dispatcher:
    """Delivers alerts to the endpoints of ``subscriptions`` (``stream webhooks run``, or
    inside ``stream worker`` when ``STREAM_WEBHOOKS`` is set)."""

    def __init__(self, settings: Settings, subscriptions: Subscriptions, *, allow_loopback: bool = False,
                 group: str | None = None, metrics: WorkerMetrics | None = None):
        self.settings = settings
        self.metrics = metrics
        self.subs = subscriptions
        self.allow_loopback = allow_loopback
        self.allow_networks = parse_networks(settings.webhooks_allow_networks)
        self.targets = TargetCache()
        self.group = group or f"{settings.app_id}-webhooks"
        self.limits = {e.id: asyncio.Semaphore(e.concurrency) for e in subscriptions.endpoints}
        self.disabled: dict[str, str] = {}
        self.failing_since: dict[str, float] = {}
        self.offsets = _Offsets()
        self.tasks: set[asyncio.Task[None]] = set()
        self.counts: dict[str, int] = defaultdict(int)

    @property
    def topics(self) -> tuple[str, str, str]:
        s = self.settings
        return s.topic_webhooks_retry, s.topic_webhooks_failed, s.topic_webhooks_events

    async def _load_disabled(self) -> None:
        from ..kafka import read_records

        async for rec in read_records(self.settings.broker, self.settings.topic_webhooks_events, timeout=1):
            event = loads(rec.value or b"null") or {}
            if event.get("type") == "endpoint.disabled":
                self.disabled[event["endpoint"]] = event.get("reason", "")
            elif event.get("type") == "endpoint.enabled":
                self.disabled.pop(str(event.get("endpoint")), None)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; then finish committing what is done."""
        s = self.settings
        retry, failed, events = self.topics
        await ensure_topics(s.broker, [(s.topic_alerts, s.partitions, False), (retry, s.partitions, False),
                                       (failed, s.partitions, False), (events, 1, True)], s.replication_factor)
        await self._load_disabled()
        self.producer = make_producer(s.broker)
        # read_committed: with exactly-once, the alerts of a transaction that was aborted (its
        # batch is processed again after a crash) are never delivered.
        consumer = AIOKafkaConsumer(s.topic_alerts, retry, bootstrap_servers=s.broker, group_id=self.group,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    isolation_level="read_committed")
        await self.producer.start()
        await consumer.start()
        limits = httpx.Limits(max_connections=sum(e.concurrency for e in self.subs.endpoints) + 4)
        self.client = httpx.AsyncClient(follow_redirects=False, limits=limits, trust_env=False)
        log.info("webhooks: delivering %s to %d endpoint(s) (group %s)", s.topic_alerts,
                 len(self.subs.endpoints), self.group)
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=500)
                for tp, records in batch.items():
                    for rec in records:
                        self._accept(tp, rec.offset, rec.topic, rec.value)
                commit = self.offsets.committable()
                if commit:
                    await consumer.commit(commit)
        finally:
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            commit = self.offsets.committable()
            try:
                if commit:
                    await consumer.commit(commit)
            finally:
                await consumer.stop()
                await self.producer.stop()
                await self.client.aclose()

    def _accept(self, tp: TopicPartition, offset: int, topic: str, value: bytes | None) -> None:
        record = loads(value or b"null")
        jobs: list[dict[str, Any]] = []
        if topic == self.settings.topic_webhooks_retry:
            if isinstance(record, dict) and self.subs.endpoint(record.get("endpoint", "")):
                jobs.append(record)
        elif isinstance(record, dict):
            for endpoint in self.subs.endpoints:
                if endpoint.wants(record):
                    jobs.append({"webhook_id": webhook_id(str(record.get("alert_id")), endpoint.id),
                                 "endpoint": endpoint.id, "alert": record, "attempts": [],
                                 "due": time.time() + self.subs.schedule[0]})
        self.offsets.add(tp, offset, len(jobs))
        for job in jobs:
            task = asyncio.create_task(self._run_job(tp, offset, job))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _run_job(self, tp: TopicPartition, offset: int, job: dict[str, Any]) -> None:
        try:
            await self._deliver(job)
            self.offsets.done(tp, offset)
        except asyncio.CancelledError:
            raise  # unfinished: not marked done, so it runs again after a restart
        except Exception:
            log.exception("webhooks: job %s failed unexpectedly; it will run again after a restart",
                          job.get("webhook_id"))

    async def _deliver(self, job: dict[str, Any]) -> None:
        endpoint = self.subs.endpoint(job["endpoint"])
        assert endpoint is not None
        delay = job["due"] - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if endpoint.id in self.disabled:
            await self._fail(job, f"endpoint disabled: {self.disabled[endpoint.id]}")
            return
        number = len(job["attempts"]) + 1
        async with self.limits[endpoint.id]:
            outcome = await attempt_delivery(self.client, endpoint, job["webhook_id"], payload(job["alert"]),
                                             allow_loopback=self.allow_loopback, allow_networks=self.allow_networks,
                                             targets=self.targets)
        job["attempts"].append(outcome.record(number))
        self.counts[f"{endpoint.id}:{outcome.result}"] += 1
        if self.metrics is not None:
            self.metrics.on_webhook(endpoint.id, outcome.result)
        log.info("webhooks: %s to %s, attempt %d: %s%s", job["webhook_id"], endpoint.id, number, outcome.result,
                 f" ({outcome.error})" if outcome.error else "")
        if outcome.result == "ok":
            self.failing_since.pop(endpoint.id, None)
            return
        now = time.time()
        since = self.failing_since.setdefault(endpoint.id, now)
        if outcome.result == "gone" or now - since > self.subs.disable_after_hours * 3600:
            reason = "410 Gone" if outcome.result == "gone" else (
                f"failing for more than {self.subs.disable_after_hours:g} hours")
            await self._disable(endpoint.id, reason)
        if outcome.result == "retry" and number < len(self.subs.schedule) and endpoint.id not in self.disabled:
            # The schedule is the backoff; +-10 % jitter spreads the retries of many alerts.
            wait = self.subs.schedule[number] * random.uniform(0.9, 1.1)
            if outcome.retry_after is not None:
                wait = max(wait, outcome.retry_after)
            job["due"] = now + wait
            await (await self.producer.send(self.settings.topic_webhooks_retry, value=dumps(job),
                                            key=job["webhook_id"].encode()))
            return
        await self._fail(job, outcome.error or outcome.result)

    async def _fail(self, job: dict[str, Any], reason: str) -> None:
        record = {**job, "failed_at": utcnow(), "reason": reason}
        record.pop("due", None)
        await (await self.producer.send(self.settings.topic_webhooks_failed, value=dumps(record),
                                        key=job["endpoint"].encode()))
        log.warning("webhooks: %s to %s failed for good: %s", job["webhook_id"], job["endpoint"], reason)
        if self.metrics is not None:
            self.metrics.webhook_results.labels(job["endpoint"], "failed").inc()

    async def _disable(self, endpoint_id: str, reason: str) -> None:
        if endpoint_id in self.disabled:
            return
        self.disabled[endpoint_id] = reason
        event = {"type": "endpoint.disabled", "endpoint": endpoint_id, "reason": reason, "at": utcnow()}
        await (await self.producer.send(self.settings.topic_webhooks_events, value=dumps(event),
                                        key=endpoint_id.encode()))
        log.error("webhooks: endpoint %s disabled: %s (stream webhooks enable %s turns it back on)",
                  endpoint_id, reason, endpoint_id)
