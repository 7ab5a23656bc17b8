"""Story rules (``kind = "story"``): once per story, on the article that made the story meet
the rule, within the window only; replays, restarts and copies; the ``places`` condition."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stream import Article, ConfigError, Context, Settings
from stream.runtime.state import StateTable
from stream_alerts import AlertsProcessor, alert_id
from stream_alerts.rules import parse_rules

UA = {"canonical": "Ukraine", "label": "GPE", "mentions": 1,
      "geo": {"geonameid": 690791, "name": "Ukraine", "country_code": "UA", "kind": "country"}}
RULE = """[[rules]]
id = "ua-picked-up"
kind = "story"
any = ["Ukraine"]
min_sources = 3
within_minutes = 60
"""


def proc(tmp_path: Path, rules: str = RULE, table: Any = None) -> AlertsProcessor:
    path = tmp_path / "rules.toml"
    path.write_text(rules)
    p = AlertsProcessor(path)
    p.setup(Context(Settings(), tables={"alerts": table if table is not None else {}}))
    p.clock = lambda: 1_795_000_000.0  # after every article here
    return p


def art(ident: str, source: str, minute: int, *, story: str = "st1", text: str = "Troops massed near Ukraine.",
        entities: list[dict[str, Any]] | None = None, status: str = "unique") -> Article:
    a = Article(id=ident, text=text, source=source, title=f"Title {ident}",
                published_at=f"2026-11-16T{8 + minute // 60:02d}:{minute % 60:02d}:00Z")
    a.clean_text = text
    a.entity_summary = entities or []
    a.dedup = {"status": status, "duplicate_of": None if status == "unique" else "a1", "cluster_id": "a1"}
    a.story = {"id": story, "articles": 1, "sources": [source], "languages": ["en"]}
    a.emit("stories", story, {"id": story, "title": "Troops near Ukraine", "articles": 3})
    return a


def story_alerts(articles: list[Article]) -> list[tuple[str, str]]:
    return [(a.id, alert["alert_id"]) for a in articles for alert in a.alerts if alert.get("kind") == "story"]


def test_a_story_rule_fires_once_on_the_article_that_brought_the_third_source(tmp_path: Path) -> None:
    p = proc(tmp_path)
    articles = [art("a1", "Reuters", 0), art("a2", "Reuters", 10), art("a3", "AP", 20), art("a4", "BBC", 30),
                art("a5", "Le Monde", 40)]
    p.process(articles)
    assert story_alerts(articles) == [("a4", alert_id("ua-picked-up", "st1", kind="story"))]
    alert = articles[3].alerts[0]
    assert alert["sources"] == ["AP", "BBC", "Reuters"] and alert["articles"] == ["a1", "a2", "a3", "a4"]
    assert alert["story"]["title"] == "Troops near Ukraine" and alert["title"] == "Troops near Ukraine"
    assert alert["snippet"].startswith("3 sources, 4 articles within 60 minutes")
    assert alert["matched"][0]["term"] == "Ukraine" and alert["kind"] == "story"


def test_outlets_outside_the_window_never_fire_it(tmp_path: Path) -> None:
    p = proc(tmp_path)
    articles = [art("a1", "Reuters", 0), art("a2", "AP", 50), art("a3", "BBC", 120), art("a4", "DW", 200)]
    p.process(articles)
    assert story_alerts(articles) == []  # never three sources within an hour
    late = [art("a5", "NHK", 230)]  # DW at 200, BBC at 120 ... NHK at 230: DW and NHK within the hour
    p.process(late)
    assert story_alerts(late) == []
    p.process(more := [art("a6", "AFP", 250)])  # DW 200, NHK 230, AFP 250: three within the hour
    assert story_alerts(more) == [("a6", alert_id("ua-picked-up", "st1", kind="story"))]


def test_an_article_arriving_late_but_dated_inside_the_window_counts(tmp_path: Path) -> None:
    p = proc(tmp_path)
    p.process(first := [art("a1", "Reuters", 0), art("a3", "BBC", 50)])
    assert story_alerts(first) == []
    p.process(late := [art("a2", "AP", 20)])  # dated between the two others
    assert story_alerts(late) == [("a2", alert_id("ua-picked-up", "st1", kind="story"))]


def test_only_articles_that_meet_the_conditions_count(tmp_path: Path) -> None:
    p = proc(tmp_path)
    articles = [art("a1", "Reuters", 0), art("a2", "AP", 5, text="Markets rose."), art("a3", "BBC", 10),
                art("a4", "DW", 15, text="Ukraine's grain exports rose.")]
    p.process(articles)
    assert story_alerts(articles) == [("a4", alert_id("ua-picked-up", "st1", kind="story"))]


def test_the_firing_article_sent_again_gives_the_same_alert_and_the_others_none(tmp_path: Path) -> None:
    table = StateTable("alerts", changelog=False)
    p = proc(tmp_path, table=table)
    p.process([art("a1", "Reuters", 0), art("a2", "AP", 5), art("a3", "BBC", 10)])
    again = proc(tmp_path, table=table)  # a restart, or the stateful partition moved: the same table
    again.on_assigned()
    replayed = [art("a3", "BBC", 10), art("a2", "AP", 5), art("a4", "DW", 20)]
    replayed[0].outputs = []  # what the stories processor emits for a replay: nothing
    again.process(replayed)
    assert story_alerts(replayed) == [("a3", alert_id("ua-picked-up", "st1", kind="story"))]
    assert replayed[0].alerts[0]["story"]["title"] == "Troops near Ukraine"  # kept from the first time


def test_each_story_fires_on_its_own(tmp_path: Path) -> None:
    p = proc(tmp_path)
    articles = [art(f"{s}{i}", src, i, story=s) for s in ("x", "y") for i, src in enumerate(["A", "B", "C"])]
    p.process(articles)
    assert story_alerts(articles) == [("x2", alert_id("ua-picked-up", "x", kind="story")),
                                      ("y2", alert_id("ua-picked-up", "y", kind="story"))]


def test_copies_do_not_count_unless_the_rule_says_duplicates(tmp_path: Path) -> None:
    p = proc(tmp_path)
    articles = [art("a1", "Reuters", 0), art("a2", "Yahoo", 1, status="exact"), art("a3", "AP", 2)]
    p.process(articles)
    assert story_alerts(articles) == []
    p = proc(tmp_path, RULE + "duplicates = true\n")
    articles = [art("a1", "Reuters", 0), art("a2", "Yahoo", 1, status="exact"), art("a3", "AP", 2)]
    p.process(articles)
    assert story_alerts(articles) == [("a3", alert_id("ua-picked-up", "st1", kind="story"))]


def test_places_by_country_code_or_geonames_id(tmp_path: Path) -> None:
    rules = RULE.replace('any = ["Ukraine"]', 'places = ["UA"]')
    p = proc(tmp_path, rules)
    articles = [art(f"a{i}", src, i, text="Troops massed.", entities=[UA] if src != "C" else [])
                for i, src in enumerate(["A", "B", "C", "D"])]
    p.process(articles)
    assert story_alerts(articles) == [("a3", alert_id("ua-picked-up", "st1", kind="story"))]
    keyword = proc(tmp_path, '[[rules]]\nid = "kyiv"\nplaces = [690791]\n')
    hits = [art("k1", "A", 0, text="Troops near Ukraine.", entities=[UA])]
    hits[0].entities = [{"text": "Ukraine", "label": "GPE", "start": 12, "end": 19, "canonical": "Ukraine",
                         "geo": UA["geo"]}]
    keyword.process(hits)
    assert [a["rule_id"] for a in hits[0].alerts] == ["kyiv"] and hits[0].alerts[0]["matched"][0]["text"] == "Ukraine"


def test_without_the_stories_plugin_a_story_rule_warns_once_and_never_fires(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = proc(tmp_path)
    articles = [art(f"a{i}", src, i) for i, src in enumerate(["A", "B", "C"])]
    for a in articles:
        a.story = {}
    p.process(articles)
    assert story_alerts(articles) == []
    assert sum("has no story" in r.message for r in caplog.records) == 1


@pytest.mark.parametrize(("body", "line", "message"), [
    ('kind = "stories"', 4, 'kind must be "keyword"'),
    ('kind = "story"', 2, "min_sources is missing"),  # the rule's line
    ('kind = "story"\nmin_sources = 0', 5, "min_sources must be a whole number"),
    ('kind = "story"\nmin_sources = 2\nwithin_minutes = -5', 6, "within_minutes must be a number"),
    ('min_sources = 3', 4, 'min_sources is a condition of story rules: add kind = "story"'),
    ('kind = "story"\nmin_sources = 2\ncooldown = {minutes = 5}', 6, "cooldown does not apply to a story rule"),
    ('places = ["Ukraine"]', 4, "places must be a list of GeoNames ids and country codes"),
])
def test_bad_story_rules_name_the_rule_line_and_fix(body: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        parse_rules(f'[[rules]]\nid = "r"\nany = ["x"]\n{body}\n', "rules.toml")
    assert str(err.value).startswith(f"rules.toml:{line}: rule 'r': "), err.value
