"""A small run of the whole benchmark harness (every arm, tiny sizes): it runs, writes the
figures, the plot and the table.  The figures of a smoke run mean nothing."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stream.tools.broker import LocalBroker
from stream_bench.run import PLAN

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_the_benchmark_harness_runs_every_arm(broker: LocalBroker, tmp_path: Path) -> None:
    docs = tmp_path / "performance.md"
    # `stream bench` is the bench plugin's command (bench/stream_bench): load it too.
    plugins = ",".join(filter(None, [os.environ.get("STREAM_PLUGINS", ""), "bench"]))
    env = {**os.environ, "STREAM_BROKER": broker.bootstrap, "STREAM_PLUGINS": plugins}
    out = subprocess.run([sys.executable, "-m", "stream", "bench", "--smoke", "--samples",
                          str(ROOT / "examples" / "articles"), "--out-dir", str(tmp_path), "--docs", ""],
                         env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    [figures] = tmp_path.glob("*-smoke.json")
    results = json.loads(figures.read_text())
    assert [r["id"] for r in results["ratios"]] == list(PLAN) == [f"R{n}" for n in range(1, 17)]
    for r in results["ratios"]:
        assert r["median"] > 0 and r["min"] <= r["median"] <= r["max"], r
    assert results["sanity"]["standalone_nlp_pipe_words_per_s"] > 0
    assert results["sanity"]["raw_passthrough_msgs_per_s"] > 0
    assert results["memory"]["rss_mb"] and all(v > 0 for v in results["memory"]["rss_mb"].values())
    png = figures.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| R10 | worker with a no-op plugin" in out.stdout
    assert not docs.exists()  # a smoke run never rewrites the published table
    # The arms' topics are gone: a few hundred a run piled up on the broker before.
    assert not [t for t in asyncio.run(_topics(broker)) if t.startswith("bench-")]


async def _topics(broker: LocalBroker) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**broker.target().options())
    await admin.start()
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()
