"""The model in several processes: the same entities as in one, a dead child fails its
batch only, and small batches stay in the worker."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from stream import Article, ConfigError, Context
from stream.settings import Settings
from stream_clean.cleaner import clean
from stream_clean.rules import load_rules
from stream_ner import NerProcessor
from stream_ner.pool import ModelPoolError, shares

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "articles").glob("*.txt"))
TEXTS = [clean(p.read_text(), load_rules()).text for p in EXAMPLES] * 2  # 37,000 characters


def articles() -> list[Article]:
    return [Article(id=str(n), text=t, clean_text=t) for n, t in enumerate(TEXTS)]


def ner(processes: int) -> NerProcessor:
    processor = NerProcessor()
    processor.setup(Context(settings=Settings(), config={"processes": processes}))
    return processor


@pytest.fixture(scope="module")
def pooled() -> NerProcessor:
    processor = ner(2)
    yield processor
    processor.close()


@pytest.mark.parametrize(("lengths", "n"), [([10] * 10, 2), ([100, 1, 1, 1, 100], 2), ([5], 3),
                                            ([1, 2, 3, 4, 5, 6, 7], 3)])
def test_shares_are_contiguous_cover_every_text_and_are_at_most_n(lengths: list[int], n: int) -> None:
    texts = ["x" * k for k in lengths]
    cut = shares(texts, n)
    assert len(cut) <= n and cut[0][0] == 0 and cut[-1][1] == len(texts)
    assert all(a < b for a, b in cut) and all(cut[i][1] == cut[i + 1][0] for i in range(len(cut) - 1))


def test_two_model_processes_find_the_same_entities_as_one(pooled: NerProcessor) -> None:
    one, two = articles(), articles()
    single = ner(1)
    single.process(one)
    pooled.process(two)
    assert pooled.pool is not None and len(pooled.pool.pids()) == 2 and pooled.pool.batches  # the children's
    for a, b in zip(one, two, strict=True):
        assert a.entities == b.entities and a.entity_summary == b.entity_summary


def test_long_texts_in_pieces_over_groups_of_the_processes_find_the_same_entities_as_one() -> None:
    """Each process gets a few groups of whole texts, finished as they come back; a text run
    in pieces (``chunk_chars``) keeps all its pieces in one group, at their offsets."""
    one, two = articles(), articles()
    single, pooled = NerProcessor(), NerProcessor()
    single.setup(Context(settings=Settings(), config={"processes": 1, "chunk_chars": 1500}))
    pooled.setup(Context(settings=Settings(), config={"processes": 2, "chunk_chars": 1500}))
    try:
        single.process(one)
        pooled.process(two)
        assert pooled.pool is not None and pooled.pool.batches == 1
    finally:
        pooled.close()
    assert any(len(a.clean_text) > 3000 for a in one)  # several pieces
    for a, b in zip(one, two, strict=True):
        assert a.entities and a.entities == b.entities and a.entity_summary == b.entity_summary


def test_a_dead_model_process_fails_its_batch_and_the_next_batch_gets_a_new_pool(pooled: NerProcessor) -> None:
    assert pooled.pool is not None
    pooled.process(articles())
    before = pooled.pool.pids()
    os.kill(before[0], signal.SIGKILL)
    with pytest.raises(ModelPoolError, match="a model process died"):
        pooled.process(articles())
    batch = articles()
    pooled.process(batch)
    assert all(a.entities for a in batch)
    assert not set(pooled.pool.pids()) & set(before)


def test_a_small_batch_stays_in_the_worker() -> None:
    processor = ner(2)
    batch = [Article(id="s", text="Olaf Scholz met Emmanuel Macron in Paris.",
                     clean_text="Olaf Scholz met Emmanuel Macron in Paris.")]
    processor.process(batch)
    assert processor.pool is not None and processor.pool.batches == 0 and processor.pool.pids() == []
    assert {m["text"] for m in batch[0].entities} >= {"Olaf Scholz", "Paris"}


@pytest.mark.parametrize("value", [0, -1, "two"])
def test_processes_must_be_a_whole_number_of_at_least_one(value: object) -> None:
    with pytest.raises(ConfigError, match="processes"):
        ner(value)  # type: ignore[arg-type]


def test_a_worker_starts_its_model_processes_at_setup_and_each_loads_the_model() -> None:
    """In a worker the children start with it, not in its first big batch (which they held
    up for the seconds the model takes to load)."""
    processor = NerProcessor()
    processor.setup(Context(settings=Settings(), config={"processes": 2}, mode="worker"))
    try:
        assert processor.pool is not None and processor.pool.started
        pids = processor.pool.start()  # waits for the children
        assert len(pids) == 2
        batch = articles()
        processor.process(batch)
        assert processor.pool.batches == 1 and processor.pool.pids() == pids
    finally:
        processor.close()


_HOLDER = """
import sys, time
from stream import Context
from stream.settings import Settings
from stream_ner import NerProcessor

if __name__ == "__main__":
    processor = NerProcessor()
    processor.setup(Context(settings=Settings(), config={"processes": 2}, mode="worker"))
    print(" ".join(map(str, processor.pool.start())), flush=True)
    time.sleep(600)
"""


def test_the_model_processes_of_a_killed_worker_exit(tmp_path: Path) -> None:
    """A worker killed with SIGKILL (no clean-up) does not leave its model processes
    behind, each holding a model: they exit when their pipe to the worker closes."""
    import subprocess
    import sys
    import time

    script = tmp_path / "holder.py"
    script.write_text(_HOLDER)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        children = [int(pid) for pid in proc.stdout.readline().split()]
        assert len(children) == 2 and all(_alive(pid) for pid in children)
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in children if _alive(pid)], "model processes outlived their worker"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][:1] not in ("Z", "X")  # a zombie has exited
    except FileNotFoundError:
        return False


def test_the_default_model_processes_follow_a_container_s_cpu_limit(tmp_path: Path) -> None:
    from stream_ner.pool import cgroup_cpu_quota, usable_cores

    assert cgroup_cpu_quota(tmp_path) is None  # no cgroup files: no quota
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path) is None and usable_cores(tmp_path) >= 1
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # docker run --cpus 1.5
    assert cgroup_cpu_quota(tmp_path) == 1.5
    assert usable_cores(tmp_path) == min(2, len(os.sched_getaffinity(0)))
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")  # cgroup v1, one core
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert usable_cores(tmp_path) == 1
