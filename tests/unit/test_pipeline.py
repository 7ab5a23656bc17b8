from __future__ import annotations

import asyncio
import threading

import pytest

from stream import Article, Context, PluginError, Processor
from stream.runtime.pipeline import Pipeline
from stream.settings import Settings


def articles(*ids: str) -> list[Article]:
    return [Article(id=i, text=f"text of {i}") for i in ids]


class Upper(Processor):
    name = "upper"
    order = 10

    def process(self, batch: list[Article]) -> None:
        for a in batch:
            a.clean_text = a.text.upper()


class FailsOn(Processor):
    name = "fails"
    order = 20

    def __init__(self, bad: str, on_error: str = "dlq") -> None:
        self.bad = bad
        self.on_error = on_error  # type: ignore[misc]
        self.calls: list[list[str]] = []

    def process(self, batch: list[Article]) -> None:
        self.calls.append([a.id for a in batch])
        for a in batch:
            if a.id == self.bad:
                raise ValueError(f"cannot handle {a.id}")
            a.extra["fails"] = "ok"


class AsyncTag(Processor):
    name = "atag"
    order = 30

    async def process(self, batch: list[Article]) -> None:
        await asyncio.sleep(0)
        for a in batch:
            a.extra["atag"] = True


class Heavy(Processor):
    name = "heavy"
    order = 5
    cpu_bound = True

    def __init__(self) -> None:
        self.thread = ""

    def process(self, batch: list[Article]) -> None:
        self.thread = threading.current_thread().name


def ready(*procs: Processor) -> Pipeline:
    p = Pipeline(procs)
    p.setup(lambda proc: Context(settings=Settings()))
    return p


async def test_processors_run_in_order_and_time_is_recorded_per_article() -> None:
    p = ready(Upper(), AsyncTag())
    result = await p.run(articles("a", "b"))
    assert [a.clean_text for a in result.articles] == ["TEXT OF A", "TEXT OF B"]
    assert all(a.extra["atag"] for a in result.articles)
    names = [step["name"] for step in result.articles[0].plugins_run]
    assert names == ["upper", "atag"]
    assert all(step["ms"] >= 0 for step in result.articles[0].plugins_run)


async def test_a_failing_article_is_isolated_and_the_rest_go_on() -> None:
    failing = FailsOn("b")
    p = ready(Upper(), failing, AsyncTag())
    result = await p.run(articles("a", "b", "c"))
    assert [a.id for a in result.articles] == ["a", "c"]
    assert [(f.article.id, f.stage, str(f.error)) for f in result.failures] == [("b", "fails", "cannot handle b")]
    assert failing.calls == [["a", "b", "c"], ["a"], ["b"], ["c"]]
    assert all(a.extra == {"fails": "ok", "atag": True} for a in result.articles)


async def test_on_error_skip_passes_the_article_on_and_marks_it() -> None:
    p = ready(FailsOn("b", on_error="skip"), AsyncTag())
    result = await p.run(articles("a", "b"))
    assert [a.id for a in result.articles] == ["a", "b"] and not result.failures
    b = result.articles[1]
    assert b.plugins_run[0]["skipped"] is True and "fails" not in b.extra
    assert "skipped" not in result.articles[0].plugins_run[0]


async def test_cpu_bound_processors_run_off_the_event_loop_thread() -> None:
    heavy = Heavy()
    await ready(heavy).run(articles("a"))
    assert heavy.thread.startswith("stream-cpu")


def test_a_setup_failure_names_the_processor() -> None:
    class Broken(Processor):
        name = "broken"

        def setup(self, context: Context) -> None:
            raise RuntimeError("model missing")

    with pytest.raises(PluginError, match="plugin 'broken': setup failed: model missing"):
        ready(Broken())


class Hangs(Processor):
    name = "hangs"
    cpu_bound = True
    timeout = 0.2

    def process(self, batch: list[Article]) -> None:
        for a in batch:
            if a.id == "stuck":
                threading.Event().wait(3)  # a hung call
            a.extra["hangs"] = "ok"


class HangsAsync(Processor):
    name = "hangs-async"
    timeout = 0.2
    on_error = "skip"

    async def process(self, batch: list[Article]) -> None:
        if any(a.id == "stuck" for a in batch):
            await asyncio.sleep(3)


async def test_a_processor_that_hangs_past_its_limit_fails_those_articles_and_the_rest_go_on() -> None:
    p = ready(Hangs(), Upper())
    result = await p.run(articles("a", "stuck", "b"))
    assert [a.id for a in result.articles] == ["a", "b"]
    [failure] = result.failures
    assert failure.article.id == "stuck" and isinstance(failure.error, TimeoutError)
    assert "longer than its limit" in str(failure.error)
    later = await p.run(articles("c"))  # a fresh thread serves the next batches
    assert [a.clean_text for a in later.articles] == ["TEXT OF C"]


async def test_an_async_processor_past_its_limit_with_skip_passes_articles_on() -> None:
    result = await ready(HangsAsync()).run(articles("a", "stuck"))
    assert [a.id for a in result.articles] == ["a", "stuck"] and not result.failures
    assert result.articles[1].plugins_run[0]["skipped"] is True


def test_each_output_record_is_encoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """#18: an enriched record is serialised once, each alert once; nothing is encoded twice
    on the way (the hand-off carries coordinates, not the original, see test_records)."""
    from stream.records import dumps as real_dumps
    from stream.runtime import chain
    from stream.runtime.pipeline import BatchResult

    encoded: list[object] = []

    def counting(obj: object) -> bytes:
        encoded.append(obj)
        return real_dumps(obj)

    monkeypatch.setattr(chain, "dumps", counting)
    articles = [Article(id=f"a{n}", text="Troops crossed the border.", clean_text="Troops crossed the border.")
                for n in range(5)]
    for n, article in enumerate(articles):
        article.alerts = [{"rule_id": f"r{k}", "article_id": article.id} for k in range(n % 3)]
    out = chain.collect_outputs(BatchResult(articles=articles), worker="w", max_record_bytes=1 << 20,
                                original={})
    assert len(out.enriched) == 5 and len(out.alerts) == 0 + 1 + 2 + 0 + 1
    assert len(encoded) == len(out.enriched) + len(out.alerts)
    assert [value for _, value, _ in out.enriched] == [real_dumps(o) for o in encoded if "rule_id" not in o]
