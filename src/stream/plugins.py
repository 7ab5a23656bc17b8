"""Finding, loading and ordering plugins.

Plugins are loaded only from installed distributions' ``stream.plugins`` entry points (the
built-in processors too), never from a path named in configuration.  The ``plugins``
setting limits loading to the names it lists; ``plugins_block`` refuses names.
"""

from __future__ import annotations

import importlib.metadata
import logging
from dataclasses import dataclass
from typing import Any, cast

import pluggy

from . import hookspecs
from .errors import PluginError
from .processor import PLUGIN_API, Processor, TopicSpec
from .settings import Settings

__all__ = ["ENTRY_POINT_GROUP", "LoadedPlugin", "PluginHost", "get_plugin_manager", "order_processors"]

ENTRY_POINT_GROUP = "stream.plugins"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedPlugin:
    """A plugin as ``stream plugins`` shows it."""

    name: str
    package: str
    version: str
    module: str


class PluginHost:
    """The plugin manager plus what was loaded, and the processors in their order."""

    def __init__(self, pm: pluggy.PluginManager, loaded: list[LoadedPlugin], settings: Settings):
        self.pm = pm
        self.loaded = loaded
        self.settings = settings
        #: processor name -> the plugin (entry-point name) that registered it.
        self.owner: dict[str, str] = {}

    def processors(self) -> list[Processor]:
        """Every registered processor, sorted by ``(order, name)``.

        :raises PluginError: a hook raised, returned something that is not a
            :class:`Processor`, or two processors share a name.
        """
        found: list[Processor] = []
        for impl in self.pm.hook.stream_register_processors.get_hookimpls():
            plugin_name = self.pm.get_name(impl.plugin) or "?"
            try:
                result = cast(list[Any], impl.function(
                    **{k: self.settings for k in impl.argnames if k == "settings"}
                ))
            except Exception as exc:
                raise PluginError(plugin_name, f"stream_register_processors failed: {exc!r}") from exc
            for proc in result or []:
                if not isinstance(proc, Processor):
                    raise PluginError(
                        plugin_name,
                        f"stream_register_processors returned {proc!r}, not a stream.Processor",
                    )
                if not proc.name:
                    raise PluginError(plugin_name, f"{type(proc).__name__} has no 'name'")
                found.append(proc)
                self.owner[proc.name] = plugin_name
        seen: dict[str, Processor] = {}
        for proc in found:
            if proc.name in seen:
                raise PluginError(proc.name, "two processors are registered under this name")
            if proc.api_version != PLUGIN_API:
                raise PluginError(
                    self.owner.get(proc.name, proc.name),
                    f"processor {proc.name!r} was built for stream plugin API {proc.api_version}, and this "
                    f"stream implements API {PLUGIN_API}; install a version of the plugin made for API "
                    f"{PLUGIN_API}, or a stream that implements API {proc.api_version}",
                )
            seen[proc.name] = proc
        return order_processors(found)

    def topics(self) -> list[TopicSpec]:
        """Every topic the plugins declare."""
        specs: list[TopicSpec] = []
        for result in self.pm.hook.stream_register_topics(settings=self.settings):
            specs.extend(result or [])
        return specs

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Call a notification hook; an exception is logged, never raised."""
        try:
            getattr(self.pm.hook, hook)(**kwargs)
        except Exception:
            log.exception("a %s hook raised; ignored", hook)


def order_processors(processors: list[Processor]) -> list[Processor]:
    """Sort by ``(order, name)``, then honour ``before``/``after`` constraints: a stable
    topological sort that takes, at each step, the lowest ``(order, name)`` whose
    predecessors have all been placed.

    :raises PluginError: the constraints form a cycle (its processors are named).
    """
    by_name = {p.name: p for p in processors}
    preds: dict[str, set[str]] = {p.name: set() for p in processors}
    for p in processors:
        for other in p.after:
            if other in by_name:
                preds[p.name].add(other)
        for other in p.before:
            if other in by_name:
                preds[other].add(p.name)
    placed: list[Processor] = []
    done: set[str] = set()
    pending = sorted(processors, key=lambda p: (p.order, p.name))
    while pending:
        ready = next((p for p in pending if preds[p.name] <= done), None)
        if ready is None:
            cycle = ", ".join(sorted(p.name for p in pending))
            raise PluginError(cycle, "the processors' before/after constraints form a cycle; remove one of them")
        placed.append(ready)
        done.add(ready.name)
        pending.remove(ready)
    return placed


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)


def get_plugin_manager(settings: Settings) -> PluginHost:
    """Build the plugin manager: add the hook specs, load the entry points, validate.

    :raises PluginError: a plugin failed to import or does not match the hook specs, or a
        plugin named in the ``plugins`` setting is not installed.
    """
    pm = pluggy.PluginManager("stream")
    pm.add_hookspecs(hookspecs)
    wanted = set(settings.plugins)
    blocked = set(settings.plugins_block)
    loaded: list[LoadedPlugin] = []
    seen: set[str] = set()
    for ep in _entry_points():
        if ep.name in seen:
            continue
        seen.add(ep.name)
        if ep.name in blocked or (wanted and ep.name not in wanted):
            continue
        try:
            module = ep.load()
        except Exception as exc:
            raise PluginError(ep.name, f"failed to import {ep.value!r}: {exc!r}") from exc
        api = getattr(module, "STREAM_PLUGIN_API", PLUGIN_API)
        if api != PLUGIN_API:
            raise PluginError(
                ep.name,
                f"built for stream plugin API {api}, and this stream implements API {PLUGIN_API}; "
                f"install a version of the plugin made for API {PLUGIN_API}",
            )
        try:
            pm.register(module, name=ep.name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(ep.name, str(exc)) from exc
        dist = ep.dist
        loaded.append(
            LoadedPlugin(
                name=ep.name,
                package=dist.name if dist else "?",
                version=dist.version if dist else "?",
                module=ep.value,
            )
        )
    missing = wanted - seen
    if missing:
        raise PluginError(
            ", ".join(sorted(missing)),
            "named in the 'plugins' setting but not installed; install its package or remove "
            "the name (installed: " + (", ".join(sorted(seen)) or "none") + ")",
        )
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(pm.get_name(exc.plugin) or "?", str(exc)) from exc
    return PluginHost(pm, loaded, settings)
