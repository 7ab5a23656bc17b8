"""stream-feeds: the feed source of ``stream ingest`` (``[[feeds]]`` in the sources file).

Registered by entry point like any third-party source; see ``docs/sources.md``.
"""

from __future__ import annotations

from stream import Settings, hookimpl
from stream.sources import Source

from .feed import FeedSource

__version__ = "0.1.0"
#: The stream plugin API this plugin is written for (1.1: sources).
STREAM_PLUGIN_API = "1.1"


@hookimpl
def stream_register_sources(settings: Settings) -> list[type[Source]]:
    return [FeedSource]
