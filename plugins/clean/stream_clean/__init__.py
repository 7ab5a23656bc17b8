"""stream's cleaning processor: normalisation and boilerplate removal.

Fills ``clean_text`` from ``text`` (see ``cleaner.py`` for the steps) and moves leading
metadata such as `` date 2022-01-22`` into ``published_at`` when that is empty.  An article
sent as its page (``html`` in place of ``text``) first gets its text, title, author and date
from the page by trafilatura (``extract.py``); a page without article text sends the
article to the dead letters with that reason.

Settings (``[plugins.clean]`` or ``STREAM_PLUGIN_CLEAN_<KEY>``):

``rules_file``
    a TOML file of extra boilerplate rules, in the shape of ``boilerplate.toml``; they are
    added to the built-in ones.
``detect_language``
    fill ``language`` (ISO 639-1) and ``language_confidence`` of articles that arrive
    without a language (default true; see ``language.py``).
``languages``
    the languages detection may answer (default: 30 common news languages).
"""

from __future__ import annotations

from stream import Article, ConfigError, Context, Processor, Settings, hookimpl
from stream.errors import RecordError

from .cleaner import clean
from .extract import extract
from .language import NEWS_LANGUAGES, LanguageDetector
from .rules import DEFAULT_RULES, Rules, load_rules

__version__ = "0.1.0"
#: The stream plugin API this plugin is written for.
STREAM_PLUGIN_API = "1.0"
__all__ = ["CleanProcessor", "__version__", "extract"]


class CleanProcessor(Processor):
    """Fills ``clean_text``."""

    name = "clean"
    version = __version__
    order = 100
    cpu_bound = True

    def __init__(self, rules: Rules | None = None) -> None:
        self.rules = rules or load_rules(DEFAULT_RULES)
        self.detector: LanguageDetector | None = LanguageDetector()

    def setup(self, context: Context) -> None:
        config = context.config
        extra = config.get("rules_file")
        if extra:
            self.rules = self.rules.merged(load_rules(str(extra)))
        detect = str(config.get("detect_language", True)).strip().lower()
        if detect not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            raise ConfigError(f"[plugins.clean] detect_language must be true or false, not {detect!r}")
        languages = config.get("languages", NEWS_LANGUAGES)
        if isinstance(languages, str):
            languages = [code.strip() for code in languages.split(",") if code.strip()]
        if not isinstance(languages, (list, tuple)) or not languages or not all(
                isinstance(code, str) for code in languages):
            raise ConfigError("[plugins.clean] languages must be a list of ISO 639-1 codes, such as [\"en\", \"fr\"]")
        self.detector = LanguageDetector(tuple(languages)) if detect in ("1", "true", "yes", "on") else None
        if self.detector is not None:
            try:
                self.detector.load()
            except ValueError as exc:
                raise ConfigError(f"[plugins.clean] languages: {exc}") from None

    def process(self, articles: list[Article]) -> None:
        for article in articles:
            # (getattr: a core older than the html field has none; see the upgrade test)
            if getattr(article, "html", None) is not None:
                _from_page(article)
            result = clean(article.text, self.rules)
            article.clean_text = result.text
            published = result.metadata.get("published_at")
            if published and not article.published_at:
                article.published_at = published
            if article.language is None and self.detector is not None:
                found = self.detector.detect(article.title, article.clean_text)
                if found is not None:
                    article.language, article.language_confidence = found


def _from_page(article: Article) -> None:
    """An article sent as its page (``html``): its text, and the title, author and date it
    lacks, from the page (``extract.py``); then the page is dropped.  :raises RecordError:
    the page holds no article text (the article goes to the dead letters with that reason)."""
    html = article.html
    if article.text.strip() or not html:
        article.html = None
        return  # the input's text wins over its page
    found = extract(html, article.url)
    if found is None:  # (the page stays: tried alone again, the article fails again)
        raise RecordError("field 'html' holds no article text that trafilatura could find")
    article.text, article.html = found.text, None
    if found.title and not article.title:
        article.title = found.title
    if found.date and not article.published_at:
        article.published_at = found.date
    if found.author and "author" not in article.passthrough:
        article.passthrough["author"] = found.author


@hookimpl
def stream_register_processors(settings: Settings) -> list[Processor]:
    return [CleanProcessor()]
