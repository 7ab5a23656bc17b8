"""What an ingester counts: Prometheus metrics per entry, and the state its page shows.

Names and labels are listed in ``docs/sources.md``.  ``entry`` is the entry's id
(``feeds:https://example.org/rss.xml``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["EntryState", "IngestMetrics"]


@dataclass
class EntryState:
    """One entry as the ingester's page shows it."""

    id: str
    kind: str
    every: float
    polls: int = 0
    new: int = 0
    errors: int = 0
    failures_in_a_row: int = 0
    last_success: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    next_poll: float | None = None


class IngestMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.polls = Counter("stream_source_polls", "Polls, by entry and result (new, nothing_new, not_modified, "
                             "error).", ["kind", "entry", "result"], registry=r)
        self.new = Counter("stream_source_new", "New items sent and acknowledged by the broker, by entry.",
                           ["kind", "entry"], registry=r)
        self.errors = Counter("stream_source_errors", "Failed polls, by entry and reason (http_500, not_a_feed, "
                              "refused, timeout, send, ...).", ["kind", "entry", "reason"], registry=r)
        self.last_success = Gauge("stream_source_last_success", "Unix time of the entry's last successful poll.",
                                  ["kind", "entry"], registry=r)
        self.text_from = Counter("stream_source_text_from", "Articles sent, by where their text came from "
                                 "(page, summary, html, text).", ["kind", "text_from"], registry=r)
        self.entries = Gauge("stream_source_entries", "Entries this ingester polls.", registry=r)
        self.pushed = Counter("stream_ingest_pushed", "Articles written through POST /articles.", registry=r)
        self.push_requests = Counter("stream_ingest_push_requests", "POST /articles requests, by status.",
                                     ["status"], registry=r)
        self.ready_gauge = Gauge("stream_ready", "1 when the ingester has its entries and its producer.", registry=r)
        self.pushed_total = 0
        self.state: dict[str, EntryState] = {}
        self.started = time.time()

    def entry(self, entry_id: str, kind: str, every: float) -> EntryState:
        state = self.state.get(entry_id)
        if state is None or state.every != every:
            state = self.state[entry_id] = EntryState(entry_id, kind, every)
        return state

    def on_poll(self, state: EntryState, sent: int, result: str, reason: str | None = None,
                message: str | None = None) -> None:
        state.polls += 1
        self.polls.labels(state.kind, state.id, result).inc()
        if sent:
            state.new += sent
            self.new.labels(state.kind, state.id).inc(sent)
        if result == "error":
            state.errors += 1
            state.failures_in_a_row += 1
            state.last_error = message
            state.last_error_at = time.time()
            self.errors.labels(state.kind, state.id, reason or "error").inc()
        else:
            state.failures_in_a_row = 0
            state.last_success = time.time()
            self.last_success.labels(state.kind, state.id).set(state.last_success)

    def snapshot(self, owned: set[str]) -> dict[str, Any]:
        return {"started": self.started, "now": time.time(),
                "entries": [asdict(s) | {"owned": s.id in owned} for s in sorted(self.state.values(),
                                                                                 key=lambda s: s.id)],
                "pushed": self.pushed_total}
