"""The state store of stage 2: what the stateful processors keep, in memory, written to
compacted changelog topics and restored from them.

The invariant:

* **Write.**  Every change a processor makes to a table during a batch (``put``, ``delete``)
  is kept as the table's latest value of that key (:meth:`StateStore.take_writes`), and the
  stage sends them to the table's changelog ``APP_ID-NAME-changelog`` (compacted, one
  partition: stage 2 is one partition) with the batch, before the batch's offsets are
  committed (at-least-once: confirmed before its outputs are sent; exactly-once: in the
  batch's transaction).  A change that is not confirmed never counts as state: the batch
  fails and the store is marked *dirty* (:meth:`StateStore.invalidate`).
* **Restore.**  When stage 2's partition is assigned, before the first batch: a dirty or
  empty store is rebuilt from the start of each changelog; a clean one (this worker held
  the partition and every write of it was confirmed) reads only the records after the last
  one it applied or wrote, which another owner may have added meanwhile.  Reads stop at the
  changelog's end as of the restore (``read_committed`` under exactly-once: the previous
  owner's open transaction was aborted by our producer's ``init_transactions`` first).

The records are faust's table format (key and value in JSON, a delete is a tombstone), so
a worker of this version restores the state a faust-based worker wrote (upgrade in place).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from ..records import dumps, loads
from .security import KafkaTarget, client_options

__all__ = ["RestoreError", "StateStore", "StateTable", "changelog_topic"]

log = logging.getLogger(__name__)

#: Seconds a restore may read nothing before it fails (and is tried again).
RESTORE_STALL = 60.0


class RestoreError(Exception):
    """A changelog could not be read to its end."""


#: A deleted key in the writes of a batch.
_DELETED = object()


def changelog_topic(app_id: str, table: str) -> str:
    """The compacted changelog topic of ``table`` (faust's name for it, kept for upgrades)."""
    return f"{app_id}-{table}-changelog"


class StateTable(MutableMapping[str, Any]):
    """One table of the state store: ``str`` keys, JSON-able values.

    The state API of a stateful processor (``context.tables[NAME]``): :meth:`get`,
    :meth:`put` (or ``table[key] = value``), :meth:`delete` (or ``del table[key]``), and
    iteration (``items()``, ``keys()``, ``len``).  Values are stored as given: do not change
    a value in place after ``put``; put it again (only what is put is written to the
    changelog)."""

    def __init__(self, name: str, *, changelog: bool = True) -> None:
        self.name = name
        self._data: dict[str, Any] = {}
        self._writes: dict[str, Any] = {}
        self._changelog = changelog  # False: no changes kept (``stream process``)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value
        if self._changelog:
            self._writes[key] = value

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        if self._changelog:
            self._writes[key] = _DELETED

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def put(self, key: str, value: Any) -> None:
        """Set ``key`` to ``value`` (written to the changelog with the batch)."""
        self[key] = value

    def delete(self, key: str) -> None:
        """Remove ``key`` if it is there (a tombstone in the changelog)."""
        if key in self._data:
            del self[key]

    def _apply_all(self, records: list[Any]) -> None:
        for record in records:
            self._apply(record.key, record.value)

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        """One changelog record (restore): not a write of this batch."""
        if key is None:
            return
        name = loads(key)
        if not isinstance(name, str):
            name = str(name)
        if value is None:
            self._data.pop(name, None)
        else:
            self._data[name] = loads(value)


class StateStore:
    """The tables of stage 2, by name, with their changelogs on ``bootstrap``.

    :param committed_only: read the changelogs ``read_committed`` (exactly-once)."""

    def __init__(self, bootstrap: KafkaTarget | str, app_id: str, names: tuple[str, ...], *,
                 committed_only: bool = False) -> None:
        self.bootstrap, self.app_id = bootstrap, app_id
        self.committed_only = committed_only
        self.tables = {name: StateTable(name) for name in names}
        #: The next changelog offset to read per table (all before it are in the table).
        self.positions: dict[str, int] = {}
        self.dirty = True

    def topics(self) -> list[str]:
        return [changelog_topic(self.app_id, name) for name in self.tables]

    def take_writes(self) -> list[tuple[str, bytes, bytes | None]]:
        """``(changelog topic, key, value or None)`` of every change since the last call
        (the latest value per key), and forget them."""
        out: list[tuple[str, bytes, bytes | None]] = []
        for name, table in self.tables.items():
            if not table._writes:
                continue
            topic = changelog_topic(self.app_id, name)
            for key, value in table._writes.items():
                out.append((topic, dumps(key), None if value is _DELETED else dumps(value)))
            table._writes = {}
        return out

    def written(self, topic: str, offset: int) -> None:
        """A write of this worker was confirmed at ``offset`` of ``topic``."""
        for name in self.tables:
            if changelog_topic(self.app_id, name) == topic:
                self.positions[name] = max(self.positions.get(name, 0), offset + 1)

    def invalidate(self) -> None:
        """The tables may hold changes that are not in the changelog (a batch failed): the
        next restore rebuilds them from the start."""
        self.dirty = True
        for table in self.tables.values():
            table._writes = {}

    async def restore(self) -> int:
        """Bring every table to its changelog's end (see the module's invariant).

        :return: the number of changelog records applied (0: nothing changed since this
            worker last had the partition)."""
        started = time.monotonic()
        if self.dirty:
            for table in self.tables.values():
                table._data.clear()
                table._writes = {}
            self.positions = {}
        consumer = AIOKafkaConsumer(
            **client_options(self.bootstrap), enable_auto_commit=False, auto_offset_reset="earliest",
            isolation_level="read_committed" if self.committed_only else "read_uncommitted",
            max_partition_fetch_bytes=8 * 1024 * 1024)
        await consumer.start()
        applied = 0
        try:
            tps = {name: TopicPartition(changelog_topic(self.app_id, name), 0) for name in self.tables}
            consumer.assign(list(tps.values()))
            ends = await consumer.end_offsets(list(tps.values()))
            for name, tp in tps.items():
                start = self.positions.get(name, 0)
                end = ends.get(tp, 0)
                if start >= end:
                    self.positions[name] = max(start, end)
                    continue
                consumer.seek(tp, start)
                table = self.tables[name]
                collecting = gc.isenabled()
                gc.disable()  # a restore makes objects by the million: collections cost a third of it
                try:
                    applied += await self._read(consumer, tp, table, start, end)
                finally:
                    if collecting:
                        gc.enable()
                self.positions[name] = end
        finally:
            await consumer.stop()
        if applied or self.dirty:
            log.info("state restored: %s (%d changelog records in %.2f s)",
                     ", ".join(f"{name} {len(t)} keys" for name, t in self.tables.items()), applied,
                     time.monotonic() - started)
        self.dirty = False
        return applied

    async def _read(self, consumer: AIOKafkaConsumer, tp: TopicPartition, table: StateTable, start: int,
                    end: int) -> int:
        """Apply the records of ``tp`` from ``start`` to ``end`` to ``table``.

        :raises RestoreError: no progress for :data:`RESTORE_STALL` seconds."""
        applied = 0
        position, moved = start, time.monotonic()
        while position < end:
            batch: dict[TopicPartition, list[Any]] = await consumer.getmany(tp, timeout_ms=1000, max_records=10_000)
            records = [r for r in batch.get(tp, []) if r.offset < end]
            if records:  # decoded in a thread: the event loop only coordinates
                await asyncio.to_thread(table._apply_all, records)
                applied += len(records)
            now_at = await consumer.position(tp)
            if now_at > position:
                position, moved = now_at, time.monotonic()
            elif time.monotonic() - moved > RESTORE_STALL:
                raise RestoreError(f"{tp.topic}: no progress at offset {position} of {end} for "
                                   f"{RESTORE_STALL:.0f} s while restoring the state")
        return applied
