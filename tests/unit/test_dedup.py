"""The dedup processor on copies built from the sample articles."""

from __future__ import annotations

from typing import Any

import pytest

from stream import Article, ConfigError, Context
from stream.runtime.chain import collect_outputs
from stream.runtime.pipeline import BatchResult
from stream.settings import Settings
from stream.testing import run_chain
from stream_dedup import DedupProcessor

from ..dedup_cases import edited, reheadlined, sample, shares_a_paragraph, truncated


def cleaned(items: list[tuple[str, str]]) -> list[Article]:
    result = run_chain([{"id": i, "text": t} for i, t in items], plugins=["clean"])
    return result.articles


def make(table: dict[str, Any] | None = None, **config: Any) -> DedupProcessor:
    proc = DedupProcessor()
    proc.setup(Context(settings=Settings(), config=config, tables={"dedup": {} if table is None else table}))
    return proc


def test_copies_are_found_and_point_at_the_first_article_of_the_story() -> None:
    original = sample("003")
    resend = original.replace(",", "").replace("Russian Foreign Minister", "russian foreign  minister")
    arts = cleaned([
        ("orig", original), ("resend", resend), ("edited", edited(original)),
        ("rehead", reheadlined(original)), ("trunc", truncated(original)),
        ("other", sample("004")),
    ])
    make().process(arts)
    d = {a.id: a.dedup for a in arts}
    assert d["orig"] == {"status": "unique", "duplicate_of": None, "similarity": None, "cluster_id": "orig"}
    assert d["resend"]["status"] == "exact" and d["resend"]["similarity"] == 1.0
    for copy in ("edited", "rehead", "trunc"):
        assert d[copy]["status"] == "near", (copy, d[copy])
        assert d[copy]["duplicate_of"] == d[copy]["cluster_id"] == "orig"
        assert 0.5 <= d[copy]["similarity"] <= 1.0
    assert d["other"]["status"] == "unique" and d["other"]["cluster_id"] == "other"


def test_articles_that_share_a_paragraph_are_not_duplicates() -> None:
    arts = cleaned([("a", sample("000")), ("b", sample("002")), ("c", shares_a_paragraph(sample("003")))])
    make().process(arts)
    assert [a.dedup["status"] for a in arts] == ["unique", "unique", "unique"]


def test_reprocessing_an_article_gives_the_same_decision_never_a_duplicate_of_itself() -> None:
    original = sample("001")
    proc = make()
    first = cleaned([("a", original), ("b", edited(original))])
    proc.process(first)
    again = cleaned([("a", original), ("b", edited(original))])
    proc.process(again)
    assert [x.dedup for x in again] == [x.dedup for x in first]
    assert again[0].dedup["status"] == "unique" and again[1].dedup["duplicate_of"] == "a"


def test_the_index_is_rebuilt_from_the_state_table_after_a_restart() -> None:
    table: dict[str, Any] = {}
    original = sample("002")
    make(table).process(cleaned([("a", original)]))
    restarted = make(table)  # a new process with the same (restored) table
    [copy] = cleaned([("b", truncated(original, 0.5))])
    restarted.process([copy])
    assert copy.dedup["status"] == "near" and copy.dedup["duplicate_of"] == "a"


def test_state_is_bounded_by_count_and_by_age() -> None:
    table: dict[str, Any] = {}
    proc = make(table, max_signatures=2)
    proc.process(cleaned([("a", sample("000")), ("b", sample("001")), ("c", sample("002"))]))
    assert sorted(table) == ["a:b", "a:c"]
    assert proc.index is not None and len(proc.index) == 2
    aged = make({}, retention_hours=1)
    aged.clock = lambda: 0.0
    aged.process(cleaned([("old", sample("003"))]))
    aged.clock = lambda: 7200.0
    [copy] = cleaned([("new", sample("003"))])
    aged.process([copy])
    assert copy.dedup["status"] == "unique"  # the original's signature has expired
    assert "a:old" not in aged.table


def test_duplicates_can_be_routed_to_their_own_topic() -> None:
    arts = cleaned([("a", sample("000")), ("b", sample("000"))])
    make().process(arts)
    out = collect_outputs(BatchResult(articles=arts), worker="w", max_record_bytes=10**6, original={},
                          route_duplicates=True)
    assert [k for k, _v, _a in out.enriched] == [b"a"] and [k for k, _v, _a in out.duplicates] == [b"b"]
    kept = collect_outputs(BatchResult(articles=arts), worker="w", max_record_bytes=10**6, original={})
    assert [k for k, _v, _a in kept.enriched] == [b"a", b"b"] and not kept.duplicates


@pytest.mark.parametrize(("config", "message"), [
    ({"jaccard": "high"}, "jaccard must be a number"),
    ({"overlap": 1.5}, "overlap = 1.5 is out of range"),
    ({"treshold": 0.5}, "unknown setting"),
])
def test_bad_settings_stop_at_start(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make(**config)


def test_the_dedup_processor_is_stateful_and_runs_before_alerting() -> None:
    from stream.plugins import get_plugin_manager
    from stream.runtime.pipeline import split_stateful

    builtins = ("clean", "ner", "dedup", "alerts")
    stateless, stateful = split_stateful(get_plugin_manager(Settings(plugins=builtins)).processors())
    assert [p.name for p in stateless] == ["clean", "ner"]
    assert [p.name for p in stateful] == ["dedup", "alerts"]
