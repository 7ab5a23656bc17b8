"""What the dashboard shows first (issue 27): people, organisations and places among the top
entities, and an alert of an article without a headline by the article's start."""

from __future__ import annotations

from stream.ops.metrics import WorkerMetrics


def test_top_entities_are_people_organisations_and_places() -> None:
    metrics = WorkerMetrics()
    for _ in range(5):
        metrics.on_article({}, [{"canonical": "two", "label": "CARDINAL"}, {"canonical": "Monday", "label": "DATE"},
                                {"canonical": "Russian", "label": "NORP"}, {"canonical": "Kyiv", "label": "GPE"}])
    metrics.on_article({}, [{"canonical": "NATO", "label": "ORG"}, {"canonical": "Olaf Scholz", "label": "PERSON"},
                            {"canonical": "Danube", "label": "LOC"}])
    top = {(e["name"], e["label"]) for e in metrics.snapshot()["top_entities"]}
    assert top == {("Kyiv", "GPE"), ("NATO", "ORG"), ("Olaf Scholz", "PERSON"), ("Danube", "LOC")}


def test_an_alert_of_an_article_without_a_headline_shows_its_start() -> None:
    metrics = WorkerMetrics()
    text = ("Troops crossed the border near Kharkiv early on Monday morning, according to officials in the "
            "regional administration\n\nMore follows.")
    metrics.on_alert("alerts", {"rule_id": "troops", "article_id": "a1", "title": None}, text)
    metrics.on_alert("alerts", {"rule_id": "troops", "article_id": "a2", "title": "Troops at the border"}, text)
    metrics.on_alert("alerts", {"rule_id": "troops", "article_id": "a3", "title": ""}, "")
    shown = [a["title"] for a in reversed(metrics.snapshot()["recent_alerts"])]
    assert shown[0] == "Troops crossed the border near Kharkiv early on Monday morning, according to…"
    assert shown[1] == "Troops at the border"
    assert shown[2] is None  # nothing to show: the dashboard falls back to the id


def test_the_stories_panel_shows_recent_stories_by_sources_and_articles() -> None:
    metrics = WorkerMetrics()
    geneva = {"name": "Geneva", "geo": {"geonameid": 2660646}, "articles": 2}
    metrics.on_story({"id": "s1", "title": "Talks open", "articles": 2, "sources": ["AP", "Reuters"],
                      "languages": ["en"], "places": [geneva]})
    metrics.on_story({"id": "s2", "title": "Quake", "articles": 3, "sources": ["AP"], "languages": ["en", "fr"]})
    metrics.on_story({"id": "s1", "title": "Talks open", "articles": 4, "sources": ["AP", "Reuters", "BBC"],
                      "languages": ["en"], "places": [geneva]})  # an update replaces the story's line
    stories = metrics.snapshot()["stories"]
    assert [(s["id"], s["articles"], s["sources"]) for s in stories] == [("s1", 4, 3), ("s2", 3, 1)]
    assert stories[0]["places"] == ["Geneva"] and stories[0]["source_names"] == ["AP", "Reuters", "BBC"]
    metrics.stories["s2"]["updated"] -= 7 * 3600  # not updated for seven hours: off the panel
    assert [s["id"] for s in metrics.snapshot()["stories"]] == ["s1"]


def test_the_stories_panel_is_bounded() -> None:
    from stream.ops.metrics import STORIES_KEPT

    metrics = WorkerMetrics()
    for n in range(STORIES_KEPT + 10):
        metrics.on_story({"id": f"s{n}", "articles": 1, "sources": []})
    assert len(metrics.stories) == STORIES_KEPT and "s0" not in metrics.stories
