"""stream's story detection: articles of one event, across outlets and languages.

Dedup's ``cluster_id`` joins copies of one text; a story joins the articles that report one
event in their own words.  Each article joins the best-matching open story or starts a new
one (``docs/stories.md``: the method, how its thresholds were chosen, the figures):

* matched on its terms (word stems weighted by rarity), its entities and its places
  (GeoNames ids, the same in every language), within ``window_hours`` of the story's
  articles (``published_at``, else the arrival time);
* a copy that dedup marked joins its original's story;
* an article sent again (same id), or a revision of one (dedup's ``revision``), gets the
  decision of the first time and changes nothing.

Fills ``story`` (``{"id", "articles", "sources", "languages", "first_seen", "last_seen"}``, as
of the article) and publishes the story's summary to the compacted topic ``topic_stories``
after every change.

State: the table ``stories`` (in the worker a state-store table in the stateful stage):
``s:STORY`` -> an open story, ``a:ARTICLE`` -> the article's decision (kept
``retention_hours``).  Open stories are bounded by ``window_hours`` and ``max_open``.

Settings (``[plugins.stories]`` or ``STREAM_PLUGIN_STORIES_<KEY>``): ``window_hours`` (48),
``max_open`` (100000), ``threshold``, ``entity_weight``, ``place_weight`` (the matcher, see
docs/stories.md), ``retention_hours`` (72).
"""

from __future__ import annotations

import hashlib
import heapq
import time
from datetime import UTC, datetime
from typing import Any, MutableMapping

from stream import Article, ConfigError, Context, Processor, Settings, TopicSpec, hookimpl

from .features import Features, features_of
from .index import Story, StoryIndex

__version__ = "0.1.0"
#: The stream plugin API this plugin is written for (``Article.emit`` and ``story``: 1.2).
STREAM_PLUGIN_API = "1.2"
__all__ = ["StoriesProcessor", "__version__", "story_id", "summary"]

#: The defaults; the matcher's were chosen on the labelled stream (docs/stories.md).
DEFAULTS: dict[str, float] = {"window_hours": 48.0, "max_open": 100_000, "threshold": 0.35,
                              "entity_weight": 0.75, "place_weight": 0.5, "retention_hours": 72.0}
#: An article dated further ahead of its arrival than this is placed at its arrival.
FUTURE = 3600.0
#: Entities and places in a story's summary.
TOP = 10


def story_id(first_article_id: str) -> str:
    """A story's id: stable for the article that started it."""
    return hashlib.blake2b(f"story\0{first_article_id}".encode(), digest_size=8).hexdigest()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def story_field(story: Story) -> dict[str, Any]:
    """The ``story`` of an enriched article."""
    return {"id": story.id, "articles": story.articles, "sources": list(story.sources),
            "languages": list(story.languages), "first_seen": _iso(story.first), "last_seen": _iso(story.last)}


def summary(story: Story, now: float | None = None) -> dict[str, Any]:
    """A story's record on ``topic_stories``."""
    def top(counts: dict[str, float]) -> list[tuple[str, float]]:
        return sorted(counts.items(), key=lambda kv: (-kv[1], story.names.get(kv[0], kv[0])))[:TOP]

    return {
        "id": story.id, "title": story.title, "title_article": story.title_id, "articles": story.articles,
        "sources": list(story.sources), "languages": list(story.languages),
        "entities": [{"name": story.names.get(k, k[2:]), "key": k[2:], "articles": int(n)}
                     for k, n in top(story.entities)],
        "places": [{"name": story.names.get(k, k[2:]), "geo": story.geo.get(k), "articles": int(n)}
                   for k, n in top(story.places)],
        "first_seen": _iso(story.first), "last_seen": _iso(story.last), "article_ids": list(story.ids),
        "updated_at": _iso(now if now is not None else time.time()),
    }


