"""Canonical entities: one name per real-world entity.

Within an article, mentions of one entity are merged: "Lavrov" joins "Sergei Lavrov";
"Sergey Lavrov" and "Sergei Lavrov" (same surname, first names one or two letters apart)
are one.  The canonical name is the longest full form (most words, then the most frequent,
then the first seen).

Across articles, an alias file maps known variants and misspellings to one canonical name
and id (see ``aliases.toml``).  Aliases are applied first, to every mention.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from stream import line_containing, read_toml
from stream.errors import ConfigError

__all__ = ["DEFAULT_ALIASES", "Alias", "AliasTable", "canonicalize", "load_aliases"]

DEFAULT_ALIASES = Path(__file__).with_name("aliases.toml")

_POSSESSIVE = re.compile(r"(?:'s|’s|'|’)$")
_LEADING_THE = re.compile(r"^the\s+", re.IGNORECASE)
#: Labels whose mentions are names of people, where surname merging applies.
_PERSON = "PERSON"
#: Labels that name things; numbers, dates and the like are not canonicalised across forms.
NAMED_LABELS = frozenset({"PERSON", "NORP", "FAC", "ORG", "GPE", "LOC", "PRODUCT", "EVENT",
                          "WORK_OF_ART", "LAW", "LANGUAGE"})


def normal_form(text: str) -> str:
    """The key of a surface form: no possessive, no leading "the", single spaces."""
    text = " ".join(text.split()).rstrip(":;,")
    text = _POSSESSIVE.sub("", text)
    return _LEADING_THE.sub("", text)


@dataclass(frozen=True)
class Alias:
    id: str
    name: str
    label: str | None
    #: A knowledge-base id (a Wikidata QID such as ``Q567``), when the entity list gives one.
    kb_id: str | None = None


class AliasTable:
    """The entity list: lower-cased surface form -> :class:`Alias`, and every listed form
    as written (the names and aliases the text is searched for, :mod:`stream_ner.listed`)."""

    def __init__(self, entries: dict[str, Alias] | None = None, forms: dict[str, Alias] | None = None):
        self.entries: dict[str, Alias] = dict(entries or {})
        self.forms: dict[str, Alias] = dict(forms or {})

    def get(self, text: str) -> Alias | None:
        return self.entries.get(normal_form(text).lower())

    def merged(self, other: AliasTable) -> AliasTable:
        return AliasTable({**self.entries, **other.entries}, {**self.forms, **other.forms})

    def __len__(self) -> int:
        return len(self.entries)


def load_aliases(path: str | Path = DEFAULT_ALIASES) -> AliasTable:
    """Read an alias file.  :raises ConfigError: naming the file, the line and the fix."""
    path = Path(path)
    data, text = read_toml(path, "alias file")
    entries: dict[str, Alias] = {}
    forms: dict[str, Alias] = {}
    for entry in data.get("entity", []):
        name = entry.get("name") if isinstance(entry, dict) else None
        where = line_containing(text, f'"{name}"') if name else None
        if not isinstance(name, str) or not name:
            raise ConfigError("every [[entity]] needs name = \"Canonical Name\"", path=path, line=where)
        aliases = entry.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise ConfigError(f"[[entity]] {name!r}: aliases must be a list of strings",
                              path=path, line=where)
        label = entry.get("label")
        if label is not None and label not in NAMED_LABELS:
            raise ConfigError(f"[[entity]] {name!r}: label {label!r} is not one of "
                              f"{', '.join(sorted(NAMED_LABELS))}", path=path, line=where)
        kb_id = entry.get("kb_id")
        if kb_id is not None and (not isinstance(kb_id, str) or not kb_id.strip()):
            raise ConfigError(f"[[entity]] {name!r}: kb_id must be a string, such as a Wikidata id "
                              f"(kb_id = \"Q567\")", path=path, line=where)
        ident = entry.get("id") or re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        alias = Alias(id=str(ident), name=name, label=label, kb_id=kb_id.strip() if kb_id else None)
        for form in [name, *aliases]:
            entries[normal_form(form).lower()] = alias
            forms[form] = alias
    unknown = set(data) - {"entity"}
    if unknown:
        raise ConfigError(f"unknown section(s) {', '.join(sorted(unknown))}; use [[entity]] tables",
                          path=path, line=line_containing(text, sorted(unknown)[0]))
    return AliasTable(entries, forms)


def _close(a: str, b: str) -> bool:
    """Two first names that are spelling variants (Sergei/Sergey, Anthony/Antony)."""
    a, b = a.lower(), b.lower()
    if a == b:
        return True
    if abs(len(a) - len(b)) > 2 or min(len(a), len(b)) < 3 or a[0] != b[0]:
        return False
    # Levenshtein distance <= 2, small strings only.
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1] <= 2


def canonicalize(mentions: Iterable[dict[str, Any]], aliases: AliasTable) -> list[dict[str, Any]]:
    """Fill ``canonical`` (and ``entity_id`` for aliased ones) on each mention; return the
    per-article summary: one entry per canonical entity, most mentioned first."""
    items = list(mentions)
    # 1. aliases.
    for m in items:
        alias = aliases.get(m["text"])
        if alias is not None:
            m["canonical"] = alias.name
            m["entity_id"] = alias.id
            if alias.kb_id:
                m["kb_id"] = alias.kb_id
            # The alias file knows what the entity is: "Lavrov" tagged ORG is a person.
            if alias.label and m["label"] in NAMED_LABELS and m["label"] != alias.label:
                m.setdefault("model_label", m["label"])
                m["label"] = alias.label
        else:
            m["canonical"] = normal_form(m["text"])
    # 2. people within the article: full names grouped by surname and close first names.
    people = [m for m in items if m["label"] == _PERSON and "entity_id" not in m]
    full: list[list[str]] = []  # clusters of distinct multi-word forms
    for form in dict.fromkeys(m["canonical"] for m in people if " " in m["canonical"]):
        words = form.split()
        for cluster in full:
            other = cluster[0].split()
            if other[-1].lower() == words[-1].lower() and _close(other[0], words[0]):
                cluster.append(form)
                break
        else:
            full.append([form])
    counts = Counter(m["canonical"] for m in items)
    best: dict[str, str] = {}
    for cluster in full:
        order = {f: n for n, f in enumerate(cluster)}
        winner = max(cluster, key=lambda f: (len(f.split()), counts[f], -order[f]))
        for form in cluster:
            best[form] = winner
    by_surname: dict[str, set[str]] = {}
    for winner in set(best.values()):
        by_surname.setdefault(winner.split()[-1].lower(), set()).add(winner)
    # Aliased people join too: "Blinken" alone merges with an aliased "Antony Blinken".
    aliased_people = {m["canonical"].split()[-1].lower(): m for m in items
                      if "entity_id" in m and " " in m["canonical"]}
    for m in items:
        if "entity_id" in m or m["label"] not in NAMED_LABELS:
            continue
        form = m["canonical"]
        if form in best:
            m["canonical"] = best[form]
        elif " " not in form and (m["label"] == _PERSON or form.lower() in by_surname):
            # A single name: the surname of one full name in this article (any label,
            # since the model sometimes tags a lone surname as ORG or GPE).
            targets = by_surname.get(form.lower(), set())
            if len(targets) == 1:
                m["canonical"] = next(iter(targets))
                m["label_canonical"] = _PERSON
            elif form.lower() in aliased_people:
                hit = aliased_people[form.lower()]
                m["canonical"], m["entity_id"] = hit["canonical"], hit["entity_id"]
                if "kb_id" in hit:
                    m["kb_id"] = hit["kb_id"]
    # 3. forms that differ only in case ("MOSCOW", "Moscow") take the most frequent one.
    by_fold: dict[str, Counter[str]] = {}
    for m in items:
        by_fold.setdefault(m["canonical"].casefold(), Counter())[m["canonical"]] += 1
    for m in items:
        variants = by_fold[m["canonical"].casefold()]
        if len(variants) > 1:
            m["canonical"] = max(variants, key=lambda f: (variants[f], f != f.upper(), f))
    # 4. summary.
    summary: dict[str, dict[str, Any]] = {}
    labels: dict[str, Counter[str]] = {}
    for m in items:
        label = m.pop("label_canonical", None) or m["label"]
        entry = summary.setdefault(m["canonical"], {"canonical": m["canonical"], "label": label,
                                                     "mentions": 0})
        entry["mentions"] += 1
        if "entity_id" in m:
            entry["entity_id"] = m["entity_id"]
        if "kb_id" in m:
            entry["kb_id"] = m["kb_id"]
        labels.setdefault(m["canonical"], Counter())[label] += 1
    for name, entry in summary.items():
        entry["label"] = labels[name].most_common(1)[0][0]
    return sorted(summary.values(), key=lambda e: (-e["mentions"], e["canonical"]))
