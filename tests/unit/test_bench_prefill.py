"""The dedup index's bulk insert (a rebuild, and the benchmark's prefill) stores what one
insert at a time would."""

from __future__ import annotations

import numpy as np

from stream_bench.harness import _Prefill, _prefill
from stream_dedup.index import NUM_PERM, DedupIndex, Signature


def test_a_bulk_insert_equals_inserts_one_at_a_time() -> None:
    block = np.random.default_rng(1).integers(0, 2**32 - 1, (300, NUM_PERM), dtype=np.uint64)
    block[7] = block[8]  # two signatures in the same buckets
    slow = DedupIndex(jaccard=0.5, overlap=0.8, lsh_threshold=0.5)
    for n, values in enumerate(block, 100):
        slow.add(f"old-{n}", Signature(f"x{n}", _Prefill(values), 500, [f"l{n}"]), 0.0)
    fast = DedupIndex(jaccard=0.5, overlap=0.8, lsh_threshold=0.5)
    _prefill(fast, block, 100)
    assert len(fast) == 300 and "old-100" in fast.signatures and "old-399" in fast.signatures
    assert fast.lsh.bands_of == slow.lsh.bands_of
    assert fast.lsh.tables == slow.lsh.tables
    assert fast.exact == slow.exact and fast.leads == slow.leads
    # Found by a query of their own hash values, and removable.
    assert {"old-107", "old-108"} <= fast.lsh.query(block[8])
    assert "old-150" in fast.lsh.query(block[50])
    fast.remove("old-150")
    assert "old-150" not in fast.lsh.query(block[50]) and "old-150" not in fast.lsh.bands_of
    fast.remove("old-107")
    assert "old-108" in fast.lsh.query(block[8])


def test_the_bands_find_what_datasketch_s_lsh_finds() -> None:
    """The band tables are datasketch's banding (its b and r for the threshold): the same
    candidates for near copies as MinHashLSH."""
    from datasketch import MinHashLSH

    rng = np.random.default_rng(3)
    base = rng.integers(0, 2**32 - 1, (50, NUM_PERM), dtype=np.uint64)
    queries = base.copy()
    for row in queries:  # a near copy: some hash values changed
        row[rng.choice(NUM_PERM, 40, replace=False)] = rng.integers(0, 2**32 - 1, 40)
    ours = DedupIndex(jaccard=0.5, overlap=0.8, lsh_threshold=0.5)
    theirs = MinHashLSH(threshold=0.5, num_perm=NUM_PERM)
    for n, values in enumerate(base):
        ours.add(f"k{n}", Signature(f"x{n}", _Prefill(values), 500, []), 0.0)
        theirs.insert(f"k{n}", _Prefill(values), check_duplication=False)
    for values in queries:
        assert ours.lsh.query(values) == set(theirs.query(_Prefill(values)))
