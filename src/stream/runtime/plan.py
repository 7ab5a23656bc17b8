"""The topic plan: every topic stream reads or writes, with its partitions, cleanup policy,
retention and record size; who reads and writes it; the consumer groups and transactional
ids; and the ACLs a principal needs to run stream and nothing more.

One plan serves four uses: ``stream topics plan`` prints it, ``stream topics create``
creates what is missing, ``stream topics check`` compares it with the cluster, and the
worker, the ingester and the webhook dispatcher create (``auto_create_topics = true``) or
check (``false``) their part of it at start.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from ..errors import EX_CONFIG, EX_NOPERM, ConfigError
from ..settings import Settings
from .kafka import ensure_topics
from .security import client_options

__all__ = ["PARTS", "Acl", "Plan", "PlannedTopic", "TopicProblem", "apply_plan", "check_plan", "exit_status",
           "principal", "topic_plan"]

#: The parts of stream that use Kafka, as ``--part`` names them.
PARTS = ("worker", "webhooks", "ingest", "commands")

#: Slack above a record's size for its batch header (a record of ``max_record_bytes`` fits a
#: topic whose ``max.message.bytes`` is at least this much larger).
_HEADROOM = 1024

#: The broker's default ``message.max.bytes`` (what a topic without its own limit takes).
_BROKER_DEFAULT = 1_048_588
#: What a topic stream creates takes beside its largest record (key, headers, batch):
#: ``max.message.bytes`` = record + this, as ``Settings.topic_max_message_bytes``.
_ENVELOPE = 64 * 1024

@dataclass
class PlannedTopic:
    """One topic of the plan.

    :ivar exact: the partition count must be exactly ``partitions`` (a one-partition topic
        whose order the worker relies on), not just at least one.
    :ivar record_bytes: the largest record stream writes to it (or accepts into it, for the
        input topic); the topic's ``max.message.bytes`` must exceed it.
    """

    name: str
    partitions: int
    compacted: bool = False
    exact: bool = False
    record_bytes: int = 0
    setting: str = ""
    about: str = ""
    readers: list[str] = field(default_factory=list)
    writers: list[str] = field(default_factory=list)
    parts: set[str] = field(default_factory=set)

    @property
    def cleanup(self) -> str:
        return "compact" if self.compacted else "delete"

    @property
    def retention(self) -> str:
        return "latest record per key, kept" if self.compacted else "broker default (retention.ms)"

    @property
    def max_message_bytes(self) -> int | None:
        """``max.message.bytes`` stream creates it with (``None``: the broker's default)."""
        return self.record_bytes + _ENVELOPE if self.record_bytes + _HEADROOM > _BROKER_DEFAULT else None

    def configs(self, min_insync_replicas: int) -> dict[str, str]:
        config = {"min.insync.replicas": str(min_insync_replicas)}
        if self.compacted:
            config["cleanup.policy"] = "compact"
        if self.max_message_bytes:
            config["max.message.bytes"] = str(self.max_message_bytes)
        return config

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "partitions": self.partitions, "exact_partitions": self.exact,
                "cleanup_policy": self.cleanup, "retention": self.retention,
                "max_message_bytes": self.max_message_bytes, "largest_record": self.record_bytes or None,
                "about": self.about, "readers": self.readers, "writers": self.writers, "parts": sorted(self.parts)}


@dataclass(frozen=True)
class Acl:
    """An ALLOW rule for the application's principal, in ``kafka-acls.sh`` terms."""

    resource: Literal["topic", "group", "transactional-id", "cluster"]
    name: str
    operations: tuple[str, ...]
    prefixed: bool = False

    def kafka_acls_args(self, principal: str) -> list[str]:
        """The arguments of ``kafka-acls.sh --add`` (after the connection options)."""
        args = ["--add", "--allow-principal", principal]
        for op in self.operations:
            args += ["--operation", op]
        args += ["--cluster"] if self.resource == "cluster" else [f"--{self.resource}", self.name]
        if self.prefixed:
            args += ["--resource-pattern-type", "prefixed"]
        return args

    def as_dict(self) -> dict[str, Any]:
        return {"resource": self.resource, "name": self.name, "pattern": "prefixed" if self.prefixed else "literal",
                "operations": list(self.operations)}


