"""Test helpers for plugin authors; a pytest plugin (registered as ``pytest11: stream``).

In-process, exactly as ``stream process`` runs the chain::

    def test_my_plugin_tags_quotes(stream_process):
        [article] = stream_process(["He said: “We will respond to this.”"], plugins=["clean", "quotes"])
        assert article.extra["quotes"][0]["text"] == "We will respond to this."

Through a real Kafka broker and a real ``stream worker`` (the local broker is started, or
reused, once per test session)::

    def test_my_plugin_in_the_worker(stream_kafka_process):
        [record] = stream_kafka_process([{"id": "a", "text": "..."}], plugins=["clean", "quotes"])
        assert record["extra"]["quotes"]

The conformance suite: subclass :class:`ProcessorConformance` in a ``Test*`` class and say
how to make your processor; pytest then runs the contract's checks against it.
"""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from .errors import ConfigError, PluginError
from .processor import PLUGIN_API, Context, Processor, api_problem
from .records import Article, dumps, loads
from .runtime.chain import build_chain
from .runtime.kafka import delete_topics
from .runtime.pipeline import BatchResult, Pipeline
from .settings import Settings
from .tools.broker import LocalBroker

__all__ = [
    "ProcessorConformance",
    "StreamTopics",
    "StreamWorker",
    "produce",
    "run_chain",
    "stream_broker",
    "stream_kafka_process",
    "stream_process",
    "stream_topics",
    "wait_for",
]


def run_chain(
    articles: Sequence[Article | str | dict[str, Any]],
    *,
    plugins: Sequence[str] | None = None,
    settings: Settings | None = None,
    plugin_settings: dict[str, dict[str, Any]] | None = None,
) -> BatchResult:
    """Run ``articles`` (Articles, texts or input dicts) through ``plugins`` in-process.

    :param plugins: entry-point names to load (default: every installed plugin).
    :return: the :class:`~stream.runtime.pipeline.BatchResult` (articles that came through, failures).
    """
    base = settings or Settings()
    changes: dict[str, Any] = {}
    if plugins is not None:
        changes["plugins"] = tuple(plugins)
    if plugin_settings is not None:
        changes["plugin_settings"] = plugin_settings
    settings = base.replace(**changes) if changes else base
    batch = [
        a if isinstance(a, Article)
        else Article(id=f"article-{n}", text=a) if isinstance(a, str)
        else Article.from_dict(a)
        for n, a in enumerate(articles)
    ]
    _host, pipeline = build_chain(settings, "embedded")
    try:
        return asyncio.run(pipeline.run(batch))
    finally:
        pipeline.close()


@pytest.fixture
def stream_process() -> Iterator[Callable[..., list[Article]]]:
    """``stream_process(articles, plugins=None, **kw) -> list[Article]``, in-process; fails
    the test if any article failed."""

    def run(articles: Sequence[Article | str | dict[str, Any]], **kwargs: Any) -> list[Article]:
        result = run_chain(articles, **kwargs)
        if result.failures:
            f = result.failures[0]
            raise AssertionError(f"article {f.article.id} failed in {f.stage}: {f.error!r}")
        return result.articles

    yield run


# -- a real broker and real workers ------------------------------------------------------


@pytest.fixture(scope="session")
def stream_broker() -> Iterator[LocalBroker]:
    """The local KRaft broker (port ``$STREAM_TEST_BROKER_PORT`` or 9092), started with
    ``stream broker``'s launcher, or reused when it already runs.

    ``STREAM_TEST_BROKER_NODES=3`` and ``STREAM_TEST_BROKER_SASL_SSL=1`` give the tests a
    three-node cluster and SASL_SSL clients (:meth:`~stream.tools.broker.LocalBroker.client_env`,
    :meth:`~stream.tools.broker.LocalBroker.target`), with ``STREAM_BROKER_DIR`` pointing at a
    directory of that shape."""
    nodes = os.environ.get("STREAM_TEST_BROKER_NODES")
    secure = os.environ.get("STREAM_TEST_BROKER_SASL_SSL")
    local = LocalBroker(int(os.environ.get("STREAM_TEST_BROKER_PORT", "9092")),
                        nodes=int(nodes) if nodes else None, sasl_ssl=secure == "1" if secure else None)
    was_running = local.status().running
    local.start()
    delete_test_topics(local)  # leftovers of an earlier session that did not finish
    yield local
    delete_test_topics(local)
    if not was_running and os.environ.get("STREAM_TEST_KEEP_BROKER") != "1":
        local.stop()


#: Topic name prefixes of the test kit (:class:`StreamTopics`, faust's topics of its groups).
TEST_TOPIC_PREFIXES = ("test-", "stream-test-")


