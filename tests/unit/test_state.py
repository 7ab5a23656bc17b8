"""The state store's tables (issue 26), without a broker: what a batch changes is what goes
to the changelog, in faust's record format."""

from __future__ import annotations

import json

from stream.runtime.state import StateStore, StateTable, changelog_topic


def test_the_changes_of_a_batch_are_the_latest_value_of_each_key_and_deletes_are_tombstones() -> None:
    store = StateStore("127.0.0.1:1", "app", ("dedup", "alerts"))
    dedup = store.tables["dedup"]
    dedup.put("a:1", {"d": 1})
    dedup["a:1"] = {"d": 2}
    dedup["a:2"] = [1, 2]
    dedup.delete("a:2")
    dedup.delete("never-there")
    store.tables["alerts"]["c:r"] = [5, "x"]
    writes = store.take_writes()
    assert writes == [(changelog_topic("app", "dedup"), b'"a:1"', b'{"d":2}'),
                      (changelog_topic("app", "dedup"), b'"a:2"', None),
                      ("app-alerts-changelog", b'"c:r"', b'[5,"x"]')]
    assert store.take_writes() == []  # taken once
    assert dedup.get("a:1") == {"d": 2} and "a:2" not in dedup and len(dedup) == 1


def test_records_are_what_a_faust_table_wrote_so_an_upgrade_restores_them() -> None:
    table = StateTable("dedup")
    # faust's json codec: the key and the value as JSON text; a delete is a value of None.
    table._apply(json.dumps("a:9").encode(), json.dumps({"d": {"status": "unique"}, "t": 1.5}).encode())
    table._apply(json.dumps("a:8").encode(), b"{}")
    table._apply(json.dumps("a:8").encode(), None)
    assert dict(table.items()) == {"a:9": {"d": {"status": "unique"}, "t": 1.5}}
    assert table._writes == {}  # restored records are not changes of this worker


def test_a_failed_batch_marks_the_store_dirty_and_drops_its_changes() -> None:
    store = StateStore("127.0.0.1:1", "app", ("dedup",))
    store.dirty = False
    store.tables["dedup"]["k"] = 1
    store.invalidate()
    assert store.dirty and store.take_writes() == []


def test_a_table_of_stream_process_keeps_no_changes() -> None:
    table = StateTable("dedup", changelog=False)
    table.put("k", 1)
    del table["k"]
    assert table._writes == {} and len(table) == 0


def test_the_offset_of_a_confirmed_write_moves_the_restore_position() -> None:
    store = StateStore("127.0.0.1:1", "app", ("dedup",))
    store.written("app-dedup-changelog", 41)
    store.written("app-dedup-changelog", 7)
    store.written("other", 99)
    assert store.positions == {"dedup": 42}