@dataclass
class Plan:
    topics: dict[str, PlannedTopic]
    #: consumer group -> who uses it
    groups: dict[str, str]
    #: transactional id prefix -> who uses it (exactly-once only)
    transactional_ids: dict[str, str]
    auto_create: bool
    #: consumer group or transactional id prefix -> the part that uses it
    parts_of: dict[str, str] = field(default_factory=dict)

    @property
    def acls(self) -> list[Acl]:
        """The least a principal needs: on each topic Describe and DescribeConfigs (the start
        checks), Read where stream reads it, Write where stream writes it, Create when the
        parts create their topics; Read on each group; Write on the transactional ids."""
        acls: list[Acl] = []
        for t in self.topics.values():
            ops = (["Read"] if t.readers else []) + (["Write"] if t.writers else []) + ["Describe", "DescribeConfigs"]
            if self.auto_create:
                ops.append("Create")
            acls.append(Acl("topic", t.name, tuple(ops)))
        acls += [Acl("group", g, ("Read", "Describe")) for g in self.groups]
        acls += [Acl("transactional-id", prefix, ("Write", "Describe"), prefixed=True)
                 for prefix in self.transactional_ids]
        return acls

    def part(self, *parts: str) -> list[PlannedTopic]:
        return [t for t in self.topics.values() if t.parts & set(parts)]

    def only(self, *names: str) -> Plan:
        """This plan reduced to the topics ``names``, without groups or transactional ids
        (what a command that writes one topic checks)."""
        return Plan({n: self.topics[n] for n in names}, {}, {}, self.auto_create)

    def acl_for(self, resource: str, name: str) -> Acl | None:
        return next((a for a in self.acls if a.resource == resource and a.name == name), None)

    def as_dict(self, principal: str = "") -> dict[str, Any]:
        return {"topics": [t.as_dict() for t in self.topics.values()],
                "groups": [{"name": g, "used_by": who} for g, who in self.groups.items()],
                "transactional_ids": [{"prefix": p, "used_by": who} for p, who in self.transactional_ids.items()],
                "acls": [a.as_dict() for a in self.acls],
                "principal": principal}


