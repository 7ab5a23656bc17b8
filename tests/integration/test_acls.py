"""A cluster with tight permissions: a SASL_SSL broker with Kafka's StandardAuthorizer, where
the application's user may do only what ACLs allow and topics are not created for it
(and, in the second test, the default: the worker creates its topics with Create ACLs).

- With ``auto_create_topics = false``, no topics and no ACLs, the worker stops at start
  (exit 77) with the list of missing topics and ACLs and the commands that fix them.
- An administrator runs ``stream topics create`` and the ``kafka-acls.sh`` lines that
  ``stream topics plan`` prints (through Kafka's own ``AclCommand``).
- Without one of those ACLs, the worker stops at start (exit 77) naming it.
- With exactly those ACLs the whole chain runs under exactly-once: ``stream produce``,
  ``stream ingest --once`` from a feed, the worker's two stages, the webhook deliveries,
  ``stream dlq replay`` twice (the second skips what the first sent).
"""

from __future__ import annotations

import asyncio
import base64
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest

from stream.runtime.kafka import read_records
from stream.runtime.security import KafkaSecurity, KafkaTarget
from stream.testing import StreamTopics, StreamWorker
from stream.tools.broker import ADMIN_USER, LocalBroker

from ..conftest import ROOT, SAMPLES
from ..feed_server import FeedServer, items
from ..webhook_server import Receiver

pytestmark = pytest.mark.integration

SECRET = "whsec_" + base64.b64encode(b"acl-test-secret-0123456789abcdef").decode()


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    port = int(os.environ.get("STREAM_TEST_ACL_PORT", "19392"))
    local = LocalBroker(port, sasl_ssl=True, acls=True, directory=tmp_path_factory.mktemp("acl-broker"))
    local.start()
    yield local
    local.stop()


