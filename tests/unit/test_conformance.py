"""The built-in processors pass the conformance suite that plugin authors run."""

from __future__ import annotations

from typing import Any, ClassVar

from stream import Processor
from stream.testing import ProcessorConformance
from stream_alerts import AlertsProcessor
from stream_clean import CleanProcessor
from stream_dedup import DedupProcessor
from stream_ner import NerProcessor


class TestClean(ProcessorConformance):
    bad_config: ClassVar[dict[str, Any] | None] = {"rules_file": "/nonexistent/rules.toml"}

    def make_processor(self) -> Processor:
        return CleanProcessor()


class TestNer(ProcessorConformance):
    bad_config: ClassVar[dict[str, Any] | None] = {"model": "en_core_web_xx"}

    def make_processor(self) -> Processor:
        return NerProcessor()


class TestDedup(ProcessorConformance):
    bad_config: ClassVar[dict[str, Any] | None] = {"jaccard": "high"}

    def make_processor(self) -> Processor:
        return DedupProcessor()


class TestAlerts(ProcessorConformance):
    bad_config: ClassVar[dict[str, Any] | None] = {"rules": "/nonexistent/rules.toml"}

    def make_processor(self) -> Processor:
        return AlertsProcessor()