def topic_plan(settings: Settings, host: Any = None, parts: Iterable[str] | None = None) -> Plan:
    """The plan of ``parts`` (default: every part; ``webhooks`` only with a ``webhooks``
    file) under ``settings``, with the loaded plugins of ``host``
    (:class:`~stream.plugins.PluginHost`): their state tables and topics.

    :raises ValueError: an unknown part.
    """
    s = settings
    wanted = set(parts) if parts is not None else {p for p in PARTS if p != "webhooks" or s.webhooks}
    unknown = wanted - set(PARTS)
    if unknown:
        raise ValueError(f"unknown part {sorted(unknown)[0]!r} (parts: {', '.join(PARTS)})")
    topics: dict[str, PlannedTopic] = {}

    def topic(part: str, name: str, partitions: int | None = None, *, read: Iterable[str] = (),
              write: Iterable[str] = (), **kwargs: Any) -> None:
        t = topics.get(name)
        if t is None:
            t = topics[name] = PlannedTopic(name, partitions or s.partitions, **kwargs)
        t.parts.add(part)
        t.readers += [r for r in read if r not in t.readers]
        t.writers += [w for w in write if w not in t.writers]

    groups: dict[str, str] = {}
    parts_of: dict[str, str] = {}
    txn: dict[str, str] = {}
    stateful: list[Any] = []
    plugin_topics: list[Any] = []
    if host is not None and "worker" in wanted:
        from .pipeline import split_stateful

        _stateless, stateful = split_stateful(host.processors())
        plugin_topics = host.topics()
    if "worker" in wanted:
        stage1, stage2 = "worker (stage 1)", "worker (stage 2)"
        both = [stage1, stage2] if stateful else [stage1]
        outputs_big: dict[str, Any] = {"record_bytes": s.max_record_bytes, "setting": "max_record_bytes"}
        topic("worker", s.topic_raw, read=[stage1], record_bytes=s.max_article_bytes, setting="max_article_bytes",
              about="articles in (setting topic_raw)")
        topic("worker", s.topic_enriched, write=both, about="enriched articles (topic_enriched)", **outputs_big)
        topic("worker", s.topic_alerts, write=both, about="alerts (topic_alerts)", **outputs_big)
        topic("worker", s.topic_dlq, write=both, about="dead letters (topic_dlq)", **outputs_big)
        if s.route_duplicates:
            topic("worker", s.topic_duplicates, write=both, about="duplicates (topic_duplicates, route_duplicates)",
                  **outputs_big)
        groups[s.app_id] = "worker stage 1 (reads topic_raw)"
        parts_of[s.app_id] = "worker"
        if stateful:
            topic("worker", s.stateful_topic, 1, read=[stage2], write=[stage1], exact=True,
                  about="the hand-off from stage 1 to stage 2 (one partition: the state is one)", **outputs_big)
            groups[f"{s.app_id}-stateful"] = "worker stage 2 (reads the hand-off)"
            parts_of[f"{s.app_id}-stateful"] = "worker"
            for name in dict.fromkeys(n for proc in stateful for n in proc.tables):
                topic("worker", f"{s.app_id}-{name}-changelog", 1, read=[stage2], write=[stage2], compacted=True,
                      exact=True, about=f"state table {name!r} (its changelog)")
        for spec in plugin_topics:
            owner = host.topic_owner.get(spec.name, "a plugin")
            topic("worker", spec.name, spec.partitions, write=both, compacted=spec.compacted,
                  about=f"declared by plugin {owner}")
        if s.processing_guarantee == "exactly_once":
            txn[f"{s.app_id}-"] = "worker stages (APP_ID-STAGE-PARTITION, exactly-once)"
            parts_of[f"{s.app_id}-"] = "worker"
    if "webhooks" in wanted:
        who = "webhook dispatcher"
        topic("webhooks", s.topic_alerts, read=[who], record_bytes=s.max_record_bytes, setting="max_record_bytes",
              about="alerts (topic_alerts)")
        topic("webhooks", s.topic_webhooks_retry, read=[who], write=[who], about="deliveries waiting for a retry")
        topic("webhooks", s.topic_webhooks_failed, read=["stream webhooks redeliver"], write=[who],
              about="deliveries that ran out of attempts")
        topic("webhooks", s.topic_webhooks_events, 1, read=[who], write=[who, "stream webhooks enable"],
              compacted=True, exact=True, about="endpoint events and digest pages")
        groups[f"{s.app_id}-webhooks"] = "webhook dispatcher (reads topic_alerts and topic_webhooks_retry)"
        parts_of[f"{s.app_id}-webhooks"] = "webhooks"
    if "ingest" in wanted:
        who = "ingester"
        topic("ingest", s.topic_raw, write=[who], record_bytes=s.max_article_bytes, setting="max_article_bytes",
              about="articles in (setting topic_raw)")
        topic("ingest", s.topic_sources, read=[who], write=[who], compacted=True, about="the feed list")
        topic("ingest", s.topic_sources_seen, read=[who], write=[who], compacted=True,
              about="what each feed has seen")
        groups[f"{s.app_id}-ingest"] = "ingesters (share the feed list)"
        parts_of[f"{s.app_id}-ingest"] = "ingest"
    if "commands" in wanted:
        topic("commands", s.topic_raw, write=["stream produce", "stream dlq replay"],
              record_bytes=s.max_article_bytes, setting="max_article_bytes", about="articles in (setting topic_raw)")
        topic("commands", s.topic_dlq, read=["stream dlq replay"], record_bytes=s.max_record_bytes,
              setting="max_record_bytes", about="dead letters (topic_dlq)")
        topic("commands", s.topic_dlq_replayed, read=["stream dlq replay"], write=["stream dlq replay"],
              compacted=True, about="the dead letters replayed (so that a replay is not repeated)")
    return Plan(topics, groups, txn, s.auto_create_topics, parts_of)


@dataclass(frozen=True)
class TopicProblem:
    """Something that keeps the cluster from serving the plan.  ``denied``: the principal
    lacks an ACL (the fix is the ``kafka-acls.sh`` line of the plan)."""

    topic: str
    problem: str
    fix: str
    denied: bool = False

    def __str__(self) -> str:
        return f"{self.topic}: {self.problem}; fix: {self.fix}"


def exit_status(problems: Iterable[TopicProblem]) -> int:
    """77 when an ACL is missing (the principal's to fix), else 78 (the topics')."""
    return EX_NOPERM if any(p.denied for p in problems) else EX_CONFIG


async def describe(bootstrap: Any, names: Iterable[str]) -> dict[str, tuple[int, dict[str, str] | None]]:
    """``{topic: (partitions, {config: value})}`` for the topics of ``names`` this principal
    sees (``cleanup.policy`` and ``max.message.bytes`` as the broker applies them; ``None``
    when it may not read the configuration)."""
    from aiokafka.errors import TopicAuthorizationFailedError

    names = sorted(set(names))
    admin = AIOKafkaAdminClient(**client_options(bootstrap))
    await admin.start()
    try:
        # list_topics first: a metadata request naming a missing topic may create it.
        existing = set(await admin.list_topics()) & set(names)
        if not existing:
            return {}
        found = {d["topic"]: len(d["partitions"]) for d in await admin.describe_topics(sorted(existing))
                 if d["error_code"] == 0}
        configs: dict[str, dict[str, str] | None] = {name: {} for name in found}
        asked = [ConfigResource(ConfigResourceType.TOPIC, name, {"cleanup.policy": None, "max.message.bytes": None})
                 for name in found]
        if asked:
            for response in await admin.describe_configs(asked):
                for resource in response.to_object()["resources"]:
                    name = resource["resource_name"]
                    if resource["error_code"] == TopicAuthorizationFailedError.errno:
                        configs[name] = None
                        continue
                    configs[name] = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
        return {name: (found[name], configs[name]) for name in found}
    finally:
        await admin.close()


