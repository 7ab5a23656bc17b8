"""The user's own entities, found and linked (issue 27): every listed name and alias is
found in the text even where the model missed it, with the list's label, id and kb_id."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream import Article, ConfigError, Context
from stream.settings import Settings
from stream_ner import NerProcessor
from stream_ner.canonical import load_aliases
from stream_ner.listed import ListedMatcher

WATCH = """\
[[entity]]
name = "Electric Reliability Council of Texas"
label = "ORG"
aliases = ["ERCOT"]
kb_id = "Q5357590"

[[entity]]
name = "Gazprom"
label = "ORG"
kb_id = "Q102673"

[[entity]]
name = "Bundestag"
label = "ORG"
aliases = ["the German parliament"]

[[entity]]
name = "Olaf Scholz"
label = "PERSON"
aliases = ["Scholz"]
kb_id = "Q61053"

[[entity]]
name = "North Atlantic Treaty Organization"
label = "ORG"
aliases = ["NATO", "the Alliance"]
"""


@pytest.fixture(scope="module")
def watch_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    f = tmp_path_factory.mktemp("watch") / "watch.toml"
    f.write_text(WATCH)
    return f


@pytest.fixture(scope="module")
def ner(watch_file: Path) -> NerProcessor:
    processor = NerProcessor()
    processor.setup(Context(settings=Settings(), config={"processes": 1, "entities_file": str(watch_file)}))
    return processor


def matcher(watch_file: Path) -> ListedMatcher:
    return ListedMatcher(load_aliases(watch_file))


def found(m: ListedMatcher, text: str) -> list[str]:
    return [text[s:e] for s, e, _alias in m.find(text)]


def test_an_acronym_is_found_only_as_written(watch_file: Path) -> None:
    m = matcher(watch_file)
    assert found(m, "Texas grid operator ERCOT warned of outages.") == ["ERCOT"]
    assert found(m, "the ercot of it") == []


def test_names_are_found_as_written_or_in_capitals_never_in_lower_case(watch_file: Path) -> None:
    m = matcher(watch_file)
    assert found(m, "GAZPROM CUTS SUPPLIES; Gazprom said") == ["GAZPROM", "Gazprom"]
    assert found(m, "the gazprom pipeline") == []
    assert found(m, "a defensive alliance, then the Alliance met") == ["Alliance"]  # "the" is not the name


def test_only_on_word_boundaries_and_a_hyphen_joins_words(watch_file: Path) -> None:
    m = matcher(watch_file)
    assert found(m, "Scholzes and AntiGazprom and Gazprom-Neft") == []
    assert found(m, "Scholz, Gazprom.") == ["Scholz", "Gazprom"]


def test_the_longest_listed_form_wins(watch_file: Path) -> None:
    text = "The Electric Reliability Council of Texas (ERCOT) said"
    assert found(matcher(watch_file), text) == ["Electric Reliability Council of Texas", "ERCOT"]


def test_forms_under_three_characters_are_not_searched_for() -> None:
    f = load_aliases()  # the built-in list has "EU" and "US"
    assert "EU" in f.forms and "US" in f.forms
    m = ListedMatcher(f)
    assert found(m, "The EU and the US agreed.") == []


def test_a_listed_entity_the_model_missed_is_found_linked_and_in_the_summary(ner: NerProcessor) -> None:
    text = ("Gazprom cut gas supplies on Monday. ERCOT, which runs the Texas grid, asked customers to save power. "
            "In Berlin, the Bundestag met.")
    article = Article(id="w", text=text, clean_text=text, language="en")
    ner.process([article])
    by_text = {m["text"]: m for m in article.entities}
    for name, label, kb_id in (("Gazprom", "ORG", "Q102673"), ("ERCOT", "ORG", "Q5357590"), ("Bundestag", "ORG", None)):
        assert by_text[name]["label"] == label and by_text[name].get("kb_id") == kb_id, by_text.get(name)
    summary = {e["canonical"]: e for e in article.entity_summary}
    council = summary["Electric Reliability Council of Texas"]
    assert council["kb_id"] == "Q5357590" and council["entity_id"] == "electric-reliability-council-of-texas"
    for m in article.entities:
        assert article.clean_text[m["start"]:m["end"]] == m["text"]


def test_a_listed_name_overrides_the_model_label_and_keeps_it_in_model_label(ner: NerProcessor) -> None:
    text = "Olaf Scholz told reporters that Scholz would not resign."
    article = Article(id="s", text=text, clean_text=text, language="en")
    ner.process([article])
    people = [m for m in article.entities if "Scholz" in m["text"]]
    assert people and all(m["label"] == "PERSON" and m.get("kb_id") == "Q61053" for m in people), people


def test_a_longer_model_span_keeps_its_place() -> None:
    m = ListedMatcher(load_aliases())
    text = "the Russian Foreign Ministry said"
    model = [{"text": "Russian Foreign Ministry", "label": "ORG", "start": 4, "end": 28}]
    assert m.apply(text, [dict(x) for x in model]) == model


def test_entities_file_and_its_old_name_aliases_file_are_both_read(watch_file: Path) -> None:
    for key in ("entities_file", "aliases_file"):
        processor = NerProcessor()
        processor.setup(Context(settings=Settings(), config={"processes": 1, key: str(watch_file)}))
        assert processor.aliases.get("ERCOT") is not None


def test_a_kb_id_that_is_not_a_string_names_the_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "watch.toml"
    f.write_text('[[entity]]\nname = "Gazprom"\nlabel = "ORG"\nkb_id = 102673\n')
    with pytest.raises(ConfigError, match=r"watch.toml:2: .*kb_id must be a string"):
        load_aliases(f)


def test_a_listed_person_named_like_a_country_stays_a_person(tmp_path: Path) -> None:
    """The list wins over the gazetteer's corrections: "Jordan" on a watch list as a person
    is not relabelled the country, and gets no ``geo``."""
    f = tmp_path / "watch.toml"
    f.write_text('[[entity]]\nname = "Jordan"\nlabel = "PERSON"\nkb_id = "Q41421"\n')
    processor = NerProcessor()
    processor.setup(Context(settings=Settings(), config={"processes": 1, "entities_file": str(f)}))
    text = "Jordan scored 30 points on Sunday."
    article = Article(id="j", text=text, clean_text=text, language="en")
    processor.process([article])
    [jordan] = [m for m in article.entities if m["text"] == "Jordan"]
    assert jordan["label"] == "PERSON" and "geo" not in jordan and jordan["kb_id"] == "Q41421", jordan
    assert all("_listed" not in m for m in article.entities)
