"""Scoring the NER plugin against labelled sets: recall and precision per label, and
whether places resolve to the right place.

A set is a TOML file of ``[[article]]`` tables (``id``, ``language``, ``text``, optional
``held_out``) whose names are marked ``[text](LABEL)``; see ``tests/data/ner_labelled.toml``.
A mention is right when its span and its class are: PERSON, ORG, or PLACE (GPE and LOC
together, since the French model says LOC for every place).  A prediction that overlaps
an ``IGNORE`` mark counts neither way.  ``[text](GEO:KEY)`` marks a place and where it is
(``tests/data/geo_labelled.toml``): a GeoNames id, ``CC.ADMIN1`` for a region without one,
or ``~Name`` for a physical feature.

``python -m stream_ner.evaluate`` prints the tables of docs/enrichment.md: the labelled
set with the entity list off and on, the geo set, and the German and Spanish places, each
for the articles tuned on and the held-out ones apart.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from stream import Article, read_toml

from .places import _QUALIFIER_GAP

__all__ = ["Labelled", "load_labelled", "score", "table"]

_MARK = re.compile(r"\[([^\]]+)\]\((PERSON|ORG|GPE|LOC|IGNORE|GEO:[^)]+)\)")
CLASSES = ("PERSON", "ORG", "PLACE")
_CLASS = {"PERSON": "PERSON", "PER": "PERSON", "ORG": "ORG", "GPE": "PLACE", "LOC": "PLACE"}


@dataclass(frozen=True)
class Labelled:
    id: str
    language: str
    text: str
    gold: frozenset[tuple[int, int, str]]
    ignore: tuple[tuple[int, int], ...]
    #: ``(start, end, key)`` of each ``GEO:`` mark
    geo: tuple[tuple[int, int, str], ...] = ()
    held_out: bool = False


def parse(text: str) -> tuple[str, list[tuple[int, int, str]]]:
    """The plain text of a marked text, and its marks ``(start, end, LABEL)``."""
    out, marks, last = [], [], 0
    length = 0
    for match in _MARK.finditer(text):
        before = text[last : match.start()]
        out.append(before)
        length += len(before)
        marks.append((length, length + len(match.group(1)), match.group(2)))
        out.append(match.group(1))
        length += len(match.group(1))
        last = match.end()
    out.append(text[last:])
    return "".join(out), marks


def load_labelled(path: str | Path) -> list[Labelled]:
    data, _ = read_toml(Path(path), "labelled NER set")
    articles = []
    for entry in data.get("article", []):
        text, marks = parse(entry["text"].strip())
        geo = tuple((s, e, label[4:]) for s, e, label in marks if label.startswith("GEO:"))
        gold = frozenset((s, e, _CLASS.get(label, "PLACE")) for s, e, label in marks if label != "IGNORE")
        ignore = tuple((s, e) for s, e, label in marks if label == "IGNORE")
        articles.append(Labelled(entry["id"], entry["language"], text, gold, ignore, geo,
                                 bool(entry.get("held_out", False))))
    return articles


def score(articles: Iterable[Labelled], processor: Any) -> dict[str, dict[str, Counter[str]]]:
    """``{language: {class: Counter(tp=, fn=, fp=)}}`` of ``processor`` (a set-up NER processor)."""
    articles = list(articles)
    records = [Article(id=a.id, text=a.text, clean_text=a.text, language=a.language) for a in articles]
    processor.process(records)
    result: dict[str, dict[str, Counter[str]]] = {}
    for labelled, record in zip(articles, records, strict=True):
        by_class = result.setdefault(labelled.language, {c: Counter() for c in CLASSES})
        predicted = {(m["start"], m["end"], _CLASS[m["label"]]) for m in record.entities if m["label"] in _CLASS}
        predicted = {p for p in predicted if not any(s < p[1] and p[0] < e for s, e in labelled.ignore)}
        for start, end, cls in labelled.gold:
            by_class[cls]["tp" if (start, end, cls) in predicted else "fn"] += 1
        for _, _, cls in predicted - labelled.gold:
            by_class[cls]["fp"] += 1
    return result


def rates(counts: Counter[str]) -> tuple[float, float]:
    """``(recall, precision)``."""
    tp = counts["tp"]
    recall = tp / (tp + counts["fn"]) if tp + counts["fn"] else 1.0
    precision = tp / (tp + counts["fp"]) if tp + counts["fp"] else 1.0
    return recall, precision


def table(results: dict[str, dict[str, dict[str, Counter[str]]]]) -> str:
    """A markdown table of ``{arm: score(...)}``."""
    lines = ["| arm | language | class | gold | recall | precision |", "|---|---|---|---|---|---|"]
    for arm, by_language in results.items():
        for language, by_class in sorted(by_language.items()):
            for cls, counts in by_class.items():
                gold = counts["tp"] + counts["fn"]
                if not gold and not counts["fp"]:
                    continue
                recall, precision = rates(counts)
                lines.append(f"| {arm} | {language} | {cls} | {gold} | {recall:.3f} | {precision:.3f} |")
    return "\n".join(lines)


def geo_right(geo: dict[str, Any] | None, key: str) -> bool:
    """Whether ``geo`` is the place ``key`` names (an id, ``CC.ADMIN1`` or ``~Name``)."""
    if not geo:
        return False
    if key.startswith("~"):
        return bool(geo.get("kind") not in ("country", "region", "city") and geo.get("name") == key[1:])
    if key.isdigit():
        return geo.get("geonameid") == int(key)
    return geo.get("kind") == "region" and f"{geo.get('country_code')}.{geo.get('admin1')}" == key


def score_geo(articles: Iterable[Labelled], processor: Any) -> Counter[str]:
    """``Counter(gold=, right=, wrong=, missing=, namesakes=)`` of the ``GEO:`` marks: a
    mark is right when a mention of that span has the ``geo`` it names; ``namesakes``
    counts the marks whose name the gazetteer knows as more than one place, or that are
    qualified by the next mark ("Alexandria, Virginia")."""
    articles = list(articles)
    records = [Article(id=a.id, text=a.text, clean_text=a.text, language=a.language) for a in articles]
    processor.process(records)
    counts: Counter[str] = Counter()
    gazetteer = processor.gazetteer
    for labelled, record in zip(articles, records, strict=True):
        by_span = {(m["start"], m["end"]): m for m in record.entities}
        for n, (start, end, key) in enumerate(labelled.geo):
            counts["gold"] += 1
            mention = by_span.get((start, end))
            if mention is None or "geo" not in mention:
                counts["missing"] += 1
            elif geo_right(mention["geo"], key):
                counts["right"] += 1
            else:
                counts["wrong"] += 1
            places = {p for p, _ in gazetteer.candidates(labelled.text[start:end], labelled.language)}
            following = labelled.geo[n + 1] if n + 1 < len(labelled.geo) else None
            qualified = following is not None and _QUALIFIER_GAP.fullmatch(labelled.text[end:following[0]])
            if len(places) > 1 or qualified:
                counts["namesakes"] += 1
    return counts


def geo_table(results: dict[str, Counter[str]]) -> str:
    lines = ["| part | place mentions | namesakes or qualified | right | wrong place | no geo | accuracy |",
             "|---|---|---|---|---|---|---|"]
    for part, c in results.items():
        accuracy = c["right"] / c["gold"] if c["gold"] else 1.0
        lines.append(f"| {part} | {c['gold']} | {c['namesakes']} | {c['right']} | {c['wrong']} | {c['missing']} "
                     f"| {accuracy:.3f} |")
    return "\n".join(lines)


def _parts(articles: list[Labelled]) -> dict[str, list[Labelled]]:
    """The articles tuned on and the held-out ones; a set without held-out articles is one part."""
    held_out = [a for a in articles if a.held_out]
    if not held_out:
        return {"all": articles}
    return {"tuned on": [a for a in articles if not a.held_out], "held out": held_out}


def main(argv: list[str] | None = None) -> int:
    import argparse

    from stream import Context, Settings

    from . import NerProcessor
    from .canonical import AliasTable
    from .listed import ListedMatcher

    data = Path("tests/data")
    parser = argparse.ArgumentParser(prog="python -m stream_ner.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--labelled", type=Path, default=data / "ner_labelled.toml")
    parser.add_argument("--geo", type=Path, default=data / "geo_labelled.toml")
    parser.add_argument("--places", type=Path, default=data / "places_labelled.toml")
    parser.add_argument("--entities", type=Path, default=data / "entities_50.toml",
                        help="the entity list of the 'list on' arm")
    args = parser.parse_args(argv)

    def processor(config: dict[str, Any]) -> Any:
        ner = NerProcessor()
        ner.setup(Context(settings=Settings(), config={"processes": 1, **config}))
        return ner

    plain = processor({})
    off = processor({})
    off.listed = ListedMatcher(AliasTable())  # no phrase matching: the model's spans only
    listed = processor({"entities_file": str(args.entities)})
    labelled = load_labelled(args.labelled)
    print("## Labelled NER set, entity list off and on\n")
    print(table({f"list off ({part})": score(arts, off) for part, arts in _parts(labelled).items()}
                | {f"list on ({part})": score(arts, listed) for part, arts in _parts(labelled).items()}))
    print("\n## Geo resolution\n")
    print(geo_table({part: score_geo(arts, plain) for part, arts in _parts(load_labelled(args.geo)).items()}))
    print("\n## Places in languages without a model (gazetteer only)\n")
    print(table({part: score(arts, plain) for part, arts in _parts(load_labelled(args.places)).items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
