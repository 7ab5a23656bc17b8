"""Finding, loading and ordering plugins.

Plugins are loaded only from installed distributions' ``stream.plugins`` entry points (the
built-in processors too), never from a path named in configuration.  The ``plugins``
setting limits loading to the names it lists; ``plugins_block`` refuses names.
"""

from __future__ import annotations

import importlib.metadata
import logging
from dataclasses import dataclass
from typing import Any, Iterator

import pluggy

from . import hookspecs
from .errors import PluginError
from .processor import PLUGIN_API, Processor, TopicSpec, api_problem
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
        #: topic name -> the plugin that declared it (filled by :meth:`topics`).
        self.topic_owner: dict[str, str] = {}

    def _each(self, hook: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        """Call every implementation of ``hook`` (in pluggy's order), each with the arguments
        it asks for; yield ``(plugin name, result)``.

        :raises PluginError: an implementation raised; names its plugin and the hook.
        """
        caller = getattr(self.pm.hook, hook)
        for impl in reversed(caller.get_hookimpls()):
            name = impl.plugin_name
            try:
                result = self._call(impl, **kwargs)
            except Exception as exc:
                raise PluginError(name, f"{hook} failed: {exc!r}") from exc
            yield name, result

    def processors(self) -> list[Processor]:
        """Every registered processor, sorted by ``(order, name)``.

        :raises PluginError: a hook raised, returned something that is not a
            :class:`Processor`, or two processors share a name.
        """
        found: list[Processor] = []
        for plugin_name, result in self._each("stream_register_processors", settings=self.settings):
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
            seen[proc.name] = proc
        return order_processors(found)

    def topics(self) -> list[TopicSpec]:
        """Every topic the plugins declare.

        :raises PluginError: a hook raised, or returned something that is not a TopicSpec.
        """
        specs: list[TopicSpec] = []
        for plugin_name, result in self._each("stream_register_topics", settings=self.settings):
            for spec in result or []:
                if not isinstance(spec, TopicSpec):
                    raise PluginError(plugin_name, f"stream_register_topics returned {spec!r}, not a stream.TopicSpec")
                specs.append(spec)
                self.topic_owner[spec.name] = plugin_name
        return specs

    def sources(self) -> dict[str, type[Any]]:
        """Every registered source class, by kind.

        :raises PluginError: a hook raised, returned something that is not a Source
            subclass, or two plugins register the same kind.
        """
        from .sources import Source

        found: dict[str, type[Source]] = {}
        for plugin_name, result in self._each("stream_register_sources", settings=self.settings):
            for cls in result or []:
                if not (isinstance(cls, type) and issubclass(cls, Source)):
                    raise PluginError(plugin_name, f"stream_register_sources returned {cls!r}, not a stream.sources."
                                                   "Source subclass")
                if not cls.kind:
                    raise PluginError(plugin_name, f"{cls.__name__} has no 'kind'")
                if cls.kind in found:
                    raise PluginError(plugin_name, f"source kind {cls.kind!r} is already registered by plugin "
                                                   f"{self.owner.get('source:' + cls.kind, '?')!r}")
                found[cls.kind] = cls
                self.owner["source:" + cls.kind] = plugin_name
        return found

    def register_commands(self, cli: Any) -> list[str]:
        """Let every plugin add its commands to ``cli``; a plugin that fails is skipped.

        :return: a warning per plugin that failed, naming it.
        """
        warnings = []
        caller = self.pm.hook.stream_register_commands
        for impl in reversed(caller.get_hookimpls()):
            try:
                self._call(impl, cli=cli)
            except Exception as exc:
                warnings.append(f"plugin {impl.plugin_name!r}: stream_register_commands failed: {exc!r}; "
                                "its commands are unavailable")
        return warnings

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Call a notification hook's implementations; one that raises is logged with its
        plugin's name and ignored, and the others are still called."""
        for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
            try:
                self._call(impl, **kwargs)
            except Exception:
                log.exception("plugin %r: its %s hook raised; ignored", impl.plugin_name, hook)

    @staticmethod
    def _call(impl: Any, **kwargs: Any) -> Any:
        return impl.function(**{arg: kwargs[arg] for arg in impl.argnames if arg in kwargs})


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
        declared = getattr(module, "STREAM_PLUGIN_API", None)
        if declared is None:
            log.warning("plugin %r (%s) declares no STREAM_PLUGIN_API: loaded as written for this stream's API "
                        "%s; declare the version it was written for (STREAM_PLUGIN_API = \"%s\" in its module)",
                        ep.name, ep.value, PLUGIN_API, PLUGIN_API)
        problem = api_problem(PLUGIN_API if declared is None else declared)
        if problem:
            raise PluginError(ep.name, problem)
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
