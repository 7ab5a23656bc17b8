"""A real HTTP server on 127.0.0.1 for the feed source's tests, in its own thread.

It serves an RSS 2.0, an Atom and a JSON feed whose entries link to article pages (the
extraction set's pages, ``tests/data/pages``), and the bad cases: a page that is not a
feed, a feed that answers 500, and a feed whose entry redirects to a private address.
Feeds answer 304 to a matching ``If-None-Match``; every request's headers are kept.
"""

from __future__ import annotations

import email.utils
import hashlib
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

PAGES = Path(__file__).parent / "data" / "pages"


@dataclass
class Item:
    slug: str
    title: str
    page: str          # the file name of the page in tests/data/pages
    published: float   # unix time

    def link(self, base: str) -> str:
        """Its page's address: unique per item (the query names it), so that two items on
        one page are two articles, as two feeds' entries are."""
        if self.page.startswith("/"):
            return f"{base}{self.page}"
        return f"{base}/pages/{self.page}?item={self.slug}"


@dataclass
class FeedServer:
    """``feeds[name] = [Item, ...]``: name ``rss``, ``atom`` or ``json`` picks the format by
    its path (``/NAME.xml`` or ``/NAME.json``); ``page_delay`` slows every page."""

    feeds: dict[str, list[Item]] = field(default_factory=dict)
    page_delay: float = 0.0
    requests: list[tuple[str, dict[str, str], int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def start(self) -> FeedServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                status, headers, body = server.answer(self.path, {k.lower(): v for k, v in self.headers.items()})
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def seen(self, path: str) -> list[dict[str, str]]:
        with self.lock:
            return [h for p, h, _s in self.requests if p == path]

    # ---- what it answers ---------------------------------------------------------------------
    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        status, out, body = self._answer(path, headers)
        with self.lock:
            self.requests.append((path, headers, status))
        return status, out, body

    def _answer(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/pages/"):
            time.sleep(self.page_delay)
            name = path.split("/")[-1].split("?")[0]
            file = PAGES / name
            if not file.is_file():
                return 404, {"Content-Type": "text/plain"}, b"no such page"
            return 200, {"Content-Type": "text/html; charset=utf-8"}, file.read_bytes()
        if path == "/not-a-feed.xml":
            return 200, {"Content-Type": "text/html"}, b"<html><body><p>Welcome to our site</p></body></html>"
        if path == "/500.xml":
            return 500, {"Content-Type": "text/plain"}, b"internal error"
        if path == "/to-private":
            return 302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""
        if path == "/redirect.xml":
            return 301, {"Location": "/rss.xml"}, b""
        name, _, ext = path.lstrip("/").partition(".")
        with self.lock:
            items = list(self.feeds.get(name, []))
        if name not in self.feeds:
            return 404, {"Content-Type": "text/plain"}, b"no such feed"
        body, ctype = self.render(name, ext, sorted(items, key=lambda i: -i.published))  # newest first
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        modified = email.utils.formatdate(max([i.published for i in items], default=0), usegmt=True)
        out = {"Content-Type": ctype, "ETag": etag, "Last-Modified": modified}
        if headers.get("if-none-match") == etag:
            return 304, {"ETag": etag}, b""
        return 200, out, body

    def render(self, name: str, ext: str, items: list[Item]) -> tuple[bytes, str]:
        def link(i: Item) -> str:
            return i.link(self.base)

        if ext == "json":
            feed = {"version": "https://jsonfeed.org/version/1.1", "title": f"The {name} feed",
                    "items": [{"id": i.slug, "url": link(i), "title": i.title,
                               "summary": f"Summary of {i.title}.",
                               "date_published": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(i.published))}
                              for i in items]}
            return orjson.dumps(feed), "application/feed+json"
        if name.startswith("atom"):
            entries = "".join(
                f"<entry><id>urn:test:{i.slug}</id><title>{i.title}</title><link href=\"{link(i)}\"/>"
                f"<updated>{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(i.published))}</updated>"
                f"<summary>Summary of {i.title}.</summary></entry>" for i in items)
            xml = (f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
                   f"<title>The {name} feed</title><id>urn:test:{name}</id>"
                   f"<updated>2026-12-01T00:00:00Z</updated>{entries}</feed>")
            return xml.encode(), "application/atom+xml"
        entries = "".join(
            f"<item><guid>{i.slug}</guid><title>{i.title}</title><link>{link(i)}</link>"
            f"<pubDate>{email.utils.formatdate(i.published, usegmt=True)}</pubDate>"
            f"<description>&lt;p&gt;Summary of {i.title}.&lt;/p&gt;</description></item>" for i in items)
        xml = (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>The {name} feed'
               f"</title><link>{self.base}/</link><description>test</description>{entries}</channel></rss>")
        return xml.encode(), "application/rss+xml"


def items(prefix: str, count: int, start: int = 0) -> list[Item]:
    """``count`` items whose pages are the extraction set's pages, in turn."""
    pages = sorted(p.name for p in PAGES.glob("*.html"))
    return [Item(f"{prefix}-{n}", f"{prefix.capitalize()} story number {n}", pages[n % len(pages)],
                 1764547200 + n * 60) for n in range(start, start + count)]
