"""``stream new-plugin NAME``: a working plugin package, ready for ``pip install -e``."""

from __future__ import annotations

import re
from pathlib import Path

from .. import __version__
from ..errors import ConfigError
from ..processor import PLUGIN_API

__all__ = ["new_plugin"]

_PYPROJECT = '''[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[project]
name = "{dist}"
version = "0.1.0"
description = "A stream plugin: {name}"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["stream-news>={stream_version},<{next_major}"]

[project.optional-dependencies]
test = ["pytest>=8"]

[project.entry-points."stream.plugins"]
{name} = "{package}"

[tool.hatch.build.targets.wheel]
packages = ["{package}"]
'''

_MODULE = '''"""{dist}: a stream plugin."""

from __future__ import annotations

from stream import Article, ConfigError, Context, Processor, Settings, hookimpl

__version__ = "0.1.0"
#: The stream plugin API this plugin is written for.
STREAM_PLUGIN_API = "{api}"


class {cls}(Processor):
    """Puts the number of words of ``clean_text`` in ``extra["{name}"]``: replace with yours."""

    name = "{name}"
    version = __version__
    order = 450          # after alerts (400); clean 100, ner 200, dedup 300
    # A synchronous process() runs in the pipeline's thread, off the event loop.
    on_error = "dlq"     # or "skip"

    def setup(self, context: Context) -> None:
        # Your settings: [plugins.{name}] in stream.toml, or STREAM_PLUGIN_{upper}__<KEY>.
        raw = context.config.get("minimum", 0)
        try:
            self.minimum = int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"[plugins.{name}] minimum must be a whole number, not {{raw!r}}") from None

    def process(self, articles: list[Article]) -> None:
        for article in articles:
            words = len((article.clean_text or article.text).split())
            article.extra["{name}"] = {{"words": words, "long": words >= self.minimum}}


@hookimpl
def stream_register_processors(settings: Settings) -> list[Processor]:
    return [{cls}()]
'''

_TEST = '''from __future__ import annotations

from typing import Any

from {package} import {cls}

from stream import Processor
from stream.plugins import get_plugin_manager
from stream.settings import Settings
from stream.testing import ProcessorConformance


def test_the_plugin_is_installed() -> None:
    host = get_plugin_manager(Settings())
    assert "{name}" in [p.name for p in host.loaded], "pip install -e . first"


def test_it_enriches_articles(stream_process: Any) -> None:
    [article] = stream_process(["Troops moved toward the border."], plugins=["{name}"])
    assert article.extra["{name}"]["words"] == 5


class Test{cls}Conformance(ProcessorConformance):
    bad_config = {{"minimum": "many"}}

    def make_processor(self) -> Processor:
        return {cls}()
'''

_README = '''# {dist}

A [stream](https://example.invalid/stream) plugin: `{name}`.

```
pip install -e '.[test]'
stream plugins                 # lists {name}
stream process article.txt     # runs it; see extra.{name}
pytest
```

Settings: `[plugins.{name}]` in stream.toml, or `STREAM_PLUGIN_{upper}__<KEY>`.
'''


_SOURCE_MODULE = '''"""{dist}: a stream source (``[[{name}]]`` in the sources file of ``stream ingest``)."""

from __future__ import annotations

from typing import Any, AsyncIterator

import orjson

from stream import hookimpl
from stream.sources import Found, Memory, Source, SourceError

__version__ = "0.1.0"
#: The stream plugin API this plugin is written for (sources came in 1.1).
STREAM_PLUGIN_API = "{api}"


class {cls}(Source):
    """Polls a URL that answers a JSON array of articles: replace with yours."""

    kind = "{name}"
    version = __version__

    @classmethod
    def configure(cls, entry: dict[str, Any]) -> dict[str, Any]:
        url = entry.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError("url: give the http(s) address to poll")
        return entry

    async def poll(self, memory: Memory) -> AsyncIterator[Found]:
        page = await self.context.fetch.get(self.entry["url"])     # checked, capped, timed out
        try:
            articles = orjson.loads(page.content)
        except orjson.JSONDecodeError as exc:
            raise SourceError("not_json", f"{{page.url}}: not JSON ({{exc}})") from None
        for article in articles:
            key = str(article.get("id") or article.get("url"))
            if key not in memory:                                   # sent before
                yield Found(key, article)


@hookimpl
def stream_register_sources(settings: Any) -> list[type[Source]]:
    return [{cls}]
'''

