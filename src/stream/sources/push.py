"""``POST /articles``: articles pushed over HTTP, written to ``topic_raw``.

The request carries a JSON article or a JSON array of them, and ``Authorization: Bearer
TOKEN`` (the ``ingest_token`` setting, or the first line of ``ingest_token_file``).  It is
validated whole before anything is written: 400 with every reason, or 413 when an article
is over ``max_article_bytes``.  A valid request is answered 202 with the ids once the broker
acknowledged every record; when the broker fails midway, 503 with the ids that were
written.  Ids are stable (given, or made from the ``url``, else the text), so the client can
send the whole request again: the workers' dedup takes a resent id as a replay.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer

from ..errors import RecordError
from ..records import Article, dumps
from ..settings import Settings
from .metrics import IngestMetrics

__all__ = ["push_handler"]

#: Seconds a request waits for the broker's acknowledgements before it answers 503.
ACK_TIMEOUT = 30.0


def _answer(metrics: IngestMetrics, status: int, body: dict[str, Any]) -> web.Response:
    metrics.push_requests.labels(str(status)).inc()
    return web.Response(status=status, body=dumps(body), content_type="application/json")


def _validate(body: bytes, max_bytes: int) -> tuple[int, list[str], list[tuple[str, bytes]]]:
    """``(status, reasons, [(id, encoded article)])`` of a request body: 202 when every
    article is valid, else 400 or 413 (413 when one is over ``max_bytes``) with every reason."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return 400, [f"not valid JSON: {exc}"], []
    items = data if isinstance(data, list) else [data]
    if not items:
        return 400, ["an empty array: send an article or an array of articles"], []
    errors: list[str] = []
    too_big: list[str] = []
    records: list[tuple[str, bytes]] = []
    for index, item in enumerate(items):
        where = f"[{index}]" if isinstance(data, list) else "the article"
        try:
            article = Article.from_dict(item)
        except RecordError as exc:
            errors.append(f"{where}: {exc}")
            continue
        value = dumps(item if "id" in item else {"id": article.id, **item})
        if len(value) > max_bytes:
            too_big.append(f"{where} ({article.id}): {len(value)} bytes, over max_article_bytes = {max_bytes}")
            continue
        records.append((article.id, value))
    if too_big:
        return 413, too_big + errors, []
    return (400, errors, []) if errors else (202, [], records)


def push_handler(settings: Settings, token: str, producer: AIOKafkaProducer, metrics: IngestMetrics,
                 ack_timeout: float = ACK_TIMEOUT) -> Any:
    """The aiohttp handler of ``POST /articles``."""

    async def handle(request: web.Request) -> web.Response:
        if not token:
            return _answer(metrics, 403, {"error": "pushing is off: set ingest_token (or ingest_token_file) on the "
                                                   "ingester"})
        header = request.headers.get("Authorization", "")
        given = header[len("Bearer "):] if header.startswith("Bearer ") else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            metrics.push_requests.labels("401").inc()
            return web.Response(status=401, body=dumps({"error": "a bearer token is needed (Authorization: Bearer "
                                                                 "TOKEN, the ingest_token setting)"}),
                                content_type="application/json", headers={"WWW-Authenticate": 'Bearer realm="stream"'})
        # Decoding and validating a request of up to many MB is CPU work: off the event loop.
        status, errors, records = await asyncio.to_thread(_validate, await request.read(), settings.max_article_bytes)
        if status != 202:
            return _answer(metrics, status, {"errors": errors})
        futures = []
        written: list[str] = []
        try:
            for ident, value in records:
                futures.append((ident, await producer.send(settings.topic_raw, value=value, key=ident.encode())))
        except Exception as exc:
            error: BaseException | None = exc
        else:
            error = None
        if futures:
            done, _pending = await asyncio.wait([f for _i, f in futures], timeout=ack_timeout)
            for ident, future in futures:
                if future in done and future.exception() is None:
                    written.append(ident)
                elif error is None:
                    error = future.exception() if future in done else TimeoutError(
                        f"no acknowledgement within {ack_timeout:g}s")
        metrics.pushed.inc(len(written))
        metrics.pushed_total += len(written)
        if error is not None or len(written) < len(records):
            return _answer(metrics, 503, {"error": f"the broker did not acknowledge every article: {error!r}; send the "
                                                   "request again (ids are stable)", "written": written,
                                          "ids": [i for i, _v in records]})
        return _answer(metrics, 202, {"ids": written})

    return handle
