"""Running real `stream worker` processes and reading what they publish."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from stream.broker import LocalBroker
from stream.kafka import make_producer, read_records
from stream.records import dumps

from ..conftest import Topics

STREAM = [sys.executable, "-m", "stream"]


class Worker:
    def __init__(self, broker: LocalBroker, topics: Topics, tmp: Path, name: str, **env: str):
        self.log_path = tmp / f"{name}.log"
        self.name = name
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([*STREAM, "worker"], stdout=self._log, stderr=subprocess.STDOUT,
                                     env=topics.env(broker, tmp / f"data-{name}", STREAM_WORKER_NAME=name, **env))

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def produce(broker: LocalBroker, topic: str, articles: list[dict[str, Any]]) -> None:
    async def run() -> None:
        producer = make_producer(broker.bootstrap)
        await producer.start()
        try:
            for a in articles:
                await (await producer.send(topic, value=dumps(a), key=a["id"].encode()))
        finally:
            await producer.stop()

    asyncio.run(run())


def wait_for(broker: LocalBroker, topic: str, ids: set[str], timeout: float = 120,
             workers: tuple[Worker, ...] = ()) -> dict[str, Any]:
    """The latest record of each id in ``ids`` on ``topic``, waiting until all arrived;
    fails at once, with its log, when one of ``workers`` has died."""

    async def run() -> dict[str, Any]:
        found: dict[str, Any] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = {}
            async for r in read_records(broker.bootstrap, topic, timeout=2):
                record = orjson.loads(r.value)
                found[record.get("id") or record.get("article_id")] = record
            if ids <= set(found):
                return found
            for w in workers:
                if w.proc.poll() is not None:
                    raise AssertionError(f"worker {w.name} exited with {w.proc.returncode}:\n{w.log()}")
            await asyncio.sleep(1)
        raise AssertionError(f"missing on {topic}: {sorted(ids - set(found))}")

    return asyncio.run(run())
