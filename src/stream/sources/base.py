"""The source contract: what a source plugin implements, and what the ingester gives it.

A plugin returns :class:`Source` subclasses from its ``stream_register_sources`` hook.  Each
subclass reads one kind of table of the sources file (``[[feeds]]`` for the feed source,
:attr:`Source.kind`); ``stream ingest`` makes one instance per entry of that table and calls,
on that instance and in this order:

* :meth:`Source.configure` (a class method) once per entry when the file is read, to check
  and normalise the entry: a ``ValueError("KEY: message")`` stops the program at that key's
  line;
* :meth:`Source.poll` every :attr:`Source.every` seconds (with jitter, and with exponential
  backoff after a failed poll): it yields :class:`Found` items, the articles that are new;
* :meth:`Source.close` once, when the entry moves to another ingester or the ingester stops.

The ingester remembers for the source what it sent (:class:`Memory`, kept in a compacted
topic): an item's :attr:`Found.key` is added to the memory only after the broker
acknowledged its article, and the memory is written after every poll.  A restarted ingester
(or the one that takes the entry over) sends nothing that was remembered.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, ClassVar, Iterable, Mapping

from ..errors import StreamError

if TYPE_CHECKING:
    from ..settings import Settings
    from .fetch import Fetcher

__all__ = ["Found", "Memory", "Source", "SourceContext", "SourceError"]


class SourceError(StreamError):
    """A poll failed (the feed answered 500, is not a feed, cannot be reached).

    :param reason: a short label for metrics (``http_500``, ``not_a_feed``, ``refused``, ...).
    :param message: what happened, for the log line.
    """

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Found:
    """One new item of a poll.

    :ivar key: what the source remembers once the article is acknowledged (an entry's id);
        a poll skips items whose key :class:`Memory` holds.
    :ivar article: the input article (``docs/records.md``: ``text`` or ``html`` and the
        optional fields); its ``id`` should be stable (the same entry gives the same id),
        so that a repeat after a crash is a replay to the workers, not a new article.
    """

    key: str
    article: dict[str, Any]


def _digest(key: str) -> str:
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


class Memory:
    """What the ingester remembers for one entry of the sources file: the keys of the items
    it sent (the newest :attr:`limit`, stored as 64-bit hashes) and :attr:`state`, a small
    JSON-able dict of the source's own (a feed keeps its ETag and Last-Modified there)."""

    #: Keys remembered per entry: a feed shows its last 10 to 100 entries.
    limit: ClassVar[int] = 5000

    def __init__(self, seen: Iterable[str] = (), state: Mapping[str, Any] | None = None):
        self._seen: OrderedDict[str, None] = OrderedDict((h, None) for h in seen)
        #: The source's own state, kept with the keys; change it during :meth:`Source.poll`.
        self.state: dict[str, Any] = dict(state or {})
        #: Set by a source during a poll when the origin said nothing changed (HTTP 304):
        #: the poll counts as ``not_modified``.  Not kept.
        self.not_modified = False

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and _digest(key) in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, keys: Iterable[str]) -> None:
        """Remember ``keys`` (the ingester calls it once their articles were acknowledged)."""
        for key in keys:
            digest = _digest(key)
            self._seen.pop(digest, None)
            self._seen[digest] = None
        while len(self._seen) > self.limit:
            self._seen.popitem(last=False)

    def to_record(self) -> dict[str, Any]:
        return {"seen": list(self._seen), "state": self.state}

    @classmethod
    def from_record(cls, data: Any) -> Memory:
        if not isinstance(data, dict):
            return cls()
        seen = [h for h in data.get("seen", []) if isinstance(h, str)]
        state = data.get("state")
        return cls(seen, state if isinstance(state, dict) else None)


@dataclass(frozen=True)
class SourceContext:
    """What a source gets when it is made.

    :ivar settings: the validated :class:`~stream.settings.Settings`.
    :ivar fetch: the checked HTTP client (:class:`~stream.sources.fetch.Fetcher`): every
        request and every redirect hop goes to an address checked like a webhook target's,
        with a timeout, a size cap and a per-host concurrency limit.  Fetch with it, never
        with a library's own fetcher, which would skip the checks.
    :ivar log: a logger named ``stream.sources.KIND``.
    :ivar options: the sources file's top-level settings (``allow_loopback``, ...).
    """

    settings: Settings
    fetch: Fetcher
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("stream.sources"))
    options: Mapping[str, Any] = field(default_factory=dict)


class Source:
    """One entry of the sources file, polled by the ingester.  Subclass it.

    Class attributes a subclass sets:

    * :attr:`kind` - the sources file's table this class reads (``"feeds"``: ``[[feeds]]``);
      unique among the installed sources;
    * :attr:`version` - shown by ``stream plugins``.

    Every entry has ``every`` (seconds between polls, default 300) and may have ``source``
    (the ``source`` of its articles); the rest is the subclass's, checked by
    :meth:`configure`.
    """

    kind: ClassVar[str] = ""
    version: ClassVar[str] = "0"

    def __init__(self, entry: Mapping[str, Any], context: SourceContext):
        self.entry = dict(entry)
        self.context = context
        self.every: float = float(entry.get("every", 300))

    @classmethod
    def configure(cls, entry: dict[str, Any]) -> dict[str, Any]:
        """Check one entry of the file and return it normalised (defaults filled in).

        :raises ValueError: ``"KEY: what is wrong and the fix"``; the program stops at that
            key's line (at the entry's line for an unknown key).
        """
        return entry

    @classmethod
    def key_of(cls, entry: Mapping[str, Any]) -> str:
        """The entry's identity, stable across edits of its other keys (default: its
        ``url``): its memory and its place among the ingesters follow it."""
        return str(entry["url"])

    @property
    def key(self) -> str:
        return self.key_of(self.entry)

    def poll(self, memory: Memory) -> AsyncIterator[Found]:
        """Yield what is new since ``memory``: skip items whose :attr:`Found.key` it holds.

        Runs on the ingester's event loop: await the network, and hand CPU work (parsing,
        extraction) to a thread (``asyncio.to_thread``).  Raise :class:`SourceError` when
        the poll fails; what was yielded before is still sent and remembered.
        """
        raise NotImplementedError

    async def close(self) -> None:
        """Release what the source holds (called once)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind} {self.key}>"