def _grant(plan: Plan | None, resource: str, name: str, settings: Settings) -> str:
    """The ``kafka-acls.sh`` line that grants the plan's ACL on ``name``."""
    acl = plan.acl_for(resource, name) if plan is not None else None
    if acl is None:
        return "grant the ACLs `stream topics plan` lists"
    return (f"grant the ACL: kafka-acls.sh --bootstrap-server {settings.broker.split(',')[0].strip()} "
            "--command-config ADMIN.properties " + " ".join(acl.kafka_acls_args(principal(settings))))


def principal(settings: Settings) -> str:
    """The Kafka principal these settings connect as (``User:ANONYMOUS`` without SASL)."""
    return f"User:{settings.sasl_username or 'ANONYMOUS'}"


def compare(plan_topics: Iterable[PlannedTopic], found: dict[str, tuple[int, dict[str, str] | None]],
            settings: Settings, plan: Plan | None = None) -> list[TopicProblem]:
    """What keeps the cluster's topics from serving the plan: missing topics (or hidden from
    this principal), a wrong cleanup policy, a one-partition topic with more, a record
    limit below what stream writes.  More or fewer partitions than ``partitions`` elsewhere
    is not a problem (it only caps how many workers share the topic)."""
    problems: list[TopicProblem] = []
    bootstrap = settings.broker.split(",")[0]
    who = principal(settings)
    alter = f"kafka-configs.sh --bootstrap-server {bootstrap} --alter --entity-type topics --entity-name"
    for t in plan_topics:
        if t.name not in found:
            acl = (f"; if it exists, {who} may not Describe it: {_grant(plan, 'topic', t.name, settings)}"
                   if settings.sasl_username else "")
            problems.append(TopicProblem(
                t.name, "missing" + (f", or {who} may not Describe it" if acl else ""),
                "stream topics create (as a principal allowed to create topics), or create it as `stream topics "
                f"plan` lists{acl}"))
            continue
        partitions, configs = found[t.name]
        if configs is None:
            problems.append(TopicProblem(t.name, f"{who} may not DescribeConfigs it",
                                         _grant(plan, "topic", t.name, settings), denied=True))
            continue
        policy = set(configs.get("cleanup.policy", "delete").replace(" ", "").split(","))
        if t.compacted and "compact" not in policy:
            problems.append(TopicProblem(t.name, f"cleanup.policy is {','.join(sorted(policy))}, stream needs compact "
                                                 "(it keeps the latest record of each key)",
                                         f"{alter} {t.name} --add-config cleanup.policy=compact"))
        if not t.compacted and "compact" in policy:
            problems.append(TopicProblem(t.name, f"cleanup.policy is {','.join(sorted(policy))}: compaction would "
                                                 "drop records that share a key",
                                         f"{alter} {t.name} --add-config cleanup.policy=delete"))
        if t.exact and partitions != t.partitions:
            problems.append(TopicProblem(t.name, f"has {partitions} partitions, stream needs exactly {t.partitions}",
                                         f"delete and recreate it with {t.partitions} (stream topics create)"))
        limit = configs.get("max.message.bytes")
        # The limit matters where the parts checked write (and on the input topic, whose
        # producers must be able to send what the worker accepts); not on a topic only read.
        written = bool(t.writers) or t.name == settings.topic_raw
        if t.record_bytes and written and limit is not None and int(limit) < t.record_bytes + _HEADROOM:
            wanted = t.record_bytes + _ENVELOPE
            problems.append(TopicProblem(
                t.name, f"accepts records up to {limit} bytes (max.message.bytes), but {t.setting} = "
                        f"{t.record_bytes} allows larger ones",
                f"raise the topic's limit ({alter} {t.name} --add-config max.message.bytes={wanted}) "
                f"or lower {t.setting} (setting file or STREAM_{t.setting.upper()})"))
    return problems


