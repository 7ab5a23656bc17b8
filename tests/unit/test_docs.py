"""The docs agree with the code: the plugin guide's code is what `stream new-plugin` writes,
the benchmark tables are generated from the results file they name (the newest), the exit
statuses and the topic plan shown in docs/operations.md are the code's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from stream import errors
from stream.cli import main
from stream.tools.scaffold import new_plugin

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _block_after(text: str, marker: str) -> str:
    """The fenced code block that follows ``marker``."""
    rest = text.split(marker, 1)[1]
    match = re.match(r"\s*```[a-z]*\n(.*?)```", rest, re.S)
    assert match, f"no code block after {marker!r}"
    return match.group(1)


def test_the_plugin_guide_shows_the_scaffold_as_it_writes_it(tmp_path: Path) -> None:
    text = (DOCS / "plugins.md").read_text()
    markers = re.findall(r"<!-- scaffold: (\w+) (\S+) -->", text)
    assert {m[1] for m in markers} >= {"stream_wordcount/__init__.py", "pyproject.toml", "tests/test_wordcount.py"}
    root = new_plugin("wordcount", tmp_path)
    for name, path in markers:
        shown = _block_after(text, f"<!-- scaffold: {name} {path} -->")
        assert shown == (root / path).read_text(), (
            f"docs/plugins.md's {path} is not what `stream new-plugin {name}` writes: paste its output")


def _results_named(page: Path, marker: str) -> tuple[Path, str]:
    text = page.read_text()
    begin = text.index(marker)
    block = text[text.index("\n", begin) + 1:text.index("<!-- bench:", begin + len(marker))].rstrip("\n")
    [source] = re.findall(r"from `(bench/results/[^`]+\.json)`", block)
    return ROOT / source, block


def _newest_results() -> Path:
    runs = [p for p in (ROOT / "bench" / "results").glob("*.json") if "smoke" not in p.name]
    return max(runs, key=lambda p: p.name[:10])  # DATE.json, DATE-runN.json


def test_the_performance_table_is_generated_from_the_newest_results() -> None:
    report = pytest.importorskip("stream_bench.report")
    source, block = _results_named(DOCS / "performance.md", report.BEGIN)
    assert source.name[:10] == _newest_results().name[:10], f"{source} is not the newest run: run make bench"
    results = json.loads(source.read_text())
    assert block == report.table(results, str(source.relative_to(ROOT)))


def test_the_sizing_table_is_generated_from_the_newest_results() -> None:
    report = pytest.importorskip("stream_bench.report")
    source, block = _results_named(DOCS / "operations.md", report.SIZING_BEGIN)
    assert source.name[:10] == _newest_results().name[:10], f"{source} is not the newest run: run make bench"
    results = json.loads(source.read_text())
    assert block == report.sizing(results, str(source.relative_to(ROOT)))
    assert block.splitlines()[2].split("|")[3].strip() != "-", "the results file has no throughput rounds"


def test_the_exit_status_table_is_the_code_s() -> None:
    text = (DOCS / "operations.md").read_text()
    section = text.split("## Exit statuses", 1)[1].split("\n## ", 1)[0]
    shown = {int(code): name for code, name in re.findall(r"^\| (\d+) \| `(EX_\w+)`", section, re.M)}
    constants = {getattr(errors, n): n for n in dir(errors) if n.startswith("EX_")}
    assert shown == constants


def test_the_topic_plan_in_the_operations_guide_is_what_the_command_prints() -> None:
    text = (DOCS / "operations.md").read_text()
    marker = "<!-- stream topics plan: STREAM_WEBHOOKS=webhooks.toml, the built-in plugins -->"
    shown = _block_after(text, marker)
    env = {"STREAM_WEBHOOKS": "webhooks.toml", "STREAM_PLUGINS": "clean,ner,dedup,stories,alerts,feeds",
           "STREAM_CONFIG": None, "STREAM_PROCESSING_GUARANTEE": None}
    result = CliRunner().invoke(main, ["topics", "plan"], env=env)
    assert result.exit_code == 0, result.output
    assert shown == "$ stream topics plan\n" + result.output
