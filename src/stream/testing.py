"""Test helpers for plugin authors; a pytest plugin (registered as ``pytest11: stream``).

The fixture :func:`stream_process` runs articles through a chosen set of installed
plugins in-process, exactly as ``stream process`` does::

    def test_my_plugin_tags_quotes(stream_process):
        [article] = stream_process(["He said: “We will respond.”"], plugins=["clean", "quotes"])
        assert article.extra["quotes"] == ["We will respond."]
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from .chain import build_chain
from .pipeline import BatchResult
from .records import Article
from .settings import Settings

__all__ = ["run_chain", "stream_process"]


def run_chain(
    articles: Sequence[Article | str | dict[str, Any]],
    *,
    plugins: Sequence[str] | None = None,
    settings: Settings | None = None,
    plugin_settings: dict[str, dict[str, Any]] | None = None,
) -> BatchResult:
    """Run ``articles`` (Articles, texts or input dicts) through ``plugins`` in-process.

    :param plugins: entry-point names to load (default: every installed plugin).
    :return: the :class:`~stream.pipeline.BatchResult` (articles that came through, failures).
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
    """``stream_process(articles, plugins=None, **kw) -> list[Article]``; fails the test
    if any article failed."""

    def run(articles: Sequence[Article | str | dict[str, Any]], **kwargs: Any) -> list[Article]:
        result = run_chain(articles, **kwargs)
        if result.failures:
            f = result.failures[0]
            raise AssertionError(f"article {f.article.id} failed in {f.stage}: {f.error!r}")
        return result.articles

    yield run
