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


def expected_firings(articles: list[dict[str, Any]], min_sources: int, within_minutes: float) -> dict[str, str]:
    """For each true story, the article whose arrival (in stream order) first gives
    ``min_sources`` distinct sources within ``within_minutes`` (copies do not count)."""
    from datetime import datetime

    span = within_minutes * 60
    seen: dict[str, list[tuple[float, str]]] = defaultdict(list)
    out: dict[str, str] = {}
    for a in articles:
        story = a["story"]
        if story in out or a.get("copy_of"):
            continue
        at = datetime.fromisoformat(a["published_at"].replace("Z", "+00:00")).timestamp()
        seen[story].append((at, a["source"]))
        for start, _src in seen[story]:
            if at - span <= start <= at and len({src for t, src in seen[story]
                                                  if start <= t <= start + span}) >= min_sources:
                out[story] = a["id"]
                break
    return out


def fire(enriched: list[Article], min_sources: int, within_minutes: float,
         config: dict[str, Any] | None = None) -> list[tuple[str, str, str]]:
    """Run the stories and alerts processors with one story rule over enriched articles:
    ``[(article id, alert id, story id)]`` of the story alerts raised."""
    import tempfile

    from stream import Context, Settings
    from stream_alerts import AlertsProcessor

    from . import StoriesProcessor

    stories = StoriesProcessor()
    stories.setup(Context(Settings(), config=config or {}, tables={"stories": {}}))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.toml"
        path.write_text(f'[[rules]]\nid = "picked-up"\nkind = "story"\nmin_sources = {min_sources}\n'
                        f"within_minutes = {within_minutes}\n")
        alerts = AlertsProcessor(path)
        alerts.setup(Context(Settings(), tables={"alerts": {}}))
        raised = []
        for article in enriched:
            copy = Article.from_state(article.to_state())
            copy.story, copy.outputs, copy.alerts = {}, [], []
            stories.process([copy])
            alerts.process([copy])
            raised += [(copy.id, a["alert_id"], copy.story["id"]) for a in copy.alerts if a.get("kind") == "story"]
    return raised


def rule_report(articles: list[dict[str, Any]], enriched: list[Article], min_sources: int = 3,
                within_minutes: float = 60) -> str:
    truth = {a["id"]: a["story"] for a in articles}
    expected = expected_firings(articles, min_sources, within_minutes)
    raised = fire(enriched, min_sources, within_minutes)
    by_story: dict[str, list[str]] = defaultdict(list)
    for article_id, _alert, _story in raised:
        by_story[truth[article_id]].append(article_id)
    right = [s for s, a in expected.items() if by_story.get(s) == [a]]
    wrong = {s: (expected.get(s), got) for s, got in by_story.items()
             if expected.get(s) is None or got != [expected[s]]}
    missed = [s for s in expected if s not in by_story]
    stories = {s for s in truth.values() if not s.startswith("single")}
    lines = [f"story rule: min_sources = {min_sources}, within_minutes = {within_minutes:g}: "
             f"{len(expected)} of {len(stories)} stories qualify; {len(raised)} alerts, "
             f"{len({a for _i, a, _s in raised})} ids",
             f"  fired once, on the right article: {len(right)} of {len(expected)}"]
    lines += [f"  not as expected: {s}: expected {e}, fired on {g}" for s, (e, g) in sorted(wrong.items())]
    lines += [f"  missed: {s} (expected on {expected[s]})" for s in sorted(missed)]
    return "\n".join(lines)


REVISION_RULES = """
[[rules]]
id = "disaster"
any = ["earthquake", "flood", "floods", "wildfire", "typhoon", "eruption", "landslide*", "séisme", "inondation*"]
[[rules]]
id = "unrest"
any = ["strike", "walkout", "protest*", "tear gas", "grève", "manifest*"]
[[rules]]
id = "attack"
any = ["drone*", "cyberattack", "ransomware", "attaque"]
[[rules]]
id = "casualties"
any = ["killed", "dead", "injured", "died", "blessé*", "mort*"]
"""


def revision_report(articles: list[dict[str, Any]]) -> str:
    return "revisions: " + ", ".join(f"{k} {v}" for k, v in revision_counts(articles).items())


def revision_counts(articles: list[dict[str, Any]]) -> dict[str, int]:
    """Send every article, then two revisions of each (a paragraph of the next article added;
    then the first paragraph removed), through clean, dedup, stories and alerts with
    :data:`REVISION_RULES`: count the revisions' alerts, and those whose terms the article's
    earlier versions already matched (there must be none)."""
    import asyncio
    import tempfile

    from stream import Settings
    from stream.runtime.chain import build_chain

    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules.toml"
        rules.write_text(REVISION_RULES)
        settings = Settings().replace(plugins=("clean", "dedup", "stories", "alerts"), rules=str(rules))
        _host, pipeline = build_chain(settings, "embedded")
        try:
            inputs = [{k: v for k, v in a.items() if k not in ("story", "copy_of")} for a in articles]

            def run(batch: list[dict[str, Any]]) -> list[Article]:
                return asyncio.run(pipeline.run([Article.from_dict(a) for a in batch])).articles

            seen: dict[tuple[str, str], set[str]] = defaultdict(set)  # (article, rule) -> terms so far
            originals = run(inputs)
            for art in originals:
                for alert in art.alerts:
                    seen[(art.id, alert["rule_id"])].update(m["term"] for m in alert["matched"])
            added = [dict(a, text=a["text"] + "\n\n" + inputs[(n + 1) % len(inputs)]["text"].split("\n\n")[0])
                     for n, a in enumerate(inputs)]
            removed = [dict(a, text="\n\n".join(a["text"].split("\n\n")[1:]) or a["text"] + " Updated.")
                       for a in added]
            counts = {"revisions": 0, "their alerts": 0, "on a term an earlier version matched": 0,
                      "with an id of an earlier version": 0, "replays": 0, "replay alerts not the original's": 0}
            original_ids = {alert["alert_id"] for art in originals for alert in art.alerts}
            for batch in (added, removed):
                for art in run(batch):
                    if not art.revision:  # the same clean text (the cleaner drops a repeated paragraph)
                        counts["replays"] += 1
                        counts["replay alerts not the original's"] += sum(
                            1 for alert in art.alerts if alert["alert_id"] not in original_ids)
                        continue
                    counts["revisions"] += 1
                    for alert in art.alerts:
                        counts["their alerts"] += 1
                        terms = {m["term"] for m in alert["matched"]}
                        if terms & seen[(art.id, alert["rule_id"])]:
                            counts["on a term an earlier version matched"] += 1
                        if alert["alert_id"] in original_ids:
                            counts["with an id of an earlier version"] += 1
                        original_ids.add(alert["alert_id"])
                        seen[(art.id, alert["rule_id"])].update(terms)
        finally:
            pipeline.close()
    return counts


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
    for min_sources, within in ((2, 60), (3, 60), (3, 180), (3, 360), (4, 720), (5, 1440)):
        print(rule_report(articles, enriched, min_sources, within))
    print(revision_report(articles))
    return 0


if __name__ == "__main__":
    sys.exit(main())
