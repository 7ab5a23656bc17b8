"""stream-quotes' own tests: a few lines each, with stream.testing."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from stream import Processor
from stream.testing import ProcessorConformance
from stream_quotes import QuotesProcessor

TEXT = ("“We will rigorously ensure our security by whatever means we deem appropriate,” Lavrov told "
        "reporters. Russian Foreign Minister Sergei Lavrov spoke in Moscow. The so-called “red lines” "
        "were not discussed.")


def test_quotes_and_their_speakers(stream_process: Any) -> None:
    [article] = stream_process([TEXT], plugins=["clean", "ner", "quotes"])
    [quote] = article.extra["quotes"]
    assert quote["text"] == ("We will rigorously ensure our security by whatever means we deem "
                             "appropriate,")
    assert article.clean_text[quote["start"]:quote["end"]] == quote["text"]
    assert quote["speaker"] == "Sergei Lavrov"  # canonical, from the NER entities


def test_without_ner_the_name_as_written(stream_process: Any) -> None:
    [article] = stream_process(['"The talks were useful and frank," said Wendy Sherman.'], plugins=["quotes"])
    assert article.extra["quotes"][0]["speaker"] == "Wendy Sherman"


def test_it_runs_after_ner_whatever_the_order_numbers_say() -> None:
    from stream.plugins import get_plugin_manager
    from stream.settings import Settings

    names = [p.name for p in get_plugin_manager(Settings(plugins=("quotes", "ner", "clean"))).processors()]
    assert names.index("quotes") > names.index("ner")


@pytest.mark.integration
def test_in_a_real_worker(stream_kafka_process: Any) -> None:
    [record] = stream_kafka_process([{"id": "q1", "text": TEXT}], plugins=["clean", "ner", "quotes"])
    assert record["extra"]["quotes"][0]["speaker"] == "Sergei Lavrov"
    assert [p["name"] for p in record["processing"]["plugins"]] == ["clean", "ner", "quotes"]


class TestQuotesConformance(ProcessorConformance):
    bad_config: ClassVar[dict[str, Any] | None] = {"min_words": "many"}

    def make_processor(self) -> Processor:
        return QuotesProcessor()
