"""Deduplication on the real broker: restarts, two workers, shared paragraphs."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from stream.testing import StreamWorker as Worker
from stream.testing import produce, wait_for
from stream.tools.broker import LocalBroker

from ..conftest import Topics
from ..dedup_cases import edited, sample, shares_a_paragraph, truncated

pytestmark = pytest.mark.integration


def test_every_copy_is_found_across_a_worker_restart(broker: LocalBroker, topics: Topics, tmp_path: Path) -> None:
    original = sample("003")
    worker = Worker(broker, topics, tmp_path, "w1")
    try:
        produce(broker, topics.raw, [{"id": "orig", "text": original}])
        produce(broker, topics.raw, [{"id": "resend", "text": original.replace(",", "")}])
        wait_for(broker, topics.enriched, {"orig", "resend"}, workers=(worker,))
    finally:
        assert worker.stop() == 0, worker.log()
    worker = Worker(broker, topics, tmp_path, "w1b")  # restarted: the state comes back from Kafka
    try:
        produce(broker, topics.raw, [{"id": "edited", "text": edited(original)},
                                     {"id": "trunc", "text": truncated(original)},
                                     {"id": "orig", "text": original}])  # a redelivery of the original
        records = wait_for(broker, topics.enriched, {"orig", "resend", "edited", "trunc"}, workers=(worker,))
    finally:
        assert worker.stop() == 0, worker.log()
    d = {k: v["dedup"] for k, v in records.items()}
    assert d["orig"] == {"status": "unique", "duplicate_of": None, "similarity": None, "cluster_id": "orig"}
    assert d["resend"]["status"] == "exact" and d["resend"]["duplicate_of"] == "orig"
    assert d["edited"]["status"] == "near" and d["edited"]["duplicate_of"] == "orig"
    assert d["trunc"]["status"] == "near" and d["trunc"]["duplicate_of"] == "orig"
    assert records["edited"]["processing"]["worker"] == "w1b"


def test_a_copy_is_found_when_the_original_was_processed_by_the_other_worker(
    broker: LocalBroker, topics: Topics, tmp_path: Path
) -> None:
    a = Worker(broker, topics, tmp_path, "wa")
    b = Worker(broker, topics, tmp_path, "wb")
    try:
        original = sample("002")
        produce(broker, topics.raw, [{"id": "orig", "text": original}])
        first = wait_for(broker, topics.enriched, {"orig"}, workers=(a, b))["orig"]
        owner, other = (a, b) if first["processing"]["worker"] == "wa" else (b, a)
        assert owner.stop(signal.SIGKILL) != 0  # the worker that saw the original dies hard
        produce(broker, topics.raw, [{"id": "copy", "text": edited(original, seed=3)}])
        copy = wait_for(broker, topics.enriched, {"copy"}, timeout=180, workers=(other,))["copy"]
        assert copy["processing"]["worker"] == other.name
        assert copy["dedup"]["status"] == "near" and copy["dedup"]["duplicate_of"] == "orig"
    finally:
        for w in (a, b):
            w.stop()


def test_distinct_articles_sharing_a_paragraph_are_not_flagged(
    broker: LocalBroker, topics: Topics, tmp_path: Path
) -> None:
    worker = Worker(broker, topics, tmp_path, "w")
    try:
        produce(broker, topics.raw, [{"id": "a", "text": sample("000")}, {"id": "b", "text": sample("002")},
                                     {"id": "c", "text": shares_a_paragraph(sample("002"))}])
        records = wait_for(broker, topics.enriched, {"a", "b", "c"}, workers=(worker,))
    finally:
        assert worker.stop() == 0, worker.log()
    assert {k: v["dedup"]["status"] for k, v in records.items()} == {"a": "unique", "b": "unique", "c": "unique"}


def test_a_copy_is_found_after_the_stateful_partition_moved_away_and_back(
    broker: LocalBroker, topics: Topics, tmp_path: Path
) -> None:
    """Worker A builds its dedup index; while A is frozen (SIGSTOP) past the session timeout,
    B takes the stateful partition and sees the original; B leaves, the partition comes back
    to A, which must see the original too (its index is rebuilt from the table)."""
    env = {"STREAM_SESSION_TIMEOUT": "6"}
    a = Worker(broker, topics, tmp_path, "wa", **env)
    b: Worker | None = None
    try:
        produce(broker, topics.raw, [{"id": "first", "text": sample("000")}])
        assert wait_for(broker, topics.enriched, {"first"}, workers=(a,))["first"]["processing"]["worker"] == "wa"
        a.proc.send_signal(signal.SIGSTOP)  # A misses its heartbeats: the group moves everything to B
        b = Worker(broker, topics, tmp_path, "wb", **env)
        original = sample("002")
        produce(broker, topics.raw, [{"id": "orig", "text": original}])
        seen = wait_for(broker, topics.enriched, {"orig"}, timeout=180, workers=(b,))["orig"]
        assert seen["processing"]["worker"] == "wb"
        a.proc.send_signal(signal.SIGCONT)
        assert b.stop() == 0, b.log()  # the stateful partition goes back to A
        produce(broker, topics.raw, [{"id": "copy", "text": edited(original, seed=5)}])
        copy = wait_for(broker, topics.enriched, {"copy"}, timeout=180, workers=(a,))["copy"]
    finally:
        a.proc.send_signal(signal.SIGCONT)
        assert a.stop() == 0, a.log()
        if b is not None:
            b.stop()
    assert copy["processing"]["worker"] == "wa", copy["processing"]
    assert copy["dedup"]["status"] == "near" and copy["dedup"]["duplicate_of"] == "orig", copy["dedup"]
