"""``stream demo``: produce sample articles, run a worker, show what comes out."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Iterable

import click

from ..errors import BrokerError
from ..records import loads
from ..runtime.inputs import read_inputs
from ..runtime.kafka import end_offsets, ensure_topics, make_producer, read_records
from ..settings import Settings

__all__ = ["run_demo"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _expand(paths: Iterable[str]) -> list[str]:
    out: list[str] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            out += sorted(str(p) for p in path.iterdir() if p.suffix in (".txt", ".json", ".jsonl"))
        else:
            out.append(name)
    return out


async def _snapshot(settings: Settings) -> dict[str, dict[int, int]]:
    topics = (settings.topic_enriched, settings.topic_alerts, settings.topic_dlq)
    # The worker's own topics take its largest records (it checks them at start).
    big = {"max.message.bytes": str(settings.topic_max_message_bytes)}
    await ensure_topics(settings.kafka, [(t, settings.partitions, False) for t in
                                          (settings.topic_raw, *topics)], settings.replication_factor,
                        {t: big for t in topics}, settings.min_insync_replicas)
    return {t: await end_offsets(settings.kafka, t) for t in topics}


async def _produce(settings: Settings, files: list[str]) -> int:
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        futures = [await producer.send(settings.topic_raw, value=r.value, key=r.key)
                   for r in read_inputs(files)]
        await asyncio.gather(*futures)
        return len(futures)
    finally:
        await producer.stop()


async def _collect(settings: Settings, start: dict[str, dict[int, int]], expected: int,
                   timeout: float) -> tuple[list[Any], list[Any], list[Any]]:
    enriched: list[Any] = []
    dead: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(enriched) + len(dead) < expected and time.monotonic() < deadline:
        for topic, bucket in ((settings.topic_enriched, enriched), (settings.topic_dlq, dead)):
            async for rec in read_records(settings.kafka, topic, start=start[topic], timeout=1):
                bucket.append(loads(rec.value or b"null"))
                start[topic][rec.partition] = rec.offset + 1
        await asyncio.sleep(0.5)
    alerts = [loads(r.value or b"null") async for r in
              read_records(settings.kafka, settings.topic_alerts, start=start[settings.topic_alerts], timeout=1)]
    return enriched, alerts, dead


_SHOWN = ("stream_articles_in_total", "stream_articles_out_total", "stream_alerts_total",
          "stream_dead_letters_total", "stream_duplicates_total", "stream_webhook_results_total",
          "stream_plugin_seconds_count", "stream_consumer_lag")


def _metrics(log: Path) -> list[str]:
    """The worker's main metrics, read from its /metrics (its URL is in its log)."""
    import urllib.request

    from ..ops.web import url_in_log

    url = url_in_log(log.read_text(errors="replace"))
    if url is None:
        return []
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return []
    return [line for line in text.splitlines() if line.startswith(_SHOWN) and not line.endswith(" 0.0")]


def _show(enriched: list[Any], alerts: list[Any], dead: list[Any]) -> None:
    echo = click.echo
    for rec in sorted(enriched, key=lambda r: r["id"]):
        echo(click.style(f"\n== {rec['id']}  {rec.get('title') or ''}"[:100], bold=True))
        if rec.get("published_at"):
            echo(f"   published_at: {rec['published_at']}")
        body = textwrap.shorten(rec["clean_text"], 300, placeholder=" ...")
        echo(textwrap.indent(textwrap.fill(body, 96), "   "))
        summary = rec.get("entity_summary") or []
        if summary:
            top = ", ".join(f"{e['canonical']} ({e['label']} x{e['mentions']})" for e in summary[:8])
            echo(f"   entities: {top}")
            places = [e for e in summary if e.get("geo")][:6]
            if places:
                echo("   places: " + ", ".join(
                    f"{e['canonical']} ({e['geo']['country_code']} {e['geo']['lat']:.2f},{e['geo']['lon']:.2f})"
                    for e in places))
        for plugin, value in (rec.get("extra") or {}).items():
            echo(f"   {plugin}: " + textwrap.shorten(str(value), 150, placeholder=" ..."))
        if rec.get("dedup"):
            echo(f"   dedup: {rec['dedup']}")
        story = rec.get("story")
        if story:
            echo(f"   story: {story['id']} ({story['articles']} article(s) from {', '.join(story['sources']) or '?'}; "
                 f"{story['first_seen']} to {story['last_seen']})")
        for alert in rec.get("alerts") or []:
            echo(click.style(f"   ALERT {alert['rule_id']} [{alert['severity']}]: {alert['snippet'][:120]}",
                             fg="red"))
        steps = ", ".join(f"{p['name']} {p['ms']}ms" for p in rec["processing"]["plugins"])
        echo(f"   processing: {steps}")
    echo(click.style(f"\n{len(enriched)} enriched record(s), {len(alerts)} alert(s), "
                     f"{len(dead)} dead letter(s)", bold=True))
    for letter in dead:
        err = letter["error"]
        echo(f"   dead letter from {letter['source']}: {err['type']} in {err['plugin']}: {err['message']}")


