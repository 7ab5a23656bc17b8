"""The topics of a worker: created with the partitions, replication and record size the
settings ask for, and checked at start against the records the worker may write."""

from __future__ import annotations

from ..errors import ConfigError
from ..plugins import PluginHost
from ..settings import Settings
from .kafka import ensure_topics, topic_limits

__all__ = ["check_record_limits", "output_topics", "prepare_topics"]


async def prepare_topics(settings: Settings, host: PluginHost, *, stateful: bool,
                         tables: tuple[str, ...] = ()) -> list[str]:
    """Create stream's topics, the plugins' topics and the state tables' changelogs that do
    not exist yet.

    The changelogs (``APP_ID-NAME-changelog``, compacted, one partition) are created here,
    before faust starts: faust creates them itself, but a worker can join its group before
    they exist, and a table whose changelog was missing at assignment fails on first use
    (seen in CI: "Ignoring missing topic ... -alerts-changelog", then TypeErrors).
    """
    wanted = [
        (settings.topic_raw, settings.partitions, False),
        (settings.topic_enriched, settings.partitions, False),
        (settings.topic_alerts, settings.partitions, False),
        (settings.topic_dlq, settings.partitions, False),
    ]
    if stateful:
        wanted.append((settings.stateful_topic, 1, False))
    wanted += [(f"{settings.app_id}-{name}-changelog", 1, True) for name in tables]
    if settings.route_duplicates:
        wanted.append((settings.topic_duplicates, settings.partitions, False))
    wanted += [(t.name, t.partitions or settings.partitions, t.compacted) for t in host.topics()]
    big = {"max.message.bytes": str(settings.topic_max_message_bytes)}
    configs = {name: big for name in output_topics(settings, stateful=stateful)}
    return await ensure_topics(settings.kafka, wanted, settings.replication_factor, configs,
                               settings.min_insync_replicas)


def output_topics(settings: Settings, *, stateful: bool) -> list[str]:
    """The topics the worker writes records of up to ``max_record_bytes`` to."""
    names = [settings.topic_enriched, settings.topic_alerts, settings.topic_dlq]
    if settings.route_duplicates:
        names.append(settings.topic_duplicates)
    if stateful:
        names.append(settings.stateful_topic)
    return names


async def check_record_limits(settings: Settings, *, stateful: bool) -> None:
    """Stop at start when a topic cannot take the records the settings allow: the input
    topic articles of ``max_article_bytes``, the output topics records of
    ``max_record_bytes`` (a record the broker refuses would stop the worker later, at the
    first large article).

    :raises ConfigError: naming the topic, its limit, the setting, and both fixes.
    """
    wanted = {settings.topic_raw: settings.max_article_bytes}
    wanted.update((name, settings.max_record_bytes) for name in output_topics(settings, stateful=stateful))
    limits = await topic_limits(settings.kafka, wanted)
    for name, need in wanted.items():
        limit = limits.get(name)
        if limit is None or limit >= need + 1024:
            continue
        setting = "max_article_bytes" if name == settings.topic_raw else "max_record_bytes"
        where = f"{settings.source}: " if settings.source else ""
        raise ConfigError(
            f"{where}topic {name!r} accepts records up to {limit} bytes (max.message.bytes), but {setting} = "
            f"{need} allows larger ones; raise the topic's limit (kafka-configs.sh --bootstrap-server "
            f"{settings.broker.split(',')[0]} --alter --entity-type topics --entity-name {name} --add-config "
            f"max.message.bytes={need + 65536}) or lower {setting} (setting file or STREAM_{setting.upper()})")
