"""stream's deduplication processor: exact and near-duplicates, story clusters.

Reads ``clean_text`` and fills ``dedup``::

    {"status": "unique" | "exact" | "near", "duplicate_of": id or null,
     "similarity": float or null, "cluster_id": str}

The first article of a story is ``unique`` and its id is the cluster id; later copies
point at it (``duplicate_of`` = ``cluster_id`` = the first article's id) with the
similarity to the closest earlier copy.  Reprocessing an article (same id, same text)
returns the decision taken the first time.

**Revisions.** An article sent again with the same ``id`` (or the ``url`` of an article
seen before) and a changed text is a revision: it gets its original's decision and
``revision`` = ``{"number": 1, "of": ORIGINAL ID, "added": [new paragraphs],
"removed": [indices of the previous version's paragraphs that are gone]}``.  Its signature
does not enter the index (it is not a new article).  A version sent again gets the same
``revision`` as the first time.

State: the table ``dedup`` (in the worker a state-store table with a compacted Kafka changelog,
in the stateful stage, so every article meets every earlier signature whichever worker
read it).  Entries expire after ``retention_hours`` or beyond ``max_signatures``.

Settings (``[plugins.dedup]`` or ``STREAM_PLUGIN_DEDUP_<KEY>``), defaults measured on
copies built from the sample articles (see ``docs/dedup.md``):

``jaccard`` (0.5)        near if the Jaccard similarity of word 5-grams is at least this;
``overlap`` (0.8)        ... or if this share of the shorter text is in the longer one;
``lsh_threshold`` (0.5)  MinHash LSH candidate threshold;
``retention_hours`` (72) and ``max_signatures`` (200000): the bounds of the state.
"""

from __future__ import annotations

import gc
import hashlib
import re
import time
from typing import Any, MutableMapping

from stream import Article, ConfigError, Context, Processor, Settings, hookimpl

from .index import DedupIndex, Signature, sign

__version__ = "0.1.0"
#: The stream plugin API this plugin is written for.
STREAM_PLUGIN_API = "1.0"
__all__ = ["DedupProcessor", "__version__"]

#: Versions of an article remembered (each with its ``revision``).
MAX_VERSIONS = 20
_PARAGRAPH = re.compile(r"\n\s*\n")
_SPACE = re.compile(r"\s+")


def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in _PARAGRAPH.split(text) if p.strip()]


