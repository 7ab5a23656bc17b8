from __future__ import annotations

import base64

import orjson
import pytest

from stream.errors import RecordError
from stream.records import SCHEMA_VERSION, Article, DeadLetter, decode_article, make_id


def decode(value: bytes, max_bytes: int = 10_000) -> Article:
    return decode_article(value, max_bytes=max_bytes)


def test_a_minimal_article_needs_only_text_and_gets_a_stable_id() -> None:
    a = decode(b'{"text": "Troops moved."}')
    assert a.text == "Troops moved."
    assert a.id == make_id(None, "Troops moved.") == decode(b'{"text": "Troops moved."}').id
    assert len(a.id) == 16


def test_the_id_is_a_hash_of_the_url_when_there_is_one() -> None:
    a = decode(b'{"text": "x", "url": "https://example.org/a"}')
    b = decode(b'{"text": "different text", "url": "https://example.org/a"}')
    assert a.id == b.id != make_id(None, "x")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b'["a"]', "must be a JSON object, not list"),
        (b'{"title": "t"}', "missing required field 'text'"),
        (b'{"text": "   "}', "'text' is empty"),
        (b'{"text": 5}', "'text' must be a string"),
        (b'{"text": "a", "title": 5}', "'title' must be a string"),
        (b'{"text": "a", "id": ""}', "'id' must be a non-empty string"),
        (b'{"text": "a", "published_at": "yesterday"}', "not an ISO 8601 date"),
        (b'{"text": "a", "clean_text": "b"}', "enrichment field"),
        (b'{"text": "a", "n": 123456789012345678901234567890}', "beyond 64-bit integers"),
        (b'{"text": "a", "n": [{"m": -99999999999999999999}]}', "beyond 64-bit integers"),
        (b'{"text": "a", "n": 1e400}', "not valid JSON"),
        (b'{"text": "\\ud800"}', "not valid JSON"),
        (b"[" * 5000 + b"]" * 5000, "not valid JSON"),
    ],
)
def test_bad_input_is_refused_with_a_reason(value: bytes, reason: str) -> None:
    with pytest.raises(RecordError, match=reason):
        decode(value, max_bytes=100_000)


def test_size_is_checked_before_parsing() -> None:
    with pytest.raises(RecordError, match="over the limit of 10"):
        decode(b'{"text": "this is longer than ten bytes"}', max_bytes=10)


def test_unknown_input_fields_pass_through_to_the_enriched_record() -> None:
    a = decode(b'{"text": "a", "feed": "wire-1", "id": "x"}')
    out = a.to_dict(worker="w:1", processed_at="2026-01-01T00:00:00.000Z")
    assert out["feed"] == "wire-1"
    assert out["schema_version"] == SCHEMA_VERSION
    assert out["processing"] == {"plugins": [], "worker": "w:1", "processed_at": "2026-01-01T00:00:00.000Z"}
    assert set(out) >= {"id", "text", "clean_text", "entities", "dedup", "alerts", "processing"}


def test_a_dead_letter_keeps_the_original_bytes_and_where_they_came_from() -> None:
    letter = DeadLetter("RecordError", "not valid JSON", "decode", b"\x00\xffraw", "t", 2, 41)
    out = orjson.loads(orjson.dumps(letter.to_dict()))
    assert base64.b64decode(out["original"]) == b"\x00\xffraw"
    assert out["source"] == {"topic": "t", "partition": 2, "offset": 41}
    assert out["error"] == {"type": "RecordError", "message": "not valid JSON", "stage": "decode", "plugin": "decode"}
    assert dict(letter.headers())["stream-source-offset"] == b"41"


def test_a_large_float_is_not_mistaken_for_a_huge_integer() -> None:
    # Found by Hypothesis: 9.223372036854776e+18 is a float literal, not an integer.
    a = decode(b'{"text": "a", "n": 9.223372036854776e+18, "m": 18446744073709551615}')
    assert a.passthrough == {"n": 9.223372036854776e18, "m": 2**64 - 1}


def test_the_story_field_is_in_the_enriched_record_only_when_a_processor_filled_it() -> None:
    article = Article(id="a", text="t")
    assert "story" not in article.to_dict()
    article.story = {"id": "s", "articles": 3}
    assert article.to_dict()["story"] == {"id": "s", "articles": 3}
    with pytest.raises(RecordError, match="story"):
        Article.from_dict({"text": "t", "story": {"id": "forged"}})


def test_a_handoff_without_a_story_is_what_the_previous_version_wrote() -> None:
    article = Article(id="a", text="t")
    assert "story" not in article.to_state() and "outputs" not in article.to_state()
    assert Article.from_state(article.to_state()) == article
    article.story = {"id": "s"}
    assert Article.from_state(article.to_state()).story == {"id": "s"}


def test_an_articles_event_time_is_its_date_else_its_arrival() -> None:
    arrived = 1_795_000_000.0  # 2026-11-18T11:06:40Z
    assert Article(id="a", text="t", published_at="2026-11-18T10:00:00Z").event_time(arrived) == arrived - 4000
    assert Article(id="a", text="t", published_at="2026-11-18T10:00:00").event_time(arrived) == arrived - 4000  # UTC
    assert Article(id="a", text="t").event_time(arrived) == arrived
    assert Article(id="a", text="t", published_at="2026-11-18T13:00:00Z").event_time(arrived) == arrived  # ahead
    assert Article(id="a", text="t", published_at="2026-11-18T13:00:00Z").event_time(arrived, future=7200) > arrived
