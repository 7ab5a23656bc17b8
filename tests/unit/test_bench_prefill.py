"""The benchmark's fast prefill of the dedup index stores what MinHashLSH.insert would."""

from __future__ import annotations

import numpy as np

from stream_bench.harness import _Prefill, _prefill
from stream_dedup.index import NUM_PERM, DedupIndex


def test_prefill_equals_insert() -> None:
    block = np.random.default_rng(1).integers(0, 2**32 - 1, (300, NUM_PERM), dtype=np.uint64)
    slow = DedupIndex(jaccard=0.5, overlap=0.8, lsh_threshold=0.5)
    for n, values in enumerate(block, 100):
        slow.lsh.insert(f"old-{n}", _Prefill(values), check_duplication=False)
    fast = DedupIndex(jaccard=0.5, overlap=0.8, lsh_threshold=0.5)
    _prefill(fast, block, 100)
    assert len(fast) == 300 and "old-100" in fast.signatures and "old-399" in fast.signatures
    assert fast.lsh.keys._dict == slow.lsh.keys._dict
    for a, b in zip(fast.lsh.hashtables, slow.lsh.hashtables, strict=True):
        assert a._dict == b._dict
    # The prefilled signatures are found by a query of their own hash values, and removable.
    assert "old-150" in fast.lsh.query(_Prefill(block[50]))
    fast.remove("old-150")
    assert "old-150" not in fast.lsh.query(_Prefill(block[50]))
