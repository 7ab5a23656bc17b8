"""Reading TOML configuration files with errors that name the file and the line.

For stream's own files (settings, webhook subscriptions) and for plugins' (rules, aliases):
:func:`read_toml` and :func:`parse_toml` turn a syntax error into a
:class:`~stream.errors.ConfigError` at its line; :func:`key_line`, :func:`entry_key_line`
and :func:`line_containing` find the line a later validation error is about.  All are
exported by :mod:`stream`.
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["entry_key_line", "key_line", "line_containing", "parse_toml", "read_toml"]


def parse_toml(text: str, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse TOML ``text`` read from ``path``.

    :raises ConfigError: naming the file and the line of the syntax error.
    """
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise ConfigError(f"not valid TOML ({exc}); fix the syntax at that line", path=path,
                          line=int(match.group(1)) if match else None) from None


def read_toml(path: str | os.PathLike[str], what: str) -> tuple[dict[str, Any], str]:
    """Read and parse the TOML file ``path`` (``what`` it is, for the message).

    :return: the data and the text (to find the lines of later errors).
    :raises ConfigError: the file cannot be read, or is not valid TOML (file and line).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the {what}: {exc.strerror}", path=path) from None
    return parse_toml(text, path), text


def line_containing(text: str, needle: str) -> int | None:
    """The first line (1-based) that contains ``needle``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    return None


def _is_key(line: str, key: str) -> bool:
    return re.match(rf"^\s*{re.escape(key)}\s*=", line) is not None


def key_line(text: str, key: str, table: str | None = None) -> int | None:
    """The line of ``key = ...`` at the top level of the file, or inside ``[table]``."""
    current: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        header = re.match(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*$", line)
        if header:
            current = header.group(1)
            continue
        if current == table and _is_key(line, key):
            return number
    return None


@functools.lru_cache(maxsize=8)
def _lines(text: str) -> tuple[str, ...]:
    """``text``'s lines, split once per file: a loader asks for the line of every entry,
    and splitting the whole file each time made 10,000 rules take 15 s to load."""
    return tuple(text.splitlines())


def entry_key_line(text: str, header: str, start: int, key: str) -> int | None:
    """The line of ``key = ...`` inside the ``[[header]]`` entry that holds line ``start``
    (or that begins after it); ``start`` when that entry has no such key."""
    lines = _lines(text)
    begin = min(start, len(lines)) - 1
    marker = f"[[{header}]]"
    while begin > 0 and lines[begin].strip() != marker:
        begin -= 1
    for n in range(begin + 1, len(lines)):
        if lines[n].strip() == marker:
            break
        if _is_key(lines[n], key):
            return n + 1
    return start
