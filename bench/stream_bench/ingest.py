"""R15: the ingest rate of ``stream ingest --once`` for 1,000 feed entries, each page
fetched from a local HTTP server and extracted by trafilatura, next to ``stream produce`` of
the same articles as JSON lines (no fetching, no extraction).

Both are timed as the wall time of the command, start to exit (Python's start and the
plugins' import included in both), on the same broker; articles per second is 1,000 / that.
"""

from __future__ import annotations

import html
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Sequence

from stream.records import dumps

__all__ = ["ingest_rates"]


def _page(article: dict[str, Any]) -> bytes:
    paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in article["text"].split("\n\n") if p.strip())
    title = html.escape(article.get("title") or "News")
    return (f"<!doctype html><html lang='en'><head><title>{title}</title></head><body><nav><a href='/'>Home</a>"
            f"<a href='/world'>World</a></nav><article><h1>{title}</h1>{paragraphs}</article>"
            "<footer>© Example News</footer></body></html>").encode()


def _serve(articles: Sequence[dict[str, Any]], feeds: int) -> tuple[ThreadingHTTPServer, list[str]]:
    pages = {f"/a/{n}.html": _page(a) for n, a in enumerate(articles)}
    per_feed = (len(articles) + feeds - 1) // feeds
    docs: dict[str, bytes] = {}
    server_box: list[ThreadingHTTPServer] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # http.server's name
            body = pages.get(self.path) or docs.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server_box.append(server)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    urls = []
    for f in range(feeds):
        chunk = range(f * per_feed, min(len(articles), (f + 1) * per_feed))
        items = "".join(f"<item><guid>{n}</guid><title>{html.escape(articles[n].get('title') or str(n))}</title>"
                        f"<link>{base}/a/{n}.html</link></item>" for n in chunk)
        docs[f"/feed{f}.xml"] = (f"<?xml version='1.0'?><rss version='2.0'><channel><title>feed {f}</title>"
                                 f"{items}</channel></rss>").encode()
        urls.append(f"{base}/feed{f}.xml")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, urls


def ingest_rates(bootstrap: str, articles: Sequence[dict[str, Any]], rounds: int, feeds: int = 10,
                 per_host: int = 8) -> dict[str, Any]:
    """Articles per second of ``stream ingest --once`` and of ``stream produce``, per round."""
    server, urls = _serve(articles, feeds)
    ingest, produce = [], []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            feeds_file = Path(tmp) / "feeds.toml"
            feeds_file.write_text(f"allow_loopback = true\nper_host = {per_host}\nconcurrency = {feeds}\n"
                                  + "".join(f'[[feeds]]\nurl = "{u}"\n' for u in urls))
            lines = Path(tmp) / "articles.jsonl"
            lines.write_bytes(b"\n".join(dumps({"id": f"p{n}", **{k: a[k] for k in ("title", "text") if k in a}})
                                         for n, a in enumerate(articles)) + b"\n")
            for _ in range(rounds):
                tag = uuid.uuid4().hex[:8]
                env = {**os.environ, "STREAM_BROKER": bootstrap, "STREAM_APP_ID": f"bench-ingest-{tag}",
                       "STREAM_TOPIC_RAW": f"bench-ingest-{tag}.raw", "STREAM_TOPIC_SOURCES": f"bench-ingest-{tag}.src",
                       "STREAM_TOPIC_SOURCES_SEEN": f"bench-ingest-{tag}.seen", "STREAM_LOG_LEVEL": "warn",
                       "STREAM_PLUGINS": "feeds,clean"}
                start = time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "stream", "ingest", str(feeds_file), "--once"], env=env,
                                      capture_output=True, text=True)
                seconds = time.perf_counter() - start
                if done.returncode != 0 or f"{len(articles)} new articles sent" not in done.stdout:
                    raise RuntimeError(f"stream ingest --once: {done.stdout}{done.stderr[-2000:]}")
                ingest.append(round(len(articles) / seconds, 1))
                env["STREAM_TOPIC_RAW"] = f"bench-ingest-{tag}.produce"
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "stream", "produce", str(lines)], env=env, check=True,
                               capture_output=True)
                produce.append(round(len(articles) / (time.perf_counter() - start), 1))
    finally:
        server.shutdown()
    return {"ingest_articles_per_s": ingest, "produce_articles_per_s": produce, "entries": len(articles),
            "feeds": feeds, "per_host": per_host}


if __name__ == "__main__":
    from stream.runtime.inputs import title_of

    samples = sorted(Path("examples/articles").glob("*.txt"))
    texts = [p.read_text() for p in samples]
    corpus = [{"title": title_of(t), "text": t} for t in texts]
    articles = [corpus[n % len(corpus)] for n in range(int(os.environ.get("N", "1000")))]
    print(ingest_rates(os.environ.get("STREAM_BROKER", "127.0.0.1:9092"), articles, int(os.environ.get("ROUNDS", "3"))))
