"""The event loop keeps running while the model works (Kafka heartbeats depend on it)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from stream import Article, Context
from stream.runtime.pipeline import Pipeline
from stream.settings import Settings
from stream_bench.harness import build_corpus
from stream_ner import NerProcessor

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "articles"


async def test_the_event_loop_ticks_during_a_long_ner_batch() -> None:
    pipeline = Pipeline([NerProcessor()])
    pipeline.setup(lambda proc: Context(settings=Settings()))
    corpus = build_corpus(sorted(EXAMPLES.glob("*.txt")), 40)
    batch = [Article(id=a["id"], text=a["text"]) for a in corpus]
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    start = time.perf_counter()
    await pipeline.run(batch)
    took = time.perf_counter() - start
    done.set()
    await task
    pipeline.close()
    assert took > 1.0, "the batch should be long enough to matter"
    # Blocking the loop for the batch would give one gap as long as the batch itself.
    assert max(gaps) < took / 4, (max(gaps), took)
    assert len(gaps) > 20


def test_the_bench_corpus_is_reproducible_and_sized_like_news() -> None:
    samples = sorted(EXAMPLES.glob("*.txt"))
    a, b = build_corpus(samples, 30, seed=3), build_corpus(samples, 30, seed=3)
    assert a == b and a != build_corpus(samples, 30, seed=4)
    assert all(2000 <= len(x["text"]) <= 7500 for x in a)