class StoriesProcessor(Processor):
    """Fills ``story``; publishes story summaries."""

    name = "stories"
    version = __version__
    order = 350
    after = ("dedup",)
    tables = ("stories",)

    def __init__(self) -> None:
        self.table: MutableMapping[str, Any] = {}
        self.options = dict(DEFAULTS)
        self.topic = "stories"
        self.index: StoryIndex | None = None
        self.latest = 0.0  # the latest event time seen: the window's "now"
        self._decisions: list[tuple[float, str]] = []  # (recorded at, article id), for retention
        self.clock = time.time

    def setup(self, context: Context) -> None:
        unknown = set(context.config) - set(DEFAULTS)
        if unknown:
            raise ConfigError(f"[plugins.stories]: unknown setting(s) {', '.join(sorted(unknown))}; "
                              f"known: {', '.join(DEFAULTS)}")
        for key, default in DEFAULTS.items():
            raw = context.config.get(key, default)
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise ConfigError(f"[plugins.stories] {key} must be a number, not {raw!r}") from None
            if value < 0 or (value == 0 and key in ("window_hours", "max_open", "retention_hours")):
                raise ConfigError(f"[plugins.stories] {key} = {value:g} is out of range (it must be above 0)")
            self.options[key] = value
        self.topic = context.settings.topic_stories
        self.table = context.tables["stories"]
        self.index = None

    def on_assigned(self) -> None:
        self.index = None

    def _ensure_index(self) -> StoryIndex:
        if self.index is None:
            o = self.options
            index = StoryIndex(window=o["window_hours"] * 3600, max_open=int(o["max_open"]),
                               entity_weight=o["entity_weight"], place_weight=o["place_weight"],
                               threshold=o["threshold"])
            decisions = []
            for key, value in self.table.items():
                if key.startswith("s:") and value:
                    story = Story.from_state(value)
                    index.stories[story.id] = story
                    index.post(story)
                    self.latest = max(self.latest, story.last)
                elif key.startswith("a:") and value:
                    decisions.append((float(value["t"]), key[2:]))
            heapq.heapify(decisions)
            self._decisions = decisions
            self.index = index
        return self.index

    def process(self, articles: list[Article]) -> None:
        index = self._ensure_index()
        now = self.clock()
        for article in articles:
            stored = self.table.get(f"a:{article.id}")
            revision = getattr(article, "revision", None) or {}  # dedup's: a new version of an article
            if not stored and revision.get("of"):
                stored = self.table.get(f"a:{revision['of']}")  # the same url under a new id
            if stored:  # sent again, or a revision: its (original's) story, and no change to it
                article.story = dict(stored["v"])
                continue
            at = article.event_time(now, FUTURE)
            f = features_of(article.title, article.clean_text or article.text, article.language,
                            article.entity_summary)
            story, centrality = self._place(index, article, f, at)
            index.add(story, f, article_id=article.id, at=at, title=article.title, source=article.source,
                      language=article.language, centrality=centrality)
            self.latest = max(self.latest, at)
            article.story = story_field(story)
            self.table[f"a:{article.id}"] = {"s": story.id, "t": now, "v": article.story}
            heapq.heappush(self._decisions, (now, article.id))
            self.table[f"s:{story.id}"] = story.to_state()
            article.emit(self.topic, story.id, summary(story, now))
        for closed in index.expire(self.latest):
            self.table.pop(f"s:{closed}", None)
        horizon = now - self.options["retention_hours"] * 3600
        while self._decisions and self._decisions[0][0] < horizon:
            _t, article_id = heapq.heappop(self._decisions)
            self.table.pop(f"a:{article_id}", None)

    def _place(self, index: StoryIndex, article: Article, f: Features, at: float) -> tuple[Story, float]:
        """The story the article joins (an open one, or a new one) and its centrality."""
        original = article.dedup.get("duplicate_of") if article.dedup.get("status") in ("exact", "near") else None
        if original:
            decided = self.table.get(f"a:{original}")
            story = index.stories.get(decided["s"]) if decided else None
            if story is not None:
                return story, -1.0  # a copy: never the story's title
        match = index.best(f, at)
        if match is not None:
            return match.story, match.text
        return index.open(story_id(article.id), at), 0.0


@hookimpl
def stream_register_processors(settings: Settings) -> list[Processor]:
    return [StoriesProcessor()]


@hookimpl
def stream_register_topics(settings: Settings) -> list[TopicSpec]:
    return [TopicSpec(settings.topic_stories, compacted=True)]
