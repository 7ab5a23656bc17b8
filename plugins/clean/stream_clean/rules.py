"""Loading and validating the boilerplate rules (``boilerplate.toml`` and a user's own)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from stream import line_containing, read_toml
from stream.errors import ConfigError

__all__ = ["DEFAULT_RULES", "DropRule", "Gates", "MetadataRule", "Rules", "StripRule", "Structure", "load_rules"]

DEFAULT_RULES = Path(__file__).with_name("boilerplate.toml")
_FLAGS = re.IGNORECASE | re.UNICODE


@dataclass(frozen=True)
class DropRule:
    name: str
    pattern: re.Pattern[str]
    max_words: int
    #: the headline-like paragraphs right after a match go too ("Most read" and its list)
    and_following: bool = False
    #: the pattern is tried only on a paragraph that contains one of these (lower case):
    #: a substring test is much cheaper than a regular expression that scans every word
    needs: tuple[str, ...] = ()

    @property
    def gate(self) -> re.Pattern[str] | None:
        """``needs`` as one regular expression (searched in the lower-cased paragraph)."""
        return _gate(self.needs)


@dataclass(frozen=True)
class StripRule:
    name: str
    pattern: re.Pattern[str]
    #: as for a drop rule: tried only on paragraphs that contain one of these
    needs: tuple[str, ...] = ()

    @property
    def gate(self) -> re.Pattern[str] | None:
        return _gate(self.needs)


@cache
def _gate(needs: tuple[str, ...]) -> re.Pattern[str] | None:
    return re.compile("|".join(re.escape(n) for n in needs)) if needs else None


class Gates:
    """All rules' ``needs`` in one Aho-Corasick automaton: ``present(low)`` is the set of
    them a lower-cased paragraph contains, in one pass (a regular expression per rule cost
    2-6 us per paragraph each, most of the cleaning time of a long article)."""

    def __init__(self, needs: frozenset[str]):
        import ahocorasick

        self.needs = needs
        self._automaton: Any = None
        if needs:
            automaton = ahocorasick.Automaton()
            for need in needs:
                automaton.add_word(need, need)
            automaton.make_automaton()
            self._automaton = automaton

    def present(self, low: str) -> set[str]:
        if self._automaton is None:
            return set()
        return {need for _end, need in self._automaton.iter(low)}


@dataclass(frozen=True)
class MetadataRule:
    name: str
    pattern: re.Pattern[str]
    field: str


@dataclass(frozen=True)
class Structure:
    headline_max_words: int = 20
    headline_run: int = 2
    headline_run_middle: int = 3
    headline_list_min_words: int = 7
    trailing_max_words: int = 8
    repeat_min_words: int = 6
    row_min_parts: int = 3
    row_part_max_words: int = 12


@dataclass(frozen=True)
class Rules:
    drop: tuple[DropRule, ...] = ()
    strip: tuple[StripRule, ...] = ()
    metadata: tuple[MetadataRule, ...] = ()
    trailing: frozenset[str] = frozenset()
    structure: Structure = field(default_factory=Structure)
    #: a paragraph made only of these words (and numbers) is a row of links or buttons
    nav_words: frozenset[str] = frozenset()

    @cached_property
    def gates(self) -> Gates:
        """The ``needs`` of every rule, found in one pass over a paragraph."""
        return Gates(frozenset(n for rule in self.drop + self.strip for n in rule.needs))

    @cached_property
    def drop_by_words(self) -> tuple[tuple[DropRule, ...], ...]:
        """``[n]``: the drop rules, in order, that may match a paragraph of ``n`` words (its
        ``max_words`` or fewer); a paragraph longer than the last index has none."""
        longest = max((rule.max_words for rule in self.drop), default=-1)
        return tuple(tuple(rule for rule in self.drop if n <= rule.max_words) for n in range(longest + 1))

    def merged(self, other: Rules) -> Rules:
        return Rules(
            drop=self.drop + other.drop,
            strip=self.strip + other.strip,
            metadata=self.metadata + other.metadata,
            trailing=self.trailing | other.trailing,
            structure=other.structure if other.structure != Structure() else self.structure,
            nav_words=self.nav_words | other.nav_words,
        )


def _compile(path: Path, text: str, kind: str, entry: Any, keys: dict[str, type],
             optional: dict[str, type] | None = None) -> dict[str, Any]:
    name = entry.get("name", "?") if isinstance(entry, dict) else "?"
    where = line_containing(text, f'name = "{name}"') if name != "?" else None
    if not isinstance(entry, dict):
        raise ConfigError(f"each [[{kind}]] entry must be a table", path=path)
    for key, kind_type in keys.items():
        if key not in entry:
            raise ConfigError(f"[[{kind}]] rule {name!r} has no {key!r}; add {key} = ...",
                              path=path, line=where)
        if not isinstance(entry[key], kind_type):
            raise ConfigError(f"[[{kind}]] rule {name!r}: {key!r} must be a {kind_type.__name__}",
                              path=path, line=where)
    for key, kind_type in (optional or {}).items():
        if key in entry and not isinstance(entry[key], kind_type):
            raise ConfigError(f"[[{kind}]] rule {name!r}: {key!r} must be a {kind_type.__name__}",
                              path=path, line=where)
    unknown = set(entry) - set(keys) - set(optional or {})
    if unknown:
        raise ConfigError(f"[[{kind}]] rule {name!r}: unknown key(s) {', '.join(sorted(unknown))}",
                          path=path, line=where)
    out = dict(entry)
    try:
        out["pattern"] = re.compile(entry["pattern"], _FLAGS)
    except re.error as exc:
        raise ConfigError(f"[[{kind}]] rule {name!r}: invalid regular expression: {exc}",
                          path=path, line=line_containing(text, entry["pattern"][:30]) or where) from None
    return out


def load_rules(path: Path | str = DEFAULT_RULES) -> Rules:
    """Read and validate a rules file.  :raises ConfigError: with the file, line and fix."""
    path = Path(path)
    data, text = read_toml(path, "boilerplate rules")
    known = {"drop", "strip", "metadata", "trailing", "structure", "nav_words"}
    for key in set(data) - known:
        raise ConfigError(f"unknown section {key!r}; known: {', '.join(sorted(known))}",
                          path=path, line=line_containing(text, key))
    drop = tuple(DropRule(**_compile(path, text, "drop", e, {"name": str, "pattern": str, "max_words": int},
                                     {"and_following": bool, "needs": list}))
                 for e in data.get("drop", []))
    drop = tuple(DropRule(r.name, r.pattern, r.max_words, r.and_following, tuple(str(n).lower() for n in r.needs))
                 for r in drop)
    strip = tuple(StripRule(**_compile(path, text, "strip", e, {"name": str, "pattern": str}, {"needs": list}))
                  for e in data.get("strip", []))
    strip = tuple(StripRule(r.name, r.pattern, tuple(str(n).lower() for n in r.needs)) for r in strip)
    metadata = tuple(MetadataRule(**_compile(path, text, "metadata", e,
                                             {"name": str, "pattern": str, "field": str}))
                     for e in data.get("metadata", []))
    for rule in metadata:
        if rule.field != "published_at":
            raise ConfigError(f"[[metadata]] rule {rule.name!r}: field must be 'published_at'",
                              path=path, line=line_containing(text, f'name = "{rule.name}"'))
    words: dict[str, frozenset[str]] = {}
    for key in ("trailing", "nav_words"):
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
            raise ConfigError(f"{key!r} must be a list of strings", path=path, line=line_containing(text, key))
        words[key] = frozenset(t.lower() for t in value)
    structure_data = data.get("structure", {})
    try:
        structure = Structure(**structure_data)
    except TypeError as exc:
        raise ConfigError(f"[structure]: {exc}", path=path, line=line_containing(text, "[structure]")) from None
    return Rules(drop, strip, metadata, words["trailing"], structure, words["nav_words"])
