"""The faust application: its settings, the state tables and exactly-once transaction ids.

The agents that wire the pipeline to Kafka are in :mod:`stream.runtime.agents`; the topics
in :mod:`stream.runtime.topics`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, MutableMapping

import faust
from faust.transport.consumer import TopicPartitionGroup, TransactionManager

from ..settings import Settings
from .kafka import BATCH_BYTES
from .transport import StreamApp

__all__ = ["ChangelogWrites", "create_app", "make_table", "transactional_id"]

log = logging.getLogger(__name__)


def _broker_url(bootstrap: str) -> list[str]:
    return [f"kafka://{hp.strip()}" for hp in bootstrap.split(",") if hp.strip()]


def create_app(settings: Settings) -> faust.App:
    """The faust app for ``stream worker`` (no agents yet: see :func:`wire_agents`)."""
    return StreamApp(
        settings.app_id,
        broker=_broker_url(settings.broker),
        broker_credentials=settings.security.faust_credentials(),
        store="memory://",
        datadir=settings.data_dir,
        web_enabled=False,
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        producer_acks=-1,
        producer_max_batch_size=BATCH_BYTES,
        # One record of the largest size the topics take (a dead letter carries at most
        # that much of its original: see encode_dead_letter).
        producer_max_request_size=settings.topic_max_message_bytes + 65536,
        consumer_auto_offset_reset="earliest",
        processing_guarantee=settings.processing_guarantee,
        broker_session_timeout=settings.session_timeout,
        broker_commit_interval=settings.commit_interval,
        broker_max_poll_interval=settings.max_poll_interval,
        broker_heartbeat_interval=min(3.0, settings.session_timeout / 3),
        stream_buffer_maxsize=max(4096, settings.batch_size * 4),
        key_serializer="raw",
        value_serializer="raw",
    )


class ChangelogWrites:
    """The delivery futures of the state tables' changelog writes since the last
    :meth:`take` (faust sends them itself, buffered; stage 2 confirms them with its batch)."""

    def __init__(self) -> None:
        self._futures: list[asyncio.Future[Any]] = []

    def add(self, future: asyncio.Future[Any]) -> None:
        self._futures.append(future)

    def take(self) -> list[asyncio.Future[Any]]:
        taken, self._futures = self._futures, []
        return taken


def make_table(app: faust.App, name: str, writes: ChangelogWrites | None = None) -> MutableMapping[str, Any]:
    """A state table for a stateful processor: one partition (like ``articles.stateful``),
    keys and values in JSON (faust's json codec), backed by the compacted changelog
    ``APPID-NAME-changelog``.  ``use_partitioner`` lets a batch write to it: with one
    partition every key goes to partition 0, which the stateful stage's worker owns.

    ``writes`` collects the delivery future of every changelog write."""
    table: Any = app.Table(name, default=None, partitions=1, use_partitioner=True)
    if writes is not None:
        send_changelog = table.send_changelog

        def confirmed_send_changelog(*args: Any, **kwargs: Any) -> Any:
            future = send_changelog(*args, **kwargs)
            writes.add(future)
            return future

        table.send_changelog = confirmed_send_changelog
    made: MutableMapping[str, Any] = table
    return made


def transactional_id(app: faust.App, topic: str, partition: int) -> str:
    """The id of faust's transactional producer for an input partition (exactly-once).

    faust opens one transaction per assigned partition (``TransactionManager``) and commits
    each input partition's offsets in it; but its own ``send`` picks the transaction by the
    partition of the *output* record (faust-streaming issues #177 and #517: with it, our
    two-stage worker published 814 of 5,000 articles twice after three SIGKILLs).  stream
    sends each output in the transaction of its *input* partition, named by faust's own
    format (``TransactionManager.transactional_id_format``, faust-streaming 0.15.x).
    """
    group = app.assignor.group_for_topic(topic)
    tid: str = TransactionManager.transactional_id_format.format(
        tpg=TopicPartitionGroup(topic, partition, group), group_id=app.conf.id)
    return tid
