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

Several dispatchers (workers) share the partitions: before a partition moves, the
dispatcher commits what is done for it and cancels its unfinished jobs (the new owner runs
them again, same ``webhook-id``); only assigned partitions are committed.  A record that is
no alert or retry job goes to ``webhooks.failed`` with the reason.  At most
``max_in_flight`` jobs are under way: beyond, the dispatcher stops reading (back-pressure);
retries sleeping until they are due have a bound of their own, beyond which it stops
reading only ``webhooks.retry``.

Where deliveries start: a new dispatcher group starts at the end of ``alerts`` (not the
history), and an endpoint receives the alerts raised after it first appeared in the
subscriptions (recorded as ``endpoint.added`` on ``webhooks.events``); a backfill is
explicit (``stream webhooks redeliver --endpoint ID --since TIME``).

Each endpoint has its own concurrency limit and pace, and holds at most its share of
``max_in_flight``: beyond it, its jobs wait in ``webhooks.retry`` (deferred, due when its
queue should have drained).  So a slow or dead endpoint does not delay the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Awaitable, Callable, Iterable

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, RebalanceInProgressError

from ..ops.metrics import WorkerMetrics
from ..records import dumps, loads, utcnow
from ..runtime.kafka import make_producer, seed_offsets
from ..runtime.plan import apply_plan, topic_plan
from ..settings import Settings
from .config import Endpoint, Subscriptions
from .errors import WebhookError
from .formats import render
from .pace import Pace
from .safety import Network, TargetCache, parse_networks, resolve_target
from .signing import sign

__all__ = ["DIGEST_GRACE", "Dispatcher", "Outcome", "attempt_delivery", "backfill_jobs", "digest_event", "payload",
           "webhook_id"]

log = logging.getLogger(__name__)
_RETRY_STATUS = {408, 429}


def webhook_id(alert_id: str, endpoint_id: str) -> str:
    """Stable for one alert to one endpoint, across retries and redeliveries."""
    return "msg_" + hashlib.blake2b(f"{alert_id}\0{endpoint_id}".encode(), digest_size=16).hexdigest()


def payload(alert: dict[str, Any], fmt: str = "standard") -> bytes:
    """The body of a delivery of ``alert`` in an endpoint's format (``formats.py``); the
    Standard Webhooks payload ``{"type", "timestamp", "data"}`` by default."""
    return render(fmt, alert)


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
        waiting = self.pending.get(tp)
        if waiting is None or offset not in waiting:
            return  # the partition was revoked meanwhile: forgotten
        left = waiting[offset] - 1
        if left <= 0:
            waiting.pop(offset, None)
        else:
            waiting[offset] = left

    def committable(self, tps: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """The offsets to commit, of ``tps`` only when given (the assigned partitions)."""
        wanted = set(self.highest) if tps is None else set(tps) & set(self.highest)
        out = {}
        for tp in wanted:
            waiting = self.pending.get(tp)
            out[tp] = min(waiting) if waiting else self.highest[tp] + 1
        return out

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            self.pending.pop(tp, None)
            self.highest.pop(tp, None)


#: Seconds after a digest window's end before it is sent (alerts raised at its very end
#: reach the dispatcher a little later).
DIGEST_GRACE = 2.0
#: How long the digest page of an alert is remembered after its window's end: an alert
#: raised again within that time (an at-least-once repeat of its article's batch, after a
#: rebalance or a crash) is not sent in a second digest.
DIGEST_MEMORY = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class _Page:
    """Where one alert went for one endpoint: its digest id, the window, and the alert
    record that put it there (recorded in ``webhooks.events`` before the page is sent)."""

    digest_id: str
    topic: str
    partition: int
    offset: int
    start: int  # the window, ms since the epoch
    end: int

    @classmethod
    def of(cls, value: bytes) -> _Page:
        v = loads(value)
        return cls(str(v["digest_id"]), str(v["topic"]), int(v["partition"]), int(v["offset"]),
                   int(v["window_start_ms"]), int(v["window_end_ms"]))


@dataclass
class _Window:
    """The alerts of one digest window of one endpoint, read from one partition."""

    endpoint: Endpoint
    tp: TopicPartition
    start: int  # ms since the epoch
    end: int
    members: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (offset, alert)


def _iso(ms: int) -> str:
    import datetime

    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def digest_event(endpoint_id: str, tp: TopicPartition, start: int, end: int,
                 alerts: list[dict[str, Any]], digest_id: str | None = None) -> dict[str, Any]:
    """An ``alert.digest``.  Its id (and ``webhook-id``) is derived from the window, the
    partition and the alerts the first time the page is made; the dispatcher records each
    member's page before sending it, and a member read again after a restart or a rebalance
    goes out in its recorded page, under ``digest_id`` (see :meth:`Dispatcher._run_window`)."""
    if digest_id is None:
        basis = "\0".join([endpoint_id, tp.topic, str(tp.partition), str(start),
                           *(str(a.get("alert_id")) for a in alerts)])
        digest_id = "msg_" + hashlib.blake2b(basis.encode(), digest_size=16).hexdigest()
    return {"type": "alert.digest", "digest_id": digest_id, "endpoint": endpoint_id, "timestamp": _iso(end),
            "window_start": _iso(start), "window_end": _iso(end), "count": len(alerts), "alerts": alerts}


def _page_key(endpoint_id: str, alert_id: str) -> bytes:
    """The key of an alert's page record in ``webhooks.events`` (compacted)."""
    return f"page\0{endpoint_id}\0{alert_id}".encode()


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no types
    """Before partitions move to another dispatcher: commit what is done for them and forget
    them (their unfinished jobs are cancelled; the new owner runs them again, with the same
    ``webhook-id``).  Committing a partition this consumer no longer has is what killed a
    worker when a second one joined (aiokafka's ``IllegalStateError``)."""

    def __init__(self, dispatcher: Dispatcher, consumer: AIOKafkaConsumer):
        self.dispatcher = dispatcher
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.dispatcher._revoked(self.consumer, set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("webhooks: assigned %s", ", ".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned)))
        if any(e.digest_minutes for e in self.dispatcher.subs.endpoints):
            # The digest pages recorded by the partitions' previous owners.
            await self.dispatcher._load_events(None, 0, only_digests=True)


