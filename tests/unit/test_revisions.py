"""Revisions: an article sent again with a changed text (same id, or same url) is a
revision: dedup says what changed, keyword rules alert only on new terms under an id of
their own, and its story is the original's.  The real chain (clean, dedup, stories,
alerts), one batch after another with the same state."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from stream import Article, Settings
from stream.runtime.chain import build_chain
from stream_alerts import alert_id

FIRST = ("Troops gathered near the border overnight, officials said.\n\n"
         "Residents of the nearby town reported hearing heavy vehicles.")
REWORDED = ("Troops gathered near the border overnight, officials said on Tuesday.\n\n"
            "Residents of the nearby town reported hearing heavy vehicles.")
ESCALATED = ("Troops gathered near the border overnight, officials said on Tuesday.\n\n"
             "Residents of the nearby town reported hearing heavy vehicles.\n\n"
             "By morning the defence ministry called it the start of an invasion.")


@pytest.fixture
def chain() -> Iterator[Callable[..., list[Article]]]:
    settings = Settings().replace(plugins=("clean", "dedup", "stories", "alerts"))
    _host, pipeline = build_chain(settings, "embedded")

    def run(*articles: dict[str, Any]) -> list[Article]:
        result = asyncio.run(pipeline.run([Article.from_dict(a) for a in articles]))
        assert not result.failures, result.failures
        return result.articles

    yield run
    pipeline.close()


def keyword(article: Article) -> list[tuple[str, list[str]]]:
    return [(a["alert_id"], sorted({m["term"] for m in a["matched"]})) for a in article.alerts
            if a.get("kind") == "keyword"]


def test_a_changed_text_under_the_same_id_is_a_revision_that_says_what_changed(chain: Any) -> None:
    (first,) = chain({"id": "a1", "text": FIRST, "source": "Reuters"})
    (again,) = chain({"id": "a1", "text": FIRST, "source": "Reuters"})
    assert first.revision == {} and again.revision == {} and again.dedup == first.dedup  # a replay
    (second,) = chain({"id": "a1", "text": REWORDED, "source": "Reuters"})
    assert second.revision == {"number": 1, "of": "a1", "removed": [0],
                               "added": ["Troops gathered near the border overnight, officials said on Tuesday."]}
    assert second.dedup == first.dedup  # not a duplicate of itself
    (third,) = chain({"id": "a1", "text": ESCALATED, "source": "Reuters"})
    assert third.revision["number"] == 2 and third.revision["removed"] == []
    assert third.revision["added"] == ["By morning the defence ministry called it the start of an invasion."]
    (second_again,) = chain({"id": "a1", "text": REWORDED, "source": "Reuters"})
    assert second_again.revision == second.revision  # a version sent again: its revision again
    (first_again,) = chain({"id": "a1", "text": FIRST, "source": "Reuters"})
    assert first_again.revision == {}
    assert third.to_dict()["revision"]["number"] == 2 and "revision" not in first.to_dict()


def test_a_revision_alerts_only_on_new_terms_under_an_id_of_its_own(chain: Any) -> None:
    (first,) = chain({"id": "a1", "text": FIRST})
    assert keyword(first) == [(alert_id("military-escalation", "a1"), ["troops"])]
    (reworded,) = chain({"id": "a1", "text": REWORDED})
    assert keyword(reworded) == []  # "troops" again: its original raised that alert
    (escalated,) = chain({"id": "a1", "text": ESCALATED})
    ids = keyword(escalated)
    assert ids == [(alert_id("military-escalation", "a1\0revision 2"), ["invasion"])]
    assert escalated.alerts[0]["revision"] == 2
    (again,) = chain({"id": "a1", "text": ESCALATED})
    assert keyword(again) == ids  # sent again: the same alert, the same id
    original_ids = {a for a, _t in keyword(first)}
    assert not original_ids & {a for a, _t in ids}


def test_a_changed_text_under_a_new_id_and_the_same_url_is_a_revision_of_the_first(chain: Any) -> None:
    url = "https://example.org/news/border"
    (first,) = chain({"id": "a1", "url": url, "text": FIRST})
    (moved,) = chain({"id": "a1-v2", "url": url, "text": ESCALATED})
    assert moved.revision["of"] == "a1" and moved.revision["number"] == 1
    assert moved.story["id"] == first.story["id"] and moved.story["articles"] == 1
    assert keyword(moved) == [(alert_id("military-escalation", "a1-v2\0revision 1"), ["invasion"])]


def test_a_revision_keeps_its_originals_story_and_adds_no_article_to_it(chain: Any) -> None:
    (first,) = chain({"id": "a1", "text": FIRST, "source": "Reuters"})
    (revised,) = chain({"id": "a1", "text": ESCALATED, "source": "Reuters"})
    assert revised.story == first.story and revised.outputs == []


def test_on_the_labelled_stream_no_revision_alerts_on_what_an_earlier_version_matched() -> None:
    """Every labelled article, then two revisions of each (a paragraph added, then one
    removed), with rules on the stream's topics (``stream_stories.evaluate``)."""
    from stream_stories.evaluate import load, revision_counts

    counts = revision_counts(load())
    assert counts["revisions"] >= 290 and counts["their alerts"] >= 30, counts  # the run means something
    assert counts["on a term an earlier version matched"] == 0, counts
    assert counts["with an id of an earlier version"] == 0, counts
    assert counts["replay alerts not the original's"] == 0, counts
