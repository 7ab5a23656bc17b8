"""The worker's web server: ``/metrics`` (Prometheus), ``/health/live``, ``/health/ready``
(see :mod:`stream.runtime.watch`), the live dashboard (``/``) and its data (``/api/dashboard``).

With a ``web_token``, the dashboard and its data answer 401 unless the request carries the
token (``Authorization: Bearer TOKEN``, or ``?token=TOKEN`` for the page in a browser);
metrics and health stay open for scrapers and probes (they carry no article text).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from importlib.resources import files
from typing import Any, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..records import dumps
from .health import Health
from .metrics import WorkerMetrics

__all__ = ["serve", "start_site", "token_guard", "url_in_log"]

#: The line :func:`serve` logs once it listens (read back by the demo and the test kit).
_LISTENING = re.compile(r"stream web: (http://\S+) \(dashboard\)")


def url_in_log(text: str) -> str | None:
    """The base URL of the last web server a worker's log says it started, if any."""
    found = _LISTENING.findall(text)
    return found[-1] if found else None

log = logging.getLogger(__name__)


def _authorised(request: web.Request, token: str) -> bool:
    if not token:
        return True
    given = request.query.get("token", "")
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        given = header[len("Bearer "):]
    return hmac.compare_digest(given.encode(), token.encode())


def token_guard(paths: tuple[str, ...], token: str) -> Any:
    """A middleware that answers 401 on ``paths`` unless the request carries ``token``
    (the dashboards' ``web_token``; see the module's doc)."""

    @web.middleware
    async def guard(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        if request.path in paths and not _authorised(request, token):
            return web.Response(status=401, text="a token is needed: open /?token=TOKEN (the web_token setting)\n",
                                headers={"WWW-Authenticate": 'Bearer realm="stream"'})
        response: web.StreamResponse = await handler(request)
        return response

    return guard


async def start_site(app: web.Application, address: str) -> tuple[web.AppRunner, str]:
    """Listen on ``address`` (``host:port``; port 0: a free one; no host: 127.0.0.1).
    :return: the runner (``cleanup()`` it) and the base URL it listens on."""
    host, _, port = address.rpartition(":")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host or "127.0.0.1", int(port))
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    bound = sockets[0].getsockname() if sockets else (host, port)
    return runner, f"http://{bound[0]}:{bound[1]}"


def _app(metrics: WorkerMetrics, health: Health, token: str = "") -> web.Application:
    page = files("stream.ops").joinpath("dashboard.html").read_bytes()

    async def metrics_view(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def live(request: web.Request) -> web.Response:
        body = {"live": health.live, "stalled": health.stalled}
        return web.Response(body=dumps(body), status=200 if health.live else 503, content_type="application/json")

    async def ready(request: web.Request) -> web.Response:
        body = {"ready": health.ready, "partitions": sorted(f"{t}[{p}]" for t, p in health.assigned),
                "troubles": dict(health.troubles)}
        return web.Response(body=dumps(body), status=200 if health.ready else 503, content_type="application/json")

    async def dashboard(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html", charset="utf-8")

    async def data(request: web.Request) -> web.Response:
        snap = metrics.snapshot()
        snap["health"] = {"live": health.live, "ready": health.ready, "stalled": health.stalled}
        return web.Response(body=dumps(snap), content_type="application/json")

    app = web.Application(middlewares=[token_guard(("/", "/api/dashboard"), token)])
    app.add_routes([web.get("/metrics", metrics_view), web.get("/health/live", live),
                    web.get("/health/ready", ready), web.get("/", dashboard),
                    web.get("/api/dashboard", data)])
    return app


async def serve(address: str, metrics: WorkerMetrics, health: Health,
                on_bound: Callable[[str], Any] | None = None, token: str = "") -> None:
    """Serve until cancelled.  ``address`` is ``host:port`` (port 0: a free one; no host:
    127.0.0.1); ``token``: the dashboard's (see the module's doc)."""
    runner, url = await start_site(_app(metrics, health, token), address)
    log.info("stream web: %s (dashboard), %s/metrics, %s/health/live, %s/health/ready", url, url, url, url)
    if on_bound is not None:
        on_bound(url)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
