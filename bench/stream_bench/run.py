"""``stream bench``: every figure of the benchmark plan (R1-R10) as a ratio measured side by
side in one run, alternating the A and B arms ``rounds`` times.

The corpus is seeded and built from the sample feed (:func:`stream_bench.harness.build_corpus`),
with planted near-duplicates and keyword hits.  The framework arms (R1, R10) and the CPU
arms (R4, R6, R7) use all of it; the arms that run spaCy in a worker (R2, R3, R5, R8) use
its first ``ner_count`` articles, as NER runs at about 20 articles a second per core.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any, Callable

from stream.ops.progress import progress
from stream.records import dumps
from stream.settings import Settings
from stream_ner.pool import usable_cores

from .flow import FlowBench, Sink, median_min_max, pid_cpu_seconds, webhook_arms
from .harness import _standalone, build_corpus, run_alert_scale_bench, run_dedup_bench

__all__ = ["PLAN", "run_benchmark"]

#: id -> (what is compared, target as (op, value))
PLAN: dict[str, tuple[str, str, float]] = {
    "R1": ("framework overhead: worker with a no-op plugin / raw aiokafka getmany -> send loop", ">=", 0.8),
    "R2": ("NER stage inside the worker / standalone spaCy nlp.pipe, same texts and components", ">=", 0.9),
    "R3": ("whole pipeline (clean, NER, dedup, alerts, webhooks to a local sink) / standalone nlp.pipe", ">=", 0.8),
    "R4": ("CPU per article of clean + dedup + alerts (10,000 rules) / CPU per article of NER", "<=", 0.10),
    "R5": ("two worker processes on two partitions / one worker (whole pipeline)", ">=", 1.6),
    "R6": ("alert cost per article with 10,000 rules / with 10 rules", "<=", 1.5),
    "R7": ("dedup insert+query with 1,000,000 signatures in the index / with 10,000", "<=", 1.5),
    "R8": ("p99 end-to-end latency (produce -> webhook) at half the maximum rate / idle median", "<=", 3.0),
    "R9": ("webhook delivery (signing, state, retries scheduled) / raw HTTP POST loop, same concurrency", ">=", 0.8),
    "R10": ("worker with a no-op plugin / Quix Streams passthrough application, same messages", ">=", 0.5),
    "R11": ("whole pipeline of one worker with [plugins.ner] processes = N (the cores) / N times standalone "
            "nlp.pipe on one core", ">=", 0.75),
    "R12": ("framework CPU per message (worker with a no-op plugin) / worker CPU per article of the whole "
            "pipeline", "<=", 0.02),
    "R13": ("seconds to restore 200,000 dedup signatures from the changelog, rebuild of the in-memory "
            "indexes included", "<=", 10.0),
    "R14": ("ms per article of the entity list's phrase matcher (50 entities) and the gazetteer pass of a "
            "language without a model, together", "<=", 0.5),
    # A figure to read, not a target: the ingest rate next to `stream produce`'s (issue 29).
    "R15": ("stream ingest --once of 1,000 feed entries, each page fetched from a local server and extracted / "
            "stream produce of the same articles (articles per second)", "", 0.0),
    "R16": ("CPU ms per article of the stories processor (features, candidates, scoring, state) with 100,000 "
            "open stories", "<=", 2.0),
}

FULL = "clean,ner,dedup,alerts"
#: The arms that compare with one core of spaCy (R2, R3, R5, R8) run the model in the worker.
ONE_MODEL_PROCESS = {"STREAM_PLUGIN_NER_PROCESSES": "1"}


def plant(corpus: list[dict[str, Any]], seed: int = 21) -> list[dict[str, Any]]:
    """Add keyword hits to a quarter of the articles and near-duplicate copies (one
    paragraph dropped, a headline changed) of a tenth, at seeded places."""
    rng = random.Random(seed)
    out = []
    for n, a in enumerate(corpus):
        if n % 4 == 0:
            a = dict(a, text=a["text"] + "\n\nTroops were reported moving towards the border overnight.")
        out.append(a)
    for a in rng.sample(out, len(out) // 10):
        paragraphs = a["text"].split("\n\n")
        if len(paragraphs) > 2:
            paragraphs.pop(rng.randrange(1, len(paragraphs)))
        out.insert(rng.randrange(len(out)), {"id": a["id"] + "-copy", "title": "Update: " + a["title"],
                                             "text": "\n\n".join(paragraphs)})
    return out


def _ratio(a: list[float], b: list[float]) -> dict[str, float]:
    return median_min_max([x / y for x, y in zip(a, b, strict=True) if y > 0])


def _broker_cpu(bootstrap: str) -> float:
    """CPU seconds (user + system) used so far by the local broker's processes on the port of
    ``bootstrap`` (0 when it is not ours to see)."""
    from stream.tools.broker import LocalBroker

    try:
        port = int(bootstrap.split(",")[0].rsplit(":", 1)[1])
    except (ValueError, IndexError):
        return 0.0
    return sum(pid_cpu_seconds(pid) for pid in LocalBroker(port).pids().values() if pid)


def _entry(rid: str, ratio: dict[str, float], **detail: Any) -> dict[str, Any]:
    what, op, target = PLAN[rid]
    met = None if not op else ratio["median"] >= target if op == ">=" else ratio["median"] <= target
    # Only the median, min and max: a harness's own keys (its "target") must not replace ours.
    return {"id": rid, "what": what, "target": f"{op} {target:g}" if op else "(a figure)", "met": met,
            **{k: round(ratio[k], 3) for k in ("median", "min", "max")}, "detail": detail}


#: The prefix of every topic (and consumer group) of the benchmark's arms.
BENCH_PREFIX = "bench-"


def run_benchmark(settings: Settings, samples: list[Path], *, count: int, ner_count: int, rounds: int,
                  dedup_sizes: tuple[int, int], logdir: Path, soak: int = 50_000,
                  echo: Callable[[str], None] = print, restore: int = 200_000,
                  open_stories: int = 100_000) -> dict[str, Any]:
    """Run every arm; :return: the results (``ratios`` in the order of :data:`PLAN`).

    The arms' topics (``bench-*``, a few hundred a run) are deleted at the end, and those a
    run that was stopped left behind at the start: kept, they slow the broker's start."""
    from stream.runtime.kafka import delete_topics

    left = asyncio.run(delete_topics(settings.kafka, [BENCH_PREFIX]))
    if left:
        echo(f"deleted {left} {BENCH_PREFIX}* topics left by an earlier run")
    try:
        return _run(settings, samples, count=count, ner_count=ner_count, rounds=rounds, dedup_sizes=dedup_sizes,
                    logdir=logdir, soak=soak, echo=echo, restore=restore, open_stories=open_stories)
    finally:
        asyncio.run(delete_topics(settings.kafka, [BENCH_PREFIX]))


