"""The rule language: reading and validating a rules file (``docs/alerts.md``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream import entry_key_line, parse_toml, read_toml
from stream.errors import ConfigError

__all__ = ["FIELDS", "SEVERITIES", "Burst", "Cooldown", "EntityCondition", "Proximity", "Rule", "is_prefix",
           "load_rules", "never_matches", "parse_rules"]

DEFAULT_RULES = Path(__file__).with_name("default_rules.toml")
SEVERITIES = ("low", "medium", "high", "critical")
_KEYS = {"id", "description", "any", "all", "none", "match", "severity", "entities", "proximity",
         "burst", "cooldown", "duplicates", "languages", "fields", "title_severity", "sources",
         "exclude_sources", "min_mentions", "entity_ids", "places", "kind", "min_sources", "within_minutes",
         "min_articles"}
#: The kinds of rules: on each article, or on the story an article belongs to.
KINDS = ("keyword", "story")
_STORY_ONLY = ("min_sources", "within_minutes", "min_articles")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
#: Where a rule's terms may be found: the title, the lead (the first paragraph of the clean
#: text) and the whole clean text.
FIELDS = ("title", "lead", "text")
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")


@dataclass(frozen=True)
class EntityCondition:
    """An entity that must be in the article: ``label`` and/or ``canonical`` name."""

    label: str | None = None
    canonical: str | None = None


@dataclass(frozen=True)
class Proximity:
    """Two terms within ``within`` words of each other."""

    terms: tuple[str, str]
    within: int


@dataclass(frozen=True)
class Burst:
    """A burst alert when ``count`` distinct non-duplicate articles match within ``minutes``."""

    count: int
    minutes: float


@dataclass(frozen=True)
class Cooldown:
    """At most one alert per rule (and per entity of label ``per``) every ``minutes``."""

    minutes: float
    per: str | None = None


@dataclass(frozen=True)
class Rule:
    id: str
    description: str = ""
    any: tuple[str, ...] = ()
    all: tuple[str, ...] = ()
    none: tuple[str, ...] = ()
    match: str = "lemma"
    severity: str = "medium"
    entities: tuple[EntityCondition, ...] = ()
    #: The article names one of these entities (an ``entity_id`` or a ``kb_id`` of its
    #: entity summary: the NER plugin's entity list).
    entity_ids: tuple[str, ...] = ()
    proximity: tuple[Proximity, ...] = ()
    burst: Burst | None = None
    cooldown: Cooldown | None = None
    duplicates: bool = False
    line: int | None = field(default=None, compare=False)
    #: ISO 639-1 codes of the articles the rule applies to; empty: every article.
    languages: tuple[str, ...] = ()
    #: where the terms must be found (``FIELDS``); the clean text by default
    fields: tuple[str, ...] = ("text",)
    #: the severity of an alert whose rule matched in the title (``fields`` has "title")
    title_severity: str | None = None
    #: the article's ``source`` must be one of these (case-insensitive); empty: any source
    sources: tuple[str, ...] = ()
    #: ... and none of these
    exclude_sources: tuple[str, ...] = ()
    #: the terms of ``any`` must occur this many times in all
    min_mentions: int = 1
    #: the article names a place with one of these GeoNames ids ...
    place_ids: tuple[int, ...] = ()
    #: ... or in one of these countries (ISO 3166-1 alpha-2)
    countries: tuple[str, ...] = ()
    #: "keyword": on each article; "story": once per story, when its articles that meet the
    #: conditions come from ``min_sources`` sources within ``within_minutes``
    kind: str = "keyword"
    min_sources: int = 0
    within_minutes: float | None = None
    min_articles: int = 0


class _Where:
    """Finds the line of a rule (its ``id = ...``) and of a key inside it."""

    def __init__(self, text: str):
        self.text = text
        self.lines = text.splitlines()
        self.starts = [n for n, line in enumerate(self.lines, 1) if line.strip() == "[[rules]]"]

    def rule(self, index: int) -> int | None:
        """The line of the ``id`` of the index-th ``[[rules]]`` block (or of its header)."""
        if index >= len(self.starts):
            return None
        return self.key(self.starts[index] + 1, "id")

    def key(self, start: int | None, key: str) -> int | None:
        return None if start is None else entry_key_line(self.text, "rules", start, key)


def is_prefix(term: str) -> bool:
    """``"sanction*"``: the term's last word may go on ("sanctions", "sanctioned")."""
    return term.endswith("*")