def run_demo(settings: Settings, paths: Iterable[str], *, timeout: float) -> int:
    # Each demonstration gets its own consumer group and topics: earlier runs' state (dedup
    # decisions, committed offsets) stays out of it.  (Also: once, in a group with a long
    # history, a record on a never-committed partition was not consumed; see NOTES.md.)
    tag = time.strftime("%Y%m%d-%H%M%S")
    settings = settings.replace(
        app_id=f"stream-demo-{tag}", topic_raw=f"demo-{tag}.raw", topic_enriched=f"demo-{tag}.enriched",
        topic_alerts=f"demo-{tag}.alerts", topic_dlq=f"demo-{tag}.dlq", topic_stories=f"demo-{tag}.stories",
    )
    files = _expand(paths)
    if not files:
        click.echo("stream demo: no input files", err=True)
        return 2
    try:
        start = asyncio.run(_snapshot(settings))
    except Exception as exc:  # connection refused and friends
        raise BrokerError(f"cannot reach Kafka at {settings.broker} ({exc!r}); start the local "
                          "broker with `stream broker start`") from exc
    log = Path(settings.data_dir) / "demo-worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    # A webhook sink on localhost, subscribed to every alert, so alerts arrive over HTTP.
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    port = _free_port()
    subs = Path(settings.data_dir) / "demo-webhooks.toml"
    subs.write_text(f'[[endpoints]]\nid = "demo-sink"\nurl = "http://127.0.0.1:{port}/alerts"\n'
                    f'secret = "{secret}"\n')
    sink_log = Path(settings.data_dir) / "demo-sink.jsonl"
    sink_out = open(sink_log, "wb")  # noqa: SIM115 - closed below
    sink = subprocess.Popen([sys.executable, "-m", "stream", "webhook-sink", "--port", str(port)],
                            stdout=sink_out, stderr=subprocess.DEVNULL,
                            env={**os.environ, "STREAM_SINK_SECRET": secret})
    env = {**os.environ, "STREAM_WEBHOOKS": str(subs), "STREAM_WEBHOOKS_ALLOW_LOOPBACK": "1",
           "STREAM_APP_ID": settings.app_id, "STREAM_TOPIC_RAW": settings.topic_raw,
           "STREAM_TOPIC_ENRICHED": settings.topic_enriched, "STREAM_TOPIC_ALERTS": settings.topic_alerts,
           "STREAM_TOPIC_DLQ": settings.topic_dlq, "STREAM_WEB": "127.0.0.1:0"}
    click.echo(f"starting a worker (log: {log}) and a webhook sink on port {port}; topics {tag} ...")
    with open(log, "ab") as fh:
        worker = subprocess.Popen([sys.executable, "-m", "stream", "worker"], stdout=fh,
                                  stderr=subprocess.STDOUT, env=env)
    received: list[Any] = []
    try:
        sent = asyncio.run(_produce(settings, files))
        click.echo(f"sent {sent} record(s) from {len(files)} file(s) to {settings.topic_raw}; waiting for results ...")
        enriched, alerts, dead = asyncio.run(_collect(settings, start, sent, timeout))
        wanted = {a["alert_id"] for a in alerts}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            received = [loads(line) for line in sink_log.read_bytes().splitlines() if line.strip()]
            if wanted <= {r["alert"]["alert_id"] for r in received if r.get("alert")}:
                break
            time.sleep(0.5)
        metrics = _metrics(log)
    finally:
        for proc in (worker, sink):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        sink_out.close()
    _show(enriched, alerts, dead)
    if metrics:
        click.echo(click.style("\nthe worker's metrics (GET /metrics; dashboard on the same port):", bold=True))
        for line in metrics:
            click.echo(f"   {line}")
    verified = [r for r in received if r.get("verified")]
    click.echo(click.style(f"\nwebhook sink: {len(verified)} alert(s) received over HTTP, signatures verified "
                           f"(Standard Webhooks)", bold=True))
    for r in verified[:5]:
        a = r["alert"]
        click.echo(f"   {r['webhook_id']}  {r['type']}  {a['rule_id']} [{a['severity']}] article {a['article_id']}")
    if len(enriched) + len(dead) < sent:
        click.echo(f"stream demo: only {len(enriched) + len(dead)} of {sent} results arrived; see {log}", err=True)
        return 1
    return 0
