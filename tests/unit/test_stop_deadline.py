"""A worker whose shutdown hangs exits anyway at the stop deadline (stream/runtime/worker.py)."""

from __future__ import annotations

import subprocess
import sys
import time

from stream.runtime.worker import EXIT_STOP_DEADLINE


def test_a_stuck_stop_ends_at_the_deadline_with_its_own_status_and_a_message() -> None:
    script = ("import logging, time\n"
              "logging.basicConfig()\n"
              "from stream.runtime.worker import arm_stop_deadline\n"
              "arm_stop_deadline(0.5)\n"
              "time.sleep(30)  # a shutdown that never ends\n")
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=20)
    assert done.returncode == EXIT_STOP_DEADLINE
    assert time.monotonic() - start < 15
    assert "did not stop within 0.5 s of the signal" in done.stderr, done.stderr
