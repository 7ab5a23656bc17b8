"""The example third-party plugin (examples/stream-quotes), installed by `make install`,
is found and run like any installed plugin."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
from click.testing import CliRunner

from stream.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "articles"


def test_stream_plugins_lists_it_with_its_package_and_position() -> None:
    result = CliRunner().invoke(main, ["plugins"], env={"STREAM_PLUGINS": ""})
    assert result.exit_code == 0, result.output
    assert re.search(r"3\s+quotes\s+1\.0\.0\s+250\s+quotes \(stream-quotes 1\.0\.0\)", result.output), result.output


def test_stream_process_output_carries_its_enrichment() -> None:
    [path] = EXAMPLES.glob("001_*.txt")
    result = CliRunner().invoke(main, ["process", str(path)], env={"STREAM_PLUGINS": ""})
    assert result.exit_code == 0, result.output
    record = orjson.loads(result.output.splitlines()[0])
    speakers = {q["speaker"] for q in record["extra"]["quotes"]}
    assert "Sergei Lavrov" in speakers
    assert [p["name"] for p in record["processing"]["plugins"]] == ["clean", "ner", "quotes", "dedup", "stories",
                                                                    "alerts"]
    assert record["story"]["articles"] == 1