def paragraph_hash(paragraph: str) -> str:
    return hashlib.blake2b(_SPACE.sub(" ", paragraph).encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


_DEFAULTS: dict[str, float] = {"jaccard": 0.5, "overlap": 0.8, "lsh_threshold": 0.5,
                               "retention_hours": 72.0, "max_signatures": 200_000}


class DedupProcessor(Processor):
    """Fills ``dedup``."""

    name = "dedup"
    version = __version__
    order = 300
    tables = ("dedup",)

    def __init__(self) -> None:
        self.table: MutableMapping[str, Any] = {}
        self.index: DedupIndex | None = None
        self.options = dict(_DEFAULTS)
        self.clock = time.time

    def setup(self, context: Context) -> None:
        for key, default in _DEFAULTS.items():
            raw = context.config.get(key, default)
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise ConfigError(f"[plugins.dedup] {key} must be a number, not {raw!r}") from None
            if value <= 0 or (key in ("jaccard", "overlap", "lsh_threshold") and value > 1):
                raise ConfigError(f"[plugins.dedup] {key} = {value} is out of range")
            self.options[key] = value
        unknown = set(context.config) - set(_DEFAULTS)
        if unknown:
            raise ConfigError(f"[plugins.dedup]: unknown setting(s) {', '.join(sorted(unknown))}; "
                              f"known: {', '.join(_DEFAULTS)}")
        self.table = context.tables["dedup"]
        self.index = None

    def on_assigned(self) -> None:
        """The stateful partition (and with it the table) came to this worker, maybe after
        another worker added to the table: the index is rebuilt from it at the next batch."""
        self.index = None

    def _ensure_index(self) -> DedupIndex:
        """Build the in-memory indexes from the table (at the first batch after the stateful
        partition was assigned, when the table has been restored from its changelog)."""
        if self.index is None:
            index = DedupIndex(jaccard=self.options["jaccard"], overlap=self.options["overlap"],
                               lsh_threshold=self.options["lsh_threshold"])
            entries = sorted(((v["t"], k[2:], v["s"]) for k, v in self.table.items()
                              if k.startswith("a:") and v), key=lambda e: e[0])
            # One bulk insert, the collector paused: the bands make small lists by the million,
            # and the collections they set off took half of a rebuild (R13 of `make bench`).
            was_enabled = gc.isenabled()
            gc.disable()
            try:
                index.add_many([(article_id, Signature.from_state(state), at) for at, article_id, state in entries])
            finally:
                if was_enabled:
                    gc.enable()
            self.index = index
        return self.index

    def process(self, articles: list[Article]) -> None:
        index = self._ensure_index()
        now = self.clock()
        self._expire(index, now)
        for article in articles:
            key = f"a:{article.id}"
            stored = self.table.get(key)
            of = article.id
            if not stored and article.url:
                first = self.table.get(f"u:{article.url}")
                if first and first != article.id and self.table.get(f"a:{first}"):
                    of, stored = first, self.table.get(f"a:{first}")
            text = article.clean_text or article.text
            sig = sign(text)
            if stored:
                self._again(article, of, stored, sig, text)
                continue
            match = index.find(article.id, sig)
            if match is None:
                decision: dict[str, Any] = {"status": "unique", "duplicate_of": None, "similarity": None,
                                            "cluster_id": article.id}
            else:
                earlier = self.table.get(f"a:{match.article_id}")
                cluster = earlier["d"]["cluster_id"] if earlier else match.article_id
                decision = {"status": match.kind, "duplicate_of": cluster, "similarity": match.similarity,
                            "cluster_id": cluster}
            entry: dict[str, Any] = {"d": decision, "t": now, "s": sig.to_state(),
                                     "p": [paragraph_hash(p) for p in paragraphs(text)]}
            if article.url:
                entry["u"] = article.url
                self.table[f"u:{article.url}"] = article.id
            self.table[key] = entry
            index.add(article.id, sig, now)
            article.dedup = decision
        self._expire(index, now)

    def _again(self, article: Article, of: str, stored: dict[str, Any], sig: Signature, text: str) -> None:
        """An article seen before (its id, or its url under ``of``): a replay of a version,
        or a new version (a revision)."""
        article.dedup = dict(stored["d"])
        if not hasattr(article, "revision"):  # a core before plugin API 1.2: replays only, as before
            return
        versions = stored.get("v") or [[stored["s"]["x"], None]]
        for exact, revision in versions:
            if exact == sig.exact:  # a version seen before: the same decision
                if revision:
                    article.revision = dict(revision)
                return
        previous = stored.get("p") or []
        parts = paragraphs(text)
        hashes = [paragraph_hash(p) for p in parts]
        before, now_ = set(previous), set(hashes)
        revision = {"number": len(versions), "of": of,
                    "added": [p for p, h in zip(parts, hashes, strict=True) if h not in before],
                    "removed": [i for i, h in enumerate(previous) if h not in now_]}
        article.revision = revision
        # (A revision under a new id, found by its url, is found the same way when sent again.)
        self.table[f"a:{of}"] = {**stored, "v": [*versions, [sig.exact, revision]][-MAX_VERSIONS:], "p": hashes}

    def _expire(self, index: DedupIndex, now: float) -> None:
        horizon = now - self.options["retention_hours"] * 3600
        limit = int(self.options["max_signatures"])
        while True:
            oldest = index.oldest()
            if oldest is None or (len(index) <= limit and oldest[1] >= horizon):
                return
            index.remove(oldest[0])
            key = f"a:{oldest[0]}"
            entry = self.table.get(key)
            if entry is not None:
                del self.table[key]
                url = entry.get("u")
                if url and self.table.get(f"u:{url}") == oldest[0]:
                    del self.table[f"u:{url}"]


@hookimpl
def stream_register_processors(settings: Settings) -> list[Processor]:
    return [DedupProcessor()]