def _terms(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ValueError(f"{what} must be a list of words or phrases, such as [\"invasion\", \"troops\"]")
    terms = tuple(t.strip() for t in value)
    for term in terms:
        if "*" in term.rstrip("*") or term.endswith("**"):
            raise ValueError(f"{what}: {term!r}: a '*' may only end a term (\"sanction*\": words that start "
                             f"with \"sanction\")")
        if is_prefix(term) and not re.search(r"\w$", term[:-1]):
            raise ValueError(f"{what}: {term!r} is an empty prefix: put letters before the '*', such as "
                             f"\"sanction*\"")
        if not re.search(r"\w", term):
            raise ValueError(f"{what} holds an empty term or one without letters or digits")
    return terms


def _names(value: Any, what: str) -> tuple[str, ...]:
    if not (isinstance(value, list) and all(isinstance(n, str) and n.strip() for n in value)):
        raise ValueError(f"{what} must be a list of source names, such as [\"Reuters\", \"AP\"]")
    return tuple(n.strip() for n in value)


def _parse_rule(entry: Any) -> Rule:
    if not isinstance(entry, dict):
        raise ValueError("each [[rules]] entry must be a table")
    unknown = set(entry) - _KEYS
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_KEYS))}")
    rule_id = entry.get("id")
    if not isinstance(rule_id, str) or not _ID.match(rule_id):
        raise ValueError("id must be a short name of letters, digits, '.', '_', ':' or '-', such as "
                         "\"military-escalation\"")
    match = entry.get("match", "lemma")
    if match not in ("lemma", "word"):
        raise ValueError(f"match must be \"lemma\" or \"word\", not {match!r}")
    severity = entry.get("severity", "medium")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, not {severity!r}")
    any_ = _terms(entry.get("any", []), "any")
    all_ = _terms(entry.get("all", []), "all")
    none = _terms(entry.get("none", []), "none")
    entities = []
    for cond in entry.get("entities", []):
        if not isinstance(cond, dict) or not (set(cond) <= {"label", "canonical"}) or not cond:
            raise ValueError("entities must be a list of {label = \"GPE\", canonical = \"Ukraine\"} tables")
        entities.append(EntityCondition(cond.get("label"), cond.get("canonical")))
    proximity = []
    for cond in entry.get("proximity", []):
        terms = cond.get("terms") if isinstance(cond, dict) else None
        within = cond.get("within") if isinstance(cond, dict) else None
        if not (isinstance(terms, list) and len(terms) == 2 and isinstance(within, int) and within > 0):
            raise ValueError("proximity must be a list of {terms = [\"a\", \"b\"], within = N} tables, N > 0")
        a, b = _terms(terms, "proximity terms")
        proximity.append(Proximity((a, b), within))
    kind = entry.get("kind", "keyword")
    if kind not in KINDS:
        raise ValueError(f"kind must be \"keyword\" (each article) or \"story\" (once per story), not {kind!r}")
    place_ids, countries = _places(entry.get("places", []))
    if kind == "keyword" and not (any_ or all_ or proximity or entry.get("entity_ids") or entities or place_ids
                                  or countries):
        raise ValueError("a rule needs at least one term (any, all or proximity) or an entity condition "
                         "(entity_ids, entities or places)")
    burst = None
    if "burst" in entry:
        b_ = entry["burst"]
        if not (isinstance(b_, dict) and set(b_) == {"count", "minutes"}
                and isinstance(b_["count"], int) and b_["count"] >= 2
                and isinstance(b_["minutes"], (int, float)) and b_["minutes"] > 0):
            raise ValueError("burst must be {count = N (2 or more), minutes = T (> 0)}")
        burst = Burst(b_["count"], float(b_["minutes"]))
    cooldown = None
    if "cooldown" in entry:
        c_ = entry["cooldown"]
        if not (isinstance(c_, dict) and isinstance(c_.get("minutes"), (int, float)) and c_["minutes"] > 0
                and set(c_) <= {"minutes", "per"} and isinstance(c_.get("per", ""), str)):
            raise ValueError("cooldown must be {minutes = T (> 0), per = \"GPE\" (optional entity label)}")
        cooldown = Cooldown(float(c_["minutes"]), c_.get("per"))
    duplicates = entry.get("duplicates", False)
    if not isinstance(duplicates, bool):
        raise ValueError("duplicates must be true or false")
    description = entry.get("description", "")
    if not isinstance(description, str):
        raise ValueError("description must be a string")
    languages = entry.get("languages", [])
    if not (isinstance(languages, list) and all(isinstance(c, str) and _LANGUAGE.match(c) for c in languages)):
        raise ValueError("languages must be a list of ISO 639-1 codes in lower case, such as [\"en\", \"fr\"]")
    fields = entry.get("fields", ["text"])
    if not (isinstance(fields, list) and fields and all(isinstance(f, str) for f in fields)):
        raise ValueError(f"fields must be a list of {', '.join(map(repr, FIELDS))}, such as [\"title\", \"lead\"]")
    unknown_fields = [f for f in fields if f not in FIELDS]
    if unknown_fields:
        raise ValueError(f"fields: {unknown_fields[0]!r} is not a field of an article; use "
                         f"{', '.join(map(repr, FIELDS))}")
    title_severity = entry.get("title_severity")
    if title_severity is not None:
        if title_severity not in SEVERITIES:
            raise ValueError(f"title_severity must be one of {', '.join(SEVERITIES)}, not {title_severity!r}")
        if "title" not in fields:
            raise ValueError("title_severity raises the severity of a match in the title, but fields has no "
                             "\"title\": add it, such as fields = [\"title\", \"text\"]")
    sources = _names(entry.get("sources", []), "sources")
    exclude_sources = _names(entry.get("exclude_sources", []), "exclude_sources")
    min_mentions = entry.get("min_mentions", 1)
    if not (isinstance(min_mentions, int) and not isinstance(min_mentions, bool) and min_mentions >= 1):
        raise ValueError("min_mentions must be a whole number, 1 or more")
    if min_mentions > 1 and not any_:
        raise ValueError("min_mentions counts the occurrences of the terms of any: add any = [...]")
    entity_ids = entry.get("entity_ids", [])
    if not (isinstance(entity_ids, list) and all(isinstance(n, str) and n.strip() for n in entity_ids)):
        raise ValueError("entity_ids must be a list of entity ids or knowledge-base ids from the NER plugin's "
                         "entity list, such as [\"Q102673\", \"gazprom\"]")
    entity_ids = tuple(n.strip() for n in entity_ids)
    min_sources, within, min_articles = _story_conditions(entry, kind)
    return Rule(rule_id, description, any_, all_, none, match, severity, tuple(entities), entity_ids,
                tuple(proximity), burst, cooldown, duplicates, languages=tuple(languages),
                fields=tuple(dict.fromkeys(fields)), title_severity=title_severity, sources=sources,
                exclude_sources=exclude_sources, min_mentions=min_mentions, place_ids=place_ids,
                countries=countries, kind=kind, min_sources=min_sources, within_minutes=within,
                min_articles=min_articles)


