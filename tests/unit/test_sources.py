"""The sources file, the feed parser, the checked fetcher, the memory and the push
validation: no Kafka (the push's 400/401/413 answers are decided before anything is sent)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from stream import ConfigError
from stream.settings import Settings
from stream.sources import Fetcher, FetchError, Memory, SourceContext, SourceError
from stream.sources.config import load_sources
from stream.sources.metrics import IngestMetrics
from stream.sources.push import push_handler
from stream_feeds.feed import FeedSource
from stream_feeds.parse import parse_feed, summary_text
from tests.feed_server import FeedServer, Item, items

KINDS = {"feeds": FeedSource}


def _file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "feeds.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(("text", "line", "words"), [
    ('[[feeds]]\nurl = "https://a.example/rss"\nevery = 0\n', 3, "every = 0"),
    ('[[feeds]]\nurl = "ftp://a.example/rss"\n', 2, "is not an http(s) address"),
    ('[[feeds]]\nevery = 60\n', 1, "a feed needs url"),
    ('[[feeds]]\nurl = "https://a.example/rss"\ncolour = "red"\n', 1, "unknown key 'colour'"),
    ('[[feeds]]\nurl = "https://a.example/rss"\n\n[[feeds]]\nurl = "https://a.example/rss"\n', 4, "listed twice"),
    ('[[sitemaps]]\nurl = "https://a.example/"\n', 1, "no installed source reads this table (installed: feeds)"),
    ('allow_loopbak = true\n[[feeds]]\nurl = "https://a.example/rss"\n', 1, "unknown setting 'allow_loopbak'"),
    ('timeout = -1\n[[feeds]]\nurl = "https://a.example/rss"\n', 1, "timeout must be a positive number"),
    ('allow_networks = ["10.0.0.0/33"]\n[[feeds]]\nurl = "https://a.example/rss"\n', 1, "allow_networks"),
    ('[[feeds]]\nurl = "https://a.example/rss"\npages = "yes"\n', 3, "pages: 'yes'"),
    ('allow_loopback = true\n', None, "no sources"),
    ('[[feeds]\nurl = 1\n', 1, "not valid TOML"),
])
def test_a_bad_sources_file_stops_at_its_line(tmp_path: Path, text: str, line: int | None, words: str) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_sources(path, KINDS)
    assert info.value.path == path and info.value.line == line and words in str(info.value), str(info.value)


def test_a_good_sources_file_is_normalised(tmp_path: Path) -> None:
    path = _file(tmp_path, 'allow_loopback = true\nper_host = 4\n[[feeds]]\nurl = "https://a.example/rss"\n'
                           '[[feeds]]\nurl = "https://b.example/atom"\nsource = "B"\nevery = 60\npages = false\n')
    loaded = load_sources(path, KINDS)
    assert loaded.options["allow_loopback"] is True and loaded.options["per_host"] == 4
    assert [(e.id, e.config["every"], e.config["pages"], e.line) for e in loaded.entries] == [
        ("feeds:https://a.example/rss", 300.0, True, 3), ("feeds:https://b.example/atom", 60.0, False, 5)]


def test_json_feed_rss_and_atom_give_the_same_entries() -> None:
    server = FeedServer(feeds={"rss": items("x", 3), "atom": items("x", 3), "json": items("x", 3)})
    server.port = 8000
    got = {}
    for name, ext in (("rss", "xml"), ("atom", "xml"), ("json", "json")):
        body, ctype = server.render(name, ext, sorted(server.feeds[name], key=lambda i: -i.published))
        feed = parse_feed(body, {"content-type": ctype}, f"http://h/{name}.{ext}")
        got[name] = [(e.link, e.title, e.summary, e.published) for e in feed.entries]
        assert feed.title == f"The {name} feed"
    assert got["rss"] == got["atom"] == got["json"]
    assert got["rss"][0] == ("http://127.0.0.1:8000/pages/02-blog-sample-002.html?item=x-2", "X story number 2",
                             "Summary of X story number 2.", "2025-12-01T00:02:00Z")


@pytest.mark.parametrize("body", [b"<html><body>hello</body></html>", b'{"title": "no version"}', b"{not json",
                                  b'{"version": "https://jsonfeed.org/version/1.1"}'])
def test_what_is_not_a_feed_is_named(body: bytes) -> None:
    with pytest.raises(SourceError) as info:
        parse_feed(body, {"content-type": "text/html"}, "http://h/f")
    assert info.value.reason == "not_a_feed" and "http://h/f" in str(info.value)


def test_summary_text_keeps_paragraphs_and_drops_markup() -> None:
    assert summary_text("<p>One &amp; two.</p><p>Three<br>four</p>") == "One & two.\n\nThree\n\nfour"
    assert summary_text("") is None and summary_text("<p> </p>") is None


def test_the_memory_is_bounded_and_survives_its_record() -> None:
    memory = Memory()
    memory.add(f"k{n}" for n in range(Memory.limit + 10))
    assert len(memory) == Memory.limit and "k0" not in memory and f"k{Memory.limit + 9}" in memory
    memory.state["etag"] = '"abc"'
    again = Memory.from_record(orjson.loads(orjson.dumps(memory.to_record())))
    assert len(again) == Memory.limit and "k10" in again and again.state == {"etag": '"abc"'}
    assert len(Memory.from_record(None)) == 0


@pytest.fixture
def server() -> Iterator[FeedServer]:
    s = FeedServer(feeds={"rss": items("r", 2)}).start()
    yield s
    s.stop()


def test_the_fetcher_checks_every_hop_and_caps_the_size(server: FeedServer) -> None:
    async def run() -> None:
        fetch = Fetcher(allow_loopback=True, max_bytes=2000)
        try:
            with pytest.raises(FetchError) as info:
                await fetch.get(server.url("/to-private"))
            assert info.value.reason == "refused" and "169.254.169.254" in str(info.value)
            assert "allow_networks in the sources file" in str(info.value)
            page = await fetch.get(server.url("/redirect.xml"))  # a redirect to a feed of the same host
            assert page.status == 200 and page.url == server.url("/rss.xml")
            with pytest.raises(FetchError) as info:
                await fetch.get(server.url("/pages/00-classic-sample-000.html"))
            assert info.value.reason == "too_large"
            with pytest.raises(FetchError) as info:
                await fetch.get(server.url("/500.xml"))
            assert info.value.reason == "http_500" and info.value.status == 500
        finally:
            await fetch.close()
        strict = Fetcher()
        try:
            with pytest.raises(FetchError) as info:
                await strict.get(server.url("/rss.xml"))
            assert info.value.reason == "refused" and "allow_loopback = true" in str(info.value)
        finally:
            await strict.close()

    asyncio.run(run())


def test_the_feed_source_polls_conditionally_and_falls_back_to_the_summary(server: FeedServer) -> None:
    server.feeds["rss"].append(Item("r-x", "Behind a redirect", "/to-private", 1764547000))

    async def run() -> None:
        fetch = Fetcher(allow_loopback=True)
        source = FeedSource(FeedSource.configure({"url": server.url("/rss.xml"), "source": "R"}),
                            SourceContext(Settings(), fetch))
        memory = Memory()
        found = [f async for f in source.poll(memory)]
        # oldest first; feedparser reads an RSS guid as a link relative to the feed
        assert [f.key.rsplit("/", 1)[-1] for f in found] == ["r-x", "r-0", "r-1"]
        by_key = {f.key.rsplit("/", 1)[-1]: f.article for f in found}
        assert by_key["r-x"]["text_from"] == "summary" and "link-local" in by_key["r-x"]["page_error"]
        assert by_key["r-0"]["text_from"] == "page" and by_key["r-0"]["source"] == "R"
        assert memory.state["etag"] and memory.state["last_modified"]
        memory.add(f.key for f in found)
        assert [f async for f in source.poll(memory)] == [] and memory.not_modified
        await fetch.close()

    asyncio.run(run())


def _push_app(token: str = "tok") -> web.Application:
    app = web.Application()
    app.router.add_post("/articles", push_handler(Settings(max_article_bytes=300), token, None,  # type: ignore[arg-type]
                                                  IngestMetrics()))
    return app


@pytest.mark.parametrize(("body", "token", "status", "words"), [
    (b'{"id": "a", "text": "x"}', "", 401, "bearer token"),
    (b'{"id": "a", "text": "x"}', "nope", 401, "bearer token"),
    (b"[]", "tok", 400, "empty array"),
    (b'{"id": "a", "text": ', "tok", 400, "not valid JSON"),
    (b'[{"id": "a", "text": "x"}, {"id": "b"}]', "tok", 400, "[1]: missing required field 'text'"),
    (b'[{"id": "a", "text": "' + b"x" * 400 + b'"}, {"id": "b"}]', "tok", 413, "over max_article_bytes = 300"),
])
def test_push_refuses_a_bad_request_whole(body: bytes, token: str, status: int, words: str) -> None:
    async def run() -> None:
        async with TestClient(TestServer(_push_app())) as client:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = await client.post("/articles", data=body, headers=headers)
            assert response.status == status
            assert words in await response.text()

    asyncio.run(run())


def test_push_is_off_without_a_token() -> None:
    async def run() -> None:
        async with TestClient(TestServer(_push_app(token=""))) as client:
            response = await client.post("/articles", data=b"{}", headers={"Authorization": "Bearer x"})
            assert response.status == 403 and "set ingest_token" in await response.text()

    asyncio.run(run())


def test_the_sources_hook_gives_the_kinds_and_refuses_a_duplicate_or_a_non_source() -> None:
    from stream import PluginError, hookimpl
    from stream.plugins import get_plugin_manager
    from stream.sources import Source

    host = get_plugin_manager(Settings(plugins=("feeds", "clean")))
    assert host.sources() == {"feeds": FeedSource} and host.owner["source:feeds"] == "feeds"

    class Twin(Source):
        kind = "feeds"

    class Again:
        @hookimpl
        def stream_register_sources(self, settings: Settings) -> list[type[Source]]:
            return [Twin]

    class Wrong:
        @hookimpl
        def stream_register_sources(self) -> list[object]:
            return [object]

    host.pm.register(Again(), name="again")
    with pytest.raises(PluginError, match="source kind 'feeds' is already registered by plugin") as info:
        host.sources()
    assert {"'again'", "'feeds'"} <= set(re.findall(r"'\w+'", str(info.value))), str(info.value)  # both named
    host.pm.unregister(name="again")
    host.pm.register(Wrong(), name="wrong")
    with pytest.raises(PluginError, match="plugin 'wrong': stream_register_sources returned <class 'object'>"):
        host.sources()
