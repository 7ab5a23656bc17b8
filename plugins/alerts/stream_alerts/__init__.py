"""stream's keyword alerting processor.

Matches the rules (``docs/alerts.md``) against ``clean_text`` and fills ``alerts``; the
worker publishes each alert to the ``alerts`` topic keyed by rule id.

The rules file is the ``rules`` setting (``STREAM_RULES``, ``--rules FILE``), else the
built-in ``default_rules.toml``.  A changed file is picked up at the next batch (and on
SIGHUP); a bad new file is rejected with an error in the log and the old rules stay.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import logging
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, MutableMapping

import click

from stream import Alert, Article, Context, Processor, Settings, hookimpl
from stream.errors import ConfigError

from .matcher import Hit, Matcher, RuleMatch, _boundaries, snippet
from .rules import DEFAULT_RULES, Rule, load_rules, never_matches

__version__ = "0.1.0"
#: The stream plugin API this plugin is written for.
STREAM_PLUGIN_API = "1.0"
__all__ = ["AlertsProcessor", "__version__", "alert_id"]

#: A story rule remembers a story's matching articles (at most this many) ...
STORY_ARTICLES = 100
#: ... for this long after the story's last matching article (longer than a story stays open).
STORY_MEMORY = 72 * 3600.0

log = logging.getLogger("stream.plugins.alerts")


def alert_id(rule_id: str, article_id: str, kind: str = "keyword") -> str:
    """Stable for one rule and one article: a redelivered article gives the same id."""
    return hashlib.blake2b(f"{kind}\0{rule_id}\0{article_id}".encode(), digest_size=12).hexdigest()


def _place_ok(rule: Rule, geo: dict[str, Any] | None) -> bool:
    return bool(geo) and (geo.get("geonameid") in rule.place_ids  # type: ignore[union-attr]
                          or geo.get("country_code") in rule.countries)  # type: ignore[union-attr]


def _places_ok(rule: Rule, article: Article) -> bool:
    """The article names a place of the rule's ``places`` (a GeoNames id or a country)."""
    return not (rule.place_ids or rule.countries) or any(_place_ok(rule, e.get("geo")) for e in article.entity_summary)


def _entities_ok(rule: Rule, article: Article) -> bool:
    if rule.entity_ids and not any(e.get("entity_id") in rule.entity_ids or e.get("kb_id") in rule.entity_ids
                                   for e in article.entity_summary):
        return False
    for cond in rule.entities:
        if not any(
            (cond.label is None or e["label"] == cond.label)
            and (cond.canonical is None or e["canonical"].casefold() == cond.canonical.casefold())
            for e in article.entity_summary
        ):
            return False
    return True


def _entity_match(rule: Rule, article: Article, match: RuleMatch) -> RuleMatch | None:
    """A rule on entities alone: its hits are the mentions of the entities it names, its
    snippet is around the first (None: no mention in the text, e.g. only in the summary)."""
    names = {c.canonical.casefold() for c in rule.entities if c.canonical}
    labels = {c.label for c in rule.entities if c.label and not c.canonical}
    text = article.clean_text or article.text
    hits = [Hit(m.get("kb_id") or m.get("entity_id") or m["canonical"], m["start"], m["end"], 0, "text")
            for m in article.entities
            if (rule.entity_ids and (m.get("entity_id") in rule.entity_ids or m.get("kb_id") in rule.entity_ids))
            or str(m.get("canonical", "")).casefold() in names or m["label"] in labels or _place_ok(rule, m.get("geo"))]
    if not hits:
        return None
    return RuleMatch(match.rule, hits, snippet(text, hits[0].start, hits[0].end, bounds=_boundaries(text)))


