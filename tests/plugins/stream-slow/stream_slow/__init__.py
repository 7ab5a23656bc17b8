"""A test plugin of the fault tests (installed by ``make install``; on only with
``STREAM_PLUGIN_SLOW_ENABLED=1``), by the id of an article:

* ``slow-...``: its batch takes ``STREAM_PLUGIN_SLOW_SECONDS`` seconds (a batch slower
  than the consumer's poll interval);
* ``set-...``: the plugin puts a Python ``set`` into ``extra`` (a value JSON cannot hold);
* ``boom-...``: the plugin raises on it (a failing plugin).
"""

from __future__ import annotations

import time

from stream import Article, Context, Processor, Settings, hookimpl

STREAM_PLUGIN_API = 1


class SlowProcessor(Processor):
    name = "slow"
    version = "1.0.0"
    order = 150
    cpu_bound = True  # runs in the pipeline's thread, like NER

    def __init__(self) -> None:
        self.seconds = 0.0

    def setup(self, context: Context) -> None:
        self.seconds = float(context.config.get("seconds", 0))

    def process(self, articles: list[Article]) -> None:
        if any(a.id.startswith("slow-") for a in articles):
            time.sleep(self.seconds)
        for article in articles:
            if article.id.startswith("boom-"):
                raise RuntimeError(f"the slow test plugin fails on {article.id} on purpose")
            article.extra["slow"] = {"a set"} if article.id.startswith("set-") else True


@hookimpl
def stream_register_processors(settings: Settings) -> list[Processor]:
    # Off unless a test turns it on (STREAM_PLUGIN_SLOW_ENABLED=1): it is installed in the
    # development environment, where plugins autoload.
    enabled = str(settings.plugin_config("slow").get("enabled", "")).lower() in ("1", "true", "yes")
    return [SlowProcessor()] if enabled else []