def _places(value: Any) -> tuple[tuple[int, ...], tuple[str, ...]]:
    if not isinstance(value, list) or not all(
            (isinstance(v, int) and not isinstance(v, bool) and v > 0) or (isinstance(v, str) and _COUNTRY.match(v))
            for v in value):
        raise ValueError("places must be a list of GeoNames ids and country codes, such as [703448, \"UA\"] "
                         "(Kyiv, and anywhere in Ukraine)")
    return tuple(v for v in value if isinstance(v, int)), tuple(v for v in value if isinstance(v, str))


def _story_conditions(entry: dict[str, Any], kind: str) -> tuple[int, float | None, int]:
    if kind == "keyword":
        extra = [k for k in _STORY_ONLY if k in entry]
        if extra:
            raise ValueError(f"{extra[0]} is a condition of story rules: add kind = \"story\"")
        return 0, None, 0
    for key in ("burst", "cooldown"):
        if key in entry:
            raise ValueError(f"{key} does not apply to a story rule, which fires once per story")
    if "min_sources" not in entry:
        raise ValueError("min_sources is missing: a story rule fires when its story's articles come from this "
                         "many sources, such as min_sources = 3")
    min_sources = entry["min_sources"]
    if not (isinstance(min_sources, int) and not isinstance(min_sources, bool) and min_sources >= 1):
        raise ValueError("min_sources must be a whole number, 1 or more")
    within = entry.get("within_minutes")
    if within is not None and not (isinstance(within, (int, float)) and not isinstance(within, bool) and within > 0):
        raise ValueError("within_minutes must be a number of minutes above 0, such as within_minutes = 60")
    min_articles = entry.get("min_articles", 1)
    if not (isinstance(min_articles, int) and not isinstance(min_articles, bool) and min_articles >= 1):
        raise ValueError("min_articles must be a whole number, 1 or more")
    return min_sources, None if within is None else float(within), min_articles