def _run(settings: Settings, samples: list[Path], *, count: int, ner_count: int, rounds: int,
         dedup_sizes: tuple[int, int], logdir: Path, soak: int, echo: Callable[[str], None],
         restore: int, open_stories: int = 100_000) -> dict[str, Any]:
    started = time.time()
    corpus = plant(build_corpus(samples, count))
    ner_articles = corpus[:ner_count]
    flow = FlowBench(settings.broker, logdir)
    results: dict[str, Any] = {"ratios": [], "sanity": {}, "arms": {}}
    noop = {"STREAM_PLUGINS": "noop", "STREAM_PLUGIN_NOOP_ENABLED": "1"}
    values = [dumps(a) for a in corpus]
    steps = 6 * rounds + 9
    with progress() as bar:
        task = bar.add_task("benchmark", total=steps)

        def step(label: str) -> None:
            bar.update(task, description=label)

        def done() -> None:
            bar.advance(task)

        # R1, R10: the framework alone, on all messages; the three arms alternate per round.
        worker_s, raw_s, quix_s, noop_cpu = [], [], [], []
        for _ in range(rounds):
            step("R1/R10: worker with a no-op plugin")
            noop_arm = asyncio.run(flow.worker_arm(corpus, noop))
            worker_s.append(noop_arm.per_second)
            noop_cpu.append(noop_arm.extra["worker_cpu_s"] / max(1, noop_arm.records))
            done()
            step("R1: raw aiokafka loop")
            raw_s.append(asyncio.run(flow.aiokafka_arm(values)).per_second)
            step("R10: Quix Streams passthrough")
            quix_s.append(asyncio.run(flow.quix_arm(values)).per_second)
            done()
        # Once, as a reference for R1 and R10: faust itself with its defaults (on 2,000 messages:
        # it runs at a few hundred a second).
        step("R1/R10: a bare faust passthrough (reference)")
        faust_s = asyncio.run(flow.faust_arm(values[:2000])).per_second
        done()
        results["arms"].update({"worker_noop_msgs_per_s": worker_s, "aiokafka_msgs_per_s": raw_s,
                                "quix_msgs_per_s": quix_s, "faust_passthrough_msgs_per_s": faust_s})
        r1 = _entry("R1", _ratio(worker_s, raw_s), messages=len(values), bare_faust_msgs_per_s=round(faust_s))
        r10 = _entry("R10", _ratio(worker_s, quix_s), messages=len(values), bare_faust_msgs_per_s=round(faust_s))

        # R2, R3: the NER stage and the whole pipeline in a worker / standalone nlp.pipe.
        ner_ratio, whole_ratio, whole_s, standalone_s, words_s, whole_cpu = [], [], [], [], [], []
        whole_pss: list[float] = []
        sink = Sink()

        async def whole_arm(env: dict[str, str] = ONE_MODEL_PROCESS) -> Any:
            await sink.start()
            try:
                hooks = flow.datadir / "bench-hooks.toml"
                hooks.write_text(f'[[endpoints]]\nid = "sink"\nurl = "http://127.0.0.1:{sink.port}/hook"\n'
                                 f'secret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="\n')
                return await flow.worker_arm(ner_articles, {"STREAM_PLUGINS": FULL, "STREAM_WEBHOOKS": str(hooks),
                                                            "STREAM_WEBHOOKS_ALLOW_LOOPBACK": "1", **env})
            finally:
                await sink.stop()

        for _ in range(rounds):
            step("R2/R3: whole pipeline in a worker")
            arm = asyncio.run(whole_arm())
            whole_pss.append(arm.extra["worker_pss_mb"])
            records = arm.extra["records"]
            whole_cpu.append(arm.extra["worker_cpu_s"] / max(1, arm.records))
            texts = [r["clean_text"] for r in records]
            ner_s = sum(p["ms"] for r in records for p in r["processing"]["plugins"] if p["name"] == "ner") / 1000
            done()
            step("R2/R3: standalone nlp.pipe")
            alone = _standalone(texts, settings.batch_size)
            done()
            ner_ratio.append(alone / ner_s)
            whole_s.append(arm.per_second)
            standalone_s.append(len(texts) / alone)
            whole_ratio.append(arm.per_second / (len(texts) / alone))
            words_s.append(sum(len(t.split()) for t in texts) / alone)
        r2 = _entry("R2", median_min_max(ner_ratio), articles=len(ner_articles))
        r3 = _entry("R3", median_min_max(whole_ratio), articles=len(ner_articles),
                    whole_pipeline_articles_per_s=statistics.median(whole_s),
                    standalone_articles_per_s=statistics.median(standalone_s),
                    whole_pipeline_articles_per_s_rounds=whole_s, worker_pss_mb=whole_pss)
        # R12: what the framework costs an article, next to what the article costs.
        tick = 1 / os.sysconf("SC_CLK_TCK")  # /proc counts CPU time in ticks: never divide by 0
        noop_cpu = [max(c, tick / max(1, len(corpus))) for c in noop_cpu]
        whole_cpu = [max(c, tick) for c in whole_cpu]
        r12 = _entry("R12", {"median": statistics.median(noop_cpu) / statistics.median(whole_cpu),
                             "min": min(noop_cpu) / max(whole_cpu), "max": max(noop_cpu) / min(whole_cpu)},
                     noop_cpu_ms_per_message=round(1000 * statistics.median(noop_cpu), 3),
                     whole_pipeline_cpu_ms_per_article=round(1000 * statistics.median(whole_cpu), 2))
        # R11: one worker using the machine: its model in as many processes as it has cores.
        cores = usable_cores()
        pooled_s, pooled_ratio, pooled_pss = [], [], []
        for _ in range(rounds):
            step(f"R11: whole pipeline, {cores} model processes")
            pooled = asyncio.run(whole_arm({"STREAM_PLUGIN_NER_PROCESSES": str(cores)}))
            per_second = pooled.per_second
            pooled_pss.append(pooled.extra["worker_pss_mb"])
            done()
            pooled_s.append(per_second)
            pooled_ratio.append(per_second / (cores * statistics.median(standalone_s)))
        r11 = _entry("R11", median_min_max(pooled_ratio), processes=cores, articles=len(ner_articles),
                     articles_per_s=statistics.median(pooled_s), articles_per_s_rounds=pooled_s,
                     worker_pss_mb=pooled_pss,
                     one_process_articles_per_s=statistics.median(whole_s),
                     standalone_one_core_articles_per_s=statistics.median(standalone_s))
        results["sanity"].update({
            "standalone_nlp_pipe_words_per_s": round(statistics.median(words_s)),
            "whole_pipeline_articles_per_s": round(statistics.median(whole_s), 2),
            "raw_passthrough_msgs_per_s": round(statistics.median(raw_s)),
            "worker_noop_msgs_per_s": round(statistics.median(worker_s)),
            "bare_faust_passthrough_msgs_per_s": round(faust_s),
            "words_per_article": round(statistics.median(len(a["text"].split()) for a in ner_articles)),
        })

        # R5: two workers on two partitions / one worker on one (whole pipeline).
        # The broker runs on the same cores: its CPU seconds per arm are reported next to R5, so
        # that a reader can tell the framework's limit from the machine's.
        two, one, broker_two, broker_one = [], [], [], []
        for _ in range(rounds):
            step("R5: two workers, two partitions")
            full = {"STREAM_PLUGINS": FULL, **ONE_MODEL_PROCESS}
            before = _broker_cpu(settings.broker)
            two.append(asyncio.run(flow.worker_arm(ner_articles, full, workers=2, partitions=2)).per_second)
            broker_two.append(round(_broker_cpu(settings.broker) - before, 2))
            step("R5: one worker")
            before = _broker_cpu(settings.broker)
            one.append(asyncio.run(flow.worker_arm(ner_articles, full)).per_second)
            broker_one.append(round(_broker_cpu(settings.broker) - before, 2))
            done()
        r5 = _entry("R5", _ratio(two, one), articles=len(ner_articles), two_workers_articles_per_s=two,
                    one_worker_articles_per_s=one, broker_cpu_s_two_workers=broker_two,
                    broker_cpu_s_one_worker=broker_one, cores=usable_cores())

        # R4: CPU per article, in-process: clean + dedup + alerts (10,000 rules) / NER.
        step("R4: CPU per article of each processor")
        r4_ratio, cpu = _cpu_split(samples, corpus[: min(len(corpus), 120)], rounds)
        r4 = _entry("R4", r4_ratio, ms_per_article=cpu)
        r14_ms, r14_split = _entity_cost(corpus[: min(len(corpus), 400)], rounds)
        r14 = _entry("R14", r14_ms, ms_per_article=r14_split, articles=min(len(corpus), 400))
        done()

        # R6, R7: in-process, alternating the sizes.
        step("R6: alerting at 10 / 10,000 rules")
        alerts = run_alert_scale_bench(samples, count=min(count, 1000), rounds=rounds)
        r6 = _entry("R6", alerts.pop("R6_alerts_10000_vs_10_rules"), **alerts)
        done()
        step(f"R7: dedup at {dedup_sizes[0]:,} / {dedup_sizes[1]:,} signatures")
        dedup = run_dedup_bench(samples, sizes=dedup_sizes, count=min(count, 1000), rounds=rounds)
        key = f"dedup_{dedup_sizes[1]}_vs_{dedup_sizes[0]}_signatures"
        r7 = _entry("R7", dedup.pop(key), **dedup)
        done()

        # R15: the ingest rate of `stream ingest --once` next to `stream produce`.
        step("R15: ingest rate, 1,000 feed entries")
        from .ingest import ingest_rates

        feed_articles = [corpus[n % len(corpus)] for n in range(1000 if count >= 1000 else 100)]
        rates = ingest_rates(settings.broker, feed_articles, rounds)
        r15 = _entry("R15", _ratio(rates["ingest_articles_per_s"], rates["produce_articles_per_s"]), **rates)
        done()

        # R16: the stories processor at 100,000 open stories (issue 28), in process.
        step(f"R16: stories at {open_stories:,} open stories")
        from .stories import story_cost

        r16_ms, r16_detail = story_cost(open_stories, max(rounds, 3))
        r16 = _entry("R16", r16_ms, **r16_detail)
        done()

        # R8: p99 latency at half the whole pipeline's rate / the median at idle.
        step("R8: end-to-end latency")
        hits = [a for a in ner_articles if "Troops were reported" in a["text"]]
        half = max(1.0, statistics.median(whole_s) / 2)
        idle, loaded = asyncio.run(_latency(flow, hits, half, rounds))
        p99 = statistics.quantiles(loaded, n=100)[98] if len(loaded) >= 2 else loaded[0]
        r8 = _entry("R8", {"median": p99 / statistics.median(idle), "min": p99 / max(idle),
                           "max": p99 / min(idle)},
                    idle_median_s=statistics.median(idle), p99_at_half_rate_s=p99, rate_per_s=half,
                    loaded_samples=len(loaded), idle_samples=len(idle))
        done()

        # R9: webhook delivery / a raw POST loop.
        step("R9: webhook delivery")
        ours, raw = [], []
        fake = [{"alert_id": f"a{n}", "rule_id": "troops", "article_id": f"x{n}", "severity": "high",
                 "kind": "keyword", "created_at": "2026-11-23T10:00:00.000Z", "snippet": "Troops were reported"}
                for n in range(max(200, count // 2))]
        for _ in range(rounds):
            a, b = asyncio.run(webhook_arms(settings.broker, fake, concurrency=8))
            ours.append(a.per_second)
            raw.append(b.per_second)
        r9 = _entry("R9", _ratio(ours, raw), deliveries=len(fake), dispatcher_per_s=ours, raw_post_per_s=raw)
        done()

        # R13: stage 2's state restore (a worker taking stage 2 over, or starting).
        step(f"R13: restore of {restore:,} dedup signatures")
        seconds, restored = asyncio.run(_restore(settings, restore, rounds))
        r13 = _entry("R13", median_min_max(seconds), signatures=restore, keys_restored=restored,
                     rounds=[round(x, 2) for x in seconds])
        done()

        # Memory soak: a worker with the stateful processors (dedup, alerts: what holds state;
        # NER over 50,000 articles would take most of an hour) over ``soak`` articles, the
        # dedup state bounded at 10,000 signatures: resident memory should level off.
        step(f"memory soak: {soak:,} articles")
        soak_corpus = [dict(a, id=f"{a['id']}-soak{n // len(corpus)}") for n, a in
                       enumerate(corpus[i % len(corpus)] for i in range(soak))]
        marks = sorted({min(soak, 10_000), soak} | {m for m in (20_000, 30_000, 40_000) if m < soak})
        memory = asyncio.run(flow.soak_arm(soak_corpus, {"STREAM_PLUGINS": "dedup,alerts",
                                                          "STREAM_PLUGIN_DEDUP_MAX_SIGNATURES": "10000"}, marks))
        rss = memory["rss_mb"]
        memory["growth_mb"] = round(rss[str(marks[-1])] - rss[str(marks[0])], 1)
        memory["marks"] = marks
        results["memory"] = memory
        done()

    results["ratios"] = [r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14, r15, r16]
    results["corpus"] = {"articles": len(corpus), "ner_articles": len(ner_articles), "rounds": rounds}
    results["seconds"] = round(time.time() - started, 1)
    return results


async def _restore(settings: Settings, signatures: int, rounds: int) -> tuple[list[float], int]:
    """Write ``signatures`` dedup entries (random signatures: a random one costs the index
    what a real one does) to a changelog as a worker would, then time, ``rounds`` times, a
    fresh state store's restore and the dedup processor's rebuild of its indexes (what a
    worker does before its first stage-2 batch)."""
    import base64
    import uuid

    import numpy as np

    from stream.processor import Context
    from stream.runtime.kafka import ensure_topics, make_producer
    from stream.runtime.state import StateStore, changelog_topic
    from stream_dedup import DedupProcessor

    app_id = f"{BENCH_PREFIX}restore-{uuid.uuid4().hex[:8]}"
    topic = changelog_topic(app_id, "dedup")
    await ensure_topics(settings.kafka, [(topic, 1, True)], settings.replication_factor)
    rng = np.random.default_rng(13)
    now = time.time()
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        futures = []
        for n in range(signatures):
            values = rng.integers(0, 2**32, size=128, dtype=np.uint32).tobytes()
            state = {"x": f"{n:024x}", "h": base64.b64encode(values).decode(), "n": 300, "l": [f"{n:024x}"]}
            decision = {"status": "unique", "duplicate_of": None, "similarity": None, "cluster_id": f"r{n}"}
            futures.append(await producer.send(topic, dumps({"d": decision, "t": now, "s": state}),
                                               key=dumps(f"a:r{n}")))
            if len(futures) >= 5000:
                await asyncio.gather(*futures)
                futures = []
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    seconds: list[float] = []
    restored = 0
    for _ in range(rounds):
        store = StateStore(settings.kafka, app_id, ("dedup",))
        start = time.perf_counter()
        await store.restore()
        dedup = DedupProcessor()
        dedup.setup(Context(settings=settings, tables={"dedup": store.tables["dedup"]}, mode="worker"))
        dedup.process([])  # the first batch after an assignment builds the indexes
        seconds.append(time.perf_counter() - start)
        restored = len(dedup.index or ())
    return seconds, restored


async def _latency(flow: FlowBench, hits: list[dict[str, Any]], rate: float, rounds: int) -> tuple[list[float],
                                                                                                     list[float]]:
    sink = Sink()
    await sink.start()
    try:
        # One rule that every latency article matches, duplicates included (the arms send the
        # same texts again), no cooldown: each article raises exactly one alert.
        rules = flow.datadir / "latency-rules.toml"
        rules.write_text('[[rules]]\nid = "latency"\nany = ["troops"]\nduplicates = true\n')
        env = {"STREAM_PLUGINS": FULL, "STREAM_BATCH_TIMEOUT": "0.05", "STREAM_RULES": str(rules), **ONE_MODEL_PROCESS}
        idle = await flow.latency_arm(hits[: max(5, 3 * rounds)], env, rate=None, sink_port=sink.port,
                                      received=sink.first)
        n = max(10, int(rate * 20))  # about 20 seconds at that rate
        loaded = await flow.latency_arm((hits * (n // max(1, len(hits)) + 1))[:n], env, rate=rate,
                                        sink_port=sink.port, received=sink.first)
        return idle, loaded
    finally:
        await sink.stop()


#: The watch list of R14: 50 well-known people and organisations (the evaluation's list).
WATCH_LIST = Path(__file__).resolve().parents[2] / "tests" / "data" / "entities_50.toml"


def _entity_cost(corpus: list[dict[str, Any]], rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    """R14: CPU ms per article of what issue 27 added outside the model: the entity list's
    phrase matcher (the built-in list and 50 entities) over each text, and the gazetteer's
    pass for a language without a model (the same texts read as German), in process."""
    from stream.processor import Context
    from stream_ner import NerProcessor

    ner = NerProcessor()
    ner.setup(Context(settings=Settings(), config={"processes": 1, "entities_file": str(WATCH_LIST)}))
    assert ner.gazetteer is not None
    texts = [a["text"] for a in corpus]
    ner.gazetteer.places_only(texts[0], "de")  # the automaton is built once per process
    listed, places, total = [], [], []
    for _ in range(rounds):
        start = time.process_time()
        for text in texts:
            ner.listed.apply(text, [])
        middle = time.process_time()
        for text in texts:
            ner.gazetteer.places_only(text, "de")
        end = time.process_time()
        listed.append((middle - start) / len(texts) * 1000)
        places.append((end - middle) / len(texts) * 1000)
        total.append((end - start) / len(texts) * 1000)
    return median_min_max(total), {"phrase_matcher": round(statistics.median(listed), 3),
                                   "gazetteer_only_pass": round(statistics.median(places), 3)}


def _cpu_split(samples: list[Path], corpus: list[dict[str, Any]], rounds: int) -> tuple[dict[str, float],
                                                                                         dict[str, float]]:
    """Process CPU time per article of each processor, in process, alternating rounds."""
    import tempfile

    from stream.processor import Context
    from stream.records import Article
    from stream_alerts import AlertsProcessor
    from stream_clean import CleanProcessor
    from stream_dedup import DedupProcessor
    from stream_ner import NerProcessor

    from .harness import make_rules

    rules = Path(tempfile.mkdtemp(prefix="stream-r4-")) / "rules.toml"
    vocabulary = [f"standing{n}word" for n in range(5000)]
    rules.write_text(make_rules(10_000, vocabulary))
    settings = Settings(rules=str(rules))
    procs = {"clean": CleanProcessor(), "ner": NerProcessor(), "dedup": DedupProcessor(), "alerts": AlertsProcessor()}
    for name, proc in procs.items():
        # The model in this process: with model processes its CPU time would not be counted.
        proc.setup(Context(settings=settings, tables={"dedup": {}, "alerts": {}},
                           config={"processes": 1} if name == "ner" else {}))
    per: dict[str, list[float]] = {name: [] for name in procs}
    ratios = []
    for r in range(rounds):
        batch = [Article(id=f"{a['id']}-{r}", text=a["text"]) for a in corpus]
        for name, proc in procs.items():
            start = time.process_time()
            for i in range(0, len(batch), 64):
                proc.process(batch[i:i + 64])
            per[name].append((time.process_time() - start) / len(batch) * 1000)
        light = per["clean"][-1] + per["dedup"][-1] + per["alerts"][-1]
        ratios.append(light / per["ner"][-1])
    return median_min_max(ratios), {name: round(statistics.median(v), 3) for name, v in per.items()}
