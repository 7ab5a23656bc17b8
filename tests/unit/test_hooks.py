"""Every hook has a test: each one is called as its spec says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stream import DeadLetter, Processor, TopicSpec, hookimpl
from stream.plugins import get_plugin_manager
from stream.runtime.embedded import run_embedded
from stream.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class Recorder:
    """A plugin that implements every hook and records the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def stream_register_processors(self, settings: Settings) -> list[Processor]:
        self.calls.append(("processors", settings.app_id))
        return []

    @hookimpl
    def stream_register_topics(self, settings: Settings) -> list[TopicSpec]:
        return [TopicSpec("recorder.events", partitions=2, compacted=True)]

    @hookimpl
    def stream_register_commands(self, cli: Any) -> None:
        self.calls.append(("commands", cli.name))

    @hookimpl
    def stream_article_failed(self, dead_letter: DeadLetter) -> None:
        self.calls.append(("failed", dead_letter.stage))

    @hookimpl
    def stream_alert_raised(self, alert: dict[str, Any]) -> None:
        self.calls.append(("alert", alert["rule_id"]))


def test_register_processors_and_topics() -> None:
    host = get_plugin_manager(Settings(plugins=("clean",)))
    recorder = Recorder()
    host.pm.register(recorder, name="recorder")
    assert [p.name for p in host.processors()] == ["clean"]
    assert ("processors", "stream") in recorder.calls
    assert host.topics() == [TopicSpec("recorder.events", partitions=2, compacted=True)]


def test_register_commands_is_given_the_cli_group() -> None:
    from stream.cli import main

    host = get_plugin_manager(Settings(plugins=("clean",)))
    recorder = Recorder()
    host.pm.register(recorder, name="recorder")
    host.pm.hook.stream_register_commands(cli=main)
    assert ("commands", "main") in recorder.calls


def test_article_failed_and_alert_raised_are_notified(monkeypatch: Any, tmp_path: Path) -> None:
    import io

    import stream.runtime.chain as chain

    recorder = Recorder()
    real = chain.get_plugin_manager

    def with_recorder(settings: Settings) -> Any:
        host = real(settings)
        host.pm.register(recorder, name="recorder")
        return host

    monkeypatch.setattr(chain, "get_plugin_manager", with_recorder)
    feed = tmp_path / "feed.jsonl"
    feed.write_text('{"id": "a", "text": "Russian troops massed at the border."}\n{"broken\n')
    out, err = io.BytesIO(), io.BytesIO()
    dead = run_embedded(Settings(plugins=("clean", "alerts")), [str(feed)], out, err)
    assert dead == 1
    assert ("failed", "decode") in recorder.calls
    assert ("alert", "military-escalation") in recorder.calls
