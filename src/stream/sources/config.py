"""Reading the sources file of ``stream ingest`` (``FEEDS.toml``), with errors at their line.

::

    allow_loopback = true          # tests and local development only
    [[feeds]]                      # one table per entry; the table's name is a source's kind
    url = "https://example.org/rss.xml"
    source = "example.org"         # optional
    every = 300                    # seconds between polls

The top-level keys are the fetcher's (:data:`OPTIONS`); each array of tables names an
installed source (``[[feeds]]``: the feed source), whose :meth:`~stream.sources.Source.configure`
checks the entry's own keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import ConfigError
from ..toml import entry_key_line, key_line, read_toml
from ..webhooks.safety import Network, parse_networks
from .base import Source

__all__ = ["OPTIONS", "Entry", "SourcesFile", "load_sources"]

#: The top-level keys: name -> (type, default, what it is).
OPTIONS: dict[str, tuple[type, Any, str]] = {
    "allow_loopback": (bool, False, "allow loopback addresses (tests and local development only)"),
    "allow_networks": (list, [], "private networks (CIDR) feeds and pages may be in"),
    "timeout": (float, 20.0, "seconds per request"),
    "max_bytes": (int, 5_000_000, "largest feed or page read, in bytes"),
    "per_host": (int, 2, "requests in flight to one host"),
    "max_redirects": (int, 5, "redirect hops followed, each checked again"),
    "concurrency": (int, 16, "entries polled at the same time by one ingester"),
}

#: Keys every entry may have.
COMMON = {"every": "seconds between polls (default 300)", "source": "the `source` of its articles"}


@dataclass(frozen=True)
class Entry:
    """One entry of the file: its ``kind`` (table), its ``key`` (identity) and its ``config``
    (normalised by the source), and the ``line`` of its table header."""

    kind: str
    key: str
    config: dict[str, Any]
    line: int

    @property
    def id(self) -> str:
        """The entry's id across the ingesters: ``KIND:KEY``."""
        return f"{self.kind}:{self.key}"


@dataclass(frozen=True)
class SourcesFile:
    path: str
    entries: list[Entry]
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def allow_networks(self) -> tuple[Network, ...]:
        return parse_networks(self.options.get("allow_networks", []))


def _header_lines(text: str, kind: str) -> list[int]:
    pattern = re.compile(rf"^\s*\[\[\s*{re.escape(kind)}\s*\]\]\s*(#.*)?$")
    return [n for n, line in enumerate(text.splitlines(), start=1) if pattern.match(line)]


def load_sources(path: str, kinds: Mapping[str, type[Source]]) -> SourcesFile:
    """Read and check the sources file ``path``; ``kinds`` are the installed sources.

    :raises ConfigError: naming the file, the line and the fix.
    """
    data, text = read_toml(path, "sources file")
    options: dict[str, Any] = {name: default for name, (_kind, default, _doc) in OPTIONS.items()}
    entries: list[Entry] = []
    installed = ", ".join(sorted(kinds)) or "none"
    for name, value in data.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            if name not in kinds:
                lines = _header_lines(text, name)
                raise ConfigError(f"[[{name}]]: no installed source reads this table (installed: {installed}); "
                                  "install the source's plugin or fix the name", path=path,
                                  line=lines[0] if lines else None)
            entries += _entries(path, text, name, value, kinds[name])
            continue
        if name not in OPTIONS:
            known = ", ".join(sorted(OPTIONS))
            raise ConfigError(f"unknown setting {name!r}; the top-level settings are {known}, and each "
                              f"[[KIND]] table is a source (installed: {installed})", path=path,
                              line=key_line(text, name))
        kind, _default, _doc = OPTIONS[name]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok or (kind in (int, float) and value <= 0):
            raise ConfigError(f"{name} must be {'a positive number' if kind in (int, float) else kind.__name__}, "
                              f"not {value!r}", path=path, line=key_line(text, name))
        if name == "allow_networks":
            try:
                parse_networks([str(v) for v in value])
            except ValueError as exc:
                raise ConfigError(f"allow_networks: {exc}", path=path, line=key_line(text, name)) from None
        options[name] = value
    if not entries:
        raise ConfigError(f"no sources: add a [[feeds]] table with a url (installed sources: {installed})",
                          path=path)
    return SourcesFile(str(path), entries, options)


def _entries(path: str, text: str, kind: str, tables: list[dict[str, Any]], cls: type[Source]) -> list[Entry]:
    lines = _header_lines(text, kind)
    out: list[Entry] = []
    seen: dict[str, int] = {}
    for index, table in enumerate(tables):
        line = lines[index] if index < len(lines) else None

        def fail(key: str | None, message: str, line: int | None = line) -> ConfigError:
            where = entry_key_line(text, kind, line, key) if (key and line) else line
            return ConfigError(f"[[{kind}]] {message}", path=path, line=where)

        config = dict(table)
        every = config.get("every", 300)
        if isinstance(every, bool) or not isinstance(every, (int, float)) or every < 1:
            raise fail("every", f"every = {every!r}: give the seconds between polls, 1 or more")
        config["every"] = float(every)
        if "source" in config and not (isinstance(config["source"], str) and config["source"].strip()):
            raise fail("source", f"source = {config['source']!r}: give a non-empty name, or leave it out")
        try:
            config = cls.configure(config)
        except ValueError as exc:
            key, sep, message = str(exc).partition(": ")
            if not sep or key not in table:
                key, message = "", str(exc)
            raise fail(key or None, f"{key + ': ' if key else ''}{message}") from None
        key = cls.key_of(config)
        if key in seen:
            raise fail(None, f"{key!r} is listed twice (first at line {seen[key]}); keep one")
        seen[key] = line or 0
        out.append(Entry(kind, key, config, line or 0))
    return out
