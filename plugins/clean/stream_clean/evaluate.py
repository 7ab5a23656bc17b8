"""Measuring the boilerplate rules on a corpus: line-level recall and content kept.

``python -m stream_clean.evaluate [--rules my-rules.toml] [--corpus corpus.toml] [BASE_DIR]``
prints the figures per kind.  The built-in corpus is ``corpus/boilerplate.toml`` (see its
header for the shape); ``BASE_DIR`` adds the ``.txt`` files of a directory as base texts
(their cleaned paragraphs count as content).

Each boilerplate or content line (or block) is mixed into every base text at its place
(``start``, ``middle`` or ``end``), one at a time, and also every kind at once; the result
is cleaned and every line is looked for among the output paragraphs.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from stream import read_toml

from .cleaner import clean
from .rules import DEFAULT_RULES, Rules, load_rules

__all__ = ["DEFAULT_CORPUS", "Corpus", "Kind", "Score", "evaluate", "load_corpus", "report", "totals"]

DEFAULT_CORPUS = Path(__file__).with_name("corpus") / "boilerplate.toml"
_WORD = re.compile(r"\w+")
_PLACES = ("start", "middle", "end")


@lru_cache(maxsize=65536)
def _key(text: str) -> str:
    return " " + " ".join(w.lower() for w in _WORD.findall(text)) + " "


@dataclass(frozen=True)
class Kind:
    name: str
    boilerplate: bool
    at: str
    #: each item is one or more lines that come together
    items: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Corpus:
    bases: tuple[tuple[str, tuple[str, ...]], ...]
    kinds: tuple[Kind, ...]


@dataclass
class Score:
    """Line counts of one kind (or of all)."""

    lines: int = 0
    right: int = 0  # boilerplate removed, or content kept
    misses: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.right / self.lines if self.lines else 1.0


def _paragraphs(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split("\n") if p.strip())


def load_corpus(path: Path | str = DEFAULT_CORPUS, rules: Rules | None = None,
                base_files: Iterable[Path] = ()) -> Corpus:
    """The corpus of ``path``, with the cleaned paragraphs of ``base_files`` as more bases."""
    data, _ = read_toml(Path(path), "boilerplate corpus")
    rules = rules or load_rules(DEFAULT_RULES)
    bases = [(b["name"], _paragraphs(b["text"])) for b in data.get("base", [])]
    for file in base_files:
        bases.append((file.name, _paragraphs(clean(file.read_text(encoding="utf-8"), rules).text)))
    kinds = []
    for section, boilerplate in (("boilerplate", True), ("content", False)):
        for entry in data.get(section, []):
            if entry["at"] not in _PLACES:
                raise ValueError(f"{path}: kind {entry['kind']!r}: at must be one of {_PLACES}")
            items = tuple((line,) for line in entry.get("lines", ())) + tuple(
                tuple(block) for block in entry.get("blocks", ()))
            kinds.append(Kind(entry["kind"], boilerplate, entry["at"], items))
    return Corpus(tuple(bases), tuple(kinds))


def _mix(base: tuple[str, ...], inserts: list[tuple[str, tuple[str, ...]]]) -> str:
    start = [line for at, item in inserts if at == "start" for line in item]
    end = [line for at, item in inserts if at == "end" for line in item]
    middle = [line for at, item in inserts if at == "middle" for line in item]
    cut = max(1, len(base) // 2)
    return "\n\n".join([*start, *base[:cut], *middle, *base[cut:], *end])


def _judge(text: str, rules: Rules, boilerplate: list[tuple[str, str]], content: list[tuple[str, str]],
           scores: dict[str, Score], content_keys: set[str]) -> None:
    out = [_key(p) for p in _paragraphs(clean(text, rules).text)]
    # Keys are " word word ": joined, a key cannot match across two paragraphs.
    everything = "".join(out)
    not_content = "".join(o for o in out if o not in content_keys)
    for kind, line in content:
        score = scores[kind]
        score.lines += 1
        if _key(line) in everything:
            score.right += 1
        else:
            score.misses.append(line)
    for kind, line in boilerplate:
        score = scores[kind]
        score.lines += 1
        if _key(line) in not_content:
            score.misses.append(line)
        else:
            score.right += 1


def evaluate(corpus: Corpus, rules: Rules) -> tuple[dict[str, Score], dict[str, Score]]:
    """``(one at a time, all at once)``: scores per kind name; base paragraphs count under
    the kind ``"(article text)"``."""
    single: dict[str, Score] = defaultdict(Score)
    together: dict[str, Score] = defaultdict(Score)
    content_keys = {_key(line) for kind in corpus.kinds if not kind.boilerplate
                    for item in kind.items for line in item}
    for _, base in corpus.bases:
        content_keys |= {_key(p) for p in base}
    for _, base in corpus.bases:
        base_lines = [("(article text)", p) for p in base]
        for kind in corpus.kinds:
            for item in kind.items:
                lines = [(kind.name, line) for line in item]
                _judge(_mix(base, [(kind.at, item)]), rules,
                       lines if kind.boilerplate else [], base_lines + ([] if kind.boilerplate else lines),
                       single, content_keys)
        inserts = [(kind.at, kind.items[0]) for kind in corpus.kinds]
        boiler = [(k.name, line) for k in corpus.kinds if k.boilerplate for line in k.items[0]]
        content = base_lines + [(k.name, line) for k in corpus.kinds if not k.boilerplate for line in k.items[0]]
        _judge(_mix(base, inserts), rules, boiler, content, together, content_keys)
    return dict(single), dict(together)


def totals(scores: dict[str, Score], corpus: Corpus) -> tuple[Score, Score]:
    """``(boilerplate, content)`` summed over the kinds."""
    boiler_kinds = {k.name for k in corpus.kinds if k.boilerplate}
    boiler, content = Score(), Score()
    for name, score in scores.items():
        into = boiler if name in boiler_kinds else content
        into.lines += score.lines
        into.right += score.right
        into.misses += score.misses
    return boiler, content


def report(corpus: Corpus, rules: Rules) -> str:
    single, together = evaluate(corpus, rules)
    out = []
    b_kinds = sum(k.boilerplate for k in corpus.kinds)
    out.append(f"corpus: {len(corpus.bases)} base texts, {b_kinds} kinds of boilerplate, "
               f"{len(corpus.kinds) - b_kinds} kinds of content")
    for title, scores in (("one at a time", single), ("all kinds at once", together)):
        boiler, content = totals(scores, corpus)
        out.append(f"{title}: boilerplate recall {boiler.rate:.4f} ({boiler.right}/{boiler.lines}), "
                   f"content kept {content.rate:.4f} ({content.right}/{content.lines})")
    out.append("misses (one at a time):")
    for name, score in sorted(single.items()):
        if score.misses:
            out.append(f"  {name}: {score.rate:.3f}; e.g. {sorted(set(score.misses))[:3]}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream_clean.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--rules", help="a rules file added to the built-in rules")
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    parser.add_argument("bases", nargs="*", help="directories of .txt articles to use as base texts")
    args = parser.parse_args(argv)
    rules = load_rules(DEFAULT_RULES)
    if args.rules:
        rules = rules.merged(load_rules(args.rules))
    files = [f for d in args.bases for f in sorted(Path(d).glob("*.txt"))]
    print(report(load_corpus(args.corpus, rules, files), rules))
    return 0


if __name__ == "__main__":
    sys.exit(main())
