"""Upgrade in place (issue 26): workers of the last faust-based version are stopped, and
workers of this version continue from the offsets faust committed and from the state
faust's tables wrote (docs/operations.md "Upgrading")."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stream.testing import StreamTopics, StreamWorker, produce
from stream.tools.broker import LocalBroker

from .test_crash import _read, _wait_count, article
from .test_faults import PLUGINS, check_invariant, setup_input, wait_committed

pytestmark = pytest.mark.integration

#: The last commit whose worker read and committed through faust's consumer and kept its
#: state in faust Tables.
FAUST_COMMIT = "a7bac9c"


def faust_based_source(tmp_path: Path) -> Path:
    """``src/`` of :data:`FAUST_COMMIT`, from this repository's history."""
    root = Path(__file__).resolve().parents[2]
    archive = subprocess.run(["git", "-C", str(root), "archive", FAUST_COMMIT, "src"], capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"commit {FAUST_COMMIT} is not in this checkout's history: {archive.stderr.decode()[:200]}")
    out = tmp_path / "faust-based"
    out.mkdir()
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)
    assert (out / "src/stream/runtime/transport.py").exists()  # faust's consumer, patched
    return out / "src"


def test_a_faust_based_worker_stopped_and_this_version_continues_from_its_offsets_and_state(
        broker: LocalBroker, topics: StreamTopics, tmp_path: Path) -> None:
    old_src = faust_based_source(tmp_path)
    ids = setup_input(broker, topics, 1500)
    env = {"STREAM_PLUGINS": PLUGINS, "STREAM_BATCH_SIZE": "32"}
    old = StreamWorker(broker, topics, tmp_path, "faust-based", PYTHONPATH=str(old_src), **env)
    try:
        _wait_count(broker, topics.enriched, 400, old)
    finally:
        assert old.stop() == 0, old.log()
    done_by_old = {r["id"] for r in _read(broker, topics.enriched)}
    assert len(done_by_old) < len(ids)
    # A copy, under a new id, of an article the faust-based worker saw: the dedup state it
    # left in its table's changelog must find it.
    seen = sorted(done_by_old)[0]
    number = int(seen[1:])
    produce(broker, topics.raw, [article(number) | {"id": "copy-of-old"}])
    new = StreamWorker(broker, topics, tmp_path, "new", **env)
    try:
        _wait_count(broker, topics.enriched, len(ids) + 1, new, timeout=240)
        wait_committed(broker, topics)
    finally:
        assert new.stop() == 0, new.log()
    records, repeats = check_invariant(broker, topics, ids | {"copy-of-old"})
    enriched = _read(broker, topics.enriched)
    workers = {r["processing"]["worker"] for r in enriched}
    assert workers == {"faust-based", "new"}
    [copy] = [r for r in enriched if r["id"] == "copy-of-old"]
    assert copy["dedup"]["status"] == "exact" and copy["dedup"]["duplicate_of"] == seen, copy["dedup"]
    print(f"\nupgrade in place: {len(ids)} articles, {len(done_by_old)} by the faust-based worker, "
          f"{records} enriched records, {repeats} repeats")
    # Repeats: at most the batches in flight when the faust-based worker stopped (it commits
    # on SIGTERM): two batches of 32.
    assert repeats <= 64
