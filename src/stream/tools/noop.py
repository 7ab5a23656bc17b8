"""The ``noop`` plugin: a processor that changes nothing, for measuring the framework alone
(benchmark R1 and R10).  Installed with stream, loaded like any plugin, but it registers its
processor only when turned on (``STREAM_PLUGIN_NOOP_ENABLED=1``), so autoload leaves it out."""

from __future__ import annotations

import pluggy

from ..processor import Processor
from ..records import Article
from ..settings import Settings

STREAM_PLUGIN_API = "1.0"
hookimpl = pluggy.HookimplMarker("stream")


class NoopProcessor(Processor):
    name = "noop"
    version = "1.0.0"
    order = 100

    def process(self, articles: list[Article]) -> None:
        return None


@hookimpl
def stream_register_processors(settings: Settings) -> list[Processor]:
    enabled = str(settings.plugin_config("noop").get("enabled", "")).lower() in ("1", "true", "yes")
    return [NoopProcessor()] if enabled else []
