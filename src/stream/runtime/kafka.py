"""Small aiokafka helpers shared by the command line, the worker and the tests.

Every producer stream creates uses ``acks="all"`` and idempotence, so an acknowledged
record is on the broker exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterable, Literal, Mapping

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from .security import KafkaTarget, client_options

__all__ = ["KafkaRecord", "adopt_offsets", "cluster_replication", "delete_topics", "end_offsets", "ensure_topics",
           "fetch_records", "make_producer", "partitions_of", "read_records", "replication_for", "seed_offsets"]

log = logging.getLogger(__name__)


#: Bytes per producer batch (one per partition).  aiokafka's default, 16 KiB, holds two to
#: four articles; with idempotence one request per broker is in flight, and a full batch makes
#: ``send`` wait until it is drained: with 16 KiB, produce throughput was one round trip per
#: few records.  Below the broker's ``message.max.bytes`` (1 MiB by default).
BATCH_BYTES = 512 * 1024


#: A cluster: a ``host:port`` list (plaintext) or a :class:`~stream.runtime.security.KafkaTarget`.
Target = str | KafkaTarget


def make_producer(bootstrap: Target, **options: Any) -> AIOKafkaProducer:
    """A producer with ``acks="all"``, idempotence, large batches and a short linger."""
    options.setdefault("linger_ms", 5)
    options.setdefault("max_batch_size", BATCH_BYTES)
    options.setdefault("max_request_size", 4 * 1024 * 1024)
    return AIOKafkaProducer(
        **client_options(bootstrap), acks="all", enable_idempotence=True, **options
    )


def replication_for(brokers: int, replication_factor: int = 0, min_insync_replicas: int = 0) -> tuple[int, int]:
    """The replication factor and ``min.insync.replicas`` of new topics on a cluster of
    ``brokers``: the settings when set (not 0), else the number of brokers (at most 3) and
    one less than that (at most 2, at least 1): 1/1 on one broker, 3/2 on three or more."""
    factor = replication_factor or max(1, min(3, brokers))
    return factor, min_insync_replicas or max(1, min(2, factor - 1))


async def cluster_replication(bootstrap: Target, replication_factor: int = 0,
                              min_insync_replicas: int = 0) -> tuple[int, int]:
    """:func:`replication_for` the cluster at ``bootstrap`` (asks it for its brokers when a
    setting is 0)."""
    if replication_factor and min_insync_replicas:
        return replication_factor, min_insync_replicas
    admin = AIOKafkaAdminClient(**client_options(bootstrap))
    await admin.start()
    try:
        brokers = len((await admin.describe_cluster())["brokers"])
    finally:
        await admin.close()
    return replication_for(brokers, replication_factor, min_insync_replicas)


async def ensure_topics(
    bootstrap: Target,
    topics: Iterable[tuple[str, int, bool]],
    replication_factor: int = 0,
    configs: Mapping[str, Mapping[str, str]] | None = None,
    min_insync_replicas: int = 0,
) -> list[str]:
    """Create the ``(name, partitions, compacted)`` topics that do not exist yet.

    :param replication_factor: 0: chosen from the cluster's size (:func:`replication_for`);
        so is ``min_insync_replicas``, set on every topic created.
    :param configs: topic configuration by topic name (``{"max.message.bytes": "..."}``),
        for the topics created now.
    :return: the names created.
    """
    admin = AIOKafkaAdminClient(**client_options(bootstrap))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in topics if t[0] not in existing]
        if not wanted:
            return []
        if not (replication_factor and min_insync_replicas):
            brokers = len((await admin.describe_cluster())["brokers"])
            replication_factor, min_insync_replicas = replication_for(
                brokers, replication_factor, min_insync_replicas)
        new: list[NewTopic] = []
        for name, partitions, compacted in wanted:
            if any(t.name == name for t in new):
                continue
            config = {"min.insync.replicas": str(min_insync_replicas)}
            if compacted:
                config["cleanup.policy"] = "compact"
            config.update((configs or {}).get(name, {}))
            new.append(NewTopic(name, partitions, replication_factor, topic_configs=config))
        with contextlib.suppress(TopicAlreadyExistsError):  # another worker was quicker
            await admin.create_topics(new)
        log.info("created topics %s (replication %d, min.insync.replicas %d)", ", ".join(t.name for t in new),
                 replication_factor, min_insync_replicas)
        await _wait_for_leaders(admin, [t.name for t in new])
        return [t.name for t in new]
    finally:
        await admin.close()


async def _wait_for_leaders(admin: AIOKafkaAdminClient, topics: list[str], timeout: float = 10.0) -> None:
    """Wait until the broker's metadata shows ``topics``, each partition with a leader (a
    topic that someone else created meanwhile, maybe with another partition count, counts).

    Why: a consumer group that joins right after the topics were created can be given an
    assignment computed from metadata without them (faust's assignor logs "Ignoring missing
    topic") and then sits with no partitions until its next metadata refresh, five minutes
    later (seen on a freshly started broker).
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        described = await admin.describe_topics(topics)
        ready = {
            d["topic"] for d in described
            if d["error_code"] == 0 and d["partitions"] and all(p["leader"] >= 0 for p in d["partitions"])
        }
        if ready >= set(topics):
            return
        if asyncio.get_running_loop().time() > deadline:
            log.warning("topics %s still have no leader after %.0f s", sorted(set(topics) - ready), timeout)
            return
        await asyncio.sleep(0.1)


async def partitions_of(bootstrap: Target, topic: str) -> set[int]:
    """The partitions of ``topic`` (empty when it does not exist), from the cluster's
    metadata."""
    admin = AIOKafkaAdminClient(**client_options(bootstrap))
    await admin.start()
    try:
        # Only a topic that exists: a metadata request for a missing one may create it with
        # the broker's defaults (auto.create.topics.enable).
        if topic not in set(await admin.list_topics()):
            return set()
        for described in await admin.describe_topics([topic]):
            if described.get("topic") == topic and described.get("error_code") == 0:
                return {int(p["partition"]) for p in described.get("partitions", [])}
        return set()
    finally:
        await admin.close()


async def delete_topics(bootstrap: Target, prefixes: Iterable[str]) -> int:
    """Delete every topic whose name starts with one of ``prefixes`` (the test kit's and the
    benchmark's own topics).  :return: how many were deleted."""
    prefixes = tuple(prefixes)
    admin = AIOKafkaAdminClient(**client_options(bootstrap), request_timeout_ms=60_000)
    await admin.start()
    try:
        names = [n for n in await admin.list_topics() if n.startswith(prefixes)]
        for start in range(0, len(names), 200):
            await admin.delete_topics(names[start:start + 200], timeout_ms=60_000)
        return len(names)
    finally:
        await admin.close()


async def seed_offsets(bootstrap: Target, group: str, topics: Iterable[str],
                       at: Literal["beginning", "end"] = "beginning") -> dict[str, int]:
    """Give every partition of ``topics`` that has no committed offset in ``group`` one, at
    the start of its log (or at its end: where the webhook dispatcher's group starts).

    Why: at start, faust resumes fetching before it seeks the partitions to their committed
    offsets, and drops what it had fetched but not yet delivered; a partition with a
    committed offset is fetched again from it, but one without any is not sought at all
    (aiokafka's ``seek_to_committed`` skips it), so its first records could be skipped.
    With an offset at the log start, they are fetched again instead (a repeat, which the
    agents skip or decide the same way).

    Committing without joining the group is only allowed while it has no active member; when
    other workers are running the commit is refused and nothing is changed.

    :return: ``{"topic[partition]": offset}`` of what was seeded.
    """
    consumer = AIOKafkaConsumer(**client_options(bootstrap), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = []
        for topic in topics:
            parts = consumer.partitions_for_topic(topic) or await partitions_of(bootstrap, topic)
            tps += [TopicPartition(topic, p) for p in sorted(parts)]
        missing = [tp for tp in tps if await consumer.committed(tp) is None]
        if not missing:
            return {}
        starts = await (consumer.end_offsets(missing) if at == "end" else consumer.beginning_offsets(missing))
        consumer.assign(missing)
        try:
            await consumer.commit({tp: starts[tp] for tp in missing})
        except Exception as exc:  # the group has active members: leave it to them
            log.info("offsets of group %s not seeded (%r); the group has active members", group, exc)
            return {}
        return {f"{tp.topic}[{tp.partition}]": starts[tp] for tp in missing}
    finally:
        await consumer.stop()


async def adopt_offsets(bootstrap: Target, old_group: str, new_group: str, topic: str) -> dict[int, int]:
    """Give ``new_group`` the committed offsets ``old_group`` has for ``topic``, for the
    partitions where ``new_group`` has none (an upgrade: faust-based workers read the
    hand-off in the application's group; stage 2 now reads it in a group of its own).

    Committing without joining is only allowed while ``new_group`` has no active member;
    otherwise nothing is changed (its members have offsets already).
    :return: ``{partition: offset}`` adopted."""
    admin = AIOKafkaAdminClient(**client_options(bootstrap))
    await admin.start()
    try:
        old = {tp: meta.offset for tp, meta in (await admin.list_consumer_group_offsets(old_group)).items()
               if tp.topic == topic and meta.offset >= 0}
        if not old:
            return {}
        new = await admin.list_consumer_group_offsets(new_group, partitions=list(old))
        wanted = {tp: offset for tp, offset in old.items() if tp not in new or new[tp].offset < 0}
    finally:
        await admin.close()
    if not wanted:
        return {}
    consumer = AIOKafkaConsumer(**client_options(bootstrap), group_id=new_group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(wanted))
        try:
            await consumer.commit(wanted)
        except Exception as exc:  # the group has active members: they have offsets
            log.info("offsets of group %s not adopted from %s (%r)", new_group, old_group, exc)
            return {}
        return {tp.partition: offset for tp, offset in wanted.items()}
    finally:
        await consumer.stop()


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int


async def end_offsets(bootstrap: Target, topic: str) -> dict[int, int]:
    """``{partition: end offset}`` of ``topic`` now (empty when it does not exist)."""
    consumer = AIOKafkaConsumer(**client_options(bootstrap), enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or await partitions_of(bootstrap, topic)
        tps = [TopicPartition(topic, p) for p in parts]
        ends = await consumer.end_offsets(tps) if tps else {}
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await consumer.stop()


async def read_records(
    bootstrap: Target,
    topic: str,
    *,
    start: dict[int, int] | None = None,
    limit: int | None = None,
    timeout: float | None = 10.0,
    follow: bool = False,
    committed_only: bool = False,
) -> AsyncIterator[KafkaRecord]:
    """Yield records of ``topic`` from ``start`` offsets (default: the beginning).

    Stops after ``limit`` records; without ``follow`` also when every partition has been
    read to its end as of the call; and when nothing arrived for ``timeout`` seconds.
    ``committed_only``: skip the records of aborted or open transactions (what a reader of a
    worker with ``processing_guarantee = "exactly_once"`` sees; Kafka's ``read_committed``).
    """
    consumer = AIOKafkaConsumer(
        **client_options(bootstrap), enable_auto_commit=False, auto_offset_reset="earliest",
        isolation_level="read_committed" if committed_only else "read_uncommitted",
    )
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + (timeout or 0)
        parts: set[int] = set()
        while not parts:
            parts = await partitions_of(bootstrap, topic)
            if parts or (timeout is not None and asyncio.get_running_loop().time() > deadline):
                break
            await asyncio.sleep(0.2)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return
        consumer.assign(tps)
        starts = start or {}
        for tp in tps:
            if tp.partition in starts:
                consumer.seek(tp, starts[tp.partition])
            else:
                await consumer.seek_to_beginning(tp)
        ends = {tp.partition: off for tp, off in (await consumer.end_offsets(tps)).items()}
        done = {p for p in ends if ends[p] <= starts.get(p, 0)} if not follow else set()
        count = 0
        idle_since = asyncio.get_running_loop().time()
        while True:
            if not follow and done >= set(ends):
                return
            batch = await consumer.getmany(timeout_ms=200)
            now = asyncio.get_running_loop().time()
            if not any(batch.values()):
                if timeout is not None and now - idle_since > timeout:
                    return
                continue
            idle_since = now
            for tp, messages in batch.items():
                for msg in messages:
                    yield KafkaRecord(
                        msg.topic, msg.partition, msg.offset, msg.key, msg.value,
                        tuple(msg.headers or ()), msg.timestamp,
                    )
                    count += 1
                    if limit is not None and count >= limit:
                        return
                    if not follow and msg.offset + 1 >= ends.get(tp.partition, 0):
                        done.add(tp.partition)
    finally:
        await consumer.stop()


async def fetch_records(bootstrap: Target, where: Iterable[tuple[str, int, int]],
                        timeout: float = 30.0) -> dict[tuple[str, int, int], KafkaRecord]:
    """The records at ``(topic, partition, offset)``, read with one consumer.

    Missing from the result: a record no longer in the log (retention) or not read within
    ``timeout`` seconds.
    """
    wanted: dict[TopicPartition, set[int]] = {}
    for topic, partition, offset in where:
        wanted.setdefault(TopicPartition(topic, partition), set()).add(offset)
    found: dict[tuple[str, int, int], KafkaRecord] = {}
    if not wanted:
        return found
    consumer = AIOKafkaConsumer(**client_options(bootstrap), enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        for tp, offsets in wanted.items():
            consumer.assign([tp])
            for offset in sorted(offsets):
                if (tp.topic, tp.partition, offset) in found:
                    continue
                consumer.seek(tp, offset)
                while asyncio.get_running_loop().time() < deadline:
                    msgs = (await consumer.getmany(tp, timeout_ms=500)).get(tp, [])
                    for msg in msgs:
                        if msg.offset in offsets:
                            found[(tp.topic, tp.partition, msg.offset)] = KafkaRecord(
                                msg.topic, msg.partition, msg.offset, msg.key, msg.value,
                                tuple(msg.headers or ()), msg.timestamp)
                    if msgs or await consumer.position(tp) > offset:
                        break
        return found
    finally:
        await consumer.stop()
