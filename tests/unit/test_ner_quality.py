"""NER measured against a labelled set (per label, with and without the gazetteer), and
properties of the clean + NER chain over generated articles.

``pytest -s tests/unit/test_ner_quality.py`` prints the table docs/enrichment.md records.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream import Article, Context
from stream.settings import Settings
from stream_clean import CleanProcessor
from stream_ner import NerProcessor
from stream_ner.evaluate import geo_table, load_labelled, rates, score, score_geo, table

LABELLED = load_labelled(Path(__file__).resolve().parents[1] / "data" / "ner_labelled.toml")


def processor(gazetteer: bool) -> NerProcessor:
    ner = NerProcessor()
    ner.setup(Context(settings=Settings(), config={"gazetteer": gazetteer}))
    return ner


@pytest.fixture(scope="module")
def ner() -> NerProcessor:
    return processor(True)


@pytest.fixture(scope="module")
def results(ner: NerProcessor) -> dict[str, dict[str, dict[str, object]]]:
    measured = {"model only": score(LABELLED, processor(False)), "model + gazetteer": score(LABELLED, ner)}
    print()
    print(table(measured))  # type: ignore[arg-type]
    return measured  # type: ignore[return-value]


def test_the_labelled_set_is_big_enough_and_parses() -> None:
    assert len(LABELLED) >= 20
    assert {a.language for a in LABELLED} >= {"en", "fr", "de"}
    for article in LABELLED:
        assert "[" not in article.text and "](" not in article.text, article.id
        for start, end, _ in article.gold:
            assert article.text[start:end].strip() == article.text[start:end] != ""


def test_english_wire_copy_meets_the_floor(results: dict[str, dict[str, dict[str, object]]]) -> None:
    """Floors just under what was measured (docs/enrichment.md): a drop is a regression."""
    en = results["model + gazetteer"]["en"]
    floors = {"PERSON": (0.88, 0.95), "ORG": (0.82, 0.83), "PLACE": (0.95, 0.93)}
    for cls, (recall_floor, precision_floor) in floors.items():
        recall, precision = rates(en[cls])  # type: ignore[arg-type]
        assert recall >= recall_floor and precision >= precision_floor, (cls, recall, precision)


def test_the_gazetteer_adds_places_without_losing_precision(results: dict[str, dict[str, dict[str, object]]]) -> None:
    before = rates(results["model only"]["en"]["PLACE"])  # type: ignore[arg-type]
    after = rates(results["model + gazetteer"]["en"]["PLACE"])  # type: ignore[arg-type]
    assert after[0] >= before[0] + 0.05
    assert after[1] >= before[1] - 0.01


DATA = Path(__file__).resolve().parents[1] / "data"


def test_the_entity_list_finds_what_the_model_misses_without_losing_precision(ner: NerProcessor) -> None:
    """The labelled set with a watch list of 50 well-known people and organisations
    (tests/data/entities_50.toml): floors just under what was measured (docs/enrichment.md)."""
    listed = NerProcessor()
    listed.setup(Context(settings=Settings(), config={"processes": 1, "entities_file": str(DATA / "entities_50.toml")}))
    en = score(LABELLED, listed)["en"]
    print(table({"list on": {"en": en}}))
    floors = {"PERSON": (0.99, 0.99), "ORG": (0.90, 0.90), "PLACE": (0.96, 0.96)}
    for cls, (recall_floor, precision_floor) in floors.items():
        recall, precision = rates(en[cls])
        assert recall >= recall_floor and precision >= precision_floor, (cls, recall, precision)


def test_places_resolve_to_the_right_namesake(ner: NerProcessor) -> None:
    """tests/data/geo_labelled.toml: 74 place mentions, half of them namesakes or qualified;
    accuracy at least 0.95 on the articles tuned on and on the held-out ones."""
    articles = load_labelled(DATA / "geo_labelled.toml")
    parts = {part: score_geo([a for a in articles if a.held_out == held], ner)
             for part, held in (("tuned on", False), ("held out", True))}
    print(geo_table(parts))
    assert sum(c["gold"] for c in parts.values()) >= 60
    assert sum(c["namesakes"] for c in parts.values()) * 2 >= sum(c["gold"] for c in parts.values())
    for counts in parts.values():
        assert counts["right"] / counts["gold"] >= 0.95, counts


def test_german_and_spanish_places_without_a_model_meet_the_floor(ner: NerProcessor) -> None:
    """tests/data/places_labelled.toml: 12 German and 12 Spanish articles, places by the
    gazetteer alone; recall and precision at least 0.9 in both parts (the issue's aim), at
    least 0.95 as measured (docs/enrichment.md)."""
    articles = load_labelled(DATA / "places_labelled.toml")
    for held in (False, True):
        measured = score([a for a in articles if a.held_out == held], ner)
        print(table({f"held out: {held}": measured}))
        assert set(measured) == {"de", "es"}
        for language in ("de", "es"):
            recall, precision = rates(measured[language]["PLACE"])
            assert recall >= 0.95 and precision >= 0.95, (language, held, recall, precision)


def test_a_language_without_a_model_gets_places_and_no_guesses(
        results: dict[str, dict[str, dict[str, object]]]) -> None:
    """A German article gets the gazetteer's places, and no people or organisations guessed
    by another language's model."""
    de = results["model + gazetteer"]["de"]
    assert de["PLACE"]["tp"] >= 3 and de["PLACE"]["fp"] == 0  # type: ignore[index]
    for cls in ("PERSON", "ORG"):
        assert de[cls]["fp"] == 0 and de[cls]["tp"] == 0  # type: ignore[index]


# -- properties of clean + NER over generated articles ---------------------------------------

BODY = [
    "Ukraine's defence ministry said on Monday that Russian forces had moved more armour towards Kharkiv.",
    "Olaf Scholz told reporters in Berlin that Germany would pay for a field hospital.",
    "NATO said it was sending more ships and fighter jets to Romania and Bulgaria.",
    "Residents of Druzhkivka said shelling had damaged houses near the railway station.",
    "The talks in Geneva lasted almost eight hours, officials said.",
]
#: Boilerplate that carries names of its own: none of them may become an entity.
NOISE = [
    ("end", "Prince Harry Stuns Fans With New Interview - Selena Gomez Reveals New Look - "
            "Taylor Swift Adds Tour Dates"),
    ("start", "By Jennifer Hawkins and Marcus Webb"),
    ("end", "Reporting by Jennifer Hawkins in Odessa; Editing by Marcus Webb"),
    ("middle", "Ukrainian servicemen ride a tank. REUTERS/Ivan Petrovsky"),
    ("end", "© 2022 Example Media Group. All rights reserved."),
    ("end", "Most Read"),
    ("end", "Kim Kardashian opens up about divorce"),
    ("end", "Beyoncé breaks streaming record"),
    ("start", "Home > World > Europe"),
    ("end", "Follow Jennifer Hawkins on Twitter"),
    ("end", "Jennifer Hawkins is a senior correspondent covering Eastern Europe for Example News."),
]
_CAPITALISED = re.compile(r"\b[A-Z][\w’'-]+")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.lists(st.sampled_from(BODY), min_size=2, max_size=5, unique=True),
       noise=st.lists(st.sampled_from(NOISE), min_size=1, max_size=6, unique=True))
