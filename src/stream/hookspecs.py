"""The plugin contract: the hooks a stream plugin may implement.

A plugin is a module (or object) registered under the ``stream.plugins`` entry-point group
whose functions are marked with :data:`stream.hookimpl`.  Hooks are called with keyword
arguments only, and an implementation may accept fewer arguments than its spec (pluggy's
"opt-in arguments"), so new arguments can be added here without breaking plugins.

Per-batch work is not a hook: a plugin returns :class:`~stream.processor.Processor` objects
from :func:`stream_register_processors`, and the pipeline runs them in their declared order.
This keeps the order explicit and testable and lets each processor take a whole batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from .processor import Processor, TopicSpec
    from .records import DeadLetter
    from .settings import Settings
    from .sources import Source

hookspec = pluggy.HookspecMarker("stream")


@hookspec
def stream_register_processors(settings: Settings) -> list[Processor]:  # type: ignore[empty-body]
    """Return the processors this plugin adds to the chain.

    Called once, when ``stream worker``, ``stream process`` or ``stream plugins`` builds the
    chain, before any article is read.

    :param settings: the validated settings; a plugin's own settings are
        ``settings.plugin_config("NAME")``.
    :return: a list of :class:`~stream.processor.Processor` instances (possibly empty).
        Results of all plugins are merged and sorted by ``(order, name)``.
    :raises: anything, to refuse to start: the program stops, naming the plugin.

    .. versionadded:: 0.1
    """


@hookspec
def stream_register_topics(settings: Settings) -> list[TopicSpec]:  # type: ignore[empty-body]
    """Return the Kafka topics this plugin needs besides stream's own.

    Called once by ``stream worker`` at start, before it consumes; missing topics are
    created with the given partitions (default: the ``partitions`` setting).

    :param settings: the validated settings.
    :return: a list of :class:`~stream.processor.TopicSpec`.
    :raises: anything, to refuse to start: the worker stops, naming the plugin.

    .. versionadded:: 0.1
    """


@hookspec
def stream_register_sources(settings: Settings) -> list[type[Source]]:  # type: ignore[empty-body]
    """Return the sources this plugin adds to ``stream ingest``.

    Called once when ``stream ingest`` (or ``stream sources``) starts, before the sources file
    is read: each class reads the file's ``[[KIND]]`` tables of its
    :attr:`~stream.sources.Source.kind`.

    :param settings: the validated settings.
    :return: a list of :class:`~stream.sources.Source` subclasses (possibly empty).  Two
        sources of one kind stop the program, naming both plugins.
    :raises: anything, to refuse to start: the ingester stops, naming the plugin.

    .. versionadded:: 0.2 (plugin API 1.1)
    """


@hookspec
def stream_register_commands(cli: click.Group) -> None:
    """Add commands to the ``stream`` command line.

    Called once when the command line starts, with the top-level ``click`` group; add
    your commands with ``cli.add_command(...)``.  The alerts plugin adds ``stream rules``.

    :param cli: the ``stream`` command group.
    :return: ignored.
    :raises: an exception is reported as a warning naming the plugin, and the command line
        goes on without this plugin's commands.

    .. versionadded:: 0.1
    """


@hookspec
def stream_article_failed(dead_letter: DeadLetter) -> None:
    """Notification: an article was sent to the dead-letter topic.

    Called in the worker after the broker acknowledged the dead letter (in ``stream
    process``: after it was printed), once per failed article.  Keep it fast: it runs on the
    event loop.

    :param dead_letter: the :class:`~stream.records.DeadLetter`, with the reason.
    :return: ignored.
    :raises: an exception is logged with the plugin's name and otherwise ignored; the other
        plugins are still notified, and the worker goes on.

    .. versionadded:: 0.1
    """


@hookspec
def stream_alert_raised(alert: dict[str, Any]) -> None:
    """Notification: an alert was raised and published.

    Called once per alert, after the broker acknowledged it on the alerts topic (in ``stream
    process``: after it was printed).  Keep it fast: it runs on the event loop.

    :param alert: the alert record as published (``docs/records.md``, "Alert": ``alert_id``,
        ``rule_id``, ``article_id``, ``severity``, ``matched``, ...).
    :return: ignored.
    :raises: an exception is logged with the plugin's name and otherwise ignored; the other
        plugins are still notified, and the worker goes on.

    .. versionadded:: 0.1
    """