async def _retrying(call: Any, *args: Any, seconds: float = 60) -> None:
    """``await call(*args)``, asked again on a retriable error for up to ``seconds``: a fresh
    cluster answers "coordinator not available" while it creates its internal topics."""
    from aiokafka.errors import KafkaError

    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        try:
            await call(*args)
            return
        except KafkaError as exc:
            if not exc.retriable or asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(0.5)


async def check_access(settings: Settings, plan: Plan, parts: Iterable[str]) -> list[TopicProblem]:
    """The consumer groups and transactional ids of ``parts`` this principal may not use
    (asked as a client does: the group's coordinator and offsets, the transaction
    coordinator of the first partition's id)."""
    from aiokafka.errors import GroupAuthorizationFailedError, TransactionalIdAuthorizationFailed

    wanted = set(parts)
    who = principal(settings)
    problems: list[TopicProblem] = []
    admin = AIOKafkaAdminClient(**client_options(settings.kafka))
    await admin.start()
    try:
        for group in (g for g in plan.groups if plan.parts_of.get(g) in wanted):
            try:
                await _retrying(admin.list_consumer_group_offsets, group)
            except GroupAuthorizationFailedError:
                problems.append(TopicProblem(f"group {group}", f"{who} may not use this consumer group",
                                             _grant(plan, "group", group, settings), denied=True))
        for prefix in (p for p in plan.transactional_ids if plan.parts_of.get(p) in wanted):
            try:
                await _retrying(admin.find_coordinator, f"{prefix}raw-0", 1)
            except TransactionalIdAuthorizationFailed:
                problems.append(TopicProblem(f"transactional id {prefix}*",
                                             f"{who} may not use these transactional ids (exactly-once)",
                                             _grant(plan, "transactional-id", prefix, settings), denied=True))
    finally:
        await admin.close()
    return problems


async def check_plan(settings: Settings, plan: Plan, parts: Iterable[str] | None = None) -> list[TopicProblem]:
    """Every problem of the topics, groups and transactional ids of ``parts`` (default: all
    of the plan's)."""
    parts = set(parts) if parts is not None else set(PARTS)
    wanted = plan.part(*parts)
    found = await describe(settings.kafka, [t.name for t in wanted])
    return compare(wanted, found, settings, plan) + await check_access(settings, plan, parts)


async def create_planned(settings: Settings, plan_topics: list[PlannedTopic]) -> list[str]:
    """Create the topics of ``plan_topics`` that are missing.  :return: their names.

    :raises ConfigError: (exit 77) the principal may not create topics.
    """
    from aiokafka.errors import ClusterAuthorizationFailedError, TopicAuthorizationFailedError

    from .kafka import cluster_replication

    try:
        replication, min_insync = await cluster_replication(settings.kafka, settings.replication_factor,
                                                            settings.min_insync_replicas)
        return await ensure_topics(settings.kafka, [(t.name, t.partitions, t.compacted) for t in plan_topics],
                                   replication, {t.name: t.configs(min_insync) for t in plan_topics}, min_insync)
    except (TopicAuthorizationFailedError, ClusterAuthorizationFailedError) as exc:
        raise ConfigError(
            f"{principal(settings)} may not create topics ({type(exc).__name__}): grant "
            "the Create operation on them (`stream topics plan` lists the ACLs), or set auto_create_topics = "
            "false and have an administrator run `stream topics create`", exit_status=EX_NOPERM) from None


async def apply_plan(settings: Settings, plan: Plan, parts: Iterable[str], who: str) -> list[str]:
    """At the start of ``who`` (the worker, the ingester, the dispatcher): create the
    missing topics of ``parts`` when ``auto_create_topics`` is on, then check them, their
    groups and transactional ids.

    :return: the topics created.
    :raises ConfigError: listing every missing or misconfigured topic and every ACL the
        principal lacks, each with its fix (exit 77 when an ACL is missing, else 78).
    """
    parts = list(parts)
    created = await create_planned(settings, plan.part(*parts)) if settings.auto_create_topics else []
    problems = await check_plan(settings, plan, parts)
    if problems:
        where = f"{settings.source}: " if settings.source else ""
        mode = ("auto_create_topics = false: stream does not create topics; "
                if not settings.auto_create_topics else "")
        raise ConfigError(
            f"{where}{who} cannot start: {mode}{len(problems)} problem(s):\n"
            + "\n".join(f"  - {p}" for p in problems)
            + "\n  (`stream topics check` lists them again; `stream topics plan` shows every topic, group and ACL)",
            exit_status=exit_status(problems))
    return created
