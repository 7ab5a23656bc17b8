"""Fixtures shared by all tests.

Unit tests need nothing.  Integration tests (marker ``integration``) get the real local
Kafka broker from the session fixture :func:`broker` (``stream.testing``'s
``stream_broker``: started with the project's own launcher, or reused), and unique topic
names from :func:`topics`.  Our tests use the same kit as plugin authors.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.testing import StreamTopics
from stream.tools.broker import LocalBroker

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "articles"
SAMPLES = sorted(EXAMPLES.glob("*.txt"))
BUILTINS = "clean,ner,dedup,alerts"

Topics = StreamTopics


@pytest.fixture(scope="session", autouse=True)
def only_builtin_plugins() -> Iterator[None]:
    """Our tests expect the built-in chain: workers and the command line they start load
    only the built-in plugins, even when others (the example plugin) are installed."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STREAM_PLUGINS", BUILTINS)
        # One model process per worker: the tests run up to three workers on two cores, and
        # their timing was measured that way.  test_worker runs the pooled NER on purpose.
        mp.setenv("STREAM_PLUGIN_NER_PROCESSES", "1")
        yield


@pytest.fixture(scope="session")
def broker(stream_broker: LocalBroker) -> LocalBroker:
    return stream_broker


@pytest.fixture
def topics() -> StreamTopics:
    return StreamTopics.unique()
