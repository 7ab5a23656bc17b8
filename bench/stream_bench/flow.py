"""The benchmark's Kafka arms: real workers, a raw aiokafka loop, a Quix Streams app, the
webhook dispatcher and a raw HTTP loop, each run on the same messages of the real broker.

Each Kafka arm is started first and warmed up (one record per partition goes through), so
its start-up (loading the model, joining the group) is not counted; then the messages are
produced, and the throughput is ``n / (t_last - t0)``: from the moment producing starts to
the CreateTime timestamp of the last record the arm published, read from the broker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from aiokafka import AIOKafkaConsumer

from stream.records import dumps, loads
from stream.runtime.kafka import ensure_topics, make_producer, read_records
from stream.settings import Settings

__all__ = ["FlowBench"]

SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


def pid_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (Linux ``/proc``; 0 elsewhere
    or when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def cpu_seconds(procs: Sequence[subprocess.Popen[bytes]]) -> float:
    """User + system CPU seconds used so far by ``procs``."""
    return sum(pid_cpu_seconds(proc.pid) for proc in procs)


def tree_pss_mb(pids: Sequence[int]) -> float:
    """Proportional set size (MB) of the processes ``pids`` and all their descendants (a
    worker and its model processes): shared pages counted once, split among the sharers,
    so that the sum is what the tree costs the machine (Linux, ``/proc/PID/smaps_rollup``)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    todo, total_kb = list(pids), 0
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return round(total_kb / 1024, 1)


@dataclass
class Arm:
    """What one run of one arm gave."""

    records: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return (self.records - 1) / self.seconds if self.seconds > 0 else 0.0


def _rate(timestamps_ms: Sequence[int]) -> tuple[int, float]:
    ts = sorted(timestamps_ms)
    return len(ts), max(1e-3, (ts[-1] - ts[0]) / 1000) if ts else 0.0


def _since(t0: float, timestamps_ms: Sequence[int]) -> tuple[int, float]:
    """``(n + 1, seconds)`` so that ``Arm.per_second`` is ``n / (t_last - t0)``."""
    return len(timestamps_ms) + 1, max(1e-3, max(timestamps_ms) / 1000 - t0) if timestamps_ms else 0.0


