"""What an article is matched on: weighted terms, entities and places.

* **Terms** are word stems (Snowball, by PyStemmer, in the article's language) weighted by
  how rare the word is in that language (wordfreq's frequency lists, shipped in the
  package): ``weight = ln(COMMON / frequency)``.  Words at least as frequent as ``COMMON``
  ("the", "said", "le", "selon") weigh nothing and are dropped; a word wordfreq has never
  seen (a town, a company) weighs the most.  The weights do not depend on what the stream
  has seen, so an article gets the same vector after a restart.  Title words count twice.
  Numbers count ("5.9", "6,1" -> "6.1", "800"), years do not.
* **Entities** are the NER plugin's ``entity_summary`` (people, organisations, events,
  products, laws...), keyed by ``entity_id`` when the entity list knows them, else by the
  folded canonical name, without the label (the French and English models label some
  organisations differently).
* **Places** are the entities with ``geo``, keyed by GeoNames id (language-independent:
  "Allemagne" and "Germany" are one key), a country weighing less than a city.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

__all__ = ["Features", "features_of", "stemmer_for", "word_weight"]

#: A word at least this frequent in its language (wordfreq) weighs nothing.
COMMON = 3e-4
#: The frequency assumed for a word wordfreq does not know.
RARE = 1e-8
#: Terms kept per article (the heaviest).
TERMS = 40
#: A word rarer than this in its language is a name: it is not stemmed, so that "Okinawa"
#: is one term in French and English.
NAME = 1e-6
#: The weight of a number ("5.9", "800"); years weigh nothing.
NUMBER = 3.0
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+")
_YEAR = re.compile(r"^(19|20)\d\d$")
_THOUSANDS = re.compile(r"[.,](?=\d{3}(?:\D|$))")
#: Entity labels that say what a story is about (not dates, amounts or nationalities).
ENTITY_LABELS = frozenset({"PERSON", "ORG", "FAC", "EVENT", "PRODUCT", "LAW", "WORK_OF_ART", "MISC", "GPE", "LOC"})
#: The weight of a place key by its kind: a country says less about an event than a town.
PLACE_WEIGHT = {"country": 0.3, "continent": 0.2, "region": 0.6, "admin1": 0.6}
_STEMMERS = {"en": "english", "fr": "french", "de": "german", "es": "spanish", "it": "italian", "nl": "dutch",
             "pt": "portuguese", "sv": "swedish", "da": "danish", "nb": "norwegian", "no": "norwegian",
             "fi": "finnish", "ru": "russian", "ro": "romanian", "hu": "hungarian", "tr": "turkish",
             "ca": "catalan", "el": "greek"}


@cache
def _frequencies(language: str) -> dict[str, float]:
    import wordfreq

    try:
        return dict(wordfreq.get_frequency_dict(language))
    except (LookupError, ValueError):
        return {}


@cache
def stemmer_for(language: str) -> Any:
    """The Snowball stemmer of ``language`` (ISO 639-1), or ``None``."""
    import Stemmer

    name = _STEMMERS.get(language)
    return Stemmer.Stemmer(name) if name else None


def word_frequency(word: str, language: str) -> float:
    freq = _frequencies(language).get(word)
    if freq is None and language != "en":
        freq = _frequencies("en").get(word)
    return max(freq or RARE, RARE)


def word_weight(word: str, language: str) -> float:
    """How much a (case-folded) word says about an article: 0 for common words."""
    return max(0.0, math.log(COMMON / word_frequency(word, language)))


def _number(token: str) -> str | None:
    token = _THOUSANDS.sub("", token).replace(",", ".")
    if _YEAR.match(token) or (len(token) < 2 and "." not in token):
        return None
    return token


@dataclass(slots=True)
class Features:
    """An article as the matcher sees it."""

    terms: dict[str, float]  # stem -> weight, L2-normalised
    entities: dict[str, float]  # key -> weight
    places: dict[str, float]  # key -> weight
    #: other keys of the article's places, added to its story (not scored): the name of a
    #: place that has a GeoNames id, for an article in which the same place has none
    aliases: set[str]
    names: dict[str, str]  # entity or place key -> its name as written
    geo: dict[str, dict[str, Any]]  # place key -> its geo


def _terms(title: str, text: str, language: str, skip: frozenset[str] = frozenset()) -> dict[str, float]:
    stemmer = stemmer_for(language)
    counts: dict[str, float] = {}
    weights: dict[str, float] = {}
    for part, times in ((title, 2.0), (text, 1.0)):
        for token in _TOKEN.findall(part):
            if token[0].isdigit():
                term = _number(token)
                if term is None:
                    continue
                weight = NUMBER
            else:
                word = token.casefold()
                if len(word) < 3 or word in skip:
                    continue
                weight, is_name = _cached_weight(word, language)
                if weight <= 0:
                    continue
                term = _stem(stemmer, word) if stemmer is not None and not is_name else word
            counts[term] = counts.get(term, 0.0) + times
            weights[term] = max(weights.get(term, 0.0), weight)
    scored = {t: weights[t] * (1.0 + math.log(c)) for t, c in counts.items()}
    top = sorted(scored.items(), key=lambda kv: (-kv[1], kv[0]))[:TERMS]
    norm = math.sqrt(sum(w * w for _t, w in top)) or 1.0
    return {t: w / norm for t, w in top}


@lru_cache(maxsize=200_000)
def _cached_weight(word: str, language: str) -> tuple[float, bool]:
    freq = word_frequency(word, language)
    return max(0.0, math.log(COMMON / freq)), freq < NAME


@lru_cache(maxsize=200_000)
def _stem_cached(language_stemmer: Any, word: str) -> str:
    return str(language_stemmer.stemWord(word))


def _stem(stemmer: Any, word: str) -> str:
    return _stem_cached(stemmer, word)


def entity_key(entity: dict[str, Any]) -> tuple[str, float] | None:
    """The key and weight of an ``entity_summary`` entry (``p:`` places, ``e:`` others), or
    ``None`` for labels that do not identify a story (dates, amounts)."""
    geo = entity.get("geo")
    if geo:
        ident = geo.get("geonameid")
        key = f"p:{ident}" if ident else f"p:{str(geo.get('name') or entity.get('canonical', '')).casefold()}"
        return key, PLACE_WEIGHT.get(str(geo.get("kind") or ""), 1.0)
    if entity.get("label") in ("GPE", "LOC"):  # a place the gazetteer did not find
        name = str(entity.get("canonical", "")).casefold().strip()
        return (f"p:{name}", 1.0) if len(name) >= 3 else None
    if entity.get("label") not in ENTITY_LABELS:
        return None
    name = entity.get("entity_id") or str(entity.get("canonical", "")).casefold().strip()
    if not name or len(name) < 3:
        return None
    return f"e:{name}", 1.0


def features_of(title: str | None, text: str, language: str | None, summary: list[dict[str, Any]]) -> Features:
    language = (language or "en").split("-")[0].lower()
    entities: dict[str, float] = {}
    places: dict[str, float] = {}
    names: dict[str, str] = {}
    geo: dict[str, dict[str, Any]] = {}
    aliases: set[str] = set()
    place_words: set[str] = set()
    for entity in summary:
        found = entity_key(entity)
        if found is None:
            continue
        key, weight = found
        bucket = places if key.startswith("p:") else entities
        bucket[key] = max(bucket.get(key, 0.0), weight)
        names.setdefault(key, str((entity.get("geo") or {}).get("name") or entity.get("canonical") or key[2:]))
        if key.startswith("p:"):
            # A place is matched as a place, not as words too (two articles about one town
            # are not one story for that).
            for name in (entity.get("canonical"), (entity.get("geo") or {}).get("name")):
                if name:
                    place_words.update(w.casefold() for w in _TOKEN.findall(str(name)))
        if entity.get("geo"):
            geo.setdefault(key, entity["geo"])
            for name in {entity.get("canonical"), entity["geo"].get("name")}:
                if name:
                    aliases.add(f"p:{str(name).casefold().strip()}")
    return Features(_terms(title or "", text, language, frozenset(place_words)), entities, places, aliases, names,
                    geo)
