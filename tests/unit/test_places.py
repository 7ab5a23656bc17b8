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
