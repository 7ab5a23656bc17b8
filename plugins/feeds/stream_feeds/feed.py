"""The feed source: poll a feed conditionally, and make each new entry an article from its page.

A poll sends ``If-None-Match`` and ``If-Modified-Since`` with the validators of the last
poll that sent everything (kept in the entry's memory), so an unchanged feed costs a 304.
Each new entry's page is fetched through the ingester's checked fetcher and extracted by
trafilatura (``stream_clean.extract``, in a thread): the article carries ``url``,
``source``, ``title``, ``published_at``, ``text`` and ``text_from: "page"``.  When the page
cannot be fetched or holds no article, the entry's own summary is the text, marked
``text_from: "summary"`` with the reason in ``page_error``.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator
from urllib.parse import urlsplit

from stream.records import make_id
from stream.sources import FetchError, Found, Memory, Source

from .parse import FeedEntry, ParsedFeed, parse_feed

__all__ = ["FeedSource"]

_KEYS = {"url": "the feed's address (http or https)", "every": "seconds between polls",
         "source": "the articles' source (default: the feed's title)",
         "pages": "fetch each entry's page (default true); false: the entry's summary is the text"}


class FeedSource(Source):
    """``[[feeds]]``: an RSS 2.0, Atom or JSON Feed feed."""

    kind = "feeds"
    version = "0.1.0"

    @classmethod
    def configure(cls, entry: dict[str, Any]) -> dict[str, Any]:
        for key in entry:
            if key not in _KEYS:
                raise ValueError(f"unknown key {key!r}; a feed has " + ", ".join(sorted(_KEYS)))
        url = entry.get("url")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ValueError(f"url: {url!r} is not an http(s) address; give the feed's URL" if "url" in entry else
                             "a feed needs url = \"https://...\"")
        pages = entry.get("pages", True)
        if not isinstance(pages, bool):
            raise ValueError(f"pages: {pages!r}; give true or false")
        return {**entry, "pages": pages}

    async def poll(self, memory: Memory) -> AsyncIterator[Found]:
        url = self.entry["url"]
        headers = {"accept": "application/rss+xml, application/atom+xml, application/feed+json, "
                             "application/xml;q=0.9, */*;q=0.8"}
        if memory.state.get("etag"):
            headers["if-none-match"] = memory.state["etag"]
        if memory.state.get("last_modified"):
            headers["if-modified-since"] = memory.state["last_modified"]
        response = await self.context.fetch.get(url, headers)
        if response.status == 304:
            memory.not_modified = True
            return
        feed = await asyncio.to_thread(parse_feed, response.content, response.headers, url)
        new = [e for e in reversed(feed.entries) if e.key not in memory]  # oldest first
        articles = await asyncio.gather(*(self._article(e, feed) for e in new))
        for entry, article in zip(new, articles, strict=False):
            yield Found(entry.key, article)
        # Only after every new entry was yielded: a poll that fails before this point asks
        # again without validators and sees the same entries.
        memory.state["etag"] = response.headers.get("etag")
        memory.state["last_modified"] = response.headers.get("last-modified")

    async def _article(self, entry: FeedEntry, feed: ParsedFeed) -> dict[str, Any]:
        url = self.entry["url"]
        article: dict[str, Any] = {
            "id": make_id(entry.link or f"{url}#{entry.key}", ""),
            "url": entry.link,
            "title": entry.title,
            "source": self.entry.get("source") or feed.title or urlsplit(url).hostname,
            "published_at": entry.published,
            "feed": url,
        }
        if entry.author:
            article["author"] = entry.author
        problem = "the feed source does not fetch pages (pages = false)"
        if self.entry.get("pages", True) and entry.link:
            try:
                page = await self.context.fetch.get(entry.link)
                from stream_clean.extract import extract

                found = await asyncio.to_thread(extract, page.content, page.url)
                if found is not None:
                    article.update(text=found.text, text_from="page")
                    article["title"] = article["title"] or found.title
                    article["published_at"] = article["published_at"] or found.date
                    if found.author and "author" not in article:
                        article["author"] = found.author
                    return {k: v for k, v in article.items() if v is not None}
                problem = "the page holds no article text"
            except FetchError as exc:
                problem = f"the page could not be fetched: {exc}"
        elif not entry.link:
            problem = "the entry has no link"
        text, text_from = (entry.summary, "summary") if entry.summary else (entry.title, "title")
        article.update(text=text or "", text_from=text_from, page_error=problem)
        return {k: v for k, v in article.items() if v is not None}
