"""Sources: what brings articles in (feeds, pages, pushes), polled by ``stream ingest``.

For source authors: subclass :class:`Source`, return the class from the
``stream_register_sources`` hook, and fetch with :attr:`SourceContext.fetch` (the checked
HTTP client).  ``docs/plugins.md`` ("Writing a source") walks through one.
"""

from __future__ import annotations

from .base import Found, Memory, Source, SourceContext, SourceError
from .fetch import Fetcher, FetchError, Page

__all__ = ["FetchError", "Fetcher", "Found", "Memory", "Page", "Source", "SourceContext", "SourceError"]
