"""stream-quotes: quotations and who said them, in ``extra.quotes``."""

from __future__ import annotations

import re
from typing import Any

from stream import Article, ConfigError, Context, Processor, Settings, hookimpl

__version__ = "1.0.0"
#: The stream plugin API this plugin is written for.
STREAM_PLUGIN_API = "1.0"

_QUOTE = re.compile(r"“([^”]{3,2000})”|\"([^\"]{3,2000})\"")
_VERB = r"(?:said|says|told|added|stressed|insisted|warned|explained|noted|asked)"
_NAME = r"((?:[A-Z][\w.'’-]+\s){0,3}[A-Z][\w'’-]+)"
_AFTER = re.compile(rf"^[,.]?\s*(?:”\s*)?{_NAME}\s+{_VERB}\b|^[,.]?\s*{_VERB}\s+{_NAME}")
_BEFORE = re.compile(rf"{_NAME}\s+{_VERB}\s*(?:that\s*)?[:,]?\s*$")
_WORD = re.compile(r"\w+")


class QuotesProcessor(Processor):
    name = "quotes"
    version = __version__
    order = 250
    after = ("ner",)  # uses the canonical names NER finds, when it runs

    def __init__(self) -> None:
        self.min_words = 4

    def setup(self, context: Context) -> None:
        raw = context.config.get("min_words", 4)
        try:
            self.min_words = int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"[plugins.quotes] min_words must be a whole number, not {raw!r}") from None

    def process(self, articles: list[Article]) -> None:
        for article in articles:
            text = article.clean_text or article.text
            people = {e["canonical"].split()[-1].casefold(): e["canonical"]
                      for e in article.entity_summary if e["label"] == "PERSON"}
            quotes: list[dict[str, Any]] = []
            for match in _QUOTE.finditer(text):
                group = 1 if match.group(1) is not None else 2
                inner = match.group(group).strip()
                if len(_WORD.findall(inner)) < self.min_words:
                    continue
                start = match.start(group) + (len(match.group(group)) - len(match.group(group).lstrip()))
                speaker = self._speaker(text, match.start(), match.end(), people)
                quotes.append({"text": inner, "start": start, "end": start + len(inner), "speaker": speaker})
            article.extra["quotes"] = quotes

    @staticmethod
    def _speaker(text: str, start: int, end: int, people: dict[str, str]) -> str | None:
        after = _AFTER.search(text[end:end + 80])
        before = _BEFORE.search(text[max(0, start - 80):start])
        found = next((m.group(1) or m.group(2) for m in (after, before) if m and (m.group(1) or m.group(2))), None)
        if found is None:
            return None
        return people.get(found.split()[-1].casefold(), found)


@hookimpl
def stream_register_processors(settings: Settings) -> list[Processor]:
    return [QuotesProcessor()]
