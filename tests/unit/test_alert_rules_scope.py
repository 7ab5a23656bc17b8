"""#20 rule semantics: fields (title, lead, text), title_severity, prefix terms, sources and
exclude_sources, min_mentions, and the rules that can never match."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from stream import Article, ConfigError, Context
from stream.cli import main
from stream.settings import Settings
from stream_alerts import AlertsProcessor
from stream_alerts.matcher import Matcher
from stream_alerts.rules import never_matches, parse_rules

LEAD = "Troops crossed the border at dawn, officials said."
BODY = "The talks in Geneva resumed later.\n\nSanctions were discussed by the ministers."
TEXT = f"{LEAD}\n\n{BODY}"


def matches(rules: str, text: str = TEXT, title: str | None = None, source: str | None = None) -> dict[str, list]:
    return {m.rule.id: m.hits for m in Matcher(parse_rules(rules)).match(text, "en", title=title, source=source)}


def alerts(rules: str, article: Article, tmp_path: Path) -> list[dict]:
    path = tmp_path / "rules.toml"
    path.write_text(rules)
    proc = AlertsProcessor(path)
    proc.setup(Context(settings=Settings(rules=str(path))))
    proc.process([article])
    return article.alerts


# -- fields -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "term", "title", "hit"), [
    ('["text"]', "troops", None, True),
    ('["lead"]', "troops", None, True),                    # in the first paragraph
    ('["lead"]', "sanctions", None, False),                # in the third paragraph only
    ('["text"]', "sanctions", None, True),
    ('["title"]', "troops", "Markets rally", False),       # in the text, not in the title
    ('["title"]', "troops", "Troops mass at the border", True),
    ('["title", "lead"]', "sanctions", "New sanctions", True),
    ('["title", "lead"]', "geneva", "New sanctions", False),
])
def test_fields_scope_where_a_rule_looks(fields: str, term: str, title: str | None, hit: bool) -> None:
    rules = f'[[rules]]\nid = "r"\nany = ["{term}"]\nfields = {fields}\n'
    assert ("r" in matches(rules, title=title)) is hit


def test_hits_carry_their_field_and_offsets_into_it() -> None:
    title = "Sanctions on Moscow: troops stay"
    rules = '[[rules]]\nid = "r"\nany = ["troops"]\nfields = ["title", "text"]\n'
    hits = matches(rules, title=title)["r"]
    assert [(h.field, h.start, h.end) for h in hits] == [("title", 21, 27), ("text", 0, 6)]
    assert title[21:27] == "troops" and TEXT[0:6] == "Troops"


def test_all_and_none_are_read_in_the_rule_fields_only() -> None:
    lead_only = '[[rules]]\nid = "r"\nall = ["troops", "border"]\nnone = ["sanctions"]\nfields = ["lead"]\n'
    assert "r" in matches(lead_only)               # "sanctions" is outside the lead
    whole = lead_only.replace('["lead"]', '["text"]')
    assert "r" not in matches(whole)


def test_proximity_counts_within_one_field() -> None:
    rules = ('[[rules]]\nid = "r"\nproximity = [{ terms = ["sanctions", "troops"], within = 3 }]\n'
             'fields = ["title", "text"]\n')
    # "Sanctions" ends the title and "Troops" starts the text: adjacent only if the fields ran on.
    assert "r" not in matches(rules, title="New sanctions")
    assert "r" in matches(rules, title="Troops face sanctions")


def test_a_title_match_raises_the_severity(tmp_path: Path) -> None:
    rules = ('[[rules]]\nid = "r"\nany = ["troops"]\nfields = ["title", "text"]\nseverity = "medium"\n'
             'title_severity = "critical"\n')
    in_title = Article(id="a", text=TEXT, clean_text=TEXT, title="Troops cross the border", language="en")
    text_only = Article(id="b", text=TEXT, clean_text=TEXT, title="Talks in Geneva", language="en")
    [a] = alerts(rules, in_title, tmp_path)
    [b] = alerts(rules, text_only, tmp_path)
    assert (a["severity"], b["severity"]) == ("critical", "medium")
    assert {m["field"] for m in a["matched"]} == {"title", "text"}
    assert [m["text"] for m in a["matched"] if m["field"] == "title"] == ["Troops"]


def test_an_alert_from_the_title_alone_quotes_the_title(tmp_path: Path) -> None:
    rules = '[[rules]]\nid = "r"\nany = ["ceasefire"]\nfields = ["title"]\n'
    article = Article(id="a", text=TEXT, clean_text=TEXT, title="Ceasefire  agreed", language="en")
    [alert] = alerts(rules, article, tmp_path)
    assert alert["snippet"] == "Ceasefire agreed" and alert["matched"][0]["field"] == "title"


# -- prefix terms ------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "hit"), [
    ("New sanctions were imposed.", True), ("They sanctioned the bank.", True), ("A sanction.", True),
    ("Sanctioning bodies met.", True), ("Unsanctioned trade.", False), ("The sanctuary opened.", False),
])
def test_a_prefix_term_matches_words_that_start_so(text: str, hit: bool) -> None:
    rules = '[[rules]]\nid = "r"\nany = ["sanction*"]\n'
    assert ("r" in matches(rules, text)) is hit


def test_a_prefix_hit_covers_the_whole_word_and_a_phrase_can_end_in_a_prefix() -> None:
    text = "They discussed economic sanctions today."
    [hit] = matches('[[rules]]\nid = "r"\nany = ["economic sanction*"]\n', text)["r"]
    assert text[hit.start:hit.end] == "economic sanctions"
    assert "r" not in matches('[[rules]]\nid = "r"\nany = ["economic sanction*"]\n', "economic policy sanctions")


def test_prefix_terms_share_the_automaton_with_the_other_rules() -> None:
    rules = "".join(f'[[rules]]\nid = "r{n}"\nany = ["word{n}*"]\n' for n in range(200))
    matcher = Matcher(parse_rules(rules))
    found = matcher.match("Here word17x and word170 appear.", "en")
    assert [m.rule.id for m in found] == ["r1", "r17", "r170"]  # word1* is a prefix of both


@pytest.mark.parametrize(("term", "message"), [
    ("*", "'*' is an empty prefix"), ("sanc*tion", "a '*' may only end a term"), ("troops**", "a '*' may only end"),
    ("- *", "empty prefix"),
])
def test_a_bad_prefix_stops_the_load_with_the_line(term: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_rules(f'[[rules]]\nid = "a"\nany = ["{term}"]\n', "r.toml")
    assert message in str(info.value) and "r.toml:3" in str(info.value), str(info.value)


# -- sources, min_mentions ---------------------------------------------------------------------

@pytest.mark.parametrize(("extra", "source", "hit"), [
    ('sources = ["Reuters", "AP"]', "reuters", True),
    ('sources = ["Reuters", "AP"]', "BBC", False),
    ('sources = ["Reuters"]', None, False),               # no source: not one of them
    ('exclude_sources = ["Example Wire"]', "example wire", False),
    ('exclude_sources = ["Example Wire"]', "Reuters", True),
    ('exclude_sources = ["Example Wire"]', None, True),
])
def test_sources_and_exclude_sources(extra: str, source: str | None, hit: bool) -> None:
    rules = f'[[rules]]\nid = "r"\nany = ["troops"]\n{extra}\n'
    assert ("r" in matches(rules, source=source)) is hit


@pytest.mark.parametrize(("count", "hit"), [(1, True), (4, True), (5, False)])
def test_min_mentions_counts_every_occurrence_of_the_any_terms(count: int, hit: bool) -> None:
    text = "Troops moved. More troops came, and an invasion began. The troop convoy stopped."
    rules = f'[[rules]]\nid = "r"\nany = ["troops", "invasion"]\nmin_mentions = {count}\n'
    assert ("r" in matches(rules, text)) is hit  # troops 2 (+ troop, lemma) and invasion 1: 4 in all


def test_min_mentions_counts_in_the_rule_fields_only() -> None:
    rules = '[[rules]]\nid = "r"\nany = ["troops"]\nmin_mentions = 2\nfields = ["lead"]\n'
    assert "r" not in matches(rules, "Troops moved.\n\nTroops stayed.")
    assert "r" in matches(rules.replace('["lead"]', '["text"]'), "Troops moved.\n\nTroops stayed.")


@pytest.mark.parametrize(("extra", "message", "line"), [
    ('fields = ["body"]', "fields: 'body' is not a field of an article", 4),
    ('fields = []', "fields must be a list", 4),
    ('title_severity = "critical"', "fields has no \"title\"", 4),
    ('fields = ["title"]\ntitle_severity = "urgent"', "title_severity must be one of", 5),
    ('sources = "Reuters"', "sources must be a list of source names", 4),
    ('min_mentions = 0', "min_mentions must be a whole number", 4),
])
def test_bad_new_keys_stop_the_load_with_the_line(extra: str, message: str, line: int) -> None:
    with pytest.raises(ConfigError) as info:
        parse_rules(f'[[rules]]\nid = "a"\nany = ["troops"]\n{extra}\n', "r.toml")
    assert message in str(info.value) and f"r.toml:{line}" in str(info.value), str(info.value)


# -- rules that can never match --------------------------------------------------------------

@pytest.mark.parametrize(("body", "problem"), [
    ('all = ["troops"]\nnone = ["troops"]', "all term 'troops' always holds the none term 'troops'"),
    ('all = ["troops"]\nnone = ["troop"]', "always holds the none term"),       # lemma: same family
    ('all = ["economic sanctions"]\nnone = ["sanction*"]', "always holds the none term 'sanction'"),
    ('any = ["troops", "army"]\nnone = ["troops", "army"]', "every term of any holds a none term"),
    ('any = ["troops"]\nsources = ["AP"]\nexclude_sources = ["ap"]', "every source of sources is also in"),
])
def test_never_matches_names_why(body: str, problem: str) -> None:
    [rule] = parse_rules(f'[[rules]]\nid = "a"\n{body}\n')
    assert any(problem in p for p in never_matches(rule)), never_matches(rule)


@pytest.mark.parametrize("body", [
    'all = ["troops"]\nnone = ["troops border"]',          # a longer none term: not always there
    'any = ["troops", "army"]\nnone = ["troops"]',         # "army" can still match
    'all = ["sanction*"]\nnone = ["sanctions"]',            # "sanctioned" holds no "sanctions"
    'any = ["troops"]\nmatch = "word"\nall = ["troop"]\nnone = ["troop"]',
])
def test_never_matches_is_silent_on_rules_that_can_match(body: str) -> None:
    [rule] = parse_rules(f'[[rules]]\nid = "a"\n{body}\n')
    problems = never_matches(rule)
    if 'all = ["troop"]' in body:
        assert problems  # all = troop with none = troop: that one cannot
    else:
        assert problems == []


def test_stream_rules_check_reports_the_rules_that_can_never_match_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('[[rules]]\nid = "fine"\nany = ["troops"]\n\n'
                    '[[rules]]\nid = "dead"\nall = ["troops"]\nnone = ["troops"]\n')
    result = CliRunner().invoke(main, ["rules", "check", str(path)])
    assert result.exit_code == 1, result.output
    assert f"{path}:6: rule 'dead' can never match: all term 'troops'" in result.output
    assert "1 of 2 rule(s) can never match" in result.output
