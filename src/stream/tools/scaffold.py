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
dependencies = ["stream-news>={stream_version}"]

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
        # Your settings: [plugins.{name}] in stream.toml, or STREAM_PLUGIN_{upper}_<KEY>.
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

Settings: `[plugins.{name}]` in stream.toml, or `STREAM_PLUGIN_{upper}_<KEY>`.
'''


def new_plugin(name: str, directory: Path) -> Path:
    """Create ``directory/name`` with a plugin package.

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
        "cls": "".join(part.capitalize() for part in name.split("_")) + "Processor",
        "upper": name.upper(), "api": PLUGIN_API, "stream_version": __version__,
    }
    (root / package).mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text(_PYPROJECT.format(**values))
    (root / package / "__init__.py").write_text(_MODULE.format(**values))
    (root / "tests" / f"test_{name}.py").write_text(_TEST.format(**values))
    (root / "README.md").write_text(_README.format(**values))
    return root