class FlowBench:
    """Runs arms against the broker at ``bootstrap``; worker logs go to ``logdir``."""

    def __init__(self, bootstrap: str, logdir: Path):
        self.bootstrap = bootstrap
        self.logdir = logdir
        self.datadir = Path(tempfile.mkdtemp(prefix="stream-bench-"))

    # ---- helpers ------------------------------------------------------------------------
    def _topics(self, partitions: int) -> dict[str, str]:
        tag = uuid.uuid4().hex[:8]
        return {"tag": tag, "raw": f"bench-{tag}.raw", "enriched": f"bench-{tag}.enriched",
                "alerts": f"bench-{tag}.alerts", "dlq": f"bench-{tag}.dlq", "partitions": str(partitions)}

    async def _worker_topics(self, t: dict[str, str], partitions: int) -> None:
        """The input and output topics of a ``stream worker`` arm, the output as the worker
        creates it (taking its largest records: it checks that at start)."""
        big = {"max.message.bytes": str(Settings().topic_max_message_bytes)}
        await ensure_topics(self.bootstrap, [(t["raw"], partitions, False), (t["enriched"], partitions, False)],
                            configs={t["enriched"]: big})

    async def _produce(self, topic: str, values: Sequence[bytes], keys: Sequence[bytes | None],
                       partitions: int) -> None:
        await ensure_topics(self.bootstrap, [(topic, partitions, False)])
        producer = make_producer(self.bootstrap)
        await producer.start()
        try:
            futures = [await producer.send(topic, value=v, key=k) for v, k in zip(values, keys, strict=True)]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    async def _count(self, topic: str) -> list[Any]:
        return [r async for r in read_records(self.bootstrap, topic, timeout=2)]

    async def _wait_records(self, topic: str, count: int, procs: Sequence[subprocess.Popen[bytes]],
                            timeout: float = 900) -> list[Any]:
        deadline = time.monotonic() + timeout
        records: list[Any] = []
        while time.monotonic() < deadline:
            records = await self._count(topic)
            if len(records) >= count:
                return records
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"a benchmark process exited ({p.returncode}); logs in {self.logdir}")
            await asyncio.sleep(1)
        raise RuntimeError(f"{topic}: {len(records)} of {count} records within {timeout}s; logs in {self.logdir}")

    def _worker(self, t: dict[str, str], name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        full = dict(os.environ, STREAM_BROKER=self.bootstrap, STREAM_APP_ID=f"bench-{t['tag']}",
                    STREAM_TOPIC_RAW=t["raw"], STREAM_TOPIC_ENRICHED=t["enriched"], STREAM_TOPIC_ALERTS=t["alerts"],
                    STREAM_TOPIC_DLQ=t["dlq"], STREAM_PARTITIONS=t["partitions"], STREAM_WEB="",
                    STREAM_DATA_DIR=str(self.datadir / f"{t['tag']}-{name}"), STREAM_WORKER_NAME=name,
                    STREAM_TOPIC_WEBHOOKS_RETRY=f"bench-{t['tag']}.retry",
                    STREAM_TOPIC_WEBHOOKS_FAILED=f"bench-{t['tag']}.failed",
                    STREAM_TOPIC_WEBHOOKS_EVENTS=f"bench-{t['tag']}.events", **env)
        log = open(self.logdir / f"worker-{t['tag']}-{name}.log", "wb")  # noqa: SIM115 - owned by the process
        return subprocess.Popen([sys.executable, "-m", "stream", "worker"], env=full, stdout=log,
                                stderr=subprocess.STDOUT)

    @staticmethod
    def _stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()

    # ---- arms ---------------------------------------------------------------------------
    async def _warm_then_measure(self, raw: str, out: str, partitions: int, values: Sequence[bytes],
                                 keys: Sequence[bytes | None], procs: Sequence[subprocess.Popen[bytes]],
                                 warm: Callable[[int], bytes]) -> tuple[list[Any], float]:
        """Send one warm-up record per partition and wait for it to come out; then produce
        ``values`` and wait for as many outputs.  :return: the outputs and t0."""
        producer = make_producer(self.bootstrap)
        await producer.start()
        try:
            for p in range(partitions):
                await (await producer.send(raw, value=warm(p), key=f"warm-{p}".encode(), partition=p))
            await self._wait_records(out, partitions, procs)
            cpu0 = cpu_seconds(procs)
            t0 = time.time()
            futures = [await producer.send(raw, value=v, key=k) for v, k in zip(values, keys, strict=True)]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        records = await self._wait_records(out, partitions + len(values), procs)
        #: CPU seconds the processes used from the end of the warm-up to the last output
        self.last_cpu_s = cpu_seconds(procs) - cpu0
        return [r for r in records if not (r.key or b"").startswith(b"warm-")], t0

    async def worker_arm(self, articles: Sequence[dict[str, Any]], env: dict[str, str], *, workers: int = 1,
                         partitions: int = 1) -> Arm:
        """Real ``stream worker`` processes, warmed up, then the articles."""
        t = self._topics(partitions)
        await self._worker_topics(t, partitions)
        procs = [self._worker(t, f"w{n}", env) for n in range(workers)]
        try:
            warm = articles[0]
            records, t0 = await self._warm_then_measure(
                t["raw"], t["enriched"], partitions, [dumps(a) for a in articles], [a["id"].encode() for a in articles],
                procs, lambda p: dumps(dict(warm, id=f"warm-{p}")))
            # Memory of the workers (and their model processes) once the articles are through.
            pss_mb = tree_pss_mb([p.pid for p in procs]) / max(1, workers)
        finally:
            self._stop(procs)
        n, seconds = _since(t0, [r.timestamp for r in records])
        return Arm(n, seconds, {"records": [loads(r.value) for r in records], "topics": t,
                                "worker_cpu_s": self.last_cpu_s, "worker_pss_mb": pss_mb})

    async def aiokafka_arm(self, values: Sequence[bytes]) -> Arm:
        """The raw loop: ``getmany`` -> ``send`` with the same producer settings as ours, and a
        commit per batch, in the benchmark's process."""
        t = self._topics(1)
        await ensure_topics(self.bootstrap, [(t["raw"], 1, False), (t["enriched"], 1, False)])
        consumer = AIOKafkaConsumer(t["raw"], bootstrap_servers=self.bootstrap, group_id=f"raw-{t['tag']}",
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        producer = make_producer(self.bootstrap)
        await consumer.start()
        await producer.start()
        stop = asyncio.Event()

        async def loop() -> None:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=500)
                futures = [await producer.send(t["enriched"], value=r.value, key=r.key)
                           for records in batches.values() for r in records]
                if futures:
                    await asyncio.gather(*futures)
                    await consumer.commit()

        task = asyncio.create_task(loop())
        try:
            records, t0 = await self._warm_then_measure(t["raw"], t["enriched"], 1, values, [None] * len(values),
                                                        [], lambda p: b'{"id": "warm"}')
        finally:
            stop.set()
            await task
            await producer.stop()
            await consumer.stop()
        n, seconds = _since(t0, [r.timestamp for r in records])
        return Arm(n, seconds)

    async def _script_arm(self, name: str, script: str, values: Sequence[bytes], *extra: str) -> Arm:
        """A passthrough application given as a Python ``script`` (argv: broker, group, input
        topic, output topic, ``extra``), run in its own process on ``values``."""
        t = self._topics(1)
        await ensure_topics(self.bootstrap, [(t["raw"], 1, False), (t["enriched"], 1, False)])
        log = open(self.logdir / f"{name}-{t['tag']}.log", "wb")  # noqa: SIM115 - owned by the process
        proc = subprocess.Popen([sys.executable, "-c", script, self.bootstrap, f"bench-{name}-{t['tag']}", t["raw"],
                                 t["enriched"], *extra], stdout=log, stderr=subprocess.STDOUT,
                                env=dict(os.environ, PYTHONWARNINGS="ignore"))
        try:
            records, t0 = await self._warm_then_measure(t["raw"], t["enriched"], 1, values, [None] * len(values),
                                                        [proc], lambda p: b'{"id": "warm"}')
        finally:
            self._stop([proc])
        n, seconds = _since(t0, [r.timestamp for r in records])
        return Arm(n, seconds)

    async def quix_arm(self, values: Sequence[bytes]) -> Arm:
        """A Quix Streams passthrough application (``sdf.to_topic``), in its own process."""
        script = (
            "import sys\n"
            "from quixstreams import Application\n"
            "app = Application(broker_address=sys.argv[1], consumer_group=sys.argv[2],"
            " auto_offset_reset='earliest', auto_create_topics=False)\n"
            "src = app.topic(sys.argv[3], value_deserializer='bytes', key_deserializer='bytes')\n"
            "dst = app.topic(sys.argv[4], value_serializer='bytes', key_serializer='bytes')\n"
            "app.dataframe(src).to_topic(dst)\n"
            "app.run()\n"
        )
        return await self._script_arm("quix", script, values)

    async def faust_arm(self, values: Sequence[bytes]) -> Arm:
        """A bare faust passthrough application with faust's default settings (an agent that
        sends each event on), in its own process: what the framework stream is built on
        gives out of the box."""
        script = (
            "import sys\n"
            "import faust\n"
            "broker, group, src_name, dst_name, datadir = sys.argv[1:6]\n"
            "app = faust.App(group, broker='kafka://' + broker, web_enabled=False, store='memory://',"
            " producer_acks=-1, consumer_auto_offset_reset='earliest', key_serializer='raw',"
            " value_serializer='raw', datadir=datadir)\n"
            "src = app.topic(src_name, key_type=bytes, value_type=bytes)\n"
            "dst = app.topic(dst_name)\n"
            "@app.agent(src)\n"
            "async def passthrough(stream):\n"
            "    async for event in stream.events():\n"
            "        await dst.send(key=event.key, value=event.value)\n"
            "sys.argv = [sys.argv[0], 'worker', '-l', 'warn']\n"
            "app.main()\n"
        )
        return await self._script_arm("faust", script, values, str(self.datadir / f"faust-{uuid.uuid4().hex[:8]}"))

    async def soak_arm(self, articles: Sequence[dict[str, Any]], env: dict[str, str],
                       marks: Sequence[int]) -> dict[str, Any]:
        """Resident memory of a worker while ``articles`` go through: RSS (from /proc) when the
        output count first reaches each of ``marks``."""
        t = self._topics(1)
        await self._worker_topics(t, 1)
        proc = self._worker(t, "soak", env)
        rss: dict[int, float] = {}
        try:
            await self._produce(t["raw"], [dumps(a) for a in articles], [a["id"].encode() for a in articles], 1)
            from stream.runtime.kafka import end_offsets

            deadline = time.monotonic() + 1800
            while len(rss) < len(marks) and time.monotonic() < deadline:
                done = sum((await end_offsets(self.bootstrap, t["enriched"])).values())
                for mark in marks:
                    if done >= mark and mark not in rss:
                        rss[mark] = _rss_mb(proc.pid)
                if proc.poll() is not None:
                    raise RuntimeError(f"the soak worker exited; logs in {self.logdir}")
                await asyncio.sleep(0.5)
        finally:
            self._stop([proc])
        return {"rss_mb": {str(k): round(v, 1) for k, v in rss.items()}}

    async def latency_arm(self, articles: Sequence[dict[str, Any]], env: dict[str, str], *, rate: float | None,
                          sink_port: int, received: dict[str, float]) -> list[float]:
        """End-to-end latency, produce -> webhook received by the local sink, per article
        (each raises an alert).  ``rate`` articles/s, or one at a time at idle."""
        t = self._topics(1)
        await ensure_topics(self.bootstrap, [(t["raw"], 1, False)])
        hooks = self.datadir / f"hooks-{t['tag']}.toml"
        hooks.write_text(f'[[endpoints]]\nid = "sink"\nurl = "http://127.0.0.1:{sink_port}/hook"\n'
                         f'secret = "{SECRET}"\n')
        proc = self._worker(t, "lat", {**env, "STREAM_WEBHOOKS": str(hooks), "STREAM_WEBHOOKS_ALLOW_LOOPBACK": "1"})
        producer = make_producer(self.bootstrap, linger_ms=0)
        await producer.start()
        sent: dict[str, float] = {}
        try:
            # Wait until the worker is up: a warm-up article went all the way through.
            warm = dict(articles[0], id=f"warm-{t['tag']}")
            await (await producer.send(t["raw"], value=dumps(warm), key=warm["id"].encode()))
            deadline = time.monotonic() + 300
            while warm["id"] not in received:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the latency worker did not start; logs in {self.logdir}")
                await asyncio.sleep(0.2)
            start = time.time()
            paced: list[asyncio.Future[Any]] = []  # delivery futures of the paced sends
            for n, article in enumerate(articles):
                a = dict(article, id=f"{article['id']}-{t['tag']}-{n}")
                if rate is None:  # idle: one article at a time
                    await asyncio.sleep(0.3)
                    sent[a["id"]] = time.time()
                    await (await producer.send(t["raw"], value=dumps(a), key=a["id"].encode()))
                    while a["id"] not in received and time.time() - sent[a["id"]] < 60:
                        await asyncio.sleep(0.002)
                else:
                    await asyncio.sleep(max(0.0, start + n / rate - time.time()))
                    sent[a["id"]] = time.time()
                    paced.append(await producer.send(t["raw"], value=dumps(a), key=a["id"].encode()))
            await asyncio.gather(*paced)  # every article acknowledged by the broker
            deadline = time.monotonic() + 300
            while not all(i in received for i in sent) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
        finally:
            await producer.stop()
            self._stop([proc])
        return [received[i] - sent[i] for i in sent if i in received]


class Sink:
    """A webhook receiver in the benchmark's event loop: notes when each article's first
    alert arrived, and every arrival time."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.times: list[float] = []
        self.port = 0

    async def start(self) -> None:
        from aiohttp import web

        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            now = time.time()
            self.times.append(now)
            try:
                article = loads(body).get("data", {}).get("article_id")
            except ValueError:
                article = None
            if article and article not in self.first:
                self.first[article] = now
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/{tail:.*}", handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        await self._runner.cleanup()


async def webhook_arms(bootstrap: str, alerts: Sequence[dict[str, Any]], concurrency: int) -> tuple[Arm, Arm]:
    """R9: the dispatcher delivering ``alerts`` from a topic (signing, Kafka state, retries
    scheduled) / a raw ``httpx`` POST loop of the same payloads at the same concurrency; both to
    the same local sink.  Throughput from the sink's arrival times."""
    import httpx

    from stream.settings import Settings
    from stream.webhooks.config import parse_subscriptions
    from stream.webhooks.delivery import Dispatcher, payload

    sink = Sink()
    await sink.start()
    try:
        tag = uuid.uuid4().hex[:8]
        settings = Settings(broker=bootstrap, app_id=f"bench-{tag}", topic_alerts=f"bench-{tag}.alerts",
                            partitions=1, topic_webhooks_retry=f"bench-{tag}.retry",
                            topic_webhooks_failed=f"bench-{tag}.failed", topic_webhooks_events=f"bench-{tag}.events")
        subs = parse_subscriptions(f'[[endpoints]]\nid = "sink"\nurl = "http://127.0.0.1:{sink.port}/hook"\n'
                                   f'secret = "{SECRET}"\nconcurrency = {concurrency}\n')
        dispatcher = Dispatcher(settings, subs, allow_loopback=True)
        # A new dispatcher group starts at the end of the alerts: fix its start, then fill
        # the backlog it is measured on.
        await dispatcher.prepare()
        producer = make_producer(bootstrap)
        await producer.start()
        try:
            futures = [await producer.send(settings.topic_alerts, value=dumps(a), key=a["rule_id"].encode())
                       for a in alerts]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        stop = asyncio.Event()
        task = asyncio.create_task(dispatcher.run(stop))
        deadline = time.monotonic() + 600
        while len(sink.times) < len(alerts) and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.05)
        stop.set()
        await task
        n, seconds = _rate([int(t * 1000) for t in sink.times])
        ours = Arm(n, seconds)
        sink.times.clear()
        bodies = [payload(a) for a in alerts]
        limit = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency + 4)) as client:
            async def post(body: bytes) -> None:
                async with limit:
                    await client.post(f"http://127.0.0.1:{sink.port}/raw", content=body,
                                      headers={"content-type": "application/json"})

            await asyncio.gather(*(post(b) for b in bodies))
        n, seconds = _rate([int(t * 1000) for t in sink.times])
        return ours, Arm(n, seconds)
    finally:
        await sink.stop()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def median_min_max(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}
