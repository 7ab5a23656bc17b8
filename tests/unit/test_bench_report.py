"""The generated table of docs/performance.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_bench.report import BEGIN, END, write_table
from stream_bench.run import PLAN


def results() -> dict:  # type: ignore[type-arg]
    ratios = [{"id": rid, "what": what, "target": f"{op} {t:g}", "median": 1.0, "min": 0.9, "max": 1.1,
               "met": True, "detail": {}} for rid, (what, op, t) in PLAN.items()]
    return {"ratios": ratios, "sanity": {}, "corpus": {"articles": 5000, "ner_articles": 300, "rounds": 3},
            "seconds": 600}


def test_the_table_between_the_markers_is_replaced_and_the_rest_kept(tmp_path: Path) -> None:
    page = tmp_path / "performance.md"
    page.write_text(f"# Performance\n\nintro\n\n{BEGIN}\nold table\n{END}\n\n## Reading the figures\nkept\n")
    write_table(results(), page, "bench/results/x.json")
    text = page.read_text()
    assert "old table" not in text and "intro" in text and "kept" in text
    assert text.count("| R") == len(PLAN) == 16 and "| R7 | dedup insert+query" in text
    write_table(results(), page, "bench/results/y.json")  # idempotent: one table
    assert page.read_text().count(BEGIN) == 1 and "y.json" in page.read_text()


def test_a_page_without_the_markers_is_not_overwritten(tmp_path: Path) -> None:
    page = tmp_path / "performance.md"
    page.write_text("# hand-written\n")
    with pytest.raises(ValueError, match="markers"):
        write_table(results(), page, "x.json")
    assert page.read_text() == "# hand-written\n"
