"""The alerting processor, with rules of our own."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from stream import Article, ConfigError, Context
from stream.cli import main
from stream.settings import Settings
from stream.testing import run_chain
from stream_alerts import AlertsProcessor, alert_id
from stream_alerts.matcher import Matcher
from stream_alerts.rules import parse_rules

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "articles"


def fired(rules: str, text: str, language: str | None = None) -> list[str]:
    return [m.rule.id for m in Matcher(parse_rules(rules)).match(text, language)]


def rule(any_: str = "", all_: str = "", none: str = "", match: str = "lemma", extra: str = "") -> str:
    out = '[[rules]]\nid = "r"\n'
    for key, value in (("any", any_), ("all", all_), ("none", none)):
        if value:
            out += f"{key} = [{', '.join(repr(v) for v in value.split('|'))}]\n"
    return out + f'match = "{match}"\n{extra}'


@pytest.mark.parametrize(("text", "hit"), [
    ("The troop moved.", True), ("Troops moved.", True), ("TROOPS moved.", True),
    ("Paratroopers landed.", False), ("State troopers arrived.", False),
])
def test_lemma_matching_takes_inflections_but_not_other_words(text: str, hit: bool) -> None:
    assert fired(rule("troops"), text) == (["r"] if hit else [])


@pytest.mark.parametrize(("text", "hit"), [
    ("A full invasion.", True), ("Two invasions.", True), ("An invasive species.", False),
    ("They will invade.", False),
])
def test_invasion_matches_its_plural_and_never_invasive(text: str, hit: bool) -> None:
    assert fired(rule("invasion"), text) == (["r"] if hit else [])


@pytest.mark.parametrize(("term", "language", "text", "hit"), [
    ("troops", "en", "The troop moved.", True),       # English: inflections
    ("troops", None, "The troop moved.", True),       # no language reads as English
    ("troops", "en-GB", "The troop moved.", True),
    ("troupes", "fr", "Les troupes avancent.", True),  # the rule's own word
    ("troupes", "fr", "La troupe avance.", False),     # no French lemmatiser: exact words only
    ("troops", "fr", "Les troop avancent.", False),   # nor English inflections in French
    ("troops", "fr", "Les troops avancent.", True),
])
def test_lemma_matching_is_english_and_other_languages_match_exact_words(
        term: str, language: str | None, text: str, hit: bool) -> None:
    assert fired(rule(term), text, language) == (["r"] if hit else [])


def test_a_rule_with_languages_applies_to_articles_of_those_languages_only() -> None:
    rules = rule("invasion", extra='languages = ["fr"]\n')
    assert fired(rules, "Une invasion de l'Ukraine.", "fr") == ["r"]
    assert fired(rules, "An invasion of Ukraine.", "en") == []
    assert fired(rules, "An invasion of Ukraine.", None) == []
    assert fired(rule("invasion"), "Une invasion de l'Ukraine.", "fr") == ["r"]  # no languages: every article


def test_the_processor_passes_the_article_language(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(rule("invasion", extra='languages = ["fr"]\n'))
    proc = AlertsProcessor()
    proc.setup(Context(settings=Settings(rules=str(path))))
    fr = Article(id="f", text="Une invasion.", clean_text="Une invasion.", language="fr")
    en = Article(id="e", text="An invasion.", clean_text="An invasion.", language="en")
    proc.process([fr, en])
    assert [len(fr.alerts), len(en.alerts)] == [1, 0]


def test_word_matching_is_exact_words_only() -> None:
    assert fired(rule("troops", match="word"), "Troops moved.") == ["r"]
    assert fired(rule("troops", match="word"), "A troop moved.") == []


def test_phrases_match_across_line_breaks_and_repeated_spaces() -> None:
    assert fired(rule("military buildup"), "a large military\n\n   buildups near the border") == ["r"]
    assert fired(rule("military buildup"), "military forces and a buildup") == []


def test_all_and_none() -> None:
    rules = rule("troops", all_="border", none="exercise")
    assert fired(rules, "Troops gathered at the border.") == ["r"]
    assert fired(rules, "Troops gathered.") == []
    assert fired(rules, "Troops at the border for an exercise.") == []


def test_proximity() -> None:
    rules = '[[rules]]\nid = "r"\nproximity = [{terms = ["troops", "border"], within = 5}]\n'
    assert fired(rules, "Troops massed along the border.") == ["r"]
    assert fired(rules, "Troops were seen. Many days later, and far away, people talked about the border.") == []


def process(rules_text: str, tmp_path: Path, *articles: Article) -> AlertsProcessor:
    path = tmp_path / "rules.toml"
    path.write_text(rules_text)
    proc = AlertsProcessor()
    proc.setup(Context(settings=Settings(rules=str(path))))
    proc.process(list(articles))
    return proc


def test_entity_conditions_use_the_canonical_entities(tmp_path: Path) -> None:
    rules = rule("troops", extra='entities = [{label = "GPE", canonical = "Ukraine"}]\n')
    a = Article(id="a", text="Troops moved.", clean_text="Troops moved.",
                entity_summary=[{"canonical": "Ukraine", "label": "GPE", "mentions": 1}])
    b = Article(id="b", text="Troops moved.", clean_text="Troops moved.",
                entity_summary=[{"canonical": "Georgia", "label": "GPE", "mentions": 1}])
    process(rules, tmp_path, a, b)
    assert [x["rule_id"] for x in a.alerts] == ["r"] and b.alerts == []


def test_an_alert_follows_the_contract_with_offsets_and_a_snippet(tmp_path: Path) -> None:
    text = "Talks went on. On Jan. 24 the troops moved toward the border. Markets fell."
    a = Article(id="art-1", text=text, clean_text=text, title="T", url="https://example.org/1")
    process(rule("troops") + 'severity = "high"\n', tmp_path, a)
    [alert] = a.alerts
    assert alert["alert_id"] == alert_id("r", "art-1")
    assert (alert["rule_id"], alert["article_id"], alert["severity"], alert["title"]) == ("r", "art-1", "high", "T")
    [m] = alert["matched"]
    assert text[m["start"]:m["end"]] == "troops" == m["text"]
    assert alert["snippet"] == "On Jan. 24 the troops moved toward the border."


def test_a_duplicate_raises_no_alert_unless_the_rule_opts_in(tmp_path: Path) -> None:
    dup = Article(id="d", text="Troops.", clean_text="Troops.", dedup={"status": "near", "duplicate_of": "x"})
    proc = process(rule("troops"), tmp_path, dup)
    assert dup.alerts == [] and proc.duplicates_skipped["r"] == 1
    dup2 = Article(id="d", text="Troops.", clean_text="Troops.", dedup={"status": "exact", "duplicate_of": "x"})
    process(rule("troops", extra="duplicates = true\n"), tmp_path, dup2)
    assert len(dup2.alerts) == 1


def test_no_alert_from_boilerplate() -> None:
    [path] = EXAMPLES.glob("004_*.txt")
    rules = '[[rules]]\nid = "celebrity"\nany = ["Meghan Markle", "Selena Gomez", "divorce"]\n'
    raw = Matcher(parse_rules(rules)).match(path.read_text())
    assert [m.rule.id for m in raw] == ["celebrity"]  # the noise is in the raw text ...
    result = run_chain([{"id": "004", "text": path.read_text()}], plugins=["clean", "alerts"],
                       settings=Settings(rules=_write(rules)))
    assert result.articles[0].alerts == []  # ... and not in clean_text


def _write(text: str) -> str:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as fh:
        fh.write(text)
    return fh.name


def test_cooldown_suppresses_and_counts_and_a_redelivery_decides_the_same(tmp_path: Path) -> None:
    rules = rule("troops", extra='cooldown = {minutes = 60, per = "GPE"}\n')

    def art(i: str, gpe: str) -> Article:
        return Article(id=i, text="Troops.", clean_text="Troops.",
                       entity_summary=[{"canonical": gpe, "label": "GPE", "mentions": 1}])

    a, b, c = art("a", "Ukraine"), art("b", "Ukraine"), art("c", "Georgia")
    proc = process(rules, tmp_path, a, b, c)
    assert [len(x.alerts) for x in (a, b, c)] == [1, 0, 1]
    assert proc.suppressed["r"] == 1
    again = art("a", "Ukraine")
    proc.process([again])
    assert len(again.alerts) == 1  # the same article, redelivered: the same decision


def test_a_burst_fires_once_when_enough_distinct_articles_match(tmp_path: Path) -> None:
    rules = rule("troops", extra="burst = {count = 3, minutes = 10}\n")
    arts = [Article(id=f"a{i}", text="Troops.", clean_text="Troops.") for i in range(5)]
    proc = process(rules, tmp_path, arts[0], arts[1], arts[0])  # a0 redelivered: not distinct
    assert not any(x["kind"] == "burst" for a in arts for x in a.alerts)
    proc.process(arts[2:])
    bursts = [(a.id, x) for a in arts for x in a.alerts if x["kind"] == "burst"]
    assert len(bursts) == 1 and bursts[0][0] == "a2"
    assert bursts[0][1]["articles"] == ["a0", "a1", "a2"]
    again = Article(id="a2", text="Troops.", clean_text="Troops.")
    proc.process([again])  # redelivered: the same burst alert, same id
    [burst] = [x for x in again.alerts if x["kind"] == "burst"]
    assert burst["alert_id"] == bursts[0][1]["alert_id"] and burst["articles"] == ["a0", "a1", "a2"]


def test_a_changed_rules_file_is_picked_up_and_a_bad_one_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(rule("troops"))
    proc = AlertsProcessor()
    proc.setup(Context(settings=Settings(rules=str(path))))
    a = Article(id="a", text="Sanctions and troops.", clean_text="Sanctions and troops.")
    proc.process([a])
    assert [x["matched"][0]["text"] for x in a.alerts] == ["troops"]

    path.write_text(rule("sanctions"))
    os.utime(path, (time.time() + 5, time.time() + 5))
    proc._checked = 0
    b = Article(id="b", text="Sanctions and troops.", clean_text="Sanctions and troops.")
    proc.process([b])
    assert [x["matched"][0]["text"] for x in b.alerts] == ["Sanctions"]

    path.write_text('[[rules]]\nid = "r"\nany = ["troops"]\nmatch = "stem"\n')
    os.utime(path, (time.time() + 10, time.time() + 10))
    proc._checked = 0
    c = Article(id="c", text="Sanctions and troops.", clean_text="Sanctions and troops.")
    proc.process([c])  # the bad file is rejected; the old rules stay
    assert [x["matched"][0]["text"] for x in c.alerts] == ["Sanctions"]


@pytest.mark.parametrize(("text", "message"), [
    ('[[rules]]\nid = "a"\nany = ["x"]\nseverity = "urgent"\n', ":4: rule 'a': severity must be one of"),
    ('[[rules]]\nid = "a"\nany = ["x"]\nmatch = "stem"\n', ":4: rule 'a': match must be"),
    ('[[rules]]\nid = "a"\n', ":2: rule 'a': a rule needs at least one term (any, all or proximity) or an entity"),
    ('[[rules]]\nid = "a"\nany = ["x"]\n[[rules]]\nid = "a"\nany = ["y"]\n', ":5: rule 'a' is defined twice"),
    ('[[rules]]\nid = "a"\nany = "x"\n', ":3: rule 'a': any must be a list"),
    ('[[rules]]\nid = "a"\nany = ["x"]\ncolour = 1\n', ":2: rule 'a': unknown key(s) colour"),
    ('[[rules]]\nid = "a"\nany = ["x"]\nlanguages = "fr"\n', ":4: rule 'a': languages must be a list of ISO 639-1"),
    ('[[rules]]\nid = "a"\nany = ["x"]\nlanguages = ["French"]\n', ":4: rule 'a': languages must be"),
])
def test_an_invalid_rules_file_names_the_line_the_rule_and_the_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_rules(text, "r.toml")
    assert message in str(info.value)


def test_stream_rules_check_and_an_invalid_file_stopping_the_worker_at_start(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(rule("troops"))
    bad.write_text('[[rules]]\nid = "a"\nany = ["x"]\nseverity = "urgent"\n')
    runner = CliRunner()
    ok = runner.invoke(main, ["rules", "check", str(good)])
    assert ok.exit_code == 0 and "1 rule(s) OK" in ok.output
    ko = runner.invoke(main, ["rules", "check", str(bad)])
    assert ko.exit_code == 78 and "bad.toml:4: rule 'a': severity" in ko.output
    worker = runner.invoke(main, ["worker", "--rules", str(bad)])
    assert worker.exit_code == 78 and "bad.toml:4" in worker.output


def test_stream_process_with_rules_shows_the_alerts(tmp_path: Path) -> None:
    rules = tmp_path / "r.toml"
    rules.write_text(rule("invasion") + 'severity = "high"\n')
    result = CliRunner().invoke(main, ["process", "--rules", str(rules), *map(str, sorted(EXAMPLES.glob("*.txt")))])
    assert result.exit_code == 0, result.output
    import orjson

    records = [orjson.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    with_alerts = {r["id"][:3] for r in records if r["alerts"]}
    assert with_alerts == {"000", "001", "004"}  # the three articles that speak of an invasion


def test_stream_rules_test_prints_the_difference_between_two_rule_files(tmp_path: Path) -> None:
    old, new = tmp_path / "old.toml", tmp_path / "new.toml"
    old.write_text(rule("invasion"))
    new.write_text(rule("sanctions"))
    files = [str(p) for p in sorted(EXAMPLES.glob("*.txt"))]
    result = CliRunner().invoke(main, ["rules", "test", "--rules", str(new), "--against", str(old), *files])
    assert result.exit_code == 0, result.output
    assert "+ 000_e9839294c30e89ed  r" not in result.output  # same rule id on both sides for 000
    assert "== difference: 0 new alert(s), 1 no longer raised" in result.output
    assert "- 001_8e093685829c3042  r" in result.output


def test_a_rule_on_entity_ids_fires_on_an_article_that_names_a_listed_entity(tmp_path: Path) -> None:
    """Issue 27: ``entity_ids`` takes the ``kb_id`` or the ``entity_id`` of the NER plugin's
    entity list (a watch list)."""
    path = tmp_path / "rules.toml"
    path.write_text(rule("gas supplies", extra='entity_ids = ["Q102673", "ercot"]\n'))
    proc = AlertsProcessor()
    proc.setup(Context(settings=Settings(rules=str(path))))
    text = "Gas supplies were cut on Monday."
    gazprom = {"canonical": "Gazprom", "label": "ORG", "entity_id": "gazprom", "kb_id": "Q102673"}
    by_kb = Article(id="k", text=text, clean_text=text, entity_summary=[gazprom])
    by_id = Article(id="i", text=text, clean_text=text,
                    entity_summary=[{"canonical": "ERCOT", "label": "ORG", "entity_id": "ercot"}])
    other = Article(id="o", text=text, clean_text=text,
                    entity_summary=[{"canonical": "Rosneft", "label": "ORG", "entity_id": "rosneft"}])
    proc.process([by_kb, by_id, other])
    assert [len(a.alerts) for a in (by_kb, by_id, other)] == [1, 1, 0]


def test_entity_ids_must_be_a_list_of_ids() -> None:
    with pytest.raises(ValueError, match="entity_ids must be a list of entity ids"):
        parse_rules(rule("gas", extra='entity_ids = "Q102673"\n'))


def test_a_rule_on_entities_alone_fires_on_every_article_that_names_them(tmp_path: Path) -> None:
    """A watch list without a term: "tell me whenever Gazprom is named".  The alert's
    matched entries are the entity's mentions, its snippet is around the first."""
    path = tmp_path / "rules.toml"
    path.write_text('[[rules]]\nid = "watch"\nentity_ids = ["Q102673"]\nnone = ["football"]\n\n'
                    '[[rules]]\nid = "people"\nentities = [{ canonical = "Olaf Scholz" }]\n')
    proc = AlertsProcessor()
    proc.setup(Context(settings=Settings(rules=str(path))))
    text = "Prices rose on Monday. Gazprom said it would cut supplies, and Gazprom shares fell."
    gazprom = {"canonical": "Gazprom", "label": "ORG", "entity_id": "gazprom", "kb_id": "Q102673"}
    mentions = [dict(gazprom, text="Gazprom", start=23, end=30), dict(gazprom, text="Gazprom", start=64, end=71)]
    named = Article(id="n", text=text, clean_text=text, entity_summary=[dict(gazprom, mentions=2)], entities=mentions)
    other = Article(id="o", text="Prices rose on Monday.", clean_text="Prices rose on Monday.")
    sport = Article(id="s", text=text + " football", clean_text=text + " football",
                    entity_summary=[dict(gazprom, mentions=2)], entities=mentions)
    proc.process([named, other, sport])
    assert [len(a.alerts) for a in (named, other, sport)] == [1, 0, 0]
    [alert] = named.alerts
    assert alert["rule_id"] == "watch" and [(m["term"], m["start"]) for m in alert["matched"]] == [
        ("Q102673", 23), ("Q102673", 64)]
    assert "Gazprom said it would cut supplies" in alert["snippet"]


def test_a_rules_file_of_entity_rules_only_matches_titles_too(tmp_path: Path) -> None:
    """No rule has a term, so the matcher has no patterns: scanning a title must not fail."""
    path = tmp_path / "rules.toml"
    path.write_text('[[rules]]\nid = "watch"\nentity_ids = ["Q102673"]\nfields = ["title", "text"]\n')
    proc = AlertsProcessor()
    proc.setup(Context(settings=Settings(rules=str(path))))
    text = "Gazprom cut supplies on Monday."
    gazprom = {"canonical": "Gazprom", "label": "ORG", "entity_id": "gazprom", "kb_id": "Q102673"}
    article = Article(id="g", text=text, clean_text=text, title="Gas supplies cut",
                      entity_summary=[dict(gazprom, mentions=1)],
                      entities=[dict(gazprom, text="Gazprom", start=0, end=7)])
    proc.process([article])
    assert [a["rule_id"] for a in article.alerts] == ["watch"]
