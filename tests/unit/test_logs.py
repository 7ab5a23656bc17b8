"""Log lines: JSON objects carrying the article id."""

from __future__ import annotations


def test_json_log_lines_carry_the_article_id() -> None:
    import logging

    import orjson

    from stream.ops.logs import JsonFormatter, about

    record = logging.LogRecord("stream.runtime.app", logging.WARNING, __file__, 1, "article %s -> dlq: %s",
                               ("a-1", "RecordError"), None)
    for key, value in about("a-1").items():
        setattr(record, key, value)
    line = orjson.loads(JsonFormatter().format(record))
    assert line["article_id"] == "a-1" and line["level"] == "warning"
    assert line["message"] == "article a-1 -> dlq: RecordError" and line["logger"] == "stream.runtime.app"
