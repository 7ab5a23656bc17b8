"""``stream webhook-sink``: a small receiver for demos and tests.  It verifies each
delivery's signature and prints the alert as a JSON line; with ``fmt`` "slack",
"teams-workflow" or "teams" it answers as the chat service would (400 and the reason for a message it would refuse)
and prints what its client would show."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any

from aiohttp import web

from ..records import dumps, loads
from ..webhooks.formats import (
    slack_as_shown,
    slack_problems,
    teams_as_shown,
    teams_workflow_as_shown,
    teams_workflow_problems,
)
from ..webhooks.signing import verify

__all__ = ["make_sink", "run_sink"]


def make_sink(secret: str | None, out: Any = None, fmt: str = "standard") -> web.Application:
    stream_out = out or sys.stdout

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        msg_id = request.headers.get("webhook-id", "")
        verified = None
        if secret:
            verified = verify(secret, msg_id, request.headers.get("webhook-timestamp", ""), body,
                              request.headers.get("webhook-signature", ""))
            if not verified:
                print(dumps({"webhook_id": msg_id, "verified": False}).decode(), file=stream_out, flush=True)
                return web.Response(status=401, text="bad signature")
        try:
            event = loads(body)
        except ValueError:
            return web.Response(status=400, text="not JSON")
        if fmt == "slack":
            problems = slack_problems(event)
            if problems:  # Slack answers 400 with the error's name
                print(dumps({"webhook_id": msg_id, "verified": verified, "refused": problems}).decode(),
                      file=stream_out, flush=True)
                return web.Response(status=400, text=problems[0].split(":")[0])
            print(f"--- {msg_id} (slack, signature {_said(verified)})\n{slack_as_shown(event)}\n",
                  file=stream_out, flush=True)
            return web.Response(status=200, text="ok")
        if fmt == "teams-workflow":
            problems = teams_workflow_problems(event)
            if problems:  # the workflow's trigger answers 400 with the reason
                print(dumps({"webhook_id": msg_id, "verified": verified, "refused": problems}).decode(),
                      file=stream_out, flush=True)
                return web.Response(status=400, text=problems[0])
            print(f"--- {msg_id} (teams-workflow, signature {_said(verified)})\n{teams_workflow_as_shown(event)}\n",
                  file=stream_out, flush=True)
            return web.Response(status=202)
        if fmt == "teams":
            if not (isinstance(event, dict) and event.get("@type") == "MessageCard" and event.get("summary")
                    and isinstance(event.get("sections", []), list)):
                return web.Response(status=400, text="Summary or Text is required.")
            print(f"--- {msg_id} (teams, signature {_said(verified)})\n{teams_as_shown(event)}\n",
                  file=stream_out, flush=True)
            return web.Response(status=200, text="1")
        print(dumps({"webhook_id": msg_id, "verified": verified, "type": event.get("type"),
                     "alert": event.get("data")}).decode(), file=stream_out, flush=True)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    return app


def _said(verified: bool | None) -> str:
    return "not checked" if verified is None else "verified"


def run_sink(port: int, secret: str | None, host: str = "127.0.0.1", fmt: str = "standard") -> None:
    async def main() -> None:
        runner = web.AppRunner(make_sink(secret, fmt=fmt))
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        print(f"webhook sink listening on http://{host}:{port}/ (signatures "
              f"{'verified' if secret else 'not checked'})", file=sys.stderr, flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
