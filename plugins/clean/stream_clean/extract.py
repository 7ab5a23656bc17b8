"""The article in a web page: text, title, author and date, by trafilatura.

An input article may carry ``html`` (its page) in place of ``text``; the clean plugin
calls :func:`extract` on it before cleaning.  trafilatura finds the main text and drops the
site's chrome (navigation, cookie banners, share rows, "most read" boxes, footers); its
paragraphs come back one per line and become the blank-line-separated paragraphs the
cleaner expects.  Nothing is fetched here: the bytes come with the article.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Extracted", "extract"]

#: Fewer words than this is no article: trafilatura falls back to whatever text a page has,
#: and a page of navigation only, or an error page, gives a few words ("Home").
MIN_WORDS = 10


@dataclass(frozen=True, slots=True)
class Extracted:
    text: str
    title: str | None = None
    author: str | None = None
    #: ISO 8601 date (``2026-11-30``), as htmldate finds it in the page
    date: str | None = None


def extract(html: str | bytes, url: str | None = None) -> Extracted | None:
    """The article of ``html``, or None when the page holds no article text (fewer than
    :data:`MIN_WORDS` words of it)."""
    import trafilatura

    document = trafilatura.bare_extraction(html, url=url, with_metadata=True, include_comments=False,
                                           include_tables=False)
    if document is None or not (document.text or "").strip():
        return None
    title = (document.title or "").strip() or None
    lines = [line.strip() for line in document.text.splitlines() if line.strip()]
    if title and lines and lines[0] == title:
        lines = lines[1:]  # the headline repeated as the first line of the text
    if sum(len(line.split()) for line in lines) < MIN_WORDS:
        return None
    return Extracted("\n\n".join(lines), title, (document.author or "").strip() or None, document.date or None)
