"""Language detection of articles that arrive without ``language``.

py3langid (a Naive Bayes model over byte n-grams, shipped inside the package: nothing is
downloaded), limited to the languages news feeds carry, on the title and the first
``SAMPLE_CHARS`` characters of the clean text.  Chosen over lingua by measurement
(docs/enrichment.md): both named 64 of 64 one-sentence news texts in eight languages; on
3-5 word headlines lingua named 32 of 32 and py3langid 29 of 32; py3langid took about 1 ms
for an article's first 1,000 characters and 4.5 MB, lingua about 5 ms, 7.6 s to load its
models and 480 MB per worker.  An article has more than a headline, so the cheaper one.
"""

from __future__ import annotations

import re
import threading
from typing import Any

__all__ = ["NEWS_LANGUAGES", "SAMPLE_CHARS", "LanguageDetector"]

#: The languages detected by default (ISO 639-1): the common languages of news feeds.
NEWS_LANGUAGES = ("en", "fr", "de", "es", "it", "pt", "nl", "ru", "uk", "pl", "ar", "zh", "ja", "ko", "tr",
                  "sv", "da", "no", "fi", "cs", "ro", "hu", "el", "he", "hi", "id", "fa", "bg", "sr", "hr")
#: Characters of clean text the detection reads (enough for a stable answer; the cost grows
#: with the length: a whole 8.5 KB article took 7.7 ms, 1,000 characters about 0.6 ms, 500
#: about 0.3 ms; 500 and 1,000 gave the same language on all 1,526 longer texts of the
#: cleaning corpora and the labelled NER set).
SAMPLE_CHARS = 500
#: Fewer letters than this: no answer (a number, a name, a link).
MIN_LETTERS = 12
_ENOUGH_LETTERS = re.compile(r"(?:[\W\d_]*[^\W\d_]){" + str(MIN_LETTERS) + "}")


class LanguageDetector:
    """``detect(title, text) -> (code, confidence) | None``; the model loads on first use."""

    def __init__(self, languages: tuple[str, ...] = NEWS_LANGUAGES):
        self.languages = languages
        self._identifier: Any = None
        self._lock = threading.Lock()

    def _model(self) -> Any:
        with self._lock:
            if self._identifier is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
                known = set(identifier.nb_classes)
                unknown = [code for code in self.languages if code not in known]
                if unknown:
                    raise ValueError(f"languages {', '.join(unknown)} are not known to the detector "
                                     f"(known: {', '.join(sorted(known))})")
                identifier.set_languages(list(self.languages))
                self._identifier = identifier
            return self._identifier

    def load(self) -> None:
        """Load the model now (at setup, not in the first batch)."""
        self._model()

    def detect(self, title: str | None, text: str) -> tuple[str, float] | None:
        sample = ((title or "") + "\n" + text[:SAMPLE_CHARS]).strip()
        if not _ENOUGH_LETTERS.match(sample):
            return None
        code, confidence = self._model().classify(sample)
        return str(code), round(float(confidence), 3)
