"""``stream bench``: figures measured side by side in one run.

So far: the NER stage inside a real worker against standalone spaCy ``nlp.pipe`` on the
same texts with the same components (R2 of the benchmark plan).  The worker's own per-stage
timings (``processing.plugins[].ms``, milliseconds per article of each batch) are summed
over the enriched records it published; the standalone side runs ``nlp.pipe`` on the same
``clean_text`` values in batches of the same size.  A and B alternate ``rounds`` times and
the median ratio is reported with its min and max.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from .kafka import ensure_topics, make_producer, read_records
from .records import dumps, loads
from .settings import Settings

__all__ = ["build_corpus", "run_ner_bench"]


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


@dataclass
class NerRound:
    worker_ner_s: float
    standalone_s: float
    words: int

    @property
    def ratio(self) -> float:
        return self.standalone_s / self.worker_ner_s


def _standalone(texts: list[str], batch_size: int) -> float:
    import spacy

    from stream_ner import default_model, needed_components

    nlp = spacy.load(default_model())
    nlp.select_pipes(enable=needed_components(nlp))
    list(nlp.pipe(texts[:8]))  # warm up
    start = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        for _doc in nlp.pipe(texts[i:i + batch_size], batch_size=batch_size):
            pass
    return time.perf_counter() - start


async def _worker_round(settings: Settings, articles: list[dict[str, Any]], env: dict[str, str],
                        log: Path) -> list[Any]:
    tag = uuid.uuid4().hex[:8]
    raw, enriched = f"bench-{tag}.raw", f"bench-{tag}.enriched"
    env = {**env, "STREAM_TOPIC_RAW": raw, "STREAM_TOPIC_ENRICHED": enriched,
           "STREAM_TOPIC_ALERTS": f"bench-{tag}.alerts", "STREAM_TOPIC_DLQ": f"bench-{tag}.dlq",
           "STREAM_APP_ID": f"bench-{tag}", "STREAM_PARTITIONS": "1", "STREAM_PLUGINS": "clean,ner"}
    await ensure_topics(settings.broker, [(raw, 1, False), (enriched, 1, False)])
    producer = make_producer(settings.broker)
    await producer.start()
    try:
        futures = [await producer.send(raw, value=dumps(a), key=a["id"].encode()) for a in articles]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    with open(log, "ab") as fh:
        worker = subprocess.Popen([sys.executable, "-m", "stream", "worker"], env=env, stdout=fh,
                                  stderr=subprocess.STDOUT)
    try:
        records: list[Any] = []
        deadline = time.monotonic() + 600
        while len(records) < len(articles) and time.monotonic() < deadline:
            records = [loads(r.value or b"null") async for r in read_records(settings.broker, enriched, timeout=3)]
            await asyncio.sleep(1)
        return records
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)


def run_ner_bench(settings: Settings, samples: list[Path], *, count: int, rounds: int) -> dict[str, Any]:
    articles = build_corpus(samples, count)
    env = dict(os.environ, STREAM_BROKER=settings.broker,
               STREAM_DATA_DIR=tempfile.mkdtemp(prefix="stream-bench-"))
    log = Path(env["STREAM_DATA_DIR"]) / "worker.log"
    results: list[NerRound] = []
    with click.progressbar(range(rounds), label="NER stage vs standalone nlp.pipe") as bar:
        for _ in bar:
            records = asyncio.run(_worker_round(settings, articles, env, log))
            if len(records) < len(articles):
                raise click.ClickException(f"the worker published {len(records)} of {len(articles)}; see {log}")
            ner_s = sum(p["ms"] for r in records for p in r["processing"]["plugins"] if p["name"] == "ner") / 1000
            texts = [r["clean_text"] for r in records]
            words = sum(len(t.split()) for t in texts)
            results.append(NerRound(ner_s, _standalone(texts, settings.batch_size), words))
    ratios = [r.ratio for r in results]
    summary = {
        "articles": count,
        "rounds": rounds,
        "R2_ner_stage_vs_standalone": {"median": statistics.median(ratios), "min": min(ratios),
                                       "max": max(ratios), "target": 0.9},
        "standalone_words_per_s": statistics.median(r.words / r.standalone_s for r in results),
        "worker_ner_words_per_s": statistics.median(r.words / r.worker_ner_s for r in results),
        "standalone_articles_per_s": statistics.median(count / r.standalone_s for r in results),
    }
    return summary
