"""What a worker counts: Prometheus metrics, and the recent history the dashboard shows.

One :class:`WorkerMetrics` per worker process, with its own registry (served on
``/metrics`` by :mod:`stream.ops.web`).  The agents, the pipeline and the webhook dispatcher
call its ``on_*`` methods; the names and labels are listed in ``docs/operations.md``.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections import deque
from typing import Any, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["WorkerMetrics"]

#: Seconds of throughput history kept for the dashboard.
HISTORY = 600


#: Stories the dashboard remembers (the most recently updated), and the hours it shows.
STORIES_KEPT = 2000
STORY_HOURS = 6.0

class WorkerMetrics:
    """The worker's counters, histograms and gauges, and the dashboard's recent history."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.articles_in = Counter("stream_articles_in", "Input records consumed, by stage.", ["stage"], registry=r)
        self.articles_out = Counter("stream_articles_out", "Records published, by topic.", ["topic"], registry=r)
        self.plugin_seconds = Histogram(
            "stream_plugin_seconds", "Time a processor took per batch, by plugin.", ["plugin"], registry=r,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.plugin_articles = Counter("stream_plugin_articles", "Articles a processor handled.", ["plugin"],
                                       registry=r)
        self.dead_letters = Counter("stream_dead_letters", "Dead letters, by reason (exception class) and stage.",
                                    ["reason", "stage"], registry=r)
        self.duplicates = Counter("stream_duplicates", "Duplicates found, by kind (exact, near).", ["kind"],
                                  registry=r)
        self.alerts = Counter("stream_alerts", "Alerts raised, by rule.", ["rule"], registry=r)
        self.webhook_attempts = Counter("stream_webhook_attempts", "Webhook delivery attempts, by endpoint.",
                                        ["endpoint"], registry=r)
        self.webhook_results = Counter(
            "stream_webhook_results", "Webhook attempt results, by endpoint and result "
            "(ok, retry, final, gone, failed; deferred: handed to the retry topic unattempted).",
            ["endpoint", "result"], registry=r)
        self.webhook_jobs = Gauge(
            "stream_webhook_jobs", "Webhook jobs in the dispatcher: under_way (attempts and deliveries queued "
            "behind an endpoint's limits) and waiting (retries sleeping until due).", ["state"], registry=r)
        self.lag = Gauge("stream_consumer_lag", "Records not yet committed, per assigned input partition.",
                         ["topic", "partition"], registry=r)
        self.committed = Gauge("stream_committed_offset", "Committed offset, per assigned input partition.",
                               ["topic", "partition"], registry=r)
        self.ready_gauge = Gauge("stream_ready", "1 when the worker has its partitions and its model.",
                                 registry=r)
        self.live_gauge = Gauge("stream_live", "0 when the worker's committed offsets stopped moving under lag.",
                                registry=r)
        self.started = time.time()
        # The dashboard's history: per-second counts, recent alerts and dead letters, entities.
        self.per_second: deque[list[int]] = deque(maxlen=HISTORY)  # [second, in, out]
        self.recent_alerts: deque[dict[str, Any]] = deque(maxlen=50)
        self.recent_dead: deque[dict[str, Any]] = deque(maxlen=50)
        self.entities: Tally[tuple[str, str]] = Tally()
        #: the latest summary of each story this worker published (the stories plugin)
        self.stories: dict[str, dict[str, Any]] = {}
        self.totals = Tally[str]()

    # ---- events -------------------------------------------------------------------------
    def _tick(self, n_in: int = 0, n_out: int = 0) -> None:
        now = int(time.time())
        if not self.per_second or self.per_second[-1][0] != now:
            self.per_second.append([now, 0, 0])
        self.per_second[-1][1] += n_in
        self.per_second[-1][2] += n_out

    def on_consumed(self, stage: str, n: int) -> None:
        self.articles_in.labels(stage).inc(n)
        if stage == "raw":
            self.totals["in"] += n
            self._tick(n_in=n)

    def on_plugin(self, plugin: str, seconds: float, articles: int) -> None:
        self.plugin_seconds.labels(plugin).observe(seconds)
        self.plugin_articles.labels(plugin).inc(articles)
        self.totals[f"plugin_s:{plugin}"] += int(seconds * 1_000_000)
        self.totals[f"plugin_n:{plugin}"] += articles

    def on_published(self, topic: str, n: int) -> None:
        """``n`` enriched records were published to ``topic``."""
        if n:
            self.articles_out.labels(topic).inc(n)
            self.totals["out"] += n
            self._tick(n_out=n)

    def on_article(self, dedup: dict[str, Any], entity_summary: Iterable[dict[str, Any]]) -> None:
        """An enriched article was published: its duplicate status and entities."""
        status = (dedup or {}).get("status")
        if status in ("exact", "near"):
            self.duplicates.labels(status).inc()
            self.totals["duplicates"] += 1
        for entity in entity_summary or ():
            label = str(entity.get("label", ""))
            if label in DASHBOARD_LABELS:  # not "two" (CARDINAL) or "Monday" (DATE)
                self.entities[(str(entity.get("canonical") or entity.get("text") or ""), label)] += 1
        if len(self.entities) > 20_000:  # keep the tally bounded on a long run
            self.entities = Tally(dict(self.entities.most_common(10_000)))

    def on_alert(self, topic: str, alert: dict[str, Any], article_start: str | None = None) -> None:
        """An alert was published; ``article_start``: how its article begins, shown for an
        article without a headline."""
        self.articles_out.labels(topic).inc()
        self.alerts.labels(str(alert.get("rule_id", ""))).inc()
        self.totals["alerts"] += 1
        self.recent_alerts.appendleft({
            "rule_id": alert.get("rule_id"), "severity": alert.get("severity"), "article_id": alert.get("article_id"),
            "title": alert.get("title") or _start(article_start), "snippet": _snippet(alert),
            "created_at": alert.get("created_at"),
        })

    def on_story(self, summary: dict[str, Any]) -> None:
        """A story's summary was published (the stories topic): the dashboard's panel."""
        story_id = str(summary.get("id", ""))
        places = [str(p.get("name")) for p in (summary.get("places") or [])[:3]]
        self.stories.pop(story_id, None)  # the latest update last: the dict is in update order
        self.stories[story_id] = {
            "id": story_id, "title": summary.get("title"), "articles": int(summary.get("articles") or 0),
            "sources": len(summary.get("sources") or ()), "source_names": list(summary.get("sources") or ())[:5],
            "languages": list(summary.get("languages") or ()), "places": places,
            "last_seen": summary.get("last_seen"), "updated": time.time()}
        while len(self.stories) > STORIES_KEPT:
            del self.stories[next(iter(self.stories))]  # the least recently updated

    def top_stories(self, hours: float = STORY_HOURS, limit: int = 15) -> list[dict[str, Any]]:
        """The stories updated in the last ``hours``, by sources and articles."""
        since = time.time() - hours * 3600
        recent = [s for s in self.stories.values() if s["updated"] >= since]
        return sorted(recent, key=lambda s: (-s["sources"], -s["articles"], -s["updated"]))[:limit]

    def on_dead_letter(self, topic: str, reason: str, stage: str, article_id: str | None, message: str) -> None:
        self.articles_out.labels(topic).inc()
        self.dead_letters.labels(reason, stage).inc()
        self.totals["dead"] += 1
        self.recent_dead.appendleft({"article_id": article_id, "reason": reason, "stage": stage,
                                     "message": message[:200], "at": time.time()})

    def on_webhook(self, endpoint: str, result: str) -> None:
        self.webhook_attempts.labels(endpoint).inc()
        self.webhook_results.labels(endpoint, result).inc()

    def on_offsets(self, rows: Iterable[tuple[str, int, int, int]]) -> None:
        """``(topic, partition, committed, end)`` of the assigned input partitions."""
        for topic, partition, committed, end in rows:
            self.committed.labels(topic, str(partition)).set(committed)
            self.lag.labels(topic, str(partition)).set(max(0, end - committed))

    # ---- the dashboard's view ---------------------------------------------------------
    def snapshot(self, minutes: int = 5) -> dict[str, Any]:
        now = int(time.time())
        since = now - minutes * 60
        series = {s: (i, o) for s, i, o in self.per_second if s >= since}
        throughput = [[s, *series.get(s, (0, 0))] for s in range(since + 1, now + 1)]
        plugins = sorted({k.split(":", 1)[1] for k in self.totals if k.startswith("plugin_n:")})
        out = self.totals["out"]
        return {
            "now": time.time(),
            "uptime_s": round(time.time() - self.started, 1),
            "totals": {"in": self.totals["in"], "out": out, "alerts": self.totals["alerts"],
                       "dead_letters": self.totals["dead"], "duplicates": self.totals["duplicates"]},
            "duplicate_rate": round(self.totals["duplicates"] / out, 4) if out else 0.0,
            "throughput": throughput,  # [second, in, out]
            "recent_alerts": list(self.recent_alerts)[:20],
            "recent_dead_letters": list(self.recent_dead)[:20],
            "top_entities": [{"name": n, "label": lbl, "count": c} for (n, lbl), c in self.entities.most_common(15)],
            "stories": self.top_stories(),
            "plugin_ms_per_article": {
                p: round(self.totals[f"plugin_s:{p}"] / 1000 / max(1, self.totals[f"plugin_n:{p}"]), 3)
                for p in plugins},
        }


#: The labels of the dashboard's top entities: people, organisations and places.
DASHBOARD_LABELS = frozenset({"PERSON", "ORG", "GPE", "LOC", "FAC"})


def _start(text: str | None, limit: int = 80) -> str | None:
    """The first line of ``text``, cut at a word under ``limit`` characters."""
    if not text or not text.strip():
        return None
    line = text.strip().split("\n", 1)[0].strip()
    if len(line) <= limit:
        return line
    return line[:limit].rsplit(" ", 1)[0].rstrip(" ,;:") + "…"


def _snippet(alert: dict[str, Any]) -> str:
    for match in alert.get("matched") or ():
        if isinstance(match, dict) and match.get("snippet"):
            return str(match["snippet"])
    return str(alert.get("snippet") or "")