def delete_test_topics(local: LocalBroker, prefixes: Sequence[str] = TEST_TOPIC_PREFIXES) -> int:
    """Delete the topics of test sessions (names starting with ``prefixes``) from ``local``.

    Every integration test makes its own topics; kept, they pile up on a developer's broker
    (7,500 partition directories and 3.7 GB after a few weeks) until the broker takes longer
    to recover its logs at start than the launcher waits.  :return: how many were deleted."""
    return asyncio.run(delete_topics(local.target(), prefixes))


@dataclass(frozen=True)
class StreamTopics:
    """Unique topic names and consumer group for one test, and the environment that points
    ``stream`` at them."""

    app_id: str
    raw: str
    enriched: str
    alerts: str
    dlq: str

    @classmethod
    def unique(cls, prefix: str = "test") -> StreamTopics:
        tag = uuid.uuid4().hex[:10]
        return cls(f"stream-{prefix}-{tag}", f"{prefix}-{tag}.raw", f"{prefix}-{tag}.enriched",
                   f"{prefix}-{tag}.alerts", f"{prefix}-{tag}.dlq")

    def env(self, broker: LocalBroker, data_dir: Path, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            **broker.client_env(),
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
def stream_topics() -> StreamTopics:
    """Unique topic names for one test."""
    return StreamTopics.unique()


class StreamWorker:
    """A real ``stream worker`` process (stop it with :meth:`stop`)."""

    def __init__(self, broker: LocalBroker, topics: StreamTopics, tmp: Path, name: str = "worker", **env: str):
        self.name = name
        self.log_path = tmp / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        env.setdefault("STREAM_WEB", "127.0.0.1:0")  # a free port: several workers run at once
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stream", "worker"], stdout=self._log, stderr=subprocess.STDOUT,
            env=topics.env(broker, tmp / f"data-{name}", STREAM_WORKER_NAME=name, **env),
        )

    def web_url(self, timeout: float = 60) -> str:
        """The base URL of the worker's web server (metrics, health, dashboard), read from its
        log once it listens."""
        from .ops.web import url_in_log

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            url = url_in_log(self.log_path.read_text(errors="replace"))
            if url:
                return url
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited:\n{self.log()}")
            time.sleep(0.2)
        raise AssertionError(f"worker {self.name}: no web server within {timeout}s\n{self.log()}")

    def wait_ready(self, timeout: float = 120) -> None:
        """Wait until the worker has joined its group and has its partitions
        (``/health/ready`` answers 200); fails at once, with its log, when it exited."""
        import urllib.error
        import urllib.request

        url = self.web_url(timeout) + "/health/ready"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited:\n{self.log()}")
            time.sleep(0.2)
        raise AssertionError(f"worker {self.name}: not ready within {timeout}s\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal the worker and wait; :return: its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def produce(broker: LocalBroker, topic: str, articles: Sequence[dict[str, Any]]) -> None:
    """Send ``articles`` (input dicts with an ``id``) to ``topic``; wait for the acks."""
    from .runtime.kafka import make_producer

    async def run() -> None:
        producer = make_producer(broker.target())
        await producer.start()
        try:
            for a in articles:
                await (await producer.send(topic, value=dumps(a), key=str(a["id"]).encode()))
        finally:
            await producer.stop()

    asyncio.run(run())


def wait_for(broker: LocalBroker, topic: str, ids: set[str], timeout: float = 120,
             workers: Sequence[StreamWorker] = ()) -> dict[str, Any]:
    """The latest record of each id in ``ids`` on ``topic`` (by ``id``, or ``article_id``),
    waiting until all arrived; fails at once, with its log, when one of ``workers`` died."""
    from .runtime.kafka import read_records

    async def run() -> dict[str, Any]:
        found: dict[str, Any] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = {}
            async for r in read_records(broker.target(), topic, timeout=2):
                record = loads(r.value or b"null")
                found[record.get("id") or record.get("article_id")] = record
            if ids <= set(found):
                return found
            for w in workers:
                if w.proc.poll() is not None:
                    raise AssertionError(f"worker {w.name} exited with {w.proc.returncode}:\n{w.log()}")
            await asyncio.sleep(1)
        raise AssertionError(f"missing on {topic} after {timeout:.0f}s: {sorted(ids - set(found))}")

    return asyncio.run(run())


@pytest.fixture
def stream_kafka_process(
    stream_broker: LocalBroker, tmp_path: Path
) -> Iterator[Callable[..., list[dict[str, Any]]]]:
    """``stream_kafka_process(articles, plugins=None, **env) -> list[enriched record]``:
    produce the articles to a real broker, run a real worker with ``plugins``, and return
    the enriched records in input order."""

    def run(articles: Sequence[dict[str, Any]], plugins: Sequence[str] | None = None,
            **env: str) -> list[dict[str, Any]]:
        topics = StreamTopics.unique("kit")
        if plugins is not None:
            env["STREAM_PLUGINS"] = ",".join(plugins)
        worker = StreamWorker(stream_broker, topics, tmp_path, "kit-worker", **env)
        try:
            produce(stream_broker, topics.raw, articles)
            found = wait_for(stream_broker, topics.enriched, {str(a["id"]) for a in articles}, workers=(worker,))
        finally:
            status = worker.stop()
        assert status == 0, worker.log()
        return [found[str(a["id"])] for a in articles]

    yield run


# -- the conformance suite ----------------------------------------------------------------


def _comparable(article: Article) -> dict[str, Any]:
    out = article.to_dict(processed_at="-")
    out.pop("processing")
    for alert in out["alerts"]:
        alert.pop("created_at", None)
    return out


class ProcessorConformance:
    """The plugin contract as tests.  Subclass it in a ``Test*`` class::

        class TestQuotes(ProcessorConformance):
            def make_processor(self):
                return QuotesProcessor()

            bad_config = {"min_words": "many"}   # optional: must be refused at setup

    Override :attr:`config` for the settings to set it up with, and :meth:`make_articles`
    for articles your processor expects (by default, texts of several shapes).
    """

    config: ClassVar[dict[str, Any]] = {}
    bad_config: ClassVar[dict[str, Any] | None] = None

    def make_processor(self) -> Processor:
        raise NotImplementedError("return an instance of your processor")

    def make_articles(self) -> list[Article]:
        texts = [
            "Russian troops moved toward the border on Tuesday, officials said.",
            "“We will respond,” the minister told reporters in Geneva.\n\nTalks resume next week.",
            "Short.",
            "NATO foreign ministers met in Brussels. " * 40,
        ]
        return [Article(id=f"conformance-{n}", text=t, clean_text=t) for n, t in enumerate(texts)]

    def ready(self, config: dict[str, Any] | None = None) -> Processor:
        proc = self.make_processor()
        proc.setup(Context(settings=Settings(), config=self.config if config is None else config,
                           tables={name: {} for name in proc.tables}))
        return proc

    def run(self, proc: Processor, articles: list[Article]) -> list[Article]:
        pipeline = Pipeline([proc])
        pipeline._ready = True
        result = asyncio.run(pipeline.run(articles))
        assert not result.failures, f"{proc.name} failed: {[(f.article.id, repr(f.error)) for f in result.failures]}"
        return result.articles

    def test_it_declares_a_name_a_version_and_the_api_it_was_built_for(self) -> None:
        proc = self.make_processor()
        assert proc.name and proc.name == proc.name.strip().lower(), "name: short, lowercase"
        assert proc.version and proc.version != "0", "set a version"
        package = sys.modules[type(proc).__module__.partition(".")[0]]
        problem = api_problem(getattr(package, "STREAM_PLUGIN_API", PLUGIN_API))
        assert problem is None, problem
        assert proc.on_error in ("dlq", "skip")

    def test_it_keeps_every_article_in_order(self) -> None:
        articles = self.make_articles()
        ids = [a.id for a in articles]
        out = self.run(self.ready(), articles)
        assert [a.id for a in out] == ids
        assert all(x is y for x, y in zip(out, articles, strict=True)), "enrich the articles in place"

    def test_it_accepts_an_empty_batch(self) -> None:
        proc = self.ready()
        result = proc.process([])
        if asyncio.iscoroutine(result):
            asyncio.run(result)

    def test_it_survives_empty_and_huge_texts(self) -> None:
        huge = "The talks in Geneva continued late into the night, diplomats said. " * 4000
        articles = [Article(id="empty", text=" ", clean_text=""), Article(id="huge", text=huge, clean_text=huge)]
        self.run(self.ready(), articles)

    def test_reprocessing_an_article_gives_the_same_enrichment(self) -> None:
        proc = self.ready()
        first = self.run(proc, self.make_articles())
        again = self.run(proc, [copy.deepcopy(a) for a in self.make_articles()])
        assert [_comparable(a) for a in again] == [_comparable(a) for a in first]

    def test_a_bad_configuration_is_refused_with_a_typed_error(self) -> None:
        if self.bad_config is None:
            pytest.skip("set bad_config to check how the processor refuses a bad configuration")
        with pytest.raises((ConfigError, PluginError)):
            self.ready(self.bad_config)
