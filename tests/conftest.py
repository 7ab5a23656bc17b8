"""Fixtures shared by all tests.

Unit tests need nothing.  Integration tests (marker ``integration``) get the real local
Kafka broker from the session fixture :func:`broker`, which starts it with the project's
own launcher or reuses a running one, and unique topic names from :func:`topics`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stream.broker import LocalBroker

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "articles"
SAMPLES = sorted(EXAMPLES.glob("*.txt"))


@pytest.fixture(scope="session")
def broker() -> Iterator[LocalBroker]:
    """The local single-node KRaft broker (port ``$STREAM_TEST_BROKER_PORT`` or 9092)."""
    port = int(os.environ.get("STREAM_TEST_BROKER_PORT", "9092"))
    local = LocalBroker(port)
    was_running = local.status().running
    local.start()
    yield local
    if not was_running and os.environ.get("STREAM_TEST_KEEP_BROKER") != "1":
        local.stop()


@dataclass(frozen=True)
class Topics:
    """Unique names for one test, and the environment that points stream at them."""

    app_id: str
    raw: str
    enriched: str
    alerts: str
    dlq: str

    def env(self, broker: LocalBroker, data_dir: Path, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "STREAM_BROKER": broker.bootstrap,
            "STREAM_APP_ID": self.app_id,
            "STREAM_TOPIC_RAW": self.raw,
            "STREAM_TOPIC_ENRICHED": self.enriched,
            "STREAM_TOPIC_ALERTS": self.alerts,
            "STREAM_TOPIC_DLQ": self.dlq,
            "STREAM_PARTITIONS": "3",
            "STREAM_DATA_DIR": str(data_dir),
            "STREAM_BATCH_TIMEOUT": "0.2",
        })
        env.update(extra)
        return env


@pytest.fixture
def topics() -> Topics:
    tag = uuid.uuid4().hex[:10]
    return Topics(
        app_id=f"stream-test-{tag}",
        raw=f"test-{tag}.raw",
        enriched=f"test-{tag}.enriched",
        alerts=f"test-{tag}.alerts",
        dlq=f"test-{tag}.dlq",
    )