_SOURCE_TEST = '''from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from {package} import {cls}

from stream.plugins import get_plugin_manager
from stream.settings import Settings
from stream.sources import Fetcher, Memory, SourceContext, SourceError

ARTICLES = b'[{{"id": "a1", "text": "Troops moved."}}, {{"id": "a2", "text": "Talks resumed."}}]'


@pytest.fixture
def url() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = ARTICLES if self.path == "/articles.json" else b"<html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{{server.server_address[1]}}"
    server.shutdown()


def test_the_source_is_installed() -> None:
    kinds = get_plugin_manager(Settings()).sources()
    assert kinds.get("{name}") is {cls}, "pip install -e . first"


def _poll(url: str, memory: Memory) -> list[Any]:
    async def run() -> list[Any]:
        fetch = Fetcher(allow_loopback=True)          # the sources file's allow_loopback = true
        try:
            source = {cls}({cls}.configure({{"url": url}}), SourceContext(Settings(), fetch))
            return [found async for found in source.poll(memory)]
        finally:
            await fetch.close()

    return asyncio.run(run())


def test_it_yields_what_is_new(url: str) -> None:
    memory = Memory()
    found = _poll(url + "/articles.json", memory)
    assert [f.article["id"] for f in found] == ["a1", "a2"]
    memory.add(["a1"])                                  # the ingester does this after the broker's ack
    assert [f.key for f in _poll(url + "/articles.json", memory)] == ["a2"]


def test_a_bad_answer_is_a_source_error(url: str) -> None:
    with pytest.raises(SourceError):
        _poll(url + "/other", Memory())
'''

_SOURCE_README = '''# {dist}

A [stream](https://example.invalid/stream) source: `[[{name}]]` tables in the sources file
of `stream ingest`.

```
pip install -e '.[test]'
pytest
cat > feeds.toml <<'TOML'
[[{name}]]
url = "https://example.org/articles.json"
every = 60
TOML
stream ingest feeds.toml --once
```
'''


def new_plugin(name: str, directory: Path, *, source: bool = False) -> Path:
    """Create ``directory/name`` with a plugin package (``source``: a source, for
    ``stream ingest``, instead of a processor).

    :raises ConfigError: the name is not a valid plugin name, or the directory exists.
    """
    if not re.fullmatch(r"[a-z][a-z0-9_]{1,30}", name):
        raise ConfigError(f"{name!r} is not a plugin name: use 2-31 lowercase letters, digits or '_', "
                          "starting with a letter")
    root = directory / name
    if root.exists():
        raise ConfigError(f"{root} already exists; choose another name or remove it")
    package = f"stream_{name}"
    values = {
        "name": name, "package": package, "dist": f"stream-{name.replace('_', '-')}",
        "cls": "".join(part.capitalize() for part in name.split("_")) + ("Source" if source else "Processor"),
        "upper": name.upper(), "api": PLUGIN_API, "stream_version": __version__,
        # The core's next major version: its API may break there (semantic versioning).
        "next_major": int(__version__.split(".")[0]) + 1,
    }
    (root / package).mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text(_PYPROJECT.format(**values))
    module, test, readme = (_SOURCE_MODULE, _SOURCE_TEST, _SOURCE_README) if source else (_MODULE, _TEST, _README)
    (root / package / "__init__.py").write_text(module.format(**values))
    (root / "tests" / f"test_{name}.py").write_text(test.format(**values))
    (root / "README.md").write_text(readme.format(**values))
    return root
