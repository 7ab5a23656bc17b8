"""R16: the stories processor's cost per article with 100,000 open stories (issue 28).

``python -m stream_bench.stories [--open N] [--rounds R]`` prints the figures; ``make bench``
runs it as R16.

The open stories are built through the processor's own index (``StoryIndex.open`` and
``add``) from real features: each of N articles is two paragraphs drawn from the labelled
stream and the sample articles, with two to four entities and places drawn from the
labelled stream's (after NER), plus a name of its own; they are dated within the window
of the measured articles, so every one is a candidate.  Then the labelled stream's 152
enriched articles (clean, ner, dedup, in-process) go through ``process`` one batch a round,
under new ids each round: features, candidates, scoring, the state writes and the
summaries.  The figure is CPU ms per article (median and range over the rounds).
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import time
from pathlib import Path
from typing import Any

__all__ = ["story_cost"]

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "articles"


def _prefill(proc: Any, enriched: list[Any], count: int, seed: int = 5) -> float:
    """Open ``count`` stories in ``proc``'s index; :return: seconds it took."""
    from stream_stories import story_id
    from stream_stories.features import features_of

    rng = random.Random(seed)
    paragraphs = [p for a in enriched for p in (a.clean_text or a.text).split("\n\n") if len(p.split()) >= 8]
    paragraphs += [p.strip() for s in sorted(SAMPLES.glob("*.txt")) for p in s.read_text().split("\n")
                   if len(p.split()) >= 8]
    entities = [e for a in enriched for e in a.entity_summary if e.get("label") not in ("DATE", "CARDINAL")]
    titles = [a.title or "" for a in enriched]
    latest = max(proc_time(a) for a in enriched)
    index = proc._ensure_index()
    started = time.perf_counter()
    for n in range(count):
        summary = [*rng.sample(entities, rng.randint(2, 4)),
                   {"canonical": f"Person {n}", "label": "PERSON", "mentions": 1}]
        text = "\n\n".join(rng.sample(paragraphs, 2))
        f = features_of(rng.choice(titles), text, "en", summary)
        at = latest - rng.uniform(0, 40 * 3600)
        story = index.open(story_id(f"prefill-{n}"), at)
        index.add(story, f, article_id=f"prefill-{n}", at=at, title=None, source=f"outlet {n % 500}",
                  language="en", centrality=0.0)
    proc.latest = latest
    return time.perf_counter() - started


def proc_time(article: Any) -> float:
    return float(article.event_time(time.time()))


def story_cost(open_stories: int = 100_000, rounds: int = 5) -> tuple[dict[str, float], dict[str, Any]]:
    """R16: CPU ms per article of the stories processor with ``open_stories`` open."""
    from stream import Article, Context, Settings
    from stream_stories import StoriesProcessor
    from stream_stories.evaluate import enrich, load

    enriched = enrich(load())
    proc = StoriesProcessor()
    proc.setup(Context(Settings(), config={"max_open": open_stories + 10_000}, tables={"stories": {}}))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    prefill_s = _prefill(proc, enriched, open_stories)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    opened = len(proc.index or ())
    per_article = []
    for r in range(rounds):
        batch = []
        for a in enriched:
            copy = Article.from_state(a.to_state())
            copy.id, copy.story, copy.outputs = f"{a.id}-r{r}", {}, []
            copy.dedup = {"status": "unique", "duplicate_of": None, "cluster_id": copy.id}
            batch.append(copy)
        start = time.process_time()
        proc.process(batch)
        per_article.append((time.process_time() - start) / len(batch) * 1000)
    joined = sum(1 for a in batch if a.story["articles"] > 1)
    detail = {"open_stories": opened, "articles_per_round": len(enriched), "rounds": rounds,
              "ms_per_article_rounds": [round(x, 3) for x in per_article],
              "joined_an_open_story_last_round": joined, "prefill_seconds": round(prefill_s, 1),
              "max_rss_growth_mb_prefill": round((rss_after - rss_before) / 1024, 1)}
    values = per_article
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}, detail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--open", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ratio, detail = story_cost(args.open, args.rounds)
    print(f"R16: {ratio['median']:.3f} ms per article (range {ratio['min']:.3f}-{ratio['max']:.3f}) at "
          f"{detail['open_stories']:,} open stories; {detail}")


if __name__ == "__main__":
    main()
