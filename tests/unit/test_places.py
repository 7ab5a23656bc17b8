"""The gazetteer: places get GeoNames positions, ambiguous names are resolved by the
article's countries and by population, and places the model misses are added."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream import Article, ConfigError, Context
from stream.settings import Settings
from stream_ner import NerProcessor
from stream_ner.places import Gazetteer, load_gazetteer

# GeoNames ids (geonames.org): the places the tests name.
KYIV, PARIS_FR, PARIS_TX, GEORGIA_GE, GEORGIA_US = 703448, 2988507, 4717560, 614540, 4197000
KRAMATORSK, DONETSK_CITY, DONETSK_OBLAST, UKRAINE = 704508, 709717, 709716, 690791


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return load_gazetteer()


@pytest.fixture(scope="module")
def ner() -> NerProcessor:
    processor = NerProcessor()
    processor.setup(Context(settings=Settings()))
    return processor


def run(ner: NerProcessor, text: str, language: str = "en") -> Article:
    article = Article(id="t", text=text, clean_text=text, language=language)
    ner.process([article])
    return article


def geo_of(article: Article, text: str) -> dict[str, object]:
    [mention] = [m for m in article.entities if m["text"] == text]
    assert "geo" in mention, mention
    return mention["geo"]


@pytest.mark.parametrize(
    ("name", "context", "geonameid"),
    [
        ("Paris", set(), PARIS_FR),                 # the most populous
        ("Paris", {"US", "US.TX"}, PARIS_TX),       # an article that names Texas
        ("Paris", {"US"}, PARIS_FR),                # naming the US is not enough: 85 times smaller
        ("Georgia", set(), GEORGIA_GE),             # a country before a US state
        ("Georgia", {"US"}, GEORGIA_US),
        ("Kiev", set(), KYIV),                      # another name of the same city
        ("Kyiv", set(), KYIV),
        ("Donetsk", set(), DONETSK_CITY),           # the bare name is the city
        ("Donetsk region", set(), DONETSK_OBLAST),  # a region from places.toml
        ("the United States", set(), 6252001),
        ("U.S.", set(), 6252001),
        ("Britain", set(), 2635167),
    ],
)
def test_ambiguous_names_and_aliases_resolve(gazetteer: Gazetteer, name: str, context: set[str],
                                             geonameid: int) -> None:
    place = gazetteer.resolve(name, frozenset(context))
    assert place is not None and place.geonameid == geonameid


def test_a_place_carries_its_position_and_country(gazetteer: Gazetteer) -> None:
    place = gazetteer.resolve("Kramatorsk")
    assert place is not None
    geo = place.geo()
    assert geo["geonameid"] == KRAMATORSK and geo["country_code"] == "UA" and geo["name"] == "Kramatorsk"
    assert 48.5 < float(geo["lat"]) < 49 and 37.3 < float(geo["lon"]) < 37.8  # type: ignore[arg-type]


def test_kiev_and_kyiv_are_one_place_and_one_entity(ner: NerProcessor) -> None:
    article = run(ner, "Officials in Kiev said the talks would go on. Kyiv has asked for more help.")
    geos = {m["geo"]["geonameid"] for m in article.entities if m["text"] in ("Kiev", "Kyiv")}
    assert geos == {KYIV}
    [entry] = [e for e in article.entity_summary if e["canonical"] == "Kyiv"]
    assert entry["mentions"] == 2 and entry["geo"]["geonameid"] == KYIV


def test_a_town_the_model_misses_is_added_with_its_position(ner: NerProcessor) -> None:
    text = "Russian shelling hit the town of Druzhkivka overnight and damaged houses near Kostiantynivka."
    article = run(ner, text)
    for town in ("Druzhkivka", "Kostiantynivka"):
        [m] = [m for m in article.entities if m["text"] == town]
        assert m["label"] == "GPE" and m["geo"]["country_code"] == "UA"
        assert article.clean_text[m["start"]:m["end"]] == town


def test_the_article_context_picks_paris_texas(ner: NerProcessor) -> None:
    article = run(ner, "Storms hit Texas on Friday. In Paris, the town's mayor said roads were closed.")
    assert geo_of(article, "Paris")["geonameid"] == PARIS_TX


def test_a_country_in_the_article_does_not_move_a_big_city_to_a_small_namesake(ner: NerProcessor) -> None:
    """The demo article about US-Russia talks in Geneva once put Geneva in Illinois."""
    article = run(ner, "The United States and Russia held talks in Geneva on Monday.")
    assert geo_of(article, "Geneva")["country_code"] == "CH"


def test_a_capitalised_dateline_is_a_place(ner: NerProcessor) -> None:
    article = run(ner, "KRAMATORSK, Ukraine (Reuters) - Shelling resumed on Monday, officials said.")
    assert geo_of(article, "KRAMATORSK")["geonameid"] == KRAMATORSK
    assert geo_of(article, "Ukraine")["geonameid"] == UKRAINE


def test_words_that_are_also_towns_do_not_become_places(ner: NerProcessor) -> None:
    article = run(ner, "In March the minister said Reading the report would take time. "
                       "Police said the University will reopen. Of the ten, two remained.")
    places = [m["text"] for m in article.entities if "geo" in m]
    assert places == []


def test_summary_entries_of_places_carry_geo_and_others_do_not(ner: NerProcessor) -> None:
    article = run(ner, "Vladimir Putin met Emmanuel Macron in Moscow on Monday.")
    summary = {e["canonical"]: e for e in article.entity_summary}
    assert summary["Moscow"]["geo"]["country_code"] == "RU"
    assert "geo" not in summary["Vladimir Putin"]


def test_french_places_are_resolved_too(ner: NerProcessor) -> None:
    article = run(ner, "Le président Emmanuel Macron s'est rendu à Marseille puis à Kiev.", "fr")
    assert geo_of(article, "Marseille")["country_code"] == "FR"
    assert geo_of(article, "Kiev")["geonameid"] == KYIV


def test_the_gazetteer_can_be_turned_off() -> None:
    processor = NerProcessor()
    processor.setup(Context(settings=Settings(), config={"gazetteer": False}))
    article = run(processor, "Russian shelling hit the town of Druzhkivka near Moscow.")
    assert all("geo" not in m and "source" not in m for m in article.entities)


def test_a_places_file_adds_regions_and_a_bad_one_names_the_file(tmp_path: Path) -> None:
    extra = tmp_path / "places.toml"
    extra.write_text('[[region]]\nname = "Sumy Oblast"\ncountry = "UA"\nadmin1 = "21"\n'
                     'geonameid = 692196\nnames = ["Sumshchyna"]\n\n'
                     '[[alias]]\nof = "US.CA"\nnames = ["the Golden State"]\n')
    gazetteer = load_gazetteer([extra])
    place = gazetteer.resolve("Sumshchyna")
    assert place is not None and place.geonameid == 692196 and place.country_code == "UA"
    state = gazetteer.resolve("the Golden State")
    assert state is not None and state.geonameid == 5332921
    bad = tmp_path / "bad.toml"
    bad.write_text('[[region]]\nname = "Nowhere"\ncountry = "UA"\n')
    with pytest.raises(ConfigError) as failure:
        load_gazetteer([bad])
    assert "bad.toml" in str(failure.value) and "admin1" in str(failure.value)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(1, 15)), max_size=12), st.integers(0, 70),
       st.integers(1, 15))
def test_the_overlap_index_agrees_with_a_scan(spans: list[tuple[int, int]], start: int, length: int) -> None:
    from stream_ner.places import _Taken

    mentions = [{"start": s, "end": s + n} for s, n in spans]
    end = start + length
    assert _Taken(mentions).overlaps(start, end) == any(m["start"] < end and start < m["end"] for m in mentions)


# -- issue 27: places from the context, qualifiers, features, languages without a model -----

ALEXANDRIA_VA, VIRGINIA, HYDERABAD_PK, LONDON_ON = 4744091, 6254928, 1176734, 6058560
KINGSTON_ON, SEVILLA, GRANADA_ES = 5992500, 2510911, 2517117


def test_a_lone_person_that_is_a_town_of_a_country_the_article_names_becomes_a_place(ner: NerProcessor) -> None:
    """"shelling hit Sumy" gave Sumy as PERSON: a town of 260,000, under the 500,000 a lone
    PERSON needed; the article names Ukraine."""
    article = run(ner, "Russian shelling hit Sumy overnight, Ukraine's military said.")
    [sumy] = [m for m in article.entities if m["text"] == "Sumy"]
    assert sumy["label"] == "GPE" and sumy["model_label"] == "PERSON", sumy
    assert sumy["geo"]["country_code"] == "UA"


def test_a_nationality_after_a_place_word_becomes_a_place_and_the_river_is_found(ner: NerProcessor) -> None:
    article = run(ner, "Floods swept villages near Cahul as the Prut rose to a record level.")
    by_text = {m["text"]: m for m in article.entities}
    assert by_text["Cahul"]["label"] == "GPE" and by_text["Cahul"]["model_label"] == "NORP"
    assert by_text["Cahul"]["geo"]["country_code"] == "MD"
    prut = by_text["Prut"]
    assert prut["label"] == "LOC" and prut["source"] == "gazetteer", prut
    assert prut["geo"]["kind"] == "river" and prut["geo"]["geonameid"] is None and prut["geo"]["name"] == "Prut"


def test_a_person_is_not_made_a_place_by_words_that_also_come_before_people(ner: NerProcessor) -> None:
    """"said to Jackson" is not Jackson, Mississippi, even in an article about the US."""
    article = run(ner, "The United States will answer, Biden said to Jackson on Monday.")
    assert all(m["label"] != "GPE" for m in article.entities if m["text"] == "Jackson"), article.entities


@pytest.mark.parametrize(
    ("text", "name", "geonameid", "qualifier", "qualifier_id"),
    [
        ("The firm is based in Alexandria, Virginia, and employs 300 people.", "Alexandria", ALEXANDRIA_VA,
         "Virginia", VIRGINIA),
        ("Heavy rain flooded streets in Hyderabad, Pakistan, on Monday.", "Hyderabad", HYDERABAD_PK,
         "Pakistan", 1168579),
        ("Heavy rain flooded streets in Hyderabad in Pakistan on Monday.", "Hyderabad", HYDERABAD_PK,
         "Pakistan", 1168579),
        ("The university in London, Ontario, closed for a week.", "London", LONDON_ON, "Ontario", None),
    ],
)
def test_a_qualifier_beats_population(ner: NerProcessor, text: str, name: str, geonameid: int,
                                      qualifier: str, qualifier_id: int | None) -> None:
    """Alexandria in Egypt is 30 times bigger, Hyderabad in India three times; the
    qualifier is read as the region or country it qualifies (not Virginia in South Africa,
    not Ontario in California)."""
    article = run(ner, text)
    assert geo_of(article, name)["geonameid"] == geonameid
    geo = geo_of(article, qualifier)
    assert geo["kind"] in ("region", "country") and geo["geonameid"] == qualifier_id, geo


def test_a_state_s_bare_name_is_the_state_not_a_city_abroad(gazetteer: Gazetteer) -> None:
    """"Virginia" was a South African town (122,000) because a city of that name left the
    state only "Virginia state"; now only a city in the same country does ("Donetsk")."""
    place = gazetteer.resolve("Virginia")
    assert place is not None and place.geonameid == VIRGINIA
    assert gazetteer.resolve("Donetsk") is not None and gazetteer.resolve("Donetsk").geonameid == DONETSK_CITY


def test_the_article_s_other_places_decide_before_population(ner: NerProcessor) -> None:
    """Kingston in Jamaica is seven times bigger than Kingston, Ontario; Sevilla and Granada
    next to Andalucía are in Spain (Spanish: no model, the gazetteer alone)."""
    article = run(ner, "Schools in London, Ontario, and in Kingston closed after the storm.")
    assert geo_of(article, "Kingston")["geonameid"] == KINGSTON_ON
    article = run(ner, "El calor golpea Sevilla, Córdoba, Málaga y Granada en Andalucía.", "es")
    assert geo_of(article, "Sevilla")["geonameid"] == SEVILLA and geo_of(article, "Granada")["geonameid"] == GRANADA_ES
    assert geo_of(article, "Andalucía")["kind"] == "region" and geo_of(article, "Andalucía")["country_code"] == "ES"


def test_a_german_article_gets_its_places_from_the_gazetteer(ner: NerProcessor) -> None:
    article = run(ner, "Die Donau hat Passau, Regensburg und Deggendorf in Bayern überflutet.", "de")
    by_text = {m["text"]: m for m in article.entities}
    assert set(by_text) == {"Donau", "Passau", "Regensburg", "Deggendorf", "Bayern"}, by_text
    assert all(m["source"] == "gazetteer" and m["geo"]["country_code"] in ("DE", "") for m in by_text.values())
    assert by_text["Donau"]["label"] == "LOC" and by_text["Donau"]["geo"]["name"] == "Danube"
    assert by_text["Bayern"]["geo"]["name"] == "Bavaria"
    assert article.skipped["ner"].endswith("places from the gazetteer only; set [plugins.ner] models to add one")


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Das Essen in der Kantine war kalt, und die Halle blieb leer.", "de"),
        ("Auf dem Hof standen drei Traktoren.", "de"),
        ("Real Madrid ganó con un gol de Santiago Ramos.", "es"),
        ("Victoria Rodríguez dijo que el banco esperará.", "es"),
    ],
)
def test_words_and_names_that_are_also_towns_are_not_places_without_a_model(
        ner: NerProcessor, text: str, language: str) -> None:
    article = run(ner, text, language)
    assert article.entities == [], article.entities


def test_a_places_file_adds_features_and_a_bad_one_names_the_file_and_line(tmp_path: Path) -> None:
    extra = tmp_path / "places.toml"
    extra.write_text('[[feature]]\nname = "Lake Cahul"\nkind = "lake"\nlat = 45.7\nlon = 28.3\n'
                     'names = ["Lake Cahul"]\nlocal = { de = ["Cahulsee"] }\n')
    gazetteer = load_gazetteer([extra])
    lake = gazetteer.resolve("Lake Cahul")
    assert lake is not None and lake.kind == "lake" and lake.geonameid is None
    assert gazetteer.resolve("Cahulsee", language="de") is lake and gazetteer.resolve("Cahulsee") is None
    extra = tmp_path / "bad.toml"
    extra.write_text('[[feature]]\nname = "Lake Cahul"\nkind = "puddle"\nlat = 45.7\nlon = 28.3\nnames = []\n')
    with pytest.raises(ConfigError) as error:
        load_gazetteer([extra])
    assert str(extra) in str(error.value) and ":2" in str(error.value) and "kind" in str(error.value)
