"""Reading articles from files for ``stream produce`` and ``stream process``.

* ``.txt``: one article; the first non-empty line is the title when it reads like one
  (:func:`title_of`), the file name without its extension the id, and the whole file the
  text;
* ``.json``: one article object, or a list of them;
* ``.jsonl`` (and ``-``, standard input): one record per non-empty line, passed on as the
  exact bytes of the line, so that a malformed line still reaches the dead letters.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import orjson

from ..errors import ConfigError
from ..records import dumps

__all__ = ["InputRecord", "read_inputs", "title_of"]

SUPPORTED = (".txt", ".json", ".jsonl", ".ndjson")


@dataclass(frozen=True, slots=True)
class InputRecord:
    key: bytes | None
    value: bytes
    origin: str


def _key_of(value: bytes) -> bytes | None:
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    ident = data.get("id") if isinstance(data, dict) else None
    return ident.encode() if isinstance(ident, str) and ident else None


#: The longest first line that can be a title (characters, words).  News headlines run to
#: 60-110 characters and 8-18 words; a first line beyond this is the article's first
#: paragraph (feeds that drop the headline).
TITLE_MAX_CHARS, TITLE_MAX_WORDS = 160, 25
#: A sentence end inside a line (a word of two lowercase letters or more, a full stop, a
#: capital: not "U.S. Troops" or "Jan. 10"): a headline has at most one sentence.
_SENTENCE_END = re.compile(r"(?<=[a-z]{2})[.!?][\"'”’)]?\s+[\"'“‘(]?[A-Z]")


def title_of(text: str) -> str | None:
    """The title of a plain-text article: its first non-empty line, when that reads like a
    headline (at most ``TITLE_MAX_CHARS`` characters and ``TITLE_MAX_WORDS`` words, one
    sentence, and more text after it); else none, rather than a paragraph of body."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    first = lines[0]
    if len(first) > TITLE_MAX_CHARS or len(first.split()) > TITLE_MAX_WORDS or _SENTENCE_END.search(first):
        return None
    return first


def _txt(path: Path) -> InputRecord:
    text = path.read_bytes().decode("utf-8", errors="replace")
    title = title_of(text)
    record = {"id": path.stem, "title": title, "text": text, "source": path.name}
    return InputRecord(path.stem.encode(), dumps(record), str(path))


def _lines(data: bytes, origin: str) -> Iterator[InputRecord]:
    for number, line in enumerate(data.splitlines(), start=1):
        if line.strip():
            yield InputRecord(_key_of(line), line.strip(), f"{origin}:{number}")


def read_inputs(paths: Iterable[str]) -> Iterator[InputRecord]:
    """Yield the input records of ``paths`` in order (``-`` is standard input).

    :raises ConfigError: a path does not exist or has an unsupported extension.
    """
    for name in paths:
        if name == "-":
            yield from _lines(sys.stdin.buffer.read(), "<stdin>")
            continue
        path = Path(name)
        if not path.is_file():
            raise ConfigError("no such file; give .txt, .json or .jsonl files, or - for stdin", path=path)
        suffix = path.suffix.lower()
        if suffix == ".txt":
            yield _txt(path)
        elif suffix in (".jsonl", ".ndjson"):
            yield from _lines(path.read_bytes(), str(path))
        elif suffix == ".json":
            data = path.read_bytes()
            try:
                parsed = orjson.loads(data)
            except orjson.JSONDecodeError:
                yield InputRecord(None, data, str(path))
                continue
            items = parsed if isinstance(parsed, list) else [parsed]
            for index, item in enumerate(items):
                value = dumps(item)
                yield InputRecord(_key_of(value), value, f"{path}[{index}]")
        else:
            raise ConfigError(
                f"unsupported file type {suffix or '(none)'}; use one of {', '.join(SUPPORTED)}",
                path=path,
            )