def never_matches(rule: Rule) -> list[str]:
    """Why ``rule`` can never raise an alert (empty: it can): every article that has what
    it asks for also has a term of its ``none``, or it asks for a source it excludes."""
    from .matcher import term_patterns

    blockers = sorted({p for term in rule.none for p in term_patterns(term, rule.match)})

    def blocked(term: str) -> str | None:
        """A none pattern found wherever ``term`` is: each occurrence of the term is one of
        its patterns, and each of them holds a none pattern."""
        inside = {}
        for pattern in term_patterns(term, rule.match) | term_patterns(term, "word"):
            found = next((b for b in blockers if b in pattern), None)
            if found is None:
                return None
            inside[pattern] = found
        # named by the blocker found in the term as written
        return next((inside[p] for p in term_patterns(term, "word") if p in inside), None)

    problems = []
    for term in rule.all:
        found = blocked(term)
        if found:
            problems.append(f"all term {term!r} always holds the none term {found.strip()!r}")
    if rule.any and all(blocked(term) for term in rule.any):
        problems.append("every term of any holds a none term (" + ", ".join(
            f"{term!r}: {blocked(term).strip()!r}" for term in rule.any) + ")")  # type: ignore[union-attr]
    for prox in rule.proximity:
        for term in prox.terms:
            found = blocked(term)
            if found:
                problems.append(f"proximity term {term!r} always holds the none term {found.strip()!r}")
    if rule.sources and {s.casefold() for s in rule.sources} <= {s.casefold() for s in rule.exclude_sources}:
        problems.append("every source of sources is also in exclude_sources")
    return problems


def parse_rules(text: str, path: str | Path = "<rules>") -> tuple[Rule, ...]:
    """Parse and validate rules.  :raises ConfigError: with the file, the line, the rule id
    and what is wrong."""
    data = parse_toml(text, path)
    where = _Where(text)
    extra = set(data) - {"rules"}
    if extra:
        raise ConfigError(f"unknown top-level key(s) {', '.join(sorted(extra))}; rules go in [[rules]] tables",
                          path=path)
    entries = data.get("rules", [])
    if not isinstance(entries, list) or not entries:
        raise ConfigError("no rules: add [[rules]] tables (see docs/alerts.md)", path=path)
    rules: list[Rule] = []
    seen: dict[str, int | None] = {}
    for index, entry in enumerate(entries):
        rule_id = entry.get("id") if isinstance(entry, dict) else None
        line = where.rule(index)
        try:
            rule = _parse_rule(entry)
        except ValueError as exc:
            message = str(exc)
            # The key the message is about: the one it starts with, longest first ("title_severity"
            # before "severity"; a set's order changes from run to run).
            keys = sorted(_KEYS, key=len, reverse=True)
            key = (next((k for k in keys if message.startswith(k)), None)
                   or next((k for k in keys if f"{k} " in message[:20]), None))
            name = f"rule {rule_id!r}" if isinstance(rule_id, str) else f"rule #{index + 1}"
            raise ConfigError(f"{name}: {message}", path=path,
                              line=where.key(line, key) if key else line) from None
        if rule.id in seen:
            raise ConfigError(f"rule {rule.id!r} is defined twice (first at line {seen[rule.id]})",
                              path=path, line=line)
        seen[rule.id] = line
        rules.append(Rule(**{**rule.__dict__, "line": line}))
    return tuple(rules)


def load_rules(path: str | Path = DEFAULT_RULES) -> tuple[Rule, ...]:
    """Read and validate a rules file.  :raises ConfigError: naming the file, line and fix."""
    _data, text = read_toml(path, "rules file")
    return parse_rules(text, path)
