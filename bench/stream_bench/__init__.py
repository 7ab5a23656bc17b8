"""stream's benchmark (``stream bench``, ``make bench``): every figure a ratio of two arms
measured side by side in one run on the real broker (docs/performance.md)."""
