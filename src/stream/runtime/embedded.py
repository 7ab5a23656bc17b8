"""The embedded mode: the chain in-process, no Kafka (``stream process``)."""

from __future__ import annotations

import asyncio
from typing import BinaryIO, Iterable

from ..errors import RecordError
from ..records import Article, DeadLetter, decode_article, dumps
from ..settings import Settings
from .chain import build_chain, collect_outputs, sanitize
from .inputs import read_inputs

__all__ = ["run_embedded"]


def run_embedded(settings: Settings, files: Iterable[str], out: BinaryIO, err: BinaryIO) -> int:
    """Process ``files`` and write enriched records to ``out`` and dead letters to ``err``,
    one JSON line each, in input order.  :return: the number of dead letters."""
    records = list(read_inputs(files))
    host, pipeline = build_chain(settings, "embedded")
    worker = settings.worker_id()
    dead = 0

    def write_dead(letter: DeadLetter) -> None:
        nonlocal dead
        dead += 1
        err.write(dumps(letter.to_dict()) + b"\n")
        host.notify("stream_article_failed", dead_letter=letter)

    async def run() -> None:
        for start in range(0, len(records), settings.batch_size):
            chunk = records[start:start + settings.batch_size]
            articles: list[Article] = []
            original: dict[int, bytes] = {}
            for rec in chunk:
                try:
                    article = decode_article(rec.value, max_bytes=settings.max_article_bytes)
                except RecordError as exc:
                    write_dead(DeadLetter(error_type="RecordError", message=sanitize(exc.reason),
                                          stage="decode", original=rec.value, topic=rec.origin))
                    continue
                articles.append(article)
                original[id(article)] = rec.value
            result = await pipeline.run(articles)
            outputs = collect_outputs(result, worker=worker,
                                      max_record_bytes=settings.max_record_bytes, original=original)
            for _key, value, _article in outputs.enriched:  # duplicates included, marked in "dedup"
                out.write(value + b"\n")
            for _key, _value, alert, _article in outputs.alerts:
                host.notify("stream_alert_raised", alert=alert)
            for _article, letter in outputs.dead:
                write_dead(letter)
            out.flush()

    try:
        asyncio.run(run())
    finally:
        pipeline.close()
    return dead
