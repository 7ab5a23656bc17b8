"""`stream ingest` on the real broker, against a real HTTP server of feeds and pages.

Every good entry is sent exactly once across two runs and a restart; the polls are
conditional; the bad feeds are named; a SIGKILL during a poll repeats nothing beyond the
poll in flight; two ingesters split the feeds; POST /articles answers 202, 400, 401 and
413 with nothing half-written; and a feed's entries become enriched records.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream.records import make_id
from stream.runtime.kafka import read_records
from stream.testing import StreamTopics, StreamWorker, wait_for
from stream.tools.broker import LocalBroker
from tests.feed_server import FeedServer, Item, items

pytestmark = pytest.mark.integration

PLUGINS = "clean,ner,dedup,alerts,feeds"


@pytest.fixture
def server() -> Iterator[FeedServer]:
    s = FeedServer().start()
    yield s
    s.stop()


def _env(broker: LocalBroker, topics: StreamTopics, tmp: Path, **extra: str) -> dict[str, str]:
    return topics.env(broker, tmp / "data", STREAM_PLUGINS=PLUGINS, STREAM_TOPIC_SOURCES=f"{topics.raw}.sources",
                      STREAM_TOPIC_SOURCES_SEEN=f"{topics.raw}.seen", STREAM_LOG_LEVEL="info", **extra)


def _feeds_file(tmp: Path, server: FeedServer, paths: list[str], every: float = 300) -> Path:
    lines = ["allow_loopback = true"]
    for path in paths:
        lines += ["[[feeds]]", f'url = "{server.url(path)}"', f"every = {every}"]
    file = tmp / "feeds.toml"
    file.write_text("\n".join(lines) + "\n")
    return file


def _once(env: dict[str, str], file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stream", "ingest", str(file), "--once"], env=env,
                          capture_output=True, text=True, timeout=120)


def _raw(broker: LocalBroker, topic: str) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        return [orjson.loads(r.value or b"null") async for r in read_records(broker.target(), topic, timeout=3)]

    return asyncio.run(run())


def _ids(server: FeedServer, feed: str, its: list[Item]) -> set[str]:
    return {make_id(i.link(server.base), "") for i in its}


class Ingester:
    """A long-running `stream ingest` process."""

    def __init__(self, env: dict[str, str], file: Path, log: Path):
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "stream", "ingest", str(file), "--web", "127.0.0.1:0"],
                                     env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def url(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.findall(r"stream web: (http://\S+) \(dashboard\)", self.log())
            if found:
                return str(found[-1])
            assert self.proc.poll() is None, self.log()
            time.sleep(0.2)
        raise AssertionError(self.log())

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url() + path, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def polled_before_assigned(self) -> list[str]:
        """Polls logged before the first assignment's memories were read (there must be none:
        such a poll does not know what was sent before, and sends it again)."""
        lines = self.log().splitlines()
        first = next((n for n, line in enumerate(lines) if "ingester: partitions" in line), len(lines))
        return [line for line in lines[:first] if "acknowledged by the broker" in line]

    def entries(self, timeout: float = 60) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, body = self.get("/health/ready")
            if status == 200:
                return list(orjson.loads(body)["entries"])
            time.sleep(0.3)
        raise AssertionError(self.log())

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=60)
        finally:
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _wait_raw(broker: LocalBroker, topic: str, want: set[str], timeout: float = 90) -> Counter[str]:
    deadline = time.monotonic() + timeout
    while True:
        counts = Counter(r["id"] for r in _raw(broker, topic))
        if want <= set(counts) or time.monotonic() > deadline:
            return counts
        time.sleep(1)


def test_each_entry_once_across_two_runs_and_a_restart_with_conditional_polls_and_bad_feeds_named(
        broker: LocalBroker, topics: StreamTopics, tmp_path: Path, server: FeedServer) -> None:
    server.feeds = {"rss": items("r", 4), "atom": items("a", 3), "json": items("j", 3)}
    # An entry whose page redirects to a private address: its summary is used, and marked.
    server.feeds["rss"].append(Item("r-private", "A story behind a redirect", "/to-private", 1764547000))
    file = _feeds_file(tmp_path, server, ["/rss.xml", "/atom.xml", "/json.json", "/500.xml", "/not-a-feed.xml"])
    env = _env(broker, topics, tmp_path)

    first = _once(env, file)
    assert first.returncode == 69, first.stderr  # the two bad feeds
    assert "5 entries polled, 11 new articles sent; 2 failed" in first.stdout, first.stdout + first.stderr
    assert "500.xml (http_500" in first.stdout and "not-a-feed.xml (not_a_feed" in first.stdout
    assert re.search(r"WARNING stream.ingest: feeds:\S+/500.xml: poll failed \(http_500\)", first.stderr)

    second = _once(env, file)
    assert "11 new" not in second.stdout and "0 new articles sent" in second.stdout, second.stdout
    for path in ("/rss.xml", "/atom.xml", "/json.json"):
        polls = server.seen(path)
        assert len(polls) == 2 and "if-none-match" not in polls[0], polls
        assert polls[1]["if-none-match"] and polls[1]["if-modified-since"], polls[1]  # conditional
    assert [s for p, _h, s in server.requests if p == "/rss.xml"] == [200, 304]

    records = {r["id"]: r for r in _raw(broker, topics.raw)}
    assert len(records) == 11 and len(_raw(broker, topics.raw)) == 11
    private = next(r for r in records.values() if r["title"] == "A story behind a redirect")
    assert private["text_from"] == "summary" and "link-local" in private["page_error"], private
    assert private["text"] == "Summary of A story behind a redirect."
    paged = [r for r in records.values() if r["text_from"] == "page"]
    assert len(paged) == 10
    for r in paged:
        assert len(r["text"].split()) > 50 and r["url"].startswith(server.base) and r["published_at"], r
        assert r["source"] in ("The rss feed", "The atom feed", "The json feed")

    # The long-running ingester: new entries arrive, it is restarted, more arrive.
    server.feeds["rss"] += items("r", 2, start=10)
    file = _feeds_file(tmp_path, server, ["/rss.xml", "/atom.xml", "/json.json", "/500.xml"], every=1)
    ing = Ingester(env, file, tmp_path / "ingest-1.log")
    try:
        counts = _wait_raw(broker, topics.raw, set(records) | _ids(server, "rss", items("r", 2, start=10)))
        # The first polls are spread over a second or two: the 500 feed's may come after rss's.
        deadline = time.monotonic() + 30
        while True:
            status, metrics = ing.get("/metrics")
            assert status == 200
            if re.search(rb'stream_source_errors_total\{entry="feeds:\S+/500.xml",kind="feeds",reason="http_500"\} '
                         rb'[1-9]', metrics) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert re.search(rb'stream_source_errors_total\{entry="feeds:\S+/500.xml",kind="feeds",reason="http_500"\} '
                         rb'[1-9]', metrics), metrics.decode()[-3000:]
        assert re.search(rb'stream_source_polls_total\{entry="feeds:\S+/rss.xml",kind="feeds",'
                         rb'result="not_modified"\}', metrics) or b"not_modified" in metrics
        assert ing.get("/")[0] == 200 and b"stream ingester" in ing.get("/")[1]
    finally:
        assert ing.stop() == 0, ing.log()
    server.feeds["atom"] += items("a", 2, start=20)
    ing = Ingester(env, file, tmp_path / "ingest-2.log")
    try:
        want = set(counts) | _ids(server, "atom", items("a", 2, start=20))
        counts = _wait_raw(broker, topics.raw, want)
        time.sleep(3)  # a few more polls: nothing more may come
        counts = Counter(r["id"] for r in _raw(broker, topics.raw))
    finally:
        ing.stop()
    assert set(counts) == want and len(want) == 15
    assert max(counts.values()) == 1, [i for i, n in counts.items() if n > 1]


def test_a_sigkill_during_a_poll_repeats_nothing_beyond_that_poll(
        broker: LocalBroker, topics: StreamTopics, tmp_path: Path, server: FeedServer) -> None:
    server.feeds = {"rss": items("r", 12), "json": items("j", 12)}
    server.page_delay = 0.3
    file = _feeds_file(tmp_path, server, ["/rss.xml", "/json.json"], every=2)
    env = _env(broker, topics, tmp_path)
    ing = Ingester(env, file, tmp_path / "ingest-1.log")
    want = _ids(server, "rss", server.feeds["rss"]) | _ids(server, "json", server.feeds["json"])
    try:
        ing.url()
        deadline = time.monotonic() + 60
        while len(server.seen("/rss.xml")) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # pages are being fetched
    finally:
        ing.stop(signal.SIGKILL)
    sent_before = Counter(r["id"] for r in _raw(broker, topics.raw))  # after the kill: all it sent
    # More entries arrive while it is down.
    server.feeds["rss"] += items("r", 3, start=30)
    want |= _ids(server, "rss", items("r", 3, start=30))
    server.page_delay = 0
    ing = Ingester(env, file, tmp_path / "ingest-2.log")
    try:
        counts = _wait_raw(broker, topics.raw, want)
        time.sleep(4)
        counts = Counter(r["id"] for r in _raw(broker, topics.raw))
    finally:
        ing.stop()
    assert set(counts) == want, sorted(want - set(counts))
    repeated = {i for i, n in counts.items() if n > 1}
    # A repeat is only possible for an item sent before the kill whose poll had not written
    # its memory yet; the items are sent after their whole poll's pages were fetched.
    assert repeated <= set(sent_before), repeated
    assert max(counts.values()) <= 2


def test_two_ingesters_split_the_feeds_and_send_each_entry_once(
        broker: LocalBroker, topics: StreamTopics, tmp_path: Path, server: FeedServer) -> None:
    names = [f"rss{n}" for n in range(6)]
    server.feeds = {name: items(name, 2) for name in names}
    file = _feeds_file(tmp_path, server, [f"/{n}.xml" for n in names], every=1)
    env = _env(broker, topics, tmp_path, STREAM_PARTITIONS="6")
    a = Ingester(env, file, tmp_path / "a.log")
    b = None
    try:
        assert len(a.entries()) == 6
        b = Ingester(env, file, tmp_path / "b.log")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ea, eb = a.entries(), b.entries()
            if ea and eb and len(ea) + len(eb) == 6:
                break
            time.sleep(0.5)
        assert not set(ea) & set(eb) and len(ea) + len(eb) == 6 and len(ea) == len(eb) == 3, (ea, eb)
        for name in names:
            server.feeds[name] += items(name, 1, start=5)
        want = set().union(*(_ids(server, n, server.feeds[n]) for n in names))
        counts = _wait_raw(broker, topics.raw, want)
        time.sleep(3)
        counts = Counter(r["id"] for r in _raw(broker, topics.raw))
    finally:
        a.stop()
        if b is not None:
            b.stop()
    assert set(counts) == want and len(want) == 18
    assert max(counts.values()) == 1, [i for i, n in counts.items() if n > 1]
    assert a.polled_before_assigned() == [] and b.polled_before_assigned() == []


def _post(url: str, body: bytes, token: str | None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def test_push_answers_202_400_401_413_and_writes_nothing_of_a_refused_request(
        broker: LocalBroker, topics: StreamTopics, tmp_path: Path, server: FeedServer) -> None:
    server.feeds = {"rss": items("r", 1)}
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    env = _env(broker, topics, tmp_path, STREAM_INGEST_TOKEN_FILE=str(token_file), STREAM_MAX_ARTICLE_BYTES="4000")
    ing = Ingester(env, _feeds_file(tmp_path, server, ["/rss.xml"]), tmp_path / "push.log")
    try:
        url = ing.url() + "/articles"
        ing.entries()
        good = [{"id": "p1", "text": "Troops crossed the border at dawn."},
                {"url": "https://example.org/a", "text": "A second article."}]
        assert _post(url, orjson.dumps(good), None)[0] == 401
        assert _post(url, orjson.dumps(good), "wrong")[0] == 401
        status, body = _post(url, orjson.dumps([*good, {"id": "bad", "title": "no text"}, 7]), "s3cret-token")
        assert status == 400 and len(body["errors"]) == 2, body
        assert "[2]: missing required field 'text'" in body["errors"][0] and "[3]" in body["errors"][1]
        big = {"id": "big", "text": "word " * 1000}
        status, body = _post(url, orjson.dumps([good[0], big]), "s3cret-token")
        assert status == 413 and "over max_article_bytes = 4000" in body["errors"][0], body
        assert _post(url, b'{"id": "x", "text": ', "s3cret-token")[0] == 400
        time.sleep(1)
        assert [r for r in _raw(broker, topics.raw) if r["id"] in ("p1", "big", "bad")] == []  # nothing half-written
        status, body = _post(url, orjson.dumps(good), "s3cret-token")
        assert status == 202 and body["ids"] == ["p1", make_id("https://example.org/a", "")], body
        status, body = _post(url, orjson.dumps({"id": "p3", "text": "One more."}), "s3cret-token")
        assert status == 202 and body["ids"] == ["p3"]
        records = [r for r in _raw(broker, topics.raw) if not r.get("feed")]
        assert sorted(r["id"] for r in records) == sorted(["p1", make_id("https://example.org/a", ""), "p3"])
        assert "s3cret-token" not in ing.log()
    finally:
        ing.stop()


def test_a_feed_becomes_enriched_records_through_a_worker(
        broker: LocalBroker, topics: StreamTopics, tmp_path: Path, server: FeedServer) -> None:
    server.feeds = {"rss": items("r", 3)}
    env = _env(broker, topics, tmp_path)
    result = _once(env, _feeds_file(tmp_path, server, ["/rss.xml"]))
    assert result.returncode == 0, result.stdout + result.stderr
    ids = _ids(server, "rss", server.feeds["rss"])
    worker = StreamWorker(broker, topics, tmp_path, "w", STREAM_PLUGINS=PLUGINS)
    try:
        enriched = wait_for(broker, topics.enriched, ids, workers=[worker])
    finally:
        worker.stop()
    for ident in ids:
        record = enriched[ident]
        assert record["text_from"] == "page" and record["feed"] == server.url("/rss.xml")
        assert record["clean_text"] and record["language"] == "en" and record["entities"], record["id"]
        assert record["dedup"]["status"] in ("unique", "exact", "near")
    assert os.environ.get("STREAM_PLUGINS") == "clean,ner,dedup,alerts"
