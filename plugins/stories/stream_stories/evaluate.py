"""Story detection against the labelled stream (``tests/data/stories_labelled.toml``).

``python -m stream_stories.evaluate [FILE] [--sweep]`` runs the stream, in ``published_at``
order, through the real chain (clean, ner, dedup, stories; in-process) and prints B-cubed
precision, recall and F1 for each story and overall, for the stories tuned on and the ones
held out (``HELD_OUT``: every third story and every third single, chosen before tuning).
``--sweep`` scores a grid of the matcher's settings over the same enriched articles.

B-cubed: for each article, precision is the share of its predicted story that is in its
true story, recall the share of its true story that is in its predicted story; the figures
are the means over articles (Bagga and Baldwin, 1998).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from stream import Article, read_toml

__all__ = ["bcubed", "held_out", "load", "main"]

DEFAULT = Path(__file__).resolve().parents[3] / "tests" / "data" / "stories_labelled.toml"


def load(path: str | Path = DEFAULT) -> list[dict[str, Any]]:
    """The labelled articles in ``published_at`` order (each with its ``story``)."""
    data, _text = read_toml(path, "labelled stream")
    return sorted(data["articles"], key=lambda a: (a["published_at"], a["id"]))


def held_out(story: str) -> bool:
    """Every third story (s03, s06, ...) and every third single (03, 06, ...) is held out."""
    number = int(story.split("-")[1] if story.startswith("single") else story.split("-")[0][1:])
    return number % 3 == 0


def bcubed(truth: dict[str, str], predicted: dict[str, str],
           ids: Iterable[str] | None = None) -> tuple[float, float, float]:
    """B-cubed (precision, recall, F1) of ``predicted`` against ``truth`` (article -> cluster),
    averaged over ``ids`` (default: every article)."""
    by_truth: dict[str, set[str]] = defaultdict(set)
    by_pred: dict[str, set[str]] = defaultdict(set)
    for a, c in truth.items():
        by_truth[c].add(a)
    for a, c in predicted.items():
        by_pred[c].add(a)
    chosen = list(ids) if ids is not None else list(truth)
    if not chosen:
        return 0.0, 0.0, 0.0
    p = r = 0.0
    for a in chosen:
        mine, true = by_pred[predicted[a]], by_truth[truth[a]]
        both = len(mine & true)
        p += both / len(mine)
        r += both / len(true)
    p, r = p / len(chosen), r / len(chosen)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def enrich(articles: list[dict[str, Any]]) -> list[Article]:
    """Clean, NER and dedup, in-process (what reaches the stories processor)."""
    from stream.testing import run_chain

    inputs = [{k: v for k, v in a.items() if k not in ("story", "copy_of")} for a in articles]
    result = run_chain(inputs, plugins=["clean", "ner", "dedup"])
    if result.failures:
        raise SystemExit(f"{len(result.failures)} articles failed: {result.failures[0].error!r}")
    return result.articles


def assign(enriched: list[Article], config: dict[str, Any] | None = None) -> dict[str, str]:
    """Run the stories processor over enriched articles, one at a time in stream order."""
    from stream import Context, Settings

    from . import StoriesProcessor

    proc = StoriesProcessor()
    proc.setup(Context(Settings(), config=config or {}, tables={"stories": {}}))
    out = {}
    for article in enriched:
        copy = Article.from_state(article.to_state())
        copy.story, copy.outputs = {}, []
        proc.process([copy])
        out[copy.id] = copy.story["id"]
    return out


def report(articles: list[dict[str, Any]], predicted: dict[str, str], *, per_story: bool = True) -> str:
    truth = {a["id"]: a["story"] for a in articles}
    lines = []
    if per_story:
        lines.append(f"{'story':28} {'n':>3} {'P':>6} {'R':>6} {'F1':>6}  part")
        stories = sorted({s for s in truth.values() if not s.startswith("single")})
        for story in stories:
            ids = [a for a, s in truth.items() if s == story]
            p, r, f = bcubed(truth, predicted, ids)
            part = "held out" if held_out(story) else "tuned"
            lines.append(f"{story:28} {len(ids):3} {p:6.3f} {r:6.3f} {f:6.3f}  {part}")
        singles = [a for a, s in truth.items() if s.startswith("single")]
        p, r, f = bcubed(truth, predicted, singles)
        lines.append(f"{'(30 singles)':28} {len(singles):3} {p:6.3f} {r:6.3f} {f:6.3f}")
    for name, ids in (("tuned", [a for a, s in truth.items() if not held_out(s)]),
                      ("held out", [a for a, s in truth.items() if held_out(s)]),
                      ("overall", list(truth))):
        p, r, f = bcubed(truth, predicted, ids)
        lines.append(f"{name:10} articles {len(ids):3}  precision {p:.3f}  recall {r:.3f}  F1 {f:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream_stories.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", nargs="?", default=str(DEFAULT))
    parser.add_argument("--sweep", action="store_true", help="score a grid of the matcher's settings")
    args = parser.parse_args(argv)
    articles = load(args.file)
    enriched = enrich(articles)
    if args.sweep:
        truth = {a["id"]: a["story"] for a in articles}
        tuned = [a for a, s in truth.items() if not held_out(s)]
        held = [a for a, s in truth.items() if held_out(s)]
        rows = []
        for threshold, ew, pw in itertools.product((0.25, 0.3, 0.35, 0.4, 0.45, 0.5), (0.0, 0.25, 0.5, 0.75, 1.0),
                                                   (0.0, 0.3, 0.5, 0.75, 1.0)):
            predicted = assign(enriched, {"threshold": threshold, "entity_weight": ew, "place_weight": pw})
            rows.append((bcubed(truth, predicted, tuned)[2], bcubed(truth, predicted, held)[2], threshold, ew, pw))
        print(f"{'threshold':>9} {'entity':>6} {'place':>6} {'F1 tuned':>9} {'F1 held out':>11}")
        for f_t, f_h, threshold, ew, pw in sorted(rows, reverse=True)[:25]:
            print(f"{threshold:9.2f} {ew:6.2f} {pw:6.2f} {f_t:9.3f} {f_h:11.3f}")
        return 0
    print(report(articles, assign(enriched)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
