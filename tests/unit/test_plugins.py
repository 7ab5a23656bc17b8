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


def _proc(name: str, order: int = 500, before: tuple[str, ...] = (), after: tuple[str, ...] = (),
          api: int = 1) -> Processor:
    cls = type(f"P_{name}", (Processor,), {"name": name, "order": order, "before": before, "after": after,
                                           "api_version": api, "process": lambda self, a: None})
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


def test_a_processor_built_for_another_plugin_api_is_refused() -> None:
    class Future(Processor):
        name = "future"
        api_version = 2

        def process(self, articles: list[Any]) -> None:
            pass

    host = get_plugin_manager(Settings(plugins=("clean",)))

    class FuturePlugin:
        @hookimpl
        def stream_register_processors(self) -> list[Processor]:
            return [Future()]

    host.pm.register(FuturePlugin(), name="futureplugin")
    with pytest.raises(PluginError, match=r"built for stream plugin API 2, and this stream implements API 1"):
        host.processors()
