"""The ingester's web server: ``POST /articles`` (:mod:`stream.sources.push`), ``/metrics``,
``/health/live``, ``/health/ready``, its page (``/``) and the page's data
(``/api/ingest``).  With a ``web_token``, the page and its data ask for it, as the
worker's dashboard does."""

from __future__ import annotations

import asyncio
import logging
import time
from importlib.resources import files

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..ops.web import start_site, token_guard
from ..records import dumps
from .ingest import Ingester
from .push import push_handler

__all__ = ["serve_ingester"]

log = logging.getLogger("stream.ingest")

#: Seconds without a turn of the ingester's loop after which it is not live.
STALL = 60.0


def _app(ingester: Ingester, token: str, web_token: str) -> web.Application:
    page = files("stream.ops").joinpath("ingest.html").read_bytes()
    metrics = ingester.metrics
    settings = ingester.settings

    def health() -> dict[str, bool]:
        return {"ready": ingester.ready, "live": time.monotonic() - ingester.heartbeat < STALL}

    async def metrics_view(request: web.Request) -> web.Response:
        metrics.ready_gauge.set(1 if ingester.ready else 0)
        return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def live(request: web.Request) -> web.Response:
        h = health()
        return web.Response(body=dumps({"live": h["live"]}), status=200 if h["live"] else 503,
                            content_type="application/json")

    async def ready(request: web.Request) -> web.Response:
        h = health()
        body = {"ready": h["ready"], "entries": sorted(ingester.owned)}
        return web.Response(body=dumps(body), status=200 if h["ready"] else 503, content_type="application/json")

    async def dashboard(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html", charset="utf-8")

    async def data(request: web.Request) -> web.Response:
        snap = metrics.snapshot(set(ingester.owned))
        snap["health"] = health()
        return web.Response(body=dumps(snap), content_type="application/json")

    # A whole request is read before it is validated: room for a batch of large articles.
    app = web.Application(middlewares=[token_guard(("/", "/api/ingest"), web_token)],
                          client_max_size=settings.max_article_bytes * 16 + 65536)
    app.add_routes([web.get("/metrics", metrics_view), web.get("/health/live", live),
                    web.get("/health/ready", ready), web.get("/", dashboard), web.get("/api/ingest", data),
                    web.post("/articles", push_handler(settings, token, ingester.producer, metrics))])
    return app


async def serve_ingester(address: str, ingester: Ingester, token: str, web_token: str = "") -> None:
    """Serve until cancelled.  ``address`` is ``host:port`` (port 0: a free one)."""
    runner, url = await start_site(_app(ingester, token, web_token), address)
    log.info("stream web: %s (dashboard), %s/articles (POST), %s/metrics, %s/health/live, %s/health/ready",
             url, url, url, url, url)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
