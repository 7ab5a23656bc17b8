"""All rules compiled into one Aho-Corasick automaton.

The text is tokenised into words (``\\w+``, case-folded) and joined by single spaces with a
space at each end; every term is tokenised the same way and becomes the pattern
``" w1 w2 "``.  So a match is always on word boundaries ("troops" never matches
"paratroopers"), case-insensitive, and a phrase matches across line breaks and repeated
spaces.  With ``match = "lemma"`` each word of a term is expanded to its inflections
(lemminflect's lexicon: troop/troops, invasion/invasions, crisis/crises; "invasion" never
becomes "invasive"), and the automaton holds every form.

lemminflect knows English only: in an article of another language a lemma rule's terms
match as exact words (the inflected forms the automaton holds for English are not used),
and a rule with ``languages`` applies only to articles of those languages.

One pass of the automaton finds the hits of every rule; only the rules that got a hit are
evaluated further, so the cost per article barely grows with the number of rules.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import ahocorasick

from .rules import Rule, is_prefix

__all__ = ["Hit", "Matcher", "RuleMatch", "inflections", "lead_end", "term_patterns", "tokenize"]

_TOKEN = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+|\n\s*\n")
_MAX_FORMS = 256
_ANY, _ALL, _NONE, _PROX = 0, 1, 2, 3
#: Languages whose inflections ``match = "lemma"`` knows (lemminflect's lexicon).
LEMMA_LANGUAGES = frozenset({"en"})


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """``[(folded word, start, end)]`` with character offsets into ``text``."""
    return [(m.group().casefold(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


@lru_cache(maxsize=65536)
def inflections(word: str) -> frozenset[str]:
    """The word and every inflection of each of its lemmas."""
    import lemminflect

    forms = {word}
    lemmas: set[str] = set()
    for found in lemminflect.getAllLemmas(word).values():
        lemmas.update(found)
    for lemma in lemmas or {word}:
        forms.add(lemma)
        for found in lemminflect.getAllInflections(lemma).values():
            forms.update(found)
    return frozenset(f.casefold() for f in forms)


def term_patterns(term: str, mode: str) -> set[str]:
    """The automaton's patterns of ``term``: ``" w1 w2 "`` for each form (``mode`` "lemma":
    every inflection of each word); a prefix term (``"sanction*"``) is ``" sanction"``, no
    space after it, so any word that starts so matches, and it is not inflected."""
    words = [w for w, _s, _e in tokenize(term)]
    if is_prefix(term):
        return {" " + " ".join(words)}
    if mode == "word":
        return {" " + " ".join(words) + " "}
    choices = [sorted(inflections(w)) for w in words]
    combos = itertools.islice(itertools.product(*choices), _MAX_FORMS)
    return {" " + " ".join(c) + " " for c in combos}


@dataclass(frozen=True, slots=True)
class Hit:
    term: str
    start: int  # character offsets into the field's text
    end: int
    first_token: int
    #: "title", or "text" (the clean text; a hit in its first paragraph is in the lead too)
    field: str = "text"


def lead_end(text: str) -> int:
    """Where the lead, the first paragraph of a clean text, ends."""
    cut = text.find("\n\n")
    return len(text) if cut < 0 else cut


@dataclass(slots=True)
class RuleMatch:
    rule: Rule
    hits: list[Hit]
    snippet: str


class Matcher:
    """Compiled rules.  Build once (it takes a while for 10,000 rules); match many."""

    def __init__(self, rules: tuple[Rule, ...]):
        self.rules = rules
        self.automaton: Any = ahocorasick.Automaton()
        # pattern -> (rule, slot, term, exact): exact is False for an inflected form.
        table: dict[str, list[tuple[int, int, int, bool]]] = defaultdict(list)
        for r, rule in enumerate(rules):
            for slot, terms in ((_ANY, rule.any), (_ALL, rule.all), (_NONE, rule.none)):
                for t, term in enumerate(terms):
                    exact = term_patterns(term, "word")
                    for pattern in term_patterns(term, rule.match) | exact:
                        table[pattern].append((r, slot, t, pattern in exact))
            for p, prox in enumerate(rule.proximity):
                for side, term in enumerate(prox.terms):
                    exact = term_patterns(term, "word")
                    for pattern in term_patterns(term, rule.match) | exact:
                        table[pattern].append((r, _PROX, 2 * p + side, pattern in exact))
        #: per rule: its sources and excluded sources, case-folded once
        self._sources = [(frozenset(x.casefold() for x in rule.sources),
                          frozenset(x.casefold() for x in rule.exclude_sources)) for rule in rules]
        #: the rules without a term (on entities alone): checked on every article
        self.entity_only = frozenset(r for r, rule in enumerate(rules) if not (rule.any or rule.all or rule.proximity))
        #: whether any rule looks at titles (else they are not scanned)
        self.title_rules = any("title" in rule.fields for rule in rules)
        for pattern, payload in table.items():
            self.automaton.add_word(pattern, (len(pattern), tuple(payload)))
        if table:
            self.automaton.make_automaton()
        self.patterns = len(table)

    def _scan(self, text: str, inflected: bool) -> tuple[list[tuple[str, int, int]],
                                                      dict[int, dict[tuple[int, int], list[tuple[int, int]]]]]:
        """The tokens of ``text`` and, per rule, ``{(slot, term): [(first, last) token]}``."""
        found: dict[int, dict[tuple[int, int], list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))
        tokens = tokenize(text)
        if not tokens or not self.patterns:  # (rules on entities alone have no patterns)
            return tokens, found
        parts = [" "]
        starts = []  # position of each token in the normalised string
        pos = 1
        for word, _s, _e in tokens:
            starts.append(pos)
            parts.append(word)
            parts.append(" ")
            pos += len(word) + 1
        normal = "".join(parts)
        for end, (length, payload) in self.automaton.iter(normal):
            first = bisect.bisect_left(starts, end - length + 2)
            # the token holding the match's last character (a prefix ends inside a word)
            last = bisect.bisect_right(starts, end) - 1
            for r, slot, t, exact in payload:
                if exact or inflected:
                    found[r][(slot, t)].append((first, last))
        return tokens, found

    def match(self, text: str, language: str | None = None, title: str | None = None,
              source: str | None = None) -> list[RuleMatch]:
        """The rules whose term conditions hold on ``text`` (the clean text) and ``title``
        in the rules' ``fields`` (entity conditions and duplicates are the caller's), each
        with its hits and a snippet.  ``language`` is the article's (ISO 639-1; None reads
        as English, as the NER plugin does): rules naming other languages are skipped, and
        inflections count in English only.  ``source``: the article's, for ``sources`` and
        ``exclude_sources``."""
        language = (language or "en").split("-")[0].split("_")[0].lower()
        inflected = language in LEMMA_LANGUAGES
        if not self.patterns and not self.entity_only:
            return []
        tokens, found = self._scan(text, inflected)
        title_tokens, title_found = self._scan(title, inflected) if title and self.title_rules else ([], {})
        if not found and not title_found and not self.entity_only:
            return []
        lead = lead_end(text)
        folded_source = source.casefold() if source else None
        results = []
        bounds: list[re.Match[str]] | None = None
        for r in sorted(set(found) | set(title_found) | self.entity_only):
            rule = self.rules[r]
            if rule.languages and language not in rule.languages:
                continue
            wanted, excluded = self._sources[r]
            if wanted and folded_source not in wanted:
                continue
            if folded_source is not None and folded_source in excluded:
                continue
            # The hits in the rule's fields: (field, first token, last token) per (slot, term).
            slots: dict[tuple[int, int], list[tuple[str, int, int]]] = {}
            if "title" in rule.fields:
                for key, spans in title_found.get(r, {}).items():
                    slots.setdefault(key, []).extend(("title", a, b) for a, b in spans)
            if "text" in rule.fields or "lead" in rule.fields:
                whole = "text" in rule.fields
                for key, spans in found.get(r, {}).items():
                    kept = [("text", a, b) for a, b in spans if whole or tokens[b][2] <= lead]
                    if kept:
                        slots.setdefault(key, []).extend(kept)
            if r in self.entity_only:
                if not any((_NONE, t) in slots for t in range(len(rule.none))):
                    results.append(RuleMatch(rule, [], ""))  # the caller checks the entities
                continue
            if rule.any and not any((_ANY, t) in slots for t in range(len(rule.any))):
                continue
            if not all((_ALL, t) in slots for t in range(len(rule.all))):
                continue
            if any((_NONE, t) in slots for t in range(len(rule.none))):
                continue
            if not all(self._near(slots, p, prox.within) for p, prox in enumerate(rule.proximity)):
                continue
            if rule.min_mentions > 1 and len({span for t in range(len(rule.any))
                                              for span in slots.get((_ANY, t), ())}) < rule.min_mentions:
                continue
            hits = []
            for (slot, t), spans in slots.items():
                if slot == _NONE:
                    continue
                term = (rule.any[t] if slot == _ANY else rule.all[t] if slot == _ALL
                        else rule.proximity[t // 2].terms[t % 2])
                for where, first, last in spans:
                    words = title_tokens if where == "title" else tokens
                    hits.append(Hit(term, words[first][1], words[last][2], first, where))
            hits.sort(key=lambda h: (h.field != "title", h.start, h.end))
            hits = _dedupe(hits)
            in_text = [h for h in hits if h.field == "text"]
            if in_text:
                if bounds is None:
                    bounds = _boundaries(text)  # once per text, only when a rule matched
                quote = snippet(text, in_text[0].start, in_text[0].end, bounds=bounds)
            else:
                quote = " ".join((title or "").split())
            results.append(RuleMatch(rule, hits, quote))
        results.sort(key=lambda m: m.rule.id)
        return results

    @staticmethod
    def _near(slots: dict[tuple[int, int], list[tuple[str, int, int]]], p: int, within: int) -> bool:
        a, b = slots.get((_PROX, 2 * p), []), slots.get((_PROX, 2 * p + 1), [])
        return any(wa == wb and abs(fa - fb) <= within for wa, fa, _la in a for wb, fb, _lb in b)


def _dedupe(hits: list[Hit]) -> list[Hit]:
    seen: set[tuple[str, int, int]] = set()
    out = []
    for h in hits:
        if (h.field, h.start, h.end) not in seen:
            seen.add((h.field, h.start, h.end))
            out.append(h)
    return out


_ABBREVIATIONS = frozenset({
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "mr", "mrs", "ms",
    "dr", "prof", "st", "no", "vs", "etc", "gen", "col", "lt", "sgt", "gov", "sen", "rep", "inc", "ltd",
    "co", "corp", "jr", "sr", "u.s", "u.k", "u.n", "e.u",
})


def _boundaries(text: str) -> list[re.Match[str]]:
    """Sentence ends, except after abbreviations ("Jan. 24") and initials ("C. Elwood")."""
    out = []
    for m in _SENTENCE_END.finditer(text):
        if text[m.start() - 1:m.start()] == ".":
            # The word before the dot, from a short window (not the whole text before it: that
            # made this quadratic in the article's length).  An abbreviation is shorter.
            before = text[max(0, m.start() - 64):m.start() - 1]
            word = before.rsplit(None, 1)[-1].casefold() if before.strip() else ""
            if word in _ABBREVIATIONS or len(word) == 1:
                continue
        out.append(m)
    return out


def snippet(text: str, start: int, end: int, limit: int = 400,
            bounds: list[re.Match[str]] | None = None) -> str:
    """The sentence(s) around ``text[start:end]``."""
    if bounds is None:
        bounds = _boundaries(text)
    begin = 0
    for m in bounds:
        if m.end() <= start:
            begin = m.end()
        else:
            break
    finish = len(text)
    for m in bounds:
        if m.start() >= end:
            finish = m.start()
            break
    out = " ".join(text[begin:finish].split())
    if len(out) > limit:
        centre = start - begin
        lo = max(0, centre - limit // 2)
        out = ("…" if lo else "") + out[lo:lo + limit].strip() + "…"
    return out
