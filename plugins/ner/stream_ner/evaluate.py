"""Scoring the NER plugin against a labelled set: recall and precision per label.

The set is a TOML file of ``[[article]]`` tables (``id``, ``language``, ``text``) whose
names are marked ``[text](LABEL)``; see ``tests/data/ner_labelled.toml``.  A mention is
right when its span and its class are: PERSON, ORG, or PLACE (GPE and LOC together, since
the French model says LOC for every place).  A prediction that overlaps an ``IGNORE``
mark counts neither way.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from stream import Article, read_toml

__all__ = ["Labelled", "load_labelled", "score", "table"]

_MARK = re.compile(r"\[([^\]]+)\]\((PERSON|ORG|GPE|LOC|IGNORE)\)")
CLASSES = ("PERSON", "ORG", "PLACE")
_CLASS = {"PERSON": "PERSON", "PER": "PERSON", "ORG": "ORG", "GPE": "PLACE", "LOC": "PLACE"}


@dataclass(frozen=True)
class Labelled:
    id: str
    language: str
    text: str
    gold: frozenset[tuple[int, int, str]]
    ignore: tuple[tuple[int, int], ...]


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
        gold = frozenset((s, e, _CLASS[label]) for s, e, label in marks if label != "IGNORE")
        ignore = tuple((s, e) for s, e, label in marks if label == "IGNORE")
        articles.append(Labelled(entry["id"], entry["language"], text, gold, ignore))
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
