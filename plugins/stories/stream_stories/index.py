"""Open stories in memory: an inverted index from terms, entities and places to stories,
the scoring of an article against its candidates, the window and the cap.

A story's state is a JSON-able dict (the state table's value, see :class:`Story`); the
index is rebuilt from the table when the stateful partition comes to a worker.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .features import Features

__all__ = ["Match", "Story", "StoryIndex"]

#: Terms of a story's centroid kept (the heaviest).
CENTROID_TERMS = 60
#: Of a story's centroid, the heaviest this many terms find it (its entities and places too).
POSTED_TERMS = 20
#: Of an article's terms, the heaviest this many look up candidate stories.
QUERY_TERMS = 12
#: A term posted by more open stories than this finds no candidates (too common to tell).
MAX_POSTING = 2000
#: Candidates scored in full per article (those sharing the most keys).
CANDIDATES = 40
#: Article ids and sources kept per story.
MAX_IDS = 100
MAX_SOURCES = 100


@dataclass(slots=True)
class Story:
    """One story: what it is made of and what it says about itself."""

    id: str
    first: float
    last: float
    articles: int = 0
    sources: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    centroid: dict[str, float] = field(default_factory=dict)  # sum of the articles' term vectors
    entities: dict[str, float] = field(default_factory=dict)  # key -> number of articles naming it
    places: dict[str, float] = field(default_factory=dict)
    aliases: dict[str, float] = field(default_factory=dict)  # other names of its places
    names: dict[str, str] = field(default_factory=dict)
    geo: dict[str, dict[str, Any]] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    title: str | None = None
    title_id: str | None = None
    title_score: float = -1.0
    norm: float = 0.0
    posted: tuple[str, ...] = ()  # the keys it was posted under (a tuple: a set costs 2 KB a story)

    def to_state(self) -> dict[str, Any]:
        return {"id": self.id, "f": self.first, "l": self.last, "n": self.articles, "src": self.sources,
                "lang": self.languages, "c": self.centroid, "e": self.entities, "p": self.places,
                "al": self.aliases, "nm": self.names, "geo": self.geo, "ids": self.ids, "title": self.title,
                "tid": self.title_id, "ts": self.title_score}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> Story:
        """The story of a table value, sharing its lists and dicts (as :meth:`to_state` does:
        a copy would hold every restored story twice)."""
        story = cls(s["id"], s["f"], s["l"], s["n"], s["src"], s["lang"], s["c"], s["e"], s["p"], s.get("al", {}),
                    s["nm"], s["geo"], s["ids"], s.get("title"), s.get("tid"), float(s.get("ts", -1.0)))
        story.norm = math.sqrt(sum(w * w for w in story.centroid.values()))
        return story


@dataclass(slots=True)
class Match:
    story: Story
    score: float
    text: float
    entities: float
    places: float


def _share(mine: dict[str, float], theirs: dict[str, float], also: dict[str, float] | None = None) -> float:
    """The weighted share of ``mine`` found in ``theirs`` (or ``also``), smoothed so that one
    shared key out of one is not certainty: ``shared / (total + 1)``."""
    if not mine:
        return 0.0
    total = sum(mine.values())
    shared = sum(w for k, w in mine.items() if k in theirs or (also is not None and k in also))
    return shared / (total + 1.0)


class StoryIndex:
    """The open stories and what finds them.

    :param window: seconds: an article joins only a story whose first and last articles are
        within this of its time; a story with no article for this long closes.
    :param max_open: open stories at most; past it, the ones with the oldest last article close.
    :param entity_weight: / :param place_weight: weights of the entity and place shares in
        the score (the text's cosine weighs 1).
    :param threshold: the score an article needs to join a story.
    """

    def __init__(self, *, window: float, max_open: int, entity_weight: float, place_weight: float,
                 threshold: float):
        self.window = window
        self.max_open = max_open
        self.entity_weight = entity_weight
        self.place_weight = place_weight
        self.threshold = threshold
        self.stories: dict[str, Story] = {}
        self.postings: dict[str, set[str]] = {}
        self._by_last: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self.stories)

    # ---- finding ----------------------------------------------------------------------------
    def score(self, f: Features, story: Story) -> Match:
        text = 0.0
        if story.norm:
            centroid = story.centroid
            text = sum(w * centroid.get(t, 0.0) for t, w in f.terms.items()) / story.norm
        ents = _share(f.entities, story.entities)
        places = _share(f.places, story.places, story.aliases)
        return Match(story, text + self.entity_weight * ents + self.place_weight * places, text, ents, places)

    def candidates(self, f: Features, at: float) -> list[Story]:
        counts: Counter[str] = Counter()
        keys = [t for t, _w in sorted(f.terms.items(), key=lambda kv: -kv[1])[:QUERY_TERMS]]
        keys += list(f.entities) + [k for k, w in f.places.items() if w >= 0.5]
        for key in keys:
            posting = self.postings.get(key)
            if posting and len(posting) <= MAX_POSTING:
                counts.update(posting)
        found = []
        for story_id, _n in counts.most_common(CANDIDATES):
            story = self.stories[story_id]
            if story.first - self.window <= at <= story.last + self.window:
                found.append(story)
        return found

    def best(self, f: Features, at: float) -> Match | None:
        """The best-scoring open story for ``f`` at time ``at``, if it reaches the threshold."""
        best: Match | None = None
        for story in self.candidates(f, at):
            match = self.score(f, story)
            if best is None or (match.score, story.first) > (best.score, best.story.first):
                best = match
        return best if best is not None and best.score >= self.threshold else None

    # ---- changing ---------------------------------------------------------------------------
    def open(self, story_id: str, at: float) -> Story:
        story = Story(story_id, at, at)
        self.stories[story_id] = story
        return story

    def add(self, story: Story, f: Features, *, article_id: str, at: float, title: str | None,
            source: str | None, language: str | None, centrality: float) -> None:
        """Add an article (its features ``f``) to ``story``."""
        story.first, story.last = min(story.first, at), max(story.last, at)
        story.articles += 1
        if source and source not in story.sources and len(story.sources) < MAX_SOURCES:
            story.sources.append(source)
        if language and language not in story.languages:
            story.languages.append(language)
        centroid = story.centroid
        for term, w in f.terms.items():
            centroid[term] = centroid.get(term, 0.0) + w
        if len(centroid) > CENTROID_TERMS:
            story.centroid = centroid = dict(sorted(centroid.items(), key=lambda kv: (-kv[1], kv[0]))[:CENTROID_TERMS])
        story.norm = math.sqrt(sum(w * w for w in centroid.values()))
        for key in f.entities:
            story.entities[key] = story.entities.get(key, 0.0) + 1.0
        for key in f.places:
            story.places[key] = story.places.get(key, 0.0) + 1.0
        for key in f.aliases - f.places.keys():
            story.aliases[key] = story.aliases.get(key, 0.0) + 1.0
        for key, name in f.names.items():
            story.names.setdefault(key, name)
        for key, geo in f.geo.items():
            story.geo.setdefault(key, geo)
        if article_id not in story.ids:
            story.ids.append(article_id)
            del story.ids[:-MAX_IDS]
        if centrality > story.title_score or story.title is None:
            story.title, story.title_id, story.title_score = title, article_id, centrality
        self.post(story)

    def post(self, story: Story) -> None:
        """Make the story findable by its current keys (and by the ones it had: a posting
        leaves only when the story closes)."""
        top = sorted(story.centroid, key=lambda t: -story.centroid[t])[:POSTED_TERMS]
        known = set(story.posted)
        new = [key for key in dict.fromkeys((*top, *story.entities, *story.places, *story.aliases)) if key not in known]
        for key in new:
            self.postings.setdefault(key, set()).add(story.id)
        if new:
            story.posted += tuple(new)
        heapq.heappush(self._by_last, (story.last, story.id))

    def close(self, story_id: str) -> Story | None:
        story = self.stories.pop(story_id, None)
        if story is None:
            return None
        for key in story.posted:
            posting = self.postings.get(key)
            if posting is not None:
                posting.discard(story_id)
                if not posting:
                    del self.postings[key]
        return story

    def expire(self, now: float) -> list[str]:
        """Close the stories whose last article is older than the window at ``now``, and the
        oldest past ``max_open``.  :return: the ids closed."""
        closed = []
        horizon = now - self.window
        while self._by_last:
            last, story_id = self._by_last[0]
            story = self.stories.get(story_id)
            if story is None or story.last != last:
                heapq.heappop(self._by_last)  # stale: closed, or moved on since
                continue
            if last >= horizon and len(self.stories) <= self.max_open:
                break
            heapq.heappop(self._by_last)
            self.close(story_id)
            closed.append(story_id)
        return closed
