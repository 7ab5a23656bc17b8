"""The base class of every processor, and the context it is set up with.

A plugin returns :class:`Processor` instances from its ``stream_register_processors`` hook.
The pipeline calls, in this order and on this object:

* :meth:`Processor.setup` once, before the first batch (load models, compile rules);
* :meth:`Processor.process` for every batch, in the order given by :attr:`Processor.order`;
* :meth:`Processor.close` once, when the worker or ``stream process`` stops.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, ClassVar, Literal, Mapping, MutableMapping

if TYPE_CHECKING:
    from .records import Article
    from .settings import Settings

__all__ = ["PLUGIN_API", "Context", "Processor", "TopicSpec", "api_problem"]

#: The version of the plugin contract (hook specs, Processor, Context, records) that this
#: stream implements, ``"MAJOR.MINOR"``: the major changes on an incompatible change, the
#: minor when something is added.  A plugin declares the version it was written for as
#: ``STREAM_PLUGIN_API`` in its module (``"1.0"``; the number ``1`` means ``"1.0"``); it
#: loads when the major is the same and its minor is not newer than this one.
#: 1.1 added the ``stream_register_sources`` hook and :mod:`stream.sources`; 1.2 added
#: :meth:`Article.emit <stream.records.Article.emit>` and the ``story`` field.
PLUGIN_API = "1.2"


def _parse_api(value: object) -> tuple[int, int]:
    text = str(value).strip()
    major, _, minor = text.partition(".")
    if isinstance(value, bool) or not major.isdigit() or (minor and not minor.isdigit()):
        raise ValueError(f"STREAM_PLUGIN_API = {value!r} is not a version such as \"1.0\"")
    return int(major), int(minor or 0)


def api_problem(declared: object) -> str | None:
    """Why a plugin written for plugin API ``declared`` cannot load here, or ``None`` when it
    can (same major version, a minor version not newer than :data:`PLUGIN_API`'s)."""
    ours = _parse_api(PLUGIN_API)
    try:
        theirs = _parse_api(declared)
    except ValueError as exc:
        return f"{exc}; declare the version of stream's plugin API it was written for"
    if theirs[0] != ours[0]:
        return (f"written for stream plugin API {theirs[0]}.{theirs[1]}, and this stream implements API "
                f"{PLUGIN_API} (incompatible); install a version of the plugin made for API {ours[0]}.x")
    if theirs[1] > ours[1]:
        return (f"written for stream plugin API {theirs[0]}.{theirs[1]}, newer than this stream's {PLUGIN_API}; "
                "upgrade stream, or install an older version of the plugin")
    return None


@dataclass(frozen=True)
class Context:
    """What a processor gets at setup.

    :ivar settings: the whole, validated :class:`~stream.settings.Settings`.
    :ivar config: this plugin's own settings (``[plugins.NAME]`` in the settings file and
        ``STREAM_PLUGIN_NAME_KEY`` variables), as strings or TOML values.
    :ivar log: a logger named ``stream.plugins.NAME``.
    :ivar mode: ``"worker"`` inside ``stream worker``, ``"embedded"`` in ``stream process``.
    :ivar tables: the state tables the processor declared in :attr:`Processor.tables`, by
        name: mappings of str keys to JSON-able values (``get``, ``put``, ``delete``,
        iteration).  In the worker each is a :class:`~stream.runtime.state.StateTable`
        whose changes are written to a compacted Kafka changelog with each batch (it
        survives restarts and moves with the work to another worker); in ``stream
        process`` a dict.
    """

    settings: Settings
    config: Mapping[str, Any] = field(default_factory=dict)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("stream.plugins"))
    mode: Literal["worker", "embedded"] = "embedded"
    tables: Mapping[str, MutableMapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicSpec:
    """A Kafka topic a plugin needs; the worker creates it at start when it is missing.

    :ivar name: the topic name.
    :ivar partitions: ``None`` uses the ``partitions`` setting.
    :ivar compacted: ``True`` for a log-compacted topic (state changelogs).
    """

    name: str
    partitions: int | None = None
    compacted: bool = False


class Processor:
    """One step of the chain.  Subclass it and override :meth:`process`.

    Class attributes a subclass sets:

    * :attr:`name` - unique, short, lowercase (the plugin's entry-point name is a good one);
    * :attr:`version` - shown in ``stream plugins`` and in every record's ``processing``;
    * :attr:`order` - position in the chain, lowest first.  Built-ins: clean 100, ner 200,
      dedup 300, stories 350, alerts 400.  Ties are broken by name, so the order is always stable;
    * :attr:`before` / :attr:`after` - names of processors this one must run before / after,
      whatever their ``order`` (names that are not loaded are ignored).  A cycle stops the
      program at start, naming the processors in it;
    * :attr:`cpu_bound` - kept for plugins written for earlier versions: every synchronous
      :meth:`process` now runs in the pipeline's worker thread, so the event loop (Kafka
      heartbeats, health checks) stays responsive;
    * :attr:`timeout` - seconds a call of :meth:`process` may take per article of the batch
      (``None``: no limit).  Past it, the call counts as failed (``TimeoutError``) and its
      articles are handled by :attr:`on_error`; the worker goes on.  A hung synchronous
      call cannot be stopped in Python: its thread is abandoned and a new one takes over;
    * :attr:`tables` - names of the state tables this processor keeps (see
      :class:`Context`).  A processor with tables is *stateful*: in the worker it and every
      processor after it run in the stateful stage, which sees every article in one place
      (one partition), so its state is complete.  Like every synchronous processor it runs
      in the pipeline's thread, the only one that touches its tables;
    * :attr:`on_error` - ``"dlq"`` sends articles this processor fails on to the dead-letter
      topic; ``"skip"`` passes them on without this processor's enrichment, and records
      ``"skipped": true`` in their ``processing`` entry.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    order: ClassVar[int] = 500
    cpu_bound: ClassVar[bool] = False
    on_error: ClassVar[Literal["dlq", "skip"]] = "dlq"
    tables: ClassVar[tuple[str, ...]] = ()
    timeout: ClassVar[float | None] = None
    before: ClassVar[tuple[str, ...]] = ()
    after: ClassVar[tuple[str, ...]] = ()

    def setup(self, context: Context) -> None:
        """Called once before the first batch.  Raise to refuse to start (bad config,
        model not installed): the worker stops with the plugin's name and your message."""

    def process(self, articles: list[Article]) -> Awaitable[None] | None:
        """Enrich ``articles`` in place.  May be ``async def``.

        The list is a batch in arrival order; do not add, remove or reorder articles.
        When it raises, the pipeline calls it again with each article alone to find the
        ones that fail, so process each article idempotently.
        """
        raise NotImplementedError

    def on_assigned(self) -> None:
        """Stateful processors: called before the first batch after the stateful stage's
        partition was assigned to this worker (at start, and every time it comes back after a
        rebalance), when the tables hold the state restored from their changelogs.  While the
        partition was away, another worker may have changed the tables: drop whatever you
        keep in memory that is derived from them (an index, a cache) and rebuild it from the
        tables.  Not called in the embedded mode (``stream process``).  An exception stops
        the worker without committing (its batch runs again after a restart).

        .. versionadded:: 0.2
        """

    def close(self) -> None:
        """Called once at shutdown; release what :meth:`setup` acquired."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.version} order={self.order}>"