def test_no_entity_comes_from_removed_boilerplate_and_offsets_slice_clean_text(
        ner: NerProcessor, body: list[str], noise: list[tuple[str, str]]) -> None:
    start = [line for at, line in noise if at == "start"]
    middle = [line for at, line in noise if at == "middle"]
    end = [line for at, line in noise if at == "end"]
    text = "\n\n".join([*start, body[0], *middle, *body[1:], *end])
    article = Article(id="p", text=text)
    clean = CleanProcessor()
    clean.setup(Context(settings=Settings(), config={"detect_language": False}))
    clean.process([article])
    ner.process([article])
    only_in_noise = {w for _, line in noise for w in _CAPITALISED.findall(line)} - {
        w for line in BODY for w in _CAPITALISED.findall(line)}
    for m in article.entities:
        assert article.clean_text[m["start"]:m["end"]] == m["text"]
        assert not set(_CAPITALISED.findall(m["text"])) & only_in_noise, (m, article.clean_text)


# -- spans respect the text (issue 27) -------------------------------------------------------

#: Paragraphs that end without a full stop on a name, and paragraphs that start with a
#: capitalised word: the model used to run an entity across the break ("Chernihiv\n\nStorms").
ENDS_ON_A_NAME = [
    "By the evening the convoy had reached Chernihiv",
    "Officials met their counterparts from the European Commission",
    "The statement was signed by Olaf Scholz",
    "Water levels kept rising along the Danube near Passau",
    "Residents were evacuated from villages near Cahul",
]
STARTS_CAPITALISED = [
    "Storms are expected later this week.",
    "Prices for grain rose sharply in Odesa.",
    "Reuters could not verify the reports.",
    "New measures take effect on Monday.",
]
EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "articles").glob("*.txt"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ends=st.lists(st.sampled_from(ENDS_ON_A_NAME), min_size=1, max_size=4, unique=True),
       starts=st.lists(st.sampled_from(STARTS_CAPITALISED), min_size=1, max_size=4, unique=True))
