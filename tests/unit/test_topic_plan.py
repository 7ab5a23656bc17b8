"""The topic plan: what it lists for each part and setting, the ACLs it derives, and how it
judges the topics a cluster has (no broker: the comparison is pure)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from stream.cli import _epoch_ms, main
from stream.errors import EX_CONFIG, EX_DATAERR, EX_NOPERM, EX_UNAVAILABLE, ConfigError, ConnectError, RecordError
from stream.plugins import get_plugin_manager
from stream.runtime.plan import PlannedTopic, compare, topic_plan
from stream.settings import Settings


def plan_of(**values: object):  # type: ignore[no-untyped-def]
    settings = Settings(**values)  # type: ignore[arg-type]
    return settings, topic_plan(settings, get_plugin_manager(settings))


def test_the_worker_part_lists_its_topics_groups_and_changelogs() -> None:
    s, plan = plan_of(app_id="news", partitions=4)
    worker = {t.name: t for t in plan.part("worker")}
    assert set(worker) >= {s.topic_raw, s.topic_enriched, s.topic_alerts, s.topic_dlq, "news-stateful",
                           "news-dedup-changelog", "news-alerts-changelog"}
    assert worker["news-stateful"].partitions == 1 and worker["news-stateful"].exact
    assert worker["news-dedup-changelog"].compacted and worker["news-dedup-changelog"].exact
    assert worker[s.topic_raw].partitions == 4 and not worker[s.topic_raw].exact
    assert worker[s.topic_enriched].max_message_bytes == s.topic_max_message_bytes
    assert worker[s.topic_raw].max_message_bytes is None  # 1 MB articles fit the broker's default
    assert set(plan.groups) == {"news", "news-stateful", "news-ingest"}
    assert plan.transactional_ids == {}
    assert s.topic_duplicates not in plan.topics  # route_duplicates is off


def test_webhooks_are_planned_only_with_a_subscriptions_file_or_when_asked() -> None:
    s, plan = plan_of()
    assert s.topic_webhooks_retry not in plan.topics and "stream-webhooks" not in plan.groups
    _s, plan = plan_of(webhooks="webhooks.toml")
    events = plan.topics[s.topic_webhooks_events]
    assert events.compacted and events.partitions == 1 and "stream-webhooks" in plan.groups
    only = topic_plan(s, None, ["webhooks"])
    assert set(only.topics) == {s.topic_alerts, s.topic_webhooks_retry, s.topic_webhooks_failed,
                                s.topic_webhooks_events}


def test_the_acls_follow_reads_writes_creation_and_exactly_once() -> None:
    s, plan = plan_of(processing_guarantee="exactly_once", auto_create_topics=False)
    acls = {(a.resource, a.name): a for a in plan.acls}
    assert acls[("topic", s.topic_raw)].operations == ("Read", "Write", "Describe", "DescribeConfigs")
    assert acls[("topic", s.topic_enriched)].operations == ("Write", "Describe", "DescribeConfigs")
    assert acls[("group", "stream-stateful")].operations == ("Read", "Describe")
    txn = acls[("transactional-id", "stream-")]
    assert txn.prefixed and txn.kafka_acls_args("User:app") == [
        "--add", "--allow-principal", "User:app", "--operation", "Write", "--operation", "Describe",
        "--transactional-id", "stream-", "--resource-pattern-type", "prefixed"]
    assert not any("Create" in a.operations for a in plan.acls)
    _s, created = plan_of()
    assert all("Create" in a.operations for a in created.acls if a.resource == "topic")


def test_an_unknown_part_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown part 'workers'"):
        topic_plan(Settings(), None, ["workers"])


def test_the_comparison_names_every_problem_and_its_fix() -> None:
    s = Settings(sasl_username="app")
    planned = [
        PlannedTopic("raw", 6, record_bytes=1_000_000, setting="max_article_bytes"),
        PlannedTopic("enriched", 6, record_bytes=8_000_000, setting="max_record_bytes", writers=["worker"]),
        PlannedTopic("state", 1, compacted=True, exact=True),
        PlannedTopic("handoff", 1, exact=True),
        PlannedTopic("gone", 6),
        PlannedTopic("fine", 6),
    ]
    found = {
        "raw": (3, {"cleanup.policy": "compact", "max.message.bytes": "1048588"}),
        "enriched": (6, {"cleanup.policy": "delete", "max.message.bytes": "500000"}),
        "state": (1, {"cleanup.policy": "delete"}),
        "handoff": (3, {"cleanup.policy": "delete"}),
        "fine": (2, {"cleanup.policy": "delete", "max.message.bytes": "1048588"}),
    }
    problems = {(p.topic, p.problem.split(",")[0].split(" (")[0]): p for p in compare(planned, found, s)}
    assert set(problems) == {
        ("raw", "cleanup.policy is compact: compaction would drop records that share a key"),
        ("enriched", "accepts records up to 500000 bytes"),
        ("state", "cleanup.policy is delete"),
        ("handoff", "has 3 partitions"),
        ("gone", "missing"),
    }
    assert "max.message.bytes=8065536" in problems[("enriched", "accepts records up to 500000 bytes")].fix
    assert "cleanup.policy=compact" in problems[("state", "cleanup.policy is delete")].fix
    assert "User:app may not Describe it" in problems[("gone", "missing")].problem


def test_stream_topics_plan_prints_json_and_kafka_acls_lines() -> None:
    runner = CliRunner()
    shown = runner.invoke(main, ["topics", "plan", "--format", "json", "--part", "ingest"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert {t["name"] for t in data["topics"]} == {"articles.raw", "sources", "sources.seen"}
    assert data["groups"] == [{"name": "stream-ingest", "used_by": "ingesters (share the feed list)"}]
    text = runner.invoke(main, ["topics", "plan", "--principal", "User:news"])
    assert text.exit_code == 0, text.output
    assert ("kafka-acls.sh --bootstrap-server 127.0.0.1:9092 --command-config ADMIN.properties --add "
            "--allow-principal User:news --operation Read --operation Describe --group stream") in text.output


def test_exit_statuses_follow_sysexits() -> None:
    assert ConfigError("x").exit_status == EX_CONFIG == 78
    assert RecordError("x").exit_status == EX_DATAERR == 65
    assert ConnectError("x").exit_status == EX_UNAVAILABLE == 69
    assert ConnectError("x", exit_status=EX_NOPERM).exit_status == 77


def test_replay_times_take_a_zone_and_default_to_utc() -> None:
    assert _epoch_ms("2026-12-04T10:00:00+01:00") == _epoch_ms("2026-12-04T09:00:00Z")
    assert _epoch_ms("2026-12-04T09:00:00") == _epoch_ms("2026-12-04T09:00:00+00:00")


def test_process_exits_65_when_records_went_to_the_dead_letters(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "fine text about troops"}\n{"id": \n')
    result = CliRunner().invoke(main, ["process", str(bad)], env={"STREAM_PLUGINS": "clean"})
    assert result.exit_code == EX_DATAERR, result.output
    assert "1 record(s) could not be processed" in result.output


def test_a_topic_only_read_is_not_held_to_a_record_limit() -> None:
    s = Settings()
    plan = topic_plan(s, None, ["commands"])  # dlq replay reads the dead letters, writes nothing there
    dlq = plan.topics[s.topic_dlq]
    assert not dlq.writers and dlq.record_bytes == s.max_record_bytes
    small = {s.topic_dlq: (6, {"cleanup.policy": "delete", "max.message.bytes": "1048588"})}
    assert compare([dlq], small, s) == []
    worker = topic_plan(s, None, ["worker"]).topics[s.topic_dlq]
    assert [p.topic for p in compare([worker], small, s)] == [s.topic_dlq]