def _event(value: bytes | None) -> dict[str, Any] | None:
    """An endpoint event of ``webhooks.events`` as a dict, or None when it is none."""
    try:
        event = loads(value or b"null")
    except Exception:
        return None
    return event if isinstance(event, dict) else None


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
        self.paces = {e.id: Pace(e.rate) for e in subscriptions.endpoints}
        #: the open digest windows: (endpoint, partition, window start ms) -> its alerts
        self.windows: dict[tuple[str, TopicPartition, int], _Window] = {}
        #: per partition: the Kafka timestamp of the last record read, and when (monotonic)
        self.seen: dict[TopicPartition, tuple[int, float]] = {}
        self.disabled: dict[str, str] = {}
        #: endpoint id -> when it was first seen (ms since the epoch): alerts raised before
        #: are not sent to it (a backfill is ``stream webhooks redeliver``).
        self.added: dict[str, int] = {}
        self.failing_since: dict[str, float] = {}
        self.offsets = _Offsets()
        #: (endpoint, alert id) -> the digest page the alert went out in, as recorded in
        #: ``webhooks.events`` before the page was first sent; kept ``DIGEST_MEMORY``
        #: seconds past its window's end.
        self.pages: dict[tuple[str, str], _Page] = {}
        self._forgotten_at = 0.0  # monotonic: when the old pages were last tombstoned
        self.tasks: set[asyncio.Task[None]] = set()
        self.tasks_of: dict[TopicPartition, set[asyncio.Task[None]]] = defaultdict(set)
        self.counts: dict[str, int] = defaultdict(int)
        #: Set once the dispatcher's start offsets are fixed: alerts raised from then on are
        #: delivered.
        self.prepared = threading.Event()
        #: Whether reading is paused: every partition (deliveries under way reached
        #: ``max_in_flight``), or only the retry topic's (retries waiting for their time did).
        self.paused = False
        self.retries_paused = False
        #: ``webhooks.events``: partition -> the next offset to read (where the follower starts)
        self._events_from: dict[int, int] = {}
        #: Per endpoint: jobs between their start and the end of their attempt (queued behind
        #: its concurrency or rate, or being attempted); the mean seconds of an attempt.
        self.queued: dict[str, int] = defaultdict(int)
        self.attempt_seconds: dict[str, float] = {}
        self._deferred_logged: dict[str, float] = {}
        #: How many retries are sleeping until they are due.
        self.waiting = 0

    @property
    def topics(self) -> tuple[str, str, str]:
        s = self.settings
        return s.topic_webhooks_retry, s.topic_webhooks_failed, s.topic_webhooks_events

    async def prepare(self) -> None:
        """Create the topics, and fix where deliveries start: a new dispatcher group at the
        end of ``alerts`` (a new subscription gets the alerts raised from now on, not the
        history) and at the start of ``webhooks.retry`` (every job there is this group's);
        partitions that already have a committed offset keep it.  Read the endpoint events,
        and record the endpoints seen for the first time as added now.  Called by ``stream
        worker`` before it starts processing, else by :meth:`run`."""
        s = self.settings
        retry = s.topic_webhooks_retry
        # Endpoints seen now for the first time count as added *before* the group's start
        # offsets are fixed: an alert raised after those offsets is after this time too.
        now = int(time.time() * 1000)
        await apply_plan(s, topic_plan(s, None, ["webhooks"]), ["webhooks"], "the webhook dispatcher")
        seeded = await seed_offsets(s.kafka, self.group, [s.topic_alerts], at="end")
        seeded.update(await seed_offsets(s.kafka, self.group, [retry], at="beginning"))
        if seeded:
            log.info("webhooks: group %s starts at %s", self.group,
                     ", ".join(f"{k}@{v}" for k, v in sorted(seeded.items())))
        producer = make_producer(s.kafka)
        await producer.start()
        try:
            await self._load_events(producer, now)
        finally:
            await producer.stop()
        self.prepared.set()

    async def _load_events(self, producer: AIOKafkaProducer | None, now: int, only_digests: bool = False) -> None:
        """Read the endpoint events (disabled, enabled, added) and the recorded digest pages;
        record the endpoints seen for the first time as added at ``now`` (ms since the
        epoch)."""
        from ..runtime.kafka import read_records

        pages: dict[tuple[str, str], _Page] = {}
        async for rec in read_records(self.settings.kafka, self.settings.topic_webhooks_events, timeout=1):
            if not only_digests:
                self._events_from[rec.partition] = rec.offset + 1
            key = (rec.key or b"").decode("utf-8", "replace")
            if key.startswith("page\0"):
                _page, endpoint_id, alert_id = [*key.split("\0", 2), "", ""][:3]
                if rec.value is None:  # a tombstone: forgotten
                    pages.pop((endpoint_id, alert_id), None)
                else:
                    with contextlib.suppress(Exception):
                        pages[(endpoint_id, alert_id)] = _Page.of(rec.value)
                continue
            if key.startswith("digest\0"):
                continue  # a page record of stream before 2026-12-04 (by offset): no longer read
            if only_digests:
                continue
            event = _event(rec.value)
            if event is None:
                continue
            kind, endpoint = event.get("type"), str(event.get("endpoint"))
            if kind in ("endpoint.disabled", "endpoint.enabled"):
                self._endpoint_state(event)
            elif kind == "endpoint.added" and isinstance(event.get("at_ms"), int):
                self.added[endpoint] = min(self.added.get(endpoint, event["at_ms"]), event["at_ms"])
        self.pages = pages
        if producer is None:
            return
        for new in self.subs.endpoints:
            if new.id in self.added:
                continue
            self.added[new.id] = now
            added = {"type": "endpoint.added", "endpoint": new.id, "at": utcnow(), "at_ms": now}
            # Keyed by endpoint and event type: compaction keeps the last of each kind.
            await (await producer.send(self.settings.topic_webhooks_events, value=dumps(added),
                                       key=f"{new.id}:added".encode()))
            log.info("webhooks: endpoint %s is new: it receives the alerts raised from now on", new.id)

    def _endpoint_state(self, event: dict[str, Any], live: bool = False) -> None:
        """Apply an ``endpoint.disabled`` or ``endpoint.enabled`` event (``live``: read while
        running, logged when it changes the endpoint's state)."""
        endpoint = str(event.get("endpoint"))
        if event.get("type") == "endpoint.disabled":
            if live and endpoint not in self.disabled:
                log.warning("webhooks: endpoint %s disabled (by another dispatcher): %s", endpoint,
                            event.get("reason", ""))
            self.disabled[endpoint] = str(event.get("reason", ""))
        else:
            if live and endpoint in self.disabled:
                log.info("webhooks: endpoint %s enabled again: delivering to it", endpoint)
            self.disabled.pop(endpoint, None)
            self.failing_since.pop(endpoint, None)  # its disable_after_hours starts again

    async def _follow_events(self) -> None:
        """Follow ``webhooks.events`` while running, from where :meth:`prepare` read it to:
        ``stream webhooks enable`` and another dispatcher disabling an endpoint take effect
        within a second, without a restart.  A broker error restarts the reading from the
        last event applied."""
        from ..runtime.kafka import read_records

        while True:
            try:
                async for rec in read_records(self.settings.kafka, self.settings.topic_webhooks_events,
                                              start=dict(self._events_from), follow=True, timeout=None):
                    self._events_from[rec.partition] = rec.offset + 1
                    if (rec.key or b"").startswith((b"page\0", b"digest\0")):
                        continue
                    event = _event(rec.value)
                    if event is not None and event.get("type") in ("endpoint.disabled", "endpoint.enabled"):
                        self._endpoint_state(event, live=True)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("webhooks: following %s failed (%r); again in 5 s", self.settings.topic_webhooks_events,
                            exc)
            await asyncio.sleep(5)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; then finish committing what is done."""
        s = self.settings
        retry = self.topics[0]
        if not self.prepared.is_set():
            await self.prepare()
        self.producer = make_producer(s.kafka)
        await self.producer.start()
        # read_committed: with exactly-once, the alerts of a transaction that was aborted (its
        # batch is processed again after a crash) are never delivered.
        consumer = AIOKafkaConsumer(**s.kafka.options(), group_id=self.group,
                                    enable_auto_commit=False, auto_offset_reset="latest",
                                    isolation_level="read_committed")
        consumer.subscribe([s.topic_alerts, retry], listener=_Rebalance(self, consumer))
        await consumer.start()
        limits = httpx.Limits(max_connections=sum(e.concurrency for e in self.subs.endpoints) + 4)
        self.client = httpx.AsyncClient(follow_redirects=False, limits=limits, trust_env=False)
        log.info("webhooks: delivering %s to %d endpoint(s) (group %s, at most %d jobs in flight)", s.topic_alerts,
                 len(self.subs.endpoints), self.group, self.subs.max_in_flight)
        follower = asyncio.ensure_future(self._follow_events())
        try:
            while not stop.is_set():
                room = self._pace(consumer)
                batch = await consumer.getmany(timeout_ms=200, max_records=room)
                for tp, records in batch.items():
                    for rec in records:
                        self._accept(tp, rec.offset, rec.topic, rec.value, rec.timestamp)
                await self._commit(consumer)
        finally:
            follower.cancel()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(follower, *self.tasks, return_exceptions=True)
            try:
                await self._commit(consumer)
            finally:
                await consumer.stop()
                await self.producer.stop()
                await self.client.aclose()

    def _pace(self, consumer: AIOKafkaConsumer) -> int:
        """Back-pressure, with two bounds of ``max_in_flight`` each, resumed below three
        quarters of it (the consumer keeps polling, so the group keeps this member):

        - jobs under way (attempts, and jobs queued behind an endpoint's concurrency or
          pace): at the bound, reading stops;
        - jobs sleeping until they are due (retries): at the bound, only the retry topic's
          partitions stop.  A dead endpoint's retries, hours apart, thus never hold up the
          new alerts of the others; later retries wait in ``webhooks.retry``.

        :return: how many records the next read may take (each may make a job per endpoint)."""
        limit = self.subs.max_in_flight
        active = len(self.tasks) - self.waiting
        if not self.paused and active >= limit:
            self.paused = True
            log.info("webhooks: %d jobs under way: reading paused", active)
        elif self.paused and active < limit * 3 // 4:
            self.paused = False
        if not self.retries_paused and self.waiting >= limit:
            self.retries_paused = True
            log.info("webhooks: %d retries waiting for their time: reading %s paused", self.waiting,
                     self.settings.topic_webhooks_retry)
        elif self.retries_paused and self.waiting < limit * 3 // 4:
            self.retries_paused = False
        assigned = consumer.assignment()
        hold = assigned if self.paused else (
            {tp for tp in assigned if tp.topic == self.settings.topic_webhooks_retry} if self.retries_paused else set())
        if hold:
            consumer.pause(*hold)  # again each time: partitions may have been assigned since
        if release := consumer.paused() - hold:
            consumer.resume(*release)
        if self.metrics is not None:
            self.metrics.webhook_jobs.labels("under_way").set(active)
            self.metrics.webhook_jobs.labels("waiting").set(self.waiting)
        room = (limit - active) // max(1, len(self.subs.endpoints))
        return max(1, min(500, room))

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        commit = self.offsets.committable(consumer.assignment())
        if not commit:
            return
        try:
            await consumer.commit(commit)
        except (CommitFailedError, IllegalStateError, RebalanceInProgressError) as exc:
            # A rebalance is under way: the revoke listener commits what is done.
            log.info("webhooks: commit deferred (%s)", type(exc).__name__)
            return
        if self.pages and time.monotonic() - self._forgotten_at >= 60:
            self._forgotten_at = time.monotonic()
            await self._forget_pages(commit)

    async def _revoked(self, consumer: AIOKafkaConsumer, revoked: set[TopicPartition]) -> None:
        commit = self.offsets.committable(revoked & consumer.assignment())
        if commit:
            try:
                await consumer.commit(commit)
            except Exception as exc:  # the new owner repeats those jobs, with the same webhook-id
                log.info("webhooks: commit of revoked partitions failed (%r)", exc)
        cancelled = []
        for tp in revoked:
            for task in self.tasks_of.pop(tp, set()):
                task.cancel()
                cancelled.append(task)
        await asyncio.gather(*cancelled, return_exceptions=True)
        self.offsets.forget(revoked)
        if revoked:
            log.info("webhooks: revoked %s (%d unfinished jobs left to the new owner)",
                     ", ".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in revoked)), len(cancelled))

    def _jobs(self, topic: str, value: bytes | None, timestamp: int) -> list[dict[str, Any]]:
        """The jobs of one record.  :raises ValueError: it is not a valid alert or retry job."""
        try:
            record = loads(value or b"")
        except Exception as exc:
            raise ValueError(f"not JSON ({exc})") from None
        if not isinstance(record, dict):
            raise ValueError(f"not a JSON object but {type(record).__name__}")
        if topic == self.settings.topic_webhooks_retry:
            missing = [k for k in ("webhook_id", "endpoint", "alert", "attempts", "due") if k not in record]
            if missing or not isinstance(record.get("attempts"), list) or not isinstance(record.get("alert"), dict):
                raise ValueError(f"not a retry job (missing or wrong: {', '.join(missing) or 'attempts/alert'})")
            if not isinstance(record["due"], (int, float)):
                raise ValueError("not a retry job ('due' is not a number)")
            if self.subs.endpoint(str(record["endpoint"])) is None:
                raise ValueError(f"endpoint {record['endpoint']!r} is no longer in the subscriptions")
            return [record]
        if not isinstance(record.get("alert_id"), str) or not isinstance(record.get("rule_id"), str):
            raise ValueError("not an alert (no alert_id or rule_id)")
        return [{"webhook_id": webhook_id(record["alert_id"], endpoint.id),
                 "endpoint": endpoint.id, "alert": record, "attempts": [],
                 "due": time.time() + self.subs.schedule[0]}
                for endpoint in self.subs.endpoints
                if endpoint.wants(record) and timestamp >= self.added.get(endpoint.id, 0)]

    def _accept(self, tp: TopicPartition, offset: int, topic: str, value: bytes | None, timestamp: int = 0) -> None:
        # Each job as a function making its coroutine: a task cancelled before it starts (a
        # revocation, the stop) then leaves no coroutine that was never awaited.
        jobs: list[Callable[[], Awaitable[None]]]
        digested: list[tuple[Endpoint, dict[str, Any]]] = []
        try:
            made = self._jobs(topic, value, timestamp)
            if topic == self.settings.topic_alerts:  # new alerts; a retry job is delivered as it is
                for one in list(made):
                    endpoint = self.subs.endpoint(one["endpoint"])
                    if endpoint is not None and endpoint.digest_minutes:
                        digested.append((endpoint, one))
                        made.remove(one)
            jobs = [functools.partial(self._deliver, one) for one in made]
        except ValueError as exc:
            jobs = [functools.partial(self._reject, tp, offset, topic, value, str(exc))]
        self.seen[tp] = (timestamp, time.monotonic())
        self.offsets.add(tp, offset, len(jobs) + len(digested))
        for endpoint, one in digested:
            self._collect(endpoint, tp, offset, timestamp, one["alert"])
        for job in jobs:
            self._start(tp, self._run_job(tp, offset, job))

    def _start(self, tp: TopicPartition, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        self.tasks_of[tp].add(task)
        task.add_done_callback(self.tasks.discard)
        task.add_done_callback(self.tasks_of[tp].discard)

    # -- digests ---------------------------------------------------------------------------

    def _collect(self, endpoint: Endpoint, tp: TopicPartition, offset: int, timestamp: int,
                 alert: dict[str, Any]) -> None:
        """Add an alert to its endpoint's digest window (by the alert record's Kafka
        timestamp, so a re-read after a restart puts it in the same window)."""
        assert endpoint.digest_minutes
        span = int(endpoint.digest_minutes * 60_000)
        start = timestamp - timestamp % span
        key = (endpoint.id, tp, start)
        window = self.windows.get(key)
        if window is None:
            window = self.windows[key] = _Window(endpoint, tp, start, start + span)
            self._start(tp, self._run_window(key, window))
        window.members.append((offset, alert))

    async def _run_window(self, key: tuple[str, TopicPartition, int], window: _Window) -> None:
        """Wait for the window to close, then deliver its alerts (``digest_max`` a delivery);
        the alerts' offsets are done when their digest is delivered, or handed to
        ``webhooks.retry`` or ``webhooks.failed``, as for a single alert."""
        try:
            await self._closed(window)
        finally:
            self.windows.pop(key, None)  # an alert read from now on opens a new (late) window
        tp, endpoint = window.tp, window.endpoint
        # One digest per alert: an alert whose page was recorded in this window (it was sent,
        # or about to be, before a restart or a rebalance) goes out in that page again, under
        # its id; one recorded in another window (the alert raised again: an at-least-once
        # repeat) is left to that window, whose offsets are committed only once it is sent;
        # the others make new pages, recorded (acknowledged) before they are sent.
        pages: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        fresh: list[tuple[int, dict[str, Any]]] = []
        placed: set[str] = set()
        repeats: list[tuple[int, str, str]] = []
        for offset, alert in window.members:
            alert_id = str(alert.get("alert_id"))
            recorded = self.pages.get((endpoint.id, alert_id))
            if alert_id in placed or (recorded is not None and (recorded.start, recorded.topic, recorded.partition)
                                      != (window.start, tp.topic, tp.partition)):
                repeats.append((offset, alert_id, recorded.digest_id if recorded else "this window's"))
                continue
            placed.add(alert_id)
            (pages.setdefault(recorded.digest_id, []) if recorded else fresh).append((offset, alert))
        for _offset, alert_id, digest_id in repeats:
            log.info("webhooks: alert %s read again (raised twice) is already in digest %s to %s: not sent again",
                     alert_id, digest_id, endpoint.id)
        most = endpoint.digest_max
        try:
            for first in range(0, len(fresh), most):
                page = fresh[first:first + most]
                made = digest_event(endpoint.id, tp, window.start, window.end, [a for _o, a in page])
                await self._record_page(window, made["digest_id"], page)
                pages[made["digest_id"]] = page
        except Exception as exc:
            log.warning("webhooks: the digest pages of %s could not be recorded (%r); they are sent after a restart",
                        endpoint.id, exc)
            return
        for offset, _alert_id, _digest_id in repeats:
            self.offsets.done(tp, offset)
        for digest_id, page in pages.items():
            event = digest_event(endpoint.id, tp, window.start, window.end, [a for _o, a in page], digest_id)
            job = {"webhook_id": event["digest_id"], "endpoint": window.endpoint.id, "alert": event,
                   "attempts": [], "due": time.time()}
            try:
                await self._deliver(job)
            except Exception:
                log.exception("webhooks: digest %s to %s failed unexpectedly; it is sent again after a restart",
                              job["webhook_id"], window.endpoint.id)
                return
            for offset, _alert in page:
                self.offsets.done(window.tp, offset)

    async def _record_page(self, window: _Window, digest_id: str, page: list[tuple[int, dict[str, Any]]]) -> None:
        """Record the page of each alert in ``webhooks.events`` (compacted), acknowledged."""
        endpoint_id, tp = window.endpoint.id, window.tp
        futures, made = [], []
        for offset, alert in page:
            alert_id = str(alert.get("alert_id"))
            value = dumps({"type": "digest.page", "endpoint": endpoint_id, "alert_id": alert_id,
                           "digest_id": digest_id, "topic": tp.topic, "partition": tp.partition, "offset": offset,
                           "window_start_ms": window.start, "window_end_ms": window.end})
            futures.append(await self.producer.send(self.settings.topic_webhooks_events, value=value,
                                                    key=_page_key(endpoint_id, alert_id)))
            made.append(((endpoint_id, alert_id), _Page(digest_id, tp.topic, tp.partition, offset, window.start,
                                                        window.end)))
        await asyncio.gather(*futures)
        self.pages.update(made)

    async def _forget_pages(self, committed: dict[TopicPartition, int]) -> None:
        """Tombstones for the recorded pages of alerts ``DIGEST_MEMORY`` past their window
        and below the committed offsets (their alert records are never read again)."""
        before = (time.time() - DIGEST_MEMORY) * 1000
        done = [(member, page) for member, page in self.pages.items()
                if page.end < before and (tp := TopicPartition(page.topic, page.partition)) in committed
                and page.offset < committed[tp]]
        if not done:
            return
        futures = [await self.producer.send(self.settings.topic_webhooks_events, value=None, key=_page_key(*member))
                   for member, _page in done]
        try:
            await asyncio.gather(*futures)
        except Exception as exc:  # kept for now; written again later
            log.info("webhooks: tombstones of %d digest pages not written (%r)", len(done), exc)
            return
        for member, page in done:
            if self.pages.get(member) == page:
                self.pages.pop(member, None)

    async def _closed(self, window: _Window) -> None:
        """The window is over (its end, plus ``DIGEST_GRACE``) and every alert of it on its
        partition has been read: a later record was read there, or nothing for the grace."""
        while True:
            if time.time() * 1000 >= window.end + DIGEST_GRACE * 1000:
                last_ts, last_read = self.seen.get(window.tp, (0, 0.0))
                if last_ts >= window.end or time.monotonic() - last_read >= DIGEST_GRACE:
                    return
            await asyncio.sleep(0.25)

    async def _run_job(self, tp: TopicPartition, offset: int, job: Callable[[], Awaitable[None]]) -> None:
        try:
            await job()
            self.offsets.done(tp, offset)
        except asyncio.CancelledError:
            raise  # unfinished: not marked done, so it runs again after a restart or on the new owner
        except Exception:
            log.exception("webhooks: a job of %s[%d]@%d failed unexpectedly; it runs again after a restart",
                          tp.topic, tp.partition, offset)

    async def _reject(self, tp: TopicPartition, offset: int, topic: str, value: bytes | None, reason: str) -> None:
        """A record that is no alert or retry job: kept in ``webhooks.failed`` with the reason
        (and its bytes in base64), never delivered, and the dispatcher goes on."""
        import base64

        record = {"reason": f"invalid record on {topic}: {reason}", "failed_at": utcnow(),
                  "source": {"topic": topic, "partition": tp.partition, "offset": offset},
                  "original": base64.b64encode(value or b"").decode("ascii"), "attempts": []}
        await (await self.producer.send(self.settings.topic_webhooks_failed, value=dumps(record),
                                        key=f"{topic}:{tp.partition}:{offset}".encode()))
        log.warning("webhooks: %s[%d]@%d is not a valid record (%s): kept in %s", topic, tp.partition, offset,
                    reason, self.settings.topic_webhooks_failed)
        if self.metrics is not None:
            self.metrics.webhook_results.labels("-", "invalid").inc()

    async def _deliver(self, job: dict[str, Any]) -> None:
        endpoint = self.subs.endpoint(job["endpoint"])
        assert endpoint is not None
        delay = job["due"] - time.time()
        if delay > 0 and not job["attempts"] and not job.get("deferred"):  # a first attempt after schedule[0]
            await asyncio.sleep(delay)
        elif delay > 0:  # a retry or a deferred job, read from webhooks.retry
            self.waiting += 1
            try:
                await asyncio.sleep(delay)
            finally:
                self.waiting -= 1
        if endpoint.id in self.disabled:
            await self._fail(job, f"endpoint disabled: {self.disabled[endpoint.id]}")
            return
        if self._crowded(endpoint):
            await self._defer(job, endpoint)
            return
        number = len(job["attempts"]) + 1
        pace = self.paces[endpoint.id]
        self.queued[endpoint.id] += 1
        try:
            async with self.limits[endpoint.id]:
                await pace.take()
                body = payload(job["alert"], endpoint.format)
                outcome = await attempt_delivery(self.client, endpoint, job["webhook_id"], body,
                                                 allow_loopback=self.allow_loopback,
                                                 allow_networks=self.allow_networks, targets=self.targets)
        finally:
            self.queued[endpoint.id] -= 1
        took = self.attempt_seconds.get(endpoint.id, outcome.ms / 1000)
        self.attempt_seconds[endpoint.id] = 0.8 * took + 0.2 * outcome.ms / 1000
        job["attempts"].append(outcome.record(number))
        if outcome.status == 429 and outcome.retry_after:
            # The endpoint is overloaded: every delivery to it waits, not only this one.
            if not pace.paused:
                log.warning("webhooks: %s answered 429: no delivery to it for %.0f s (Retry-After)",
                            endpoint.id, outcome.retry_after)
            pace.pause(outcome.retry_after)
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

    def _crowded(self, endpoint: Endpoint) -> bool:
        """Whether ``endpoint`` has its share of ``max_in_flight`` queued already (behind its
        ``concurrency`` or ``rate``, or answering slowly).  With one endpoint there is no one
        else to hold up: the dispatcher's own bound applies."""
        count = len(self.subs.endpoints)
        return count > 1 and self.queued[endpoint.id] >= max(endpoint.concurrency, self.subs.max_in_flight // count)

    async def _defer(self, job: dict[str, Any], endpoint: Endpoint) -> None:
        """Hand a job of a crowded endpoint to ``webhooks.retry`` (acknowledged), due when
        its queue should have drained at its pace: a slow endpoint then holds its share of
        the dispatcher, not all of it.  The job keeps its attempts (none are counted)."""
        seconds = self.attempt_seconds.get(endpoint.id, endpoint.timeout)
        throughput = endpoint.concurrency / max(seconds, 0.001)
        if endpoint.rate:
            throughput = min(throughput, endpoint.rate)
        wait = min(3600.0, max(5.0, self.queued[endpoint.id] / throughput)) * random.uniform(0.9, 1.1)
        job["due"] = time.time() + wait
        job["deferred"] = int(job.get("deferred", 0)) + 1
        await (await self.producer.send(self.settings.topic_webhooks_retry, value=dumps(job),
                                        key=job["webhook_id"].encode()))
        self.counts[f"{endpoint.id}:deferred"] += 1
        if self.metrics is not None:
            self.metrics.webhook_results.labels(endpoint.id, "deferred").inc()
        if time.monotonic() - self._deferred_logged.get(endpoint.id, -60.0) >= 60:
            self._deferred_logged[endpoint.id] = time.monotonic()
            log.warning("webhooks: %s is slow (%d deliveries queued, %.1f s an attempt): further deliveries "
                        "to it wait in %s, about %.0f s each", endpoint.id, self.queued[endpoint.id], seconds,
                        self.settings.topic_webhooks_retry, wait)

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


async def backfill_jobs(settings: Settings, endpoint: Endpoint, since_ms: int,
                        until_ms: int | None = None) -> list[dict[str, Any]]:
    """Delivery jobs, due now, for the alerts on ``alerts`` raised from ``since_ms`` (and
    before ``until_ms``) that ``endpoint`` subscribes to: ``stream webhooks redeliver``.
    Each has the alert's usual ``webhook-id`` for the endpoint."""
    from ..runtime.kafka import partitions_of, read_records

    parts = await partitions_of(settings.kafka, settings.topic_alerts)
    consumer = AIOKafkaConsumer(**settings.kafka.options(), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic_alerts, p) for p in sorted(parts)]
        found = await consumer.offsets_for_times({tp: since_ms for tp in tps}) if tps else {}
        ends = await consumer.end_offsets(tps) if tps else {}
    finally:
        await consumer.stop()
    start = {tp.partition: (meta.offset if meta is not None else ends[tp]) for tp, meta in found.items()}
    jobs: list[dict[str, Any]] = []
    async for rec in read_records(settings.kafka, settings.topic_alerts, start=start, timeout=2,
                                  committed_only=True):
        if rec.timestamp < since_ms or (until_ms is not None and rec.timestamp >= until_ms):
            continue
        try:
            alert = loads(rec.value or b"null")
        except Exception:
            continue
        if isinstance(alert, dict) and isinstance(alert.get("alert_id"), str) and endpoint.wants(alert):
            jobs.append({"webhook_id": webhook_id(alert["alert_id"], endpoint.id), "endpoint": endpoint.id,
                         "alert": alert, "attempts": [], "due": time.time()})
    return jobs
