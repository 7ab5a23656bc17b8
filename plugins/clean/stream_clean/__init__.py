"""stream's cleaning processor: normalisation and boilerplate removal.

Fills ``clean_text`` from ``text`` (see ``cleaner.py`` for the steps) and moves leading
metadata such as `` date 2022-01-22`` into ``published_at`` when that is empty.

Settings (``[plugins.clean]`` or ``STREAM_PLUGIN_CLEAN_<KEY>``):

``rules_file``
    a TOML file of extra boilerplate rules, in the shape of ``boilerplate.toml``; they are
    added to the built-in ones.
"""

from __future__ import annotations

from stream import Article, Context, Processor, Settings, hookimpl

from .cleaner import clean
from .rules import DEFAULT_RULES, Rules, load_rules

__version__ = "0.1.0"
#: The stream plugin API this plugin is written for.
STREAM_PLUGIN_API = "1.0"
__all__ = ["CleanProcessor", "__version__"]


class CleanProcessor(Processor):
    """Fills ``clean_text``."""

    name = "clean"
    version = __version__
    order = 100
    cpu_bound = True

    def __init__(self, rules: Rules | None = None) -> None:
        self.rules = rules or load_rules(DEFAULT_RULES)

    def setup(self, context: Context) -> None:
        extra = context.config.get("rules_file")
        if extra:
            self.rules = self.rules.merged(load_rules(str(extra)))

    def process(self, articles: list[Article]) -> None:
        for article in articles:
            result = clean(article.text, self.rules)
            article.clean_text = result.text
            published = result.metadata.get("published_at")
            if published and not article.published_at:
                article.published_at = published


@hookimpl
def stream_register_processors(settings: Settings) -> list[Processor]:
    return [CleanProcessor()]