def test_no_entity_crosses_a_paragraph_break(ner: NerProcessor, ends: list[str], starts: list[str]) -> None:
    paragraphs = [p for pair in zip(ends, starts, strict=False) for p in pair] + ends[len(starts):] + starts[len(ends):]
    article = Article(id="p", text="\n\n".join(paragraphs), clean_text="\n\n".join(paragraphs))
    ner.process([article])
    for m in article.entities:
        assert "\n" not in m["text"] and article.clean_text[m["start"]:m["end"]] == m["text"], m


def test_no_entity_crosses_a_paragraph_break_in_the_corpora(ner: NerProcessor) -> None:
    """The sample feed (cleaned) and the labelled set."""
    articles = [Article(id=p.stem, text=p.read_text()) for p in EXAMPLES]
    clean = CleanProcessor()
    clean.setup(Context(settings=Settings(), config={"detect_language": False}))
    clean.process(articles)
    articles += [Article(id=a.id, text=a.text, clean_text=a.text, language=a.language) for a in LABELLED]
    ner.process(articles)
    assert sum(len(a.entities) for a in articles) > 100
    crossing = [(a.id, m["text"]) for a in articles for m in a.entities if "\n" in m["text"]]
    assert not crossing, crossing


def test_the_convoy_reached_chernihiv_before_the_storms(ner: NerProcessor) -> None:
    """The issue's example: no "Chernihiv\n\nStorms" (WORK_OF_ART)."""
    text = "By the evening the convoy had reached Chernihiv\n\nStorms are expected later this week."
    article = Article(id="c", text=text, clean_text=text)
    ner.process([article])
    assert all("\n" not in m["text"] for m in article.entities), article.entities


_SENTENCE_END = re.compile(r"[.!?][\"'”’)]?\s+[A-ZÀ-Ý]")


def test_no_entity_crosses_a_sentence_end_unless_the_model_s_span_does(ner: NerProcessor) -> None:
    """Over the sample feed and the three labelled sets: what the entity list and the
    gazetteer add never runs over a sentence end, and a mention that does is the model's own
    span, untouched."""
    articles = [Article(id=p.stem, text=p.read_text()) for p in EXAMPLES]
    clean = CleanProcessor()
    clean.setup(Context(settings=Settings(), config={"detect_language": False}))
    clean.process(articles)
    for path in ("ner_labelled.toml", "geo_labelled.toml", "places_labelled.toml"):
        articles += [Article(id=a.id, text=a.text, clean_text=a.text, language=a.language)
                     for a in load_labelled(DATA / path)]
    ner.process(articles)
    assert sum(len(a.entities) for a in articles) > 400
    for article in articles:
        crossing = [m for m in article.entities if _SENTENCE_END.search(m["text"])]
        if not crossing:
            continue
        language = (article.language or "en").split("-")[0]
        model = {(m["start"], m["end"]) for _, found in ner._spans(language, [article.clean_text]) for m in found[0]}
        for m in crossing:
            assert "source" not in m and (m["start"], m["end"]) in model, (article.id, m)