def cli(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stream", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def admin_target(broker: LocalBroker) -> KafkaTarget:
    return KafkaTarget(broker.sasl_bootstrap, KafkaSecurity(
        protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username=ADMIN_USER,
        sasl_password=broker.admin_password_file.read_text().strip(), ssl_cafile=str(broker.tls_dir / "ca.pem")))


def records(broker: LocalBroker, topic: str) -> list[dict]:
    async def run() -> list[dict]:
        return [orjson.loads(r.value) async for r in read_records(admin_target(broker), topic, timeout=2) if r.value]

    return asyncio.run(run())


def wait_until(check, timeout: float, what: str, worker: StreamWorker | None = None):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        if worker is not None and worker.proc.poll() is not None:
            raise AssertionError(f"the worker died while waiting for {what}:\n{worker.log_path.read_text()[-4000:]}")
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def start_fails(acl_broker: LocalBroker, topics: StreamTopics, tmp: Path, env: dict[str, str],
                name: str) -> tuple[int, str]:
    own = {k: v for k, v in env.items() if k.startswith("STREAM_")}
    worker = StreamWorker(acl_broker, topics, tmp, name=name, **own)
    try:
        status = worker.proc.wait(timeout=180)
    finally:
        worker.stop()
    return status, worker.log_path.read_text(errors="replace")


def test_a_principal_with_exactly_the_planned_acls_runs_the_whole_chain(
        acl_broker: LocalBroker, topics: StreamTopics, tmp_path: Path) -> None:
    receiver = Receiver().start()
    feeds = FeedServer().start()
    feeds.feeds = {"rss": items("acl", 2)}
    subs = tmp_path / "webhooks.toml"
    subs.write_text(f'[delivery]\nschedule = [0, 0.5]\n[[endpoints]]\nid = "sink"\nurl = "{receiver.url}"\n'
                    f'secret = "{SECRET}"\n')
    feeds_file = tmp_path / "feeds.toml"
    feeds_file.write_text(f'allow_loopback = true\n[[feeds]]\nurl = "{feeds.url("/rss.xml")}"\nsource = "acl-feed"\n')
    # Every optional part on: stories (its topic and changelog), webhooks, exactly-once.
    env = topics.env(acl_broker, tmp_path / "data", STREAM_AUTO_CREATE_TOPICS="false",
                     STREAM_PROCESSING_GUARANTEE="exactly_once", STREAM_WEBHOOKS=str(subs),
                     STREAM_WEBHOOKS_ALLOW_LOOPBACK="1", STREAM_PLUGINS="clean,ner,dedup,stories,alerts")
    admin = {**env, "STREAM_SASL_USERNAME": ADMIN_USER,
             "STREAM_SASL_PASSWORD_FILE": str(acl_broker.admin_password_file)}
    try:
        # 1. No topics, no ACLs: the worker names what is missing and how to fix it (77: ACLs
        # are missing too).
        status, log = start_fails(acl_broker, topics, tmp_path, env, "no-topics")
        assert status == 77, log[-3000:]
        assert "auto_create_topics = false" in log and f"{topics.raw}: missing" in log, log[-3000:]
        assert "stream topics create" in log

        # 2. The administrator creates the topics and grants what the plan prints.
        created = cli(admin, "topics", "create")
        assert created.returncode == 0, created.stdout + created.stderr
        plan = cli(env, "topics", "plan")
        assert plan.returncode == 0, plan.stderr
        lines = [shlex.split(line) for line in plan.stdout.splitlines() if line.startswith("kafka-acls.sh ")]
        assert lines and all(line[1:5] == ["--bootstrap-server", acl_broker.sasl_bootstrap.split(",")[0],
                                           "--command-config", "ADMIN.properties"] for line in lines), plan.stdout
        assert all("--allow-principal" in line and "User:stream" in line for line in lines)
        acls = [line[5:] for line in lines]
        assert not any("Create" in acl for acl in acls), "auto_create_topics = false needs no Create"
        group2 = next(a for a in acls if a[-2:] == ["--group", f"{topics.app_id}-stateful"])
        txn = next(a for a in acls if "--transactional-id" in a)
        topic_acl = next(a for a in acls if a[-2:] == ["--topic", topics.enriched])

        def grant(chosen: list[list[str]]) -> None:
            with ThreadPoolExecutor(4) as pool:
                for done in pool.map(lambda a: acl_broker.acl_command(*a), chosen):
                    assert done.returncode == 0, done.stdout + done.stderr

        def revoke(acl: list[str]) -> None:
            done = acl_broker.acl_command("--remove", "--force", *acl[1:])
            assert done.returncode == 0, done.stdout + done.stderr

        trio = [group2, txn, topic_acl]
        grant([a for a in acls if a not in trio])
        # 3. One ACL missing at a time: the worker stops at start and names it.
        for missing, name, code in zip(trio, ("group", "txn", "topic"), (77, 77, 78), strict=True):
            others = [a for a in trio if a is not missing]
            grant(others)
            status, log = start_fails(acl_broker, topics, tmp_path, env, f"without-{name}")
            assert status == code, log[-3000:]
            assert " ".join(missing) in log, (missing, log[-3000:])
            for other in others:
                revoke(other)
        checked = cli(env, "topics", "check")
        assert checked.returncode == 77, checked.stdout + checked.stderr
        assert f"group {topics.app_id}-stateful: User:stream may not use this consumer group" in checked.stderr

        # 4. Exactly the plan's ACLs: the whole chain.
        grant([group2, txn, topic_acl])
        checked = cli(env, "topics", "check")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        worker = StreamWorker(acl_broker, topics, tmp_path, name="granted",
                              **{k: v for k, v in env.items() if k.startswith("STREAM_")})
        try:
            worker.wait_ready(timeout=180)
            produced = cli(env, "produce", *map(str, SAMPLES), str(ROOT / "examples" / "malformed.jsonl"))
            assert produced.returncode == 0, produced.stderr
            with_feeds = {**env, "STREAM_PLUGINS": env["STREAM_PLUGINS"] + ",feeds"}
            ingested = cli(with_feeds, "ingest", str(feeds_file), "--once")
            assert ingested.returncode == 0, ingested.stdout + ingested.stderr
            want = {p.stem for p in SAMPLES}
            enriched = wait_until(lambda: (lambda got: got if want <= got and len(got) >= len(want) + 2 else None)(
                {r["id"] for r in records(acl_broker, topics.enriched)}), 240, "the enriched articles", worker)
            assert len(enriched) == len(want) + 2  # the two feed entries
            assert all(r.get("story") for r in records(acl_broker, topics.enriched))
            assert records(acl_broker, "stories"), "the story summaries were written"
            alerts = records(acl_broker, topics.alerts)
            assert alerts, "the samples raise alerts"
            receiver.wait(len(alerts), timeout=120)
            assert len({r.headers["webhook-id"] for r in receiver.requests}) >= len(alerts)
            dead = records(acl_broker, topics.dlq)
            assert len(dead) == 2, dead
        finally:
            status = worker.stop()
        log = worker.log_path.read_text(errors="replace")
        assert status == 0, log[-4000:]
        assert "AuthorizationFailed" not in log and "Authorization failed" not in log, log[-4000:]

        # 5. The dead letters replayed (with the plan's ACLs), twice: the second run skips them.
        first = cli(env, "dlq", "replay")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "replayed 2 of 2" in first.stdout, first.stdout
        second = cli(env, "dlq", "replay")
        assert second.returncode == 0, second.stdout + second.stderr
        assert "replayed 0 of 2" in second.stdout and "skipped 2 replayed before" in second.stdout, second.stdout
        again = cli(env, "dlq", "replay", "--again", "--dry-run")
        assert "would replay 2 of 2" in again.stdout, again.stdout
    finally:
        receiver.stop()
        feeds.stop()


def test_with_auto_create_the_plan_s_create_acls_let_the_worker_make_its_topics(
        acl_broker: LocalBroker, topics: StreamTopics, tmp_path: Path) -> None:
    """The default, auto_create_topics = true: with the ACLs the plan prints for it (Create on
    each topic), the worker creates its topics itself and runs; no administrator step."""
    env = topics.env(acl_broker, tmp_path / "data", STREAM_PLUGINS="clean,dedup")
    plan = cli(env, "topics", "plan", "--part", "worker")
    assert plan.returncode == 0, plan.stderr
    acls = [shlex.split(line)[5:] for line in plan.stdout.splitlines() if line.startswith("kafka-acls.sh ")]
    topic_acls = [a for a in acls if "--topic" in a]
    assert topic_acls and all("Create" in a for a in topic_acls)
    assert any(a[-2:] == ["--topic", f"{topics.app_id}-dedup-changelog"] for a in topic_acls)
    with ThreadPoolExecutor(4) as pool:
        for done in pool.map(lambda a: acl_broker.acl_command(*a), acls):
            assert done.returncode == 0, done.stdout + done.stderr
    worker = StreamWorker(acl_broker, topics, tmp_path, name="creates",
                          **{k: v for k, v in env.items() if k.startswith("STREAM_")})
    try:
        worker.wait_ready(timeout=180)
        # The worker's part has no Write on the input topic: `stream produce` is refused, in
        # one line; with the commands' ACLs too, it sends.
        denied = cli(env, "produce", str(SAMPLES[0]))
        assert denied.returncode == 77 and "is not allowed this: TopicAuthorizationFailedError" in denied.stderr, \
            denied.stderr
        assert "Traceback" not in denied.stderr
        both = cli(env, "topics", "plan", "--part", "worker", "--part", "commands")
        more = [shlex.split(line)[5:] for line in both.stdout.splitlines() if line.startswith("kafka-acls.sh ")]
        with ThreadPoolExecutor(4) as pool:
            for done in pool.map(lambda a: acl_broker.acl_command(*a), [a for a in more if a not in acls]):
                assert done.returncode == 0, done.stdout + done.stderr
        produced = cli(env, "produce", str(SAMPLES[0]))
        assert produced.returncode == 0, produced.stderr
        wait_until(lambda: [r for r in records(acl_broker, topics.enriched) if r["id"] == SAMPLES[0].stem], 180,
                   "the enriched article", worker)
    finally:
        status = worker.stop()
    log = worker.log_path.read_text(errors="replace")
    assert status == 0, log[-4000:]
    assert "created topics" in log and f"{topics.app_id}-dedup-changelog" in log, log[-4000:]
