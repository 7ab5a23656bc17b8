"""Feeds as entries: RSS 2.0 and Atom by feedparser, JSON Feed (1.0, 1.1) as the JSON it is.

feedparser's released versions (6.0) do not read JSON Feed; it is read here by its
specification (https://www.jsonfeed.org/version/1.1/).  Nothing is fetched here: the bytes
come from the ingester's checked fetcher.
"""

from __future__ import annotations

import calendar
import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Mapping

import orjson

from stream.sources import SourceError

__all__ = ["FeedEntry", "ParsedFeed", "parse_feed", "summary_text"]


@dataclass(frozen=True)
class FeedEntry:
    key: str                    # what the ingester remembers: the entry's id, else its link
    link: str | None
    title: str | None
    summary: str | None         # plain text
    published: str | None       # ISO 8601, UTC
    author: str | None = None


@dataclass(frozen=True)
class ParsedFeed:
    format: str                 # rss20, atom10, json1.1, ...
    title: str | None
    entries: list[FeedEntry] = field(default_factory=list)


_BLOCK = re.compile(r"(?i)<\s*(?:/p|br\s*/?|/div|/li|/h[1-6])\s*>")
_TAG = re.compile(r"<[^>]+>")


def summary_text(markup: str | None) -> str | None:
    """Plain text of an entry's HTML summary: paragraphs as blank-line-separated lines."""
    if not markup:
        return None
    text = html.unescape(_TAG.sub("", _BLOCK.sub("\n\n", markup)))
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    out = "\n\n".join(p for p in paragraphs if p)
    return out or None


def _iso_struct(value: Any) -> str | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC).isoformat().replace("+00:00", "Z")
    except (TypeError, ValueError, OverflowError):
        return None


def _iso_text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _is_json(content: bytes, headers: Mapping[str, str]) -> bool:
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    return ctype in ("application/feed+json", "application/json") or content.lstrip()[:1] == b"{"


def _json_feed(content: bytes, url: str) -> ParsedFeed:
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise SourceError("not_a_feed", f"{url}: not an RSS, Atom or JSON feed (invalid JSON: {exc})") from None
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version, str) or not version.startswith("https://jsonfeed.org/version/"):
        raise SourceError("not_a_feed", f"{url}: JSON without a JSON Feed 'version' (https://jsonfeed.org/version/1.1)")
    items = data.get("items")
    if not isinstance(items, list):
        raise SourceError("not_a_feed", f"{url}: a JSON Feed without 'items'")
    entries = []
    for item in items:
        if not isinstance(item, dict):
            continue
        link = item.get("url") if isinstance(item.get("url"), str) else None
        ident = item.get("id")
        key = str(ident) if isinstance(ident, (str, int)) and str(ident) else link
        if not key:
            continue
        summary = item.get("content_text") or summary_text(item.get("content_html")) or item.get("summary")
        authors = item.get("authors") or ([item["author"]] if isinstance(item.get("author"), dict) else [])
        author = next((a.get("name") for a in authors if isinstance(a, dict) and a.get("name")), None)
        entries.append(FeedEntry(key, link, item.get("title") if isinstance(item.get("title"), str) else None,
                                 summary if isinstance(summary, str) else None,
                                 _iso_text(item.get("date_published")), author))
    title = data.get("title") if isinstance(data.get("title"), str) else None
    return ParsedFeed("json" + version.rsplit("/", 1)[-1], title, entries)


def parse_feed(content: bytes, headers: Mapping[str, str], url: str) -> ParsedFeed:
    """The entries of a feed's bytes.

    :raises SourceError: ``not_a_feed`` when the bytes are no RSS, Atom or JSON feed.
    """
    if _is_json(content, headers):
        return _json_feed(content, url)
    import feedparser

    parsed = feedparser.parse(content, response_headers={"content-type": headers.get("content-type", ""),
                                                         "content-location": url})
    if not parsed.version:
        why = f" ({parsed.bozo_exception})" if parsed.get("bozo") else ""
        raise SourceError("not_a_feed", f"{url}: not an RSS, Atom or JSON feed{why}")
    entries = []
    for item in parsed.entries:
        link = item.get("link") or None
        key = item.get("id") or link or (item.get("title", "") + "|" + item.get("published", "")).strip("|")
        if not key:
            continue
        summary = None
        if item.get("content"):
            summary = summary_text(item.content[0].get("value"))
        summary = summary or summary_text(item.get("summary"))
        published = _iso_struct(item.get("published_parsed") or item.get("updated_parsed"))
        entries.append(FeedEntry(key, link, item.get("title") or None, summary, published, item.get("author") or None))
    return ParsedFeed(parsed.version, parsed.feed.get("title") or None, entries)
