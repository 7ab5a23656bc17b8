"""The built-in processors are found through the same entry points as third-party ones."""

from __future__ import annotations

import importlib.metadata
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from stream import Processor, hookimpl, hookspecs
from stream.cli import main
from stream.errors import PluginError
from stream.plugins import ENTRY_POINT_GROUP, get_plugin_manager, order_processors
from stream.processor import api_problem
from stream.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_builtin_plugins_are_registered_as_entry_points() -> None:
    names = {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert {"clean", "ner"} <= names


def test_the_order_is_clean_then_ner() -> None:
    host = get_plugin_manager(Settings())
    order = [p.name for p in host.processors()]
    assert order.index("clean") < order.index("ner")
    assert host.owner["clean"] == "clean"


def test_the_allowlist_loads_only_what_it_names() -> None:
    host = get_plugin_manager(Settings(plugins=("clean",)))
    assert [p.name for p in host.loaded] == ["clean"]


def test_a_blocked_plugin_is_not_imported() -> None:
    host = get_plugin_manager(Settings(plugins_block=("ner",)))
    assert "ner" not in [p.name for p in host.loaded]


def test_naming_a_plugin_that_is_not_installed_stops_with_its_name() -> None:
    with pytest.raises(PluginError, match=r"'nosuch'.*not installed"):
        get_plugin_manager(Settings(plugins=("clean", "nosuch")))


def test_stream_plugins_lists_position_version_and_package() -> None:
    result = CliRunner().invoke(main, ["plugins"], env={"STREAM_PLUGINS": "clean"})
    assert result.exit_code == 0, result.output
    assert re.search(r"1\s+clean\s+0\.1\.0\s+100\s+clean \(stream-clean 0\.1\.0\)", result.output)


def test_every_hook_is_documented_for_authors() -> None:
    docs = (ROOT / "docs" / "plugins.md").read_text()
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if not name.startswith("stream_"):
            continue
        params = ", ".join(inspect.signature(fn).parameters)
        assert f"{name}({params})" in docs, f"docs/plugins.md lacks a section for {name}({params})"
        assert fn.__doc__ and ":return:" in fn.__doc__ and "versionadded" in fn.__doc__


def _proc(name: str, order: int = 500, before: tuple[str, ...] = (), after: tuple[str, ...] = ()) -> Processor:
    cls = type(f"P_{name}", (Processor,), {"name": name, "order": order, "before": before, "after": after,
                                           "process": lambda self, a: None})
    return cls()  # type: ignore[no-any-return]


def test_before_and_after_override_the_order_numbers() -> None:
    procs = [_proc("a", 100), _proc("b", 200), _proc("c", 300, before=("a",)), _proc("d", 50, after=("b",))]
    # d (order 50) must follow b, so b comes first; c must precede a. Among the processors
    # whose predecessors have run, the lowest (order, name) goes next.
    assert [p.name for p in order_processors(procs)] == ["b", "d", "c", "a"]


def test_constraints_on_processors_that_are_not_loaded_are_ignored() -> None:
    procs = [_proc("a", 100, after=("missing",)), _proc("b", 200, before=("absent",))]
    assert [p.name for p in order_processors(procs)] == ["a", "b"]


def test_a_cycle_stops_with_the_processors_in_it() -> None:
    procs = [_proc("a", after=("b",)), _proc("b", after=("c",)), _proc("c", after=("a",)), _proc("free", 1)]
    with pytest.raises(PluginError, match=r"plugin 'a, b, c': the processors' before/after constraints form a cycle"):
        order_processors(procs)


@pytest.mark.parametrize(("declared", "problem"), [
    (1, None), ("1", None), ("1.0", None), ("1.2", None),  # the old number form, older and the same version
    ("2.0", "written for stream plugin API 2.0, and this stream implements API 1.2 (incompatible)"),
    ("0.9", "written for stream plugin API 0.9, and this stream implements API 1.2 (incompatible)"),
    ("1.3", "written for stream plugin API 1.3, newer than this stream's 1.2; upgrade stream"),
    ("one", "is not a version such as \"1.0\""),
])
def test_the_plugin_api_check_accepts_compatible_versions_only(declared: object, problem: str | None) -> None:
    found = api_problem(declared)
    assert (found is None) if problem is None else (found is not None and problem in found), found


def test_a_minor_bump_of_stream_accepts_plugins_written_for_an_older_minor(monkeypatch: pytest.MonkeyPatch) -> None:
    import stream.processor

    monkeypatch.setattr(stream.processor, "PLUGIN_API", "1.3")
    assert api_problem("1.0") is None and api_problem(1) is None and api_problem("1.3") is None
    assert api_problem("1.4") is not None and api_problem("2.0") is not None


class _Broken:
    @hookimpl
    def stream_register_topics(self) -> list[Any]:
        raise RuntimeError("no topics today")

    @hookimpl
    def stream_alert_raised(self, alert: dict[str, Any]) -> None:
        raise RuntimeError("cannot notify")


def test_every_hook_failure_names_its_plugin(caplog: pytest.LogCaptureFixture) -> None:
    host = get_plugin_manager(Settings(plugins=("clean",)))
    host.pm.register(_Broken(), name="broken")
    notified: list[dict[str, Any]] = []

    class Listener:
        @hookimpl
        def stream_alert_raised(self, alert: dict[str, Any]) -> None:
            notified.append(alert)

    host.pm.register(Listener(), name="listener")
    with pytest.raises(PluginError, match=r"plugin 'broken': stream_register_topics failed: RuntimeError"):
        host.topics()
    host.notify("stream_alert_raised", alert={"alert_id": "a1"})
    assert notified == [{"alert_id": "a1"}]  # the other plugin was still notified
    assert "plugin 'broken': its stream_alert_raised hook raised" in caplog.text


def test_a_plugin_whose_commands_fail_is_named_and_the_others_keep_theirs() -> None:
    import click

    host = get_plugin_manager(Settings(plugins=("alerts",)))

    class BadCommands:
        @hookimpl
        def stream_register_commands(self, cli: click.Group) -> None:
            raise RuntimeError("boom")

    host.pm.register(BadCommands(), name="badcmds")
    group = click.Group("stream")
    warnings = host.register_commands(group)
    assert warnings == ["plugin 'badcmds': stream_register_commands failed: RuntimeError('boom'); "
                        "its commands are unavailable"]
    assert "rules" in group.commands  # the alerts plugin's own commands are there




def test_a_plugin_that_declares_no_api_version_loads_with_a_warning(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import stream_clean

    monkeypatch.delattr(stream_clean, "STREAM_PLUGIN_API")
    host = get_plugin_manager(Settings(plugins=("clean",)))
    assert [p.name for p in host.loaded] == ["clean"]
    assert "plugin 'clean' (stream_clean) declares no STREAM_PLUGIN_API" in caplog.text
    assert 'STREAM_PLUGIN_API = "1.2"' in caplog.text  # the fix, with this stream's version