class AlertsProcessor(Processor):
    """Fills ``alerts``."""

    name = "alerts"
    version = __version__
    order = 400
    #: Cooldowns and burst windows live in this table: in the worker a state-store table with a
    #: Kafka changelog, so they hold across restarts and workers (stateful stage).
    tables = ("alerts",)

    def __init__(self, rules_path: str | Path | None = None) -> None:
        self.path = Path(rules_path) if rules_path else DEFAULT_RULES
        self.matcher = Matcher(())
        self._mtime = 0.0
        self._checked = 0.0
        self._reload_requested = threading.Event()
        #: The state table: "c:RULE\0ENTITY" -> [fired at, article id] (cooldowns),
        #: "w:RULE" -> [[time, article id], ...] (burst window), "b:RULE" -> the last burst
        #: {"t": fired at, "by": article id, "ids": [...]}, "st:RULE\0STORY" -> a story rule's
        #: {"m": [[time, source, article id], ...] matching articles, "u": updated at,
        #: "f": null or the alert's {"by": article id, ...}}.
        self.state: MutableMapping[str, Any] = {}
        #: "m:ARTICLE" -> {"r": {version number: {rule id: [terms matched]}}, "u": updated at}
        #: (what revisions need, kept as long as dedup's signatures)
        self._expiring: dict[str, list[tuple[float, str]]] | None = None  # prefix -> heap of (updated, key)
        self._warned_no_story = False
        #: counters: suppressed matches by rule, duplicates skipped by rule, revisions that
        #: matched only terms an earlier version matched.
        self.suppressed: Counter[str] = Counter()
        self.duplicates_skipped: Counter[str] = Counter()
        self.revision_repeats: Counter[str] = Counter()
        #: how long the terms an article's versions matched are kept: dedup's retention
        self.terms_memory = 72 * 3600.0
        self.clock = time.time

    def setup(self, context: Context) -> None:
        self.state = context.tables.get("alerts", self.state)
        dedup = context.settings.plugin_config("dedup")
        with contextlib.suppress(TypeError, ValueError):  # dedup's own setup names a bad value
            self.terms_memory = float(dedup.get("retention_hours", 72)) * 3600
        configured = context.settings.rules or context.config.get("rules")
        if configured:
            self.path = Path(str(configured))
        self._load()
        if context.mode == "worker" and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, lambda *_: self._reload_requested.set())

    def _load(self) -> None:
        rules = load_rules(self.path)
        self._mtime = self.path.stat().st_mtime
        self.matcher = Matcher(rules)
        log.info("alerts: %d rules from %s (%d patterns)", len(rules), self.path, self.matcher.patterns)
        for rule in rules:
            for problem in never_matches(rule):
                log.warning("alerts: rule %r (%s, line %s) can never match: %s", rule.id, self.path, rule.line,
                            problem)

    def maybe_reload(self) -> bool:
        """Reload the rules when the file changed (checked at most once a second) or on
        SIGHUP.  A bad file is logged and the old rules stay.  :return: reloaded or not."""
        now = time.monotonic()
        if not self._reload_requested.is_set() and now - self._checked < 1.0:
            return False
        self._checked = now
        try:
            changed = self.path.stat().st_mtime != self._mtime
        except OSError:
            changed = False
        if not (changed or self._reload_requested.is_set()):
            return False
        self._reload_requested.clear()
        try:
            self._load()
        except ConfigError as exc:
            self._mtime = self.path.stat().st_mtime if self.path.exists() else self._mtime
            log.error("alerts: the new rules were rejected, the old ones stay active: %s", exc)
            return False
        return True

    def process(self, articles: list[Article]) -> None:
        self.maybe_reload()
        now = self.clock()
        for article in articles:
            text = article.clean_text or article.text
            duplicate = article.dedup.get("status") not in (None, "unique")
            revision = getattr(article, "revision", None) or {}  # an older stream has no revisions
            number = int(revision.get("number") or 0)
            original = str(revision.get("of") or article.id)
            earlier = self._earlier_terms(original, number)
            terms: dict[str, list[str]] = {}
            for match in self.matcher.match(text, article.language, title=article.title, source=article.source):
                rule = match.rule
                if duplicate and not rule.duplicates:
                    self.duplicates_skipped[rule.id] += 1
                    continue
                if not _entities_ok(rule, article) or not _places_ok(rule, article):
                    continue
                if rule.kind == "story":
                    alert = self._story(rule, article, match, now) if not number else None  # not a new article
                    if alert is not None:
                        article.alerts.append(alert)
                    continue
                if not match.hits:  # a rule on entities alone: its hits are the entity's mentions
                    match = _entity_match(rule, article, match)
                    if match is None:
                        continue
                terms[rule.id] = sorted({h.term for h in match.hits})
                if number:  # a revision alerts only on terms no earlier version matched
                    new = set(terms[rule.id]) - earlier.get(rule.id, set())
                    if not new:
                        self.revision_repeats[rule.id] += 1
                        continue
                    match = RuleMatch(rule, [h for h in match.hits if h.term in new], match.snippet)
                # A burst counts every matching unique article (not revisions), suppressed or not.
                burst = self._burst(rule, article, now) if rule.burst and not number else None
                if self._cooling(rule, article, now):
                    self.suppressed[rule.id] += 1
                else:
                    article.alerts.append(self._alert(rule, article, match, number))
                if burst:
                    article.alerts.append(burst)
            if terms:
                self._remember_terms(original, number, terms, now)
        self._forget(now)

    # ---- story rules -------------------------------------------------------------------------
    def _story(self, rule: Rule, article: Article, match: RuleMatch, now: float) -> dict[str, Any] | None:
        """Count ``article`` for its story; the alert when the story first meets the rule
        (this article made it), or the same alert again when this is that article sent again."""
        story = getattr(article, "story", None) or {}  # an older stream has no story field
        story_id = story.get("id")
        if not story_id:
            if not self._warned_no_story:
                self._warned_no_story = True
                log.warning("alerts: rule %r is a story rule, and article %s has no story: load the stories "
                            "plugin (stream-stories) after dedup, or story rules never fire", rule.id, article.id)
            return None
        key = f"st:{rule.id}\0{story_id}"
        state = self.state.get(key) or {"m": [], "f": None}
        fired = state["f"]
        if fired is not None:
            return self._story_alert(rule, article, match, fired) if fired["by"] == article.id else None
        if any(entry[2] == article.id for entry in state["m"]):
            return None  # sent again, and it did not make the story meet the rule the first time
        at = article.event_time(now)  # a core with stories has it (plugin API 1.2)
        matched = sorted([*state["m"], [at, article.source or "", article.id]])[-STORY_ARTICLES:]
        window = self._met(rule, matched, at)
        if window is None:
            self.state[key] = {"m": matched, "f": None, "u": now}
        else:
            summary = next((value for topic, k, value in reversed(article.outputs) if k == story_id and value),
                           None) or dict(story)
            fired = {"by": article.id, "t": now, "ids": [e[2] for e in window],
                     "sources": sorted({e[1] for e in window if e[1]}), "story": summary}
            self.state[key] = {"m": [], "f": fired, "u": now}
        self._note_story_key(now, key)
        return None if window is None else self._story_alert(rule, article, match, fired)

    @staticmethod
    def _met(rule: Rule, matched: list[list[Any]], at: float) -> list[list[Any]] | None:
        """The matching articles of a span of ``within_minutes`` that holds the article at
        ``at`` and meets ``min_sources`` and ``min_articles``, or ``None``."""
        span = rule.within_minutes * 60 if rule.within_minutes is not None else float("inf")
        for start in (e[0] for e in matched if at - span <= e[0] <= at):
            inside = [e for e in matched if start <= e[0] <= start + span]
            if len({e[1] for e in inside if e[1]}) >= rule.min_sources and len(inside) >= rule.min_articles:
                return inside
        return None

    def _story_alert(self, rule: Rule, article: Article, match: RuleMatch, fired: dict[str, Any]) -> dict[str, Any]:
        story = fired["story"]
        text = article.clean_text or article.text
        minutes = f" within {rule.within_minutes:g} minutes" if rule.within_minutes is not None else ""
        alert = Alert(
            alert_id=alert_id(rule.id, str(story.get("id")), kind="story"),
            rule_id=rule.id, article_id=article.id, title=story.get("title") or article.title, url=article.url,
            matched=[{"term": h.term, "text": ((article.title or "") if h.field == "title" else text)[h.start:h.end],
                      "start": h.start, "end": h.end, "field": h.field} for h in match.hits],
            snippet=(f"{len(fired['sources'])} sources, {len(fired['ids'])} articles{minutes}: "
                     f"{story.get('title') or article.title or ''}").strip(),
            severity=rule.severity,
        ).to_dict()
        alert.update(kind="story", story=story, articles=fired["ids"], sources=fired["sources"])
        return alert

    # ---- revisions ---------------------------------------------------------------------------
    def _earlier_terms(self, original: str, number: int) -> dict[str, set[str]]:
        """The terms each rule matched in the versions of ``original`` before ``number``."""
        if not number:
            return {}
        seen = (self.state.get(f"m:{original}") or {}).get("r", {})
        earlier: dict[str, set[str]] = {}
        for version, by_rule in seen.items():
            if int(version) < number:
                for rule_id, terms in by_rule.items():
                    earlier.setdefault(rule_id, set()).update(terms)
        return earlier

    def _remember_terms(self, original: str, number: int, terms: dict[str, list[str]], now: float) -> None:
        key = f"m:{original}"
        seen = self.state.get(key) or {"r": {}}
        if seen["r"].get(str(number)) == terms:
            return  # sent again: nothing new to remember
        self.state[key] = {"r": {**seen["r"], str(number): terms}, "u": now}
        self._note_key(now, key)

    # ---- what is kept, and for how long -------------------------------------------------------
    def _note_story_key(self, now: float, key: str) -> None:
        self._note_key(now, key)

    def _note_key(self, now: float, key: str) -> None:
        if self._expiring is not None:
            heapq.heappush(self._expiring[key[:key.index(":") + 1]], (now, key))

    def _forget(self, now: float) -> None:
        """Drop what story rules remember of a story after :data:`STORY_MEMORY` without a
        matching article (it closed well before), and the terms of an article's versions
        after dedup's ``retention_hours`` (dedup no longer knows the article then)."""
        if self._expiring is None:  # first batch (or after a move): from the table
            self._expiring = {"st:": [], "m:": []}
            for k, v in self.state.items():
                prefix = k[:k.find(":") + 1]
                if prefix in self._expiring and isinstance(v, dict):
                    self._expiring[prefix].append((float(v.get("u", now)), k))
            for heap in self._expiring.values():
                heapq.heapify(heap)
        for prefix, keep in (("st:", STORY_MEMORY), ("m:", self.terms_memory)):
            heap, horizon = self._expiring[prefix], now - keep
            while heap and heap[0][0] < horizon:
                updated, key = heapq.heappop(heap)
                value = self.state.get(key)
                if value is not None and float(value.get("u", 0)) <= updated:
                    del self.state[key]

    def on_assigned(self) -> None:
        self._expiring = None

    def _alert(self, rule: Rule, article: Article, match: RuleMatch, revision: int = 0) -> dict[str, Any]:
        text = article.clean_text or article.text
        in_title = any(h.field == "title" for h in match.hits)
        alert = Alert(
            # A revision's alert has an id of its own: receivers drop an id they have seen.
            alert_id=alert_id(rule.id, f"{article.id}\0revision {revision}" if revision else article.id),
            rule_id=rule.id,
            article_id=article.id,
            title=article.title,
            url=article.url,
            matched=[{"term": h.term, "text": ((article.title or "") if h.field == "title" else text)[h.start:h.end],
                      "start": h.start, "end": h.end, "field": h.field} for h in match.hits],
            snippet=match.snippet,
            severity=rule.title_severity if in_title and rule.title_severity else rule.severity,
        ).to_dict()
        alert["kind"] = "keyword"
        if revision:
            alert["revision"] = revision
        return alert

    def _cooldown_keys(self, rule: Rule, article: Article) -> list[str]:
        assert rule.cooldown is not None
        per = rule.cooldown.per
        if not per:
            return [rule.id]
        wanted = [c.canonical for c in rule.entities if c.label == per and c.canonical]
        names = wanted or [e["canonical"] for e in article.entity_summary if e["label"] == per][:1]
        return [f"{rule.id}\0{n.casefold()}" for n in names] or [f"{rule.id}\0"]

    def _cooling(self, rule: Rule, article: Article, now: float) -> bool:
        if rule.cooldown is None:
            return False
        keys = [f"c:{k}" for k in self._cooldown_keys(rule, article)]
        window = rule.cooldown.minutes * 60
        entries = {key: self.state.get(key) for key in keys}
        cooling = all(
            entry is not None and now - entry[0] < window
            and entry[1] != article.id  # a redelivery decides as the first time
            for entry in entries.values()
        )
        if not cooling:
            for key, entry in entries.items():
                if entry is None or entry[1] != article.id:
                    self.state[key] = [now, article.id]
        return cooling

    def _burst(self, rule: Rule, article: Article, now: float) -> dict[str, Any] | None:
        assert rule.burst is not None
        span = rule.burst.minutes * 60
        fired = self.state.get(f"b:{rule.id}")  # {"t": when, "by": article id, "ids": [...]}
        window = [entry for entry in (self.state.get(f"w:{rule.id}") or []) if now - entry[0] <= span]
        if any(aid == article.id for _t, aid in window):
            # A redelivery: the same decision as the first time.
            if fired is not None and fired["by"] == article.id:
                return self._burst_alert(rule, article, fired["ids"])
            return None
        window.append([now, article.id])
        self.state[f"w:{rule.id}"] = window[-max(rule.burst.count * 4, 64):]
        if len(window) < rule.burst.count or (fired is not None and now - fired["t"] < span):
            return None
        ids = [aid for _t, aid in window]
        self.state[f"b:{rule.id}"] = {"t": now, "by": article.id, "ids": ids}
        return self._burst_alert(rule, article, ids)

    def _burst_alert(self, rule: Rule, article: Article, ids: list[str]) -> dict[str, Any]:
        assert rule.burst is not None
        alert = Alert(
            alert_id=alert_id(rule.id, ids[0] + "\0" + article.id, kind="burst"),
            rule_id=rule.id, article_id=article.id, title=article.title, url=article.url,
            matched=[], severity=rule.severity,
            snippet=f"{len(ids)} articles matched rule {rule.id!r} within {rule.burst.minutes:g} minutes",
        ).to_dict()
        alert.update(kind="burst", articles=ids, window_minutes=rule.burst.minutes)
        return alert


@hookimpl
def stream_register_processors(settings: Settings) -> list[Processor]:
    return [AlertsProcessor()]


@hookimpl
def stream_register_commands(cli: click.Group) -> None:
    from .commands import rules

    cli.add_command(rules)

