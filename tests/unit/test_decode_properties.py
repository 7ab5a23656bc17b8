"""Property tests: decoding never fails in any way but a RecordError, and a valid article
survives the round trip."""

from __future__ import annotations

import contextlib

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.errors import RecordError
from stream.records import Article, decode_article

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_decode_or_raise_a_record_error(data: bytes) -> None:
    try:
        article = decode_article(data, max_bytes=10_000)
    except RecordError as exc:
        assert exc.reason
    else:
        assert isinstance(article, Article) and article.text.strip()


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_value_decodes_or_raises_a_record_error(value: object) -> None:
    with contextlib.suppress(RecordError):
        decode_article(orjson.dumps(value), max_bytes=10_000)


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1).filter(str.strip), st.dictionaries(st.sampled_from(["feed", "tags", "score"]), json_values))
def test_a_valid_article_round_trips_through_the_enriched_record(text: str, extra: dict[str, object]) -> None:
    raw = orjson.dumps({"id": "a", "text": text, **extra})
    record = decode_article(raw, max_bytes=1_000_000).to_dict(processed_at="-")
    again = orjson.loads(orjson.dumps(record))
    assert again["text"] == text and all(again[k] == orjson.loads(orjson.dumps(v)) for k, v in extra.items())
