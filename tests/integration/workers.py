"""Real workers for our integration tests: the plugin kit's own helpers."""

from stream.testing import StreamWorker as Worker
from stream.testing import produce, wait_for

__all__ = ["Worker", "produce", "wait_for"]
