"""The ``stream`` command line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
import time
from typing import Any, Callable, Coroutine, NamedTuple, TypeVar

import click

from . import __version__
from .errors import EX_DATAERR, EX_NOPERM, EX_NOT_RUNNING, EX_UNAVAILABLE, ConfigError, StreamError
from .ops.progress import bar
from .settings import Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])


T = TypeVar("T")


def _run_kafka(settings: Settings, run: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``run()`` after checking that Kafka answers with the security settings (a wrong
    password or an untrusted certificate is one clear error, not a client's retry loop)."""
    from aiokafka.errors import (
        ClusterAuthorizationFailedError,
        GroupAuthorizationFailedError,
        TopicAuthorizationFailedError,
        TransactionalIdAuthorizationFailed,
    )

    from .runtime.plan import principal
    from .runtime.security import check_connection

    async def checked() -> T:
        await check_connection(settings.kafka)
        try:
            return await run()
        except (TopicAuthorizationFailedError, GroupAuthorizationFailedError, TransactionalIdAuthorizationFailed,
                ClusterAuthorizationFailedError) as exc:
            # A missing ACL: one line that says so (exit 77), not a client's traceback.
            raise ConfigError(f"{principal(settings)} is not allowed this: {type(exc).__name__}: {exc}; "
                              "`stream topics plan` lists the ACLs each part of stream needs (`--part commands` "
                              "for the commands)", exit_status=EX_NOPERM) from None

    return asyncio.run(checked())


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    settings: Settings = ctx.obj["settings"]
    if any(v is not None for v in overrides.values()):
        return load_settings(ctx.obj["config"], **overrides)
    return settings


def _use_config(ctx: click.Context, config: str | None) -> None:
    """Read the settings from ``config`` (``None``: the search path) into the root context,
    or stop with the configuration error (exit 78)."""
    ctx.obj["config"] = config
    try:
        ctx.obj["settings"] = load_settings(config)
    except ConfigError as exc:
        click.echo(f"stream: configuration error: {exc}", err=True)
        sys.exit(exc.exit_status)


def _late_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """``--config FILE`` after the command (``stream worker --config FILE``): the settings
    are read again from it, as ``stream --config FILE worker`` would."""
    if value is not None:
        _use_config(ctx.find_root(), value)


def _with_config_option(command: click.Command) -> None:
    """Give ``command`` (and its subcommands) a ``--config`` option of its own."""
    if not any(p.name == "late_config" for p in command.params):
        command.params.append(click.Option(
            ["--config", "late_config"], type=click.Path(dir_okay=False), expose_value=False, is_eager=True,
            callback=_late_config, help="Settings file (TOML): the same as `stream --config FILE ...`."))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _with_config_option(sub)


class _Group(click.Group):
    """Turns stream's own errors into one clear line and an exit status, and adds the
    commands of plugins (``stream_register_commands``) when they are asked for."""

    _plugin_commands_loaded = False

    def _load_plugin_commands(self, ctx: click.Context) -> None:
        if self._plugin_commands_loaded:
            return
        self._plugin_commands_loaded = True
        from .plugins import get_plugin_manager

        try:
            host = get_plugin_manager(load_settings(ctx.params.get("config")))
        except Exception as exc:  # a broken plugin must not take the command line down
            click.echo(f"stream: warning: plugin commands unavailable: {exc}", err=True)
            return
        for warning in host.register_commands(self):
            click.echo(f"stream: warning: {warning}", err=True)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None:
            self._load_plugin_commands(ctx)
            command = super().get_command(ctx, cmd_name)
        if command is not None:
            _with_config_option(command)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands(ctx)
        return super().list_commands(ctx)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(f"stream: configuration error: {exc}", err=True)
            sys.exit(exc.exit_status)
        except StreamError as exc:
            click.echo(f"stream: error: {exc}", err=True)
            sys.exit(exc.exit_status)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="Settings file (TOML). Default: $STREAM_CONFIG, else the first of ./stream.toml, "
                   "$XDG_CONFIG_HOME/stream/stream.toml (~/.config) and /etc/stream/stream.toml that exists.")
@click.version_option(__version__, prog_name="stream")
@click.pass_context
def main(ctx: click.Context, config: str | None) -> None:
    """stream: news articles in, enriched records and alerts out, over Apache Kafka."""
    ctx.ensure_object(dict)
    _use_config(ctx, config)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


# -- broker ----------------------------------------------------------------------------


@main.group()
def broker() -> None:
    """Run a local Apache Kafka (KRaft; 1 or 3 nodes) for development and tests."""


def _port_option(f: F) -> F:
    return click.option("--port", type=int, default=None, envvar="STREAM_BROKER_PORT",
                        help="Client port on 127.0.0.1 (default 9092, or the port of the "
                             "broker setting); the controller uses PORT+1.")(f)


def _local(ctx: click.Context, port: int | None, nodes: int | None = None, sasl_ssl: bool | None = None,
           acls: bool | None = None) -> Any:
    from .tools.broker import LocalBroker

    if port is None:
        first = ctx.obj["settings"].broker.split(",")[0]
        port = int(first.rsplit(":", 1)[1]) if ":" in first else 9092
    return LocalBroker(port, nodes=nodes, sasl_ssl=sasl_ssl, acls=acls)


@broker.command("start")
@_port_option
@click.option("--nodes", type=click.Choice(["1", "3"]), default=None,
              help="Nodes of the local cluster (each a broker and a controller). Default: 1, or what "
                   "the broker directory was made with.")
@click.option("--sasl-ssl", "sasl_ssl", is_flag=True, default=None,
              help="Add a SASL_SSL listener on PORT+2 (local CA, SCRAM-SHA-512/256 and PLAIN user "
                   "'stream'); its client settings are written to client/client.env.")
@click.option("--acls", "acls", is_flag=True, default=None,
              help="With --sasl-ssl: Kafka's StandardAuthorizer on; user 'stream' may do only what ACLs "
                   "allow, user 'admin' may do anything (client/admin.properties, for kafka-acls.sh).")
@click.option("--timeout", type=float, default=90.0, show_default=True,
              help="Seconds to wait for the broker to answer.")
@click.pass_context
def broker_start(ctx: click.Context, port: int | None, nodes: str | None, sasl_ssl: bool | None,
                 acls: bool | None, timeout: float) -> None:
    """Start the broker in the background (fetching Kafka first if needed)."""
    local = _local(ctx, port, int(nodes) if nodes else None, sasl_ssl, acls)
    if not local.status().running:
        click.echo(f"starting Apache Kafka {local.version} on {local.bootstrap} ...", err=True)
    click.echo(local.start(timeout=timeout))


@broker.command("stop")
@_port_option
@click.pass_context
def broker_stop(ctx: click.Context, port: int | None) -> None:
    """Stop the broker cleanly."""
    click.echo(_local(ctx, port).stop())


@broker.command("status")
@_port_option
@click.pass_context
def broker_status(ctx: click.Context, port: int | None) -> None:
    """Say whether the broker runs; exit status 0 if it does, 3 if not."""
    status = _local(ctx, port).status()
    if status.running:
        click.echo(f"running on {status.bootstrap} (pid {status.pid}); log: {status.log}")
    else:
        click.echo(f"not running on {status.bootstrap}")
        sys.exit(EX_NOT_RUNNING)


@broker.command("certs")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--host", "hosts", multiple=True, help="A broker host name the certificate names (repeat).")
def broker_certs(directory: str, hosts: tuple[str, ...]) -> None:
    """Make a CA and a broker certificate (PEM keystore) in DIRECTORY, for brokers elsewhere
    (docker-compose.yml's: --host kafka-1 --host kafka-2 --host kafka-3)."""
    from pathlib import Path

    from .tools.broker import make_certificates

    make_certificates(Path(directory), hosts)
    click.echo(f"CA: {directory}/ca.pem (clients: ssl_cafile); broker keystore: {directory}/broker-keystore.pem "
               f"(ssl.keystore.type=PEM); client certificate for mutual TLS: {directory}/client.pem, client.key")


@broker.command("fetch")
@click.pass_context
def broker_fetch(ctx: click.Context) -> None:
    """Fetch the Kafka artifacts from Maven Central into the cache (no start)."""
    libs = _local(ctx, None).libs()
    click.echo(f"Apache Kafka jars in {libs}")


# -- produce / tail --------------------------------------------------------------------


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--topic", default=None, help="Topic to send to (default: the topic_raw setting).")
@click.pass_context
def produce(ctx: click.Context, files: tuple[str, ...], topic: str | None) -> None:
    """Send articles from FILES (.txt, .json, .jsonl, or - for stdin) to Kafka."""
    from .runtime.inputs import read_inputs
    from .runtime.kafka import make_producer
    from .runtime.plan import Plan, PlannedTopic, apply_plan, topic_plan

    settings = _settings(ctx)
    target = topic or settings.topic_raw
    records = list(read_inputs(files))
    commands = topic_plan(settings, None, ["commands"])
    plan = (commands.only(target) if target in commands.topics else  # the input topic, as planned
            Plan({target: PlannedTopic(target, settings.partitions, parts={"commands"}, writers=["stream produce"])},
                 {}, {}, settings.auto_create_topics))

    async def run() -> int:
        await apply_plan(settings, plan, ["commands"], "stream produce")
        producer = make_producer(settings.kafka)
        await producer.start()
        try:
            futures = [await producer.send(target, value=r.value, key=r.key)
                       for r in bar(records, f"sending to {target}")]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        return len(futures)

    sent = _run_kafka(settings, run)
    click.echo(f"sent {sent} record{'s' if sent != 1 else ''} to {target}")


@main.command()
@click.argument("topic")
@click.option("-n", "--lines", "count", type=int, default=10, show_default=True,
              help="Print the last N records (0: all of them).")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new records as they arrive.")
@click.pass_context
def tail(ctx: click.Context, topic: str, count: int, follow: bool) -> None:
    """Print the last records of TOPIC as JSON lines."""
    from .runtime.kafka import end_offsets, read_records

    settings = _settings(ctx)

    async def run() -> None:
        ends = await end_offsets(settings.kafka, topic)
        start = {p: max(0, end - count) for p, end in ends.items()} if count else None
        records = [r async for r in read_records(settings.kafka, topic, start=start, timeout=5)]
        records.sort(key=lambda r: (r.timestamp, r.partition, r.offset))
        for rec in records[-count:] if count else records:
            _print_value(rec.value)
        if follow:
            after = {p: off for p, off in (await end_offsets(settings.kafka, topic)).items()}
            async for rec in read_records(settings.kafka, topic, start=after, timeout=None, follow=True):
                _print_value(rec.value)

    with contextlib.suppress(KeyboardInterrupt):
        _run_kafka(settings, run)


def _print_value(value: bytes | None) -> None:
    sys.stdout.buffer.write((value or b"null").rstrip(b"\n") + b"\n")
    sys.stdout.flush()


# -- process / worker / plugins --------------------------------------------------------


def _rules_option(f: F) -> F:
    return click.option("--rules", type=click.Path(dir_okay=False, exists=True), default=None,
                        help="Alert rules file (default: the rules setting, else the built-in rules).")(f)


@main.command()
@click.argument("files", nargs=-1, required=True)
@_rules_option
@click.pass_context
def process(ctx: click.Context, files: tuple[str, ...], rules: str | None) -> None:
    """Run the plugin chain in-process on FILES, no Kafka: one enriched JSON line per input.

    Dead letters are printed to stderr as JSON lines; the exit status is 65 if there were any.
    """
    from .runtime.embedded import run_embedded

    settings = _settings(ctx, rules=rules)
    dead = run_embedded(settings, files, sys.stdout.buffer, sys.stderr.buffer)
    if dead:
        click.echo(f"stream: {dead} record(s) could not be processed (see the dead letters above)",
                   err=True)
        sys.exit(EX_DATAERR)


@main.command()
@click.option("--batch-size", type=int, default=None, help="Articles per batch.")
@_rules_option
@click.option("-l", "--loglevel", type=click.Choice(["debug", "info", "warn", "error"]),
              default=None, help="Log level (default: the log_level setting).")
@click.pass_context
def worker(ctx: click.Context, batch_size: int | None, loglevel: str | None, rules: str | None) -> None:
    """Run a worker: consume articles.raw, run the chain, publish the results."""
    from .runtime.worker import run_worker

    settings = _settings(ctx, batch_size=batch_size, log_level=loglevel, rules=rules)
    sys.exit(run_worker(settings))


@main.command()
@click.argument("sources_file", metavar="FEEDS.toml", type=click.Path(dir_okay=False))
@click.option("--once", is_flag=True, help="Poll every entry once, send what is new, and exit (cron jobs, tests); "
                                           "exit status 69 when an entry failed.")
@click.option("--web", default=None, help="The web server's host:port (POST /articles, metrics, health, its page); "
                                          "default: the ingest_web setting; '' turns it off.")
@click.option("-l", "--loglevel", type=click.Choice(["debug", "info", "warn", "error"]),
              default=None, help="Log level (default: the log_level setting).")
@click.pass_context
def ingest(ctx: click.Context, sources_file: str, once: bool, web: str | None, loglevel: str | None) -> None:
    """Poll the feeds (and every installed source) of FEEDS.toml and send new articles to
    articles.raw; serve POST /articles.  Runs apart from the workers: scale each on its own."""
    from .ops.logs import configure_logging
    from .plugins import get_plugin_manager
    from .sources.config import load_sources
    from .sources.ingest import Ingester, describe

    settings = _settings(ctx, log_level=loglevel)
    kinds = get_plugin_manager(settings).sources()
    sources = load_sources(sources_file, kinds)
    token = settings.push_token
    configure_logging(settings)
    if once:
        async def run_once() -> list[Any]:
            return await Ingester(settings, sources, kinds).run_once()

        outcomes = _run_kafka(settings, run_once)
        click.echo(describe(outcomes))
        sys.exit(EX_UNAVAILABLE if any(o.result == "error" for o in outcomes) else 0)

    address = settings.ingest_web if web is None else web

    async def run() -> None:
        import signal as _signal

        from .sources.web import serve_ingester

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (_signal.SIGTERM, _signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        ingester = Ingester(settings, sources, kinds)
        dashboard = settings.dashboard_token
        server = asyncio.create_task(serve_ingester(address, ingester, token, dashboard)) if address else None
        try:
            await ingester.run(stop)
        finally:
            if server is not None:
                server.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await server

    _run_kafka(settings, run)


@main.command()
@click.pass_context
def plugins(ctx: click.Context) -> None:
    """List the loaded plugins and the processors in the order they run."""
    from .plugins import get_plugin_manager

    host = get_plugin_manager(_settings(ctx))
    procs = host.processors()
    by_name = {p.name: p for p in host.loaded}
    click.echo(f"{'#':>2}  {'processor':<12} {'version':<9} {'order':>5}  plugin (package version)")
    for position, proc in enumerate(procs, start=1):
        owner = by_name.get(host.owner.get(proc.name, ""))
        source = f"{owner.name} ({owner.package} {owner.version})" if owner else "?"
        click.echo(f"{position:>2}  {proc.name:<12} {proc.version:<9} {proc.order:>5}  {source}")
    for kind, cls in sorted(host.sources().items()):
        owner = by_name.get(host.owner.get("source:" + kind, ""))
        source = f"{owner.name} ({owner.package} {owner.version})" if owner else "?"
        click.echo(f" -  {'[[' + kind + ']]':<12} {cls.version:<9} {'':>5}  {source}  (a source of stream ingest)")
    idle = [p for p in host.loaded if p.name not in host.owner.values()]
    for p in idle:
        click.echo(f" -  {'(no processor)':<12} {'':<9} {'':>5}  {p.name} ({p.package} {p.version})")
    if not host.loaded:
        click.echo("no plugins installed (entry-point group 'stream.plugins')")


@main.command()
@click.argument("files", nargs=-1)
@click.option("--timeout", type=float, default=180.0, show_default=True,
              help="Seconds to wait for the results.")
@click.pass_context
def demo(ctx: click.Context, files: tuple[str, ...], timeout: float) -> None:
    """Run a worker over sample articles on the local broker and show what comes out."""
    from .tools.demo import run_demo

    sys.exit(run_demo(_settings(ctx), files or ("examples/articles",), timeout=timeout))


@main.command("new-plugin")
@click.argument("name")
@click.option("--directory", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Where to create the NAME/ directory.")
@click.option("--source", is_flag=True, help="A source for `stream ingest` ([[NAME]] tables of the sources file) "
                                             "instead of a processor.")
def new_plugin_command(name: str, directory: str, source: bool) -> None:
    """Create NAME/, a working plugin package: pyproject.toml with the entry point, a
    processor (or, with --source, a source), a README and passing tests."""
    from pathlib import Path

    from .tools.scaffold import new_plugin

    try:
        root = new_plugin(name, Path(directory), source=source)
    except ConfigError as exc:  # a name or directory given on the command line: a usage error (2)
        raise click.BadParameter(str(exc), param_hint="NAME") from None
    click.echo(f"created {root}/\nnext: cd {root} && pip install -e '.[test]' && stream plugins && pytest")


# -- webhooks ------------------------------------------------------------------------------


@main.group()
def webhooks() -> None:
    """Deliver alerts to webhook subscribers: check, run, redeliver, enable."""


@webhooks.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def webhooks_check(file: str) -> None:
    """Validate a subscriptions FILE (exit 78 with the line and the problem)."""
    from .webhooks.config import load_subscriptions

    subs = load_subscriptions(file)
    click.echo(f"{file}: {len(subs.endpoints)} endpoint(s) OK; retry schedule "
               f"{', '.join(f'{s:g}s' for s in subs.schedule)}")


def _run_dispatcher(settings: Settings) -> None:
    import signal as _signal

    from .webhooks.config import load_subscriptions
    from .webhooks.delivery import Dispatcher

    if not settings.webhooks:
        raise ConfigError("no subscriptions: set STREAM_WEBHOOKS (or `webhooks` in the settings file) to the "
                          "subscriptions file")
    dispatcher = Dispatcher(settings, load_subscriptions(settings.webhooks),
                            allow_loopback=settings.webhooks_allow_loopback)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (_signal.SIGTERM, _signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await dispatcher.run(stop)

    logging.getLogger("stream").setLevel(logging.INFO)
    _run_kafka(settings, run)


@webhooks.command("run")
@click.pass_context
def webhooks_run(ctx: click.Context) -> None:
    """Deliver alerts to the endpoints of STREAM_WEBHOOKS, alone (scale it on its own)."""
    _run_dispatcher(_settings(ctx))


@webhooks.command("redeliver")
@click.option("--endpoint", default=None, help="The endpoint (required for a backfill of alerts).")
@click.option("--since", default=None, help="ISO 8601 time: alerts raised (with --failed: deliveries failed) "
                                            "at or after it.")
@click.option("--until", default=None, help="ISO 8601 time: only those before it.")
@click.option("--failed", is_flag=True, help="Send the failed deliveries (webhooks.failed) again, instead of alerts.")
@click.pass_context
def webhooks_redeliver(ctx: click.Context, endpoint: str | None, since: str | None, until: str | None,
                       failed: bool) -> None:
    """Queue deliveries again, with their webhook-id: the alerts raised since a time to one
    endpoint (a backfill: a new endpoint receives only the alerts raised after it was added),
    or, with --failed, the deliveries that failed for good."""
    from .records import dumps, loads
    from .runtime.kafka import make_producer, read_records
    from .webhooks.delivery import backfill_jobs

    settings = _settings(ctx)

    async def failed_jobs() -> list[dict[str, Any]]:
        chosen = []
        async for rec in read_records(settings.kafka, settings.topic_webhooks_failed, timeout=2):
            job = loads(rec.value or b"null")
            if not isinstance(job, dict) or "webhook_id" not in job:
                continue  # an invalid record kept there by the dispatcher: nothing to deliver
            at = job.get("failed_at", "")
            if (endpoint and job.get("endpoint") != endpoint) or (since and at < since) or (until and at >= until):
                continue
            chosen.append({k: v for k, v in job.items() if k not in ("failed_at", "reason")} |
                          {"attempts": [], "due": time.time()})
        return chosen

    async def run() -> int:
        if failed:
            chosen = await failed_jobs()
        else:
            if not endpoint or not since:
                raise click.UsageError("a backfill needs --endpoint ID and --since TIME (or use --failed)")
            from .webhooks.config import load_subscriptions

            if not settings.webhooks:
                raise ConfigError("no subscriptions: set STREAM_WEBHOOKS (or `webhooks` in the settings file) "
                                  "to the file that defines the endpoint")
            subs = load_subscriptions(settings.webhooks)
            target = subs.endpoint(endpoint)
            if target is None:
                raise ConfigError(f"endpoint {endpoint!r} is not in {settings.webhooks}; known: "
                                  f"{', '.join(e.id for e in subs.endpoints)}")
            chosen = await backfill_jobs(settings, target, _epoch_ms(since), _epoch_ms(until) if until else None)
        producer = make_producer(settings.kafka)
        await producer.start()
        try:
            for job in bar(chosen, "redelivering"):
                await (await producer.send(settings.topic_webhooks_retry, value=dumps(job),
                                           key=job["webhook_id"].encode()))
        finally:
            await producer.stop()
        return len(chosen)

    count = _run_kafka(settings, run)
    what = "failed deliver" + ("y" if count == 1 else "ies") if failed else "alert" + ("" if count == 1 else "s")
    click.echo(f"{count} {what} queued on {settings.topic_webhooks_retry}"
               + ("" if failed else f" for endpoint {endpoint}"))


def _epoch_ms(text: str) -> int:
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time such as 2026-11-23T10:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@webhooks.command("enable")
@click.argument("endpoint")
@click.pass_context
def webhooks_enable(ctx: click.Context, endpoint: str) -> None:
    """Turn a disabled ENDPOINT back on (publishes an endpoint.enabled event)."""
    from .records import dumps, utcnow
    from .runtime.kafka import make_producer
    from .runtime.plan import apply_plan, topic_plan

    settings = _settings(ctx)
    plan = topic_plan(settings, None, ["webhooks"]).only(settings.topic_webhooks_events)

    async def run() -> None:
        await apply_plan(settings, plan, ["webhooks"], "stream webhooks enable")
        producer = make_producer(settings.kafka)
        await producer.start()
        try:
            event = {"type": "endpoint.enabled", "endpoint": endpoint, "at": utcnow()}
            await (await producer.send(settings.topic_webhooks_events, value=dumps(event), key=endpoint.encode()))
        finally:
            await producer.stop()

    _run_kafka(settings, run)
    click.echo(f"endpoint {endpoint} enabled (running dispatchers deliver to it again within seconds)")


@main.command("webhook-sink")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8099, show_default=True)
@click.option("--secret", default=None, envvar="STREAM_SINK_SECRET", help="whsec_ secret to verify signatures with.")
@click.option("--format", "fmt", type=click.Choice(["standard", "slack", "teams-workflow", "teams"]),
              default="standard", show_default=True,
              help="The endpoint format to expect: slack, teams-workflow and teams are checked for the shape "
                   "the chat service accepts and shown as its client would show them.")
def webhook_sink(host: str, port: int, secret: str | None, fmt: str) -> None:
    """A small receiver for demos and tests: verifies signatures, prints each alert (or,
    with --format slack|teams-workflow|teams, what the chat client would show)."""
    from .tools.sink import run_sink

    run_sink(port, secret, host=host, fmt=fmt)


# -- dead letters -------------------------------------------------------------------------


class _Replay(NamedTuple):
    """A dead letter ``stream dlq replay`` sends back: its marker in ``topic_dlq_replayed``,
    the letter, the original key and headers, the original (``None`` while only its start is
    known) and where the worker read it."""

    marker: bytes
    letter: dict[str, Any]
    key: bytes | None
    headers: list[tuple[str, bytes]]
    original: bytes | None
    source: tuple[str, int, int] | None


@main.group()
def dlq() -> None:
    """Dead letters: replay them after a fix."""


@dlq.command("replay")
@click.option("--since", default=None, help="Only dead letters that failed at or after this ISO 8601 time "
                                            "(2026-12-04T10:00:00+01:00; without a zone: UTC).")
@click.option("--until", default=None, help="Only those that failed before this ISO 8601 time (without a zone: UTC).")
@click.option("--stage", default=None, help="Only those that failed in this stage (error.stage: decode, ner, ...).")
@click.option("--again", is_flag=True, help="Replay dead letters that an earlier replay sent already.")
@click.option("--dry-run", is_flag=True, help="Count what would be replayed; send nothing.")
@click.pass_context
def dlq_replay(ctx: click.Context, since: str | None, until: str | None, stage: str | None, again: bool,
               dry_run: bool) -> None:
    """Re-submit dead letters to articles.raw: the original bytes, key and headers.

    What was replayed is recorded (topic_dlq_replayed), so a second run skips it unless
    --again is given.  A dead letter whose original was cut to fit is replayed whole, read
    back from its source topic; when that record is gone (retention), it is skipped and named.
    """
    import base64

    from .records import dumps, loads, utcnow
    from .runtime.kafka import fetch_records, make_producer, read_records
    from .runtime.plan import apply_plan, topic_plan

    settings = _settings(ctx)
    start, end = (_epoch_ms(since) if since else None), (_epoch_ms(until) if until else None)
    plan = topic_plan(settings, None, ["commands"])

    def failed_ms(letter: dict[str, Any]) -> int | None:
        try:
            return _epoch_ms(str(letter.get("failed_at", "")))
        except click.BadParameter:
            return None

    async def run() -> tuple[int, int, int, list[str]]:
        await apply_plan(settings, plan, ["commands"], "stream dlq replay")
        # marker (DLQ-TOPIC:PARTITION:OFFSET) -> the failed_at of the dead letter replayed: a
        # dead-letter topic made again starts its offsets again, and its letters are new.
        done: dict[bytes, str] = {}
        async for rec in read_records(settings.kafka, settings.topic_dlq_replayed, timeout=2):
            if rec.key is not None:
                if rec.value is None:
                    done.pop(rec.key, None)
                else:
                    with contextlib.suppress(Exception):
                        done[rec.key] = str(loads(rec.value).get("failed_at"))
        chosen: list[_Replay] = []
        total = skipped = 0
        async for rec in read_records(settings.kafka, settings.topic_dlq, timeout=2):
            total += 1
            letter = loads(rec.value or b"null")
            at = failed_ms(letter) if start is not None or end is not None else None
            error = letter.get("error") or {}
            if ((start is not None and (at is None or at < start)) or (end is not None and (at is None or at >= end))
                    or (stage and error.get("stage", error.get("plugin")) != stage)):
                continue
            marker = f"{settings.topic_dlq}:{rec.partition}:{rec.offset}".encode()
            if done.get(marker) == str(letter.get("failed_at")) and not again:
                skipped += 1
                continue
            src = letter.get("source") or {}
            chosen.append(_Replay(
                marker, letter, rec.key, [(k, v) for k, v in rec.headers if not k.startswith("stream-")],
                None if letter.get("original_truncated") else base64.b64decode(letter["original"]),
                (src["topic"], src["partition"], src["offset"]) if src.get("topic") is not None else None))
        # An original cut to fit is read back whole from where the worker read it.
        cut = [r.source for r in chosen if r.original is None and r.source is not None]
        whole = await fetch_records(settings.kafka, cut) if cut else {}
        lost: list[str] = []
        sendable: list[_Replay] = []
        for r in chosen:
            if r.original is None:
                found = whole.get(r.source) if r.source is not None else None
                if found is None or found.value is None:
                    where = "{} {}:{}".format(*r.source) if r.source is not None else "an unknown place"
                    lost.append(f"{r.letter.get('article_id') or r.marker.decode()} (its original at {where} is gone)")
                    continue
                r = r._replace(original=found.value)
            sendable.append(r)
        if dry_run:
            return len(sendable), total, skipped, lost
        producer = make_producer(settings.kafka, max_request_size=settings.topic_max_message_bytes + 65536)
        await producer.start()
        try:
            futures = [await producer.send(settings.topic_raw, value=r.original, key=r.key, headers=r.headers)
                       for r in bar(sendable, f"replaying to {settings.topic_raw}")]
            await asyncio.gather(*futures)
            # Recorded only once the broker acknowledged every replayed article: a replay cut
            # short is repeated whole (the worker's dedup sees the same ids), never lost.
            now = utcnow()
            marks = [await producer.send(settings.topic_dlq_replayed, key=r.marker, value=dumps(
                {"replayed_at": now, "article_id": r.letter.get("article_id"), "failed_at": r.letter.get("failed_at"),
                 "to": settings.topic_raw}))
                for r in sendable]
            await asyncio.gather(*marks)
        finally:
            await producer.stop()
        return len(sendable), total, skipped, lost

    replayed, total, skipped, lost = _run_kafka(settings, run)
    verb = "would replay" if dry_run else "replayed"
    note = f"; skipped {skipped} replayed before (--again replays them)" if skipped else ""
    click.echo(f"{verb} {replayed} of {total} dead letter(s) to {settings.topic_raw}{note}")
    for what in lost:
        click.echo(f"stream: not replayed: {what}", err=True)
    if lost:
        sys.exit(EX_DATAERR)


_SECRET_KEY = re.compile(r"(?i)secret|token|password|passwd|api[_-]?key")


@main.group("config")
def config_group() -> None:
    """The settings in effect."""


@config_group.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print the settings in effect, each with where its value came from (the default, the
    file and line, an environment variable, an option); secrets are masked."""
    import json
    from dataclasses import fields as dataclass_fields

    from .settings import SECRETS

    settings = _settings(ctx)

    def shown(name: str, value: Any) -> str:
        if value not in ("", None, (), []) and (name in SECRETS or _SECRET_KEY.search(name)):
            return '"***"'
        return json.dumps(list(value) if isinstance(value, tuple) else value, ensure_ascii=False, default=str)

    click.echo(f"# settings file: {settings.source or '(none: the defaults and the environment)'}")
    for f in dataclass_fields(Settings):
        if f.name in ("plugin_settings", "source", "origins"):
            continue
        origin = settings.origins.get(f.name, "default")
        click.echo(f"{f.name} = {shown(f.name, getattr(settings, f.name))}  # {origin}")
    for plugin, table in sorted(settings.plugin_settings.items()):
        click.echo(f"\n[plugins.{plugin}]")
        for key, value in sorted(table.items()):
            click.echo(f"{key} = {shown(key, value)}  # {settings.origins.get(f'plugins.{plugin}.{key}', '?')}")


# -- topics ------------------------------------------------------------------------------


@main.group()
def topics() -> None:
    """The topics, consumer groups, transactional ids and ACLs stream needs: plan, create, check."""


def _part_option(f: F) -> F:
    from .runtime.plan import PARTS

    return click.option(
        "--part", "parts", multiple=True, type=click.Choice(PARTS),
        help="Only this part (repeat for several). Default: the worker, the ingester, the commands, and "
             "the webhook dispatcher when the webhooks setting is set.")(f)


def _plan(ctx: click.Context, parts: tuple[str, ...]) -> tuple[Settings, Any]:
    from .plugins import get_plugin_manager
    from .runtime.plan import topic_plan

    settings = _settings(ctx)
    host = get_plugin_manager(settings) if not parts or "worker" in parts else None
    return settings, topic_plan(settings, host, parts or None)


@topics.command("plan")
@_part_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--principal", default=None,
              help="The application's principal in the ACLs (default: User:SASL_USERNAME, else User:stream).")
@click.pass_context
def topics_plan(ctx: click.Context, parts: tuple[str, ...], fmt: str, principal: str | None) -> None:
    """Print every topic (partitions, cleanup policy, retention, max.message.bytes, who reads and
    writes it), consumer group and transactional id of these settings and the installed
    plugins, and the ACLs a least-privilege principal needs, as kafka-acls.sh commands."""
    import json

    settings, plan = _plan(ctx, parts)
    principal = principal or f"User:{settings.sasl_username or 'stream'}"
    if fmt == "json":
        click.echo(json.dumps(plan.as_dict(principal), indent=2))
        return
    replication = (f"replication factor {settings.replication_factor}" if settings.replication_factor
                   else "replication factor: the brokers, at most 3")
    click.echo(f"# topics ({replication}; auto_create_topics = {str(plan.auto_create).lower()})")
    rows = [("topic", "partitions", "cleanup", "retention", "max.message.bytes", "written by", "read by")]
    for t in plan.topics.values():
        rows.append((t.name, f"{'=' if t.exact else ''}{t.partitions}", t.cleanup, t.retention,
                     str(t.max_message_bytes or "broker default"), ", ".join(t.writers) or "-",
                     ", ".join(t.readers) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    click.echo("# (=1: exactly one partition; other counts are the partitions setting and cap the workers)")
    click.echo("\n# consumer groups")
    for group, who in plan.groups.items():
        click.echo(f"{group}  ({who})")
    click.echo("\n# transactional ids (processing_guarantee = exactly_once)")
    for prefix, who in plan.transactional_ids.items():
        click.echo(f"{prefix}*  (prefixed; {who})")
    if not plan.transactional_ids:
        click.echo(f"(none: processing_guarantee = {settings.processing_guarantee})")
    click.echo(f"\n# ACLs of {principal}: run as an administrator (ADMIN.properties: its client settings)")
    bootstrap = settings.broker.split(",")[0].strip()
    for acl in plan.acls:
        click.echo(f"kafka-acls.sh --bootstrap-server {bootstrap} --command-config ADMIN.properties "
                   + " ".join(acl.kafka_acls_args(principal)))


@topics.command("check")
@_part_option
@click.pass_context
def topics_check(ctx: click.Context, parts: tuple[str, ...]) -> None:
    """Compare the cluster's topics, and this principal's access to them, its groups and
    transactional ids, with the plan: exit 0 when all is as planned; else each problem and
    its fix, and exit 77 when an ACL is missing, 78 otherwise."""
    from .runtime.plan import check_plan, exit_status

    settings, plan = _plan(ctx, parts)
    wanted = list(plan.topics.values())
    problems = _run_kafka(settings, lambda: check_plan(settings, plan))
    for problem in problems:
        click.echo(f"{problem}", err=True)
    if problems:
        click.echo(f"stream: {len(problems)} problem(s) in {len(wanted)} topic(s)", err=True)
        sys.exit(exit_status(problems))
    click.echo(f"{len(wanted)} topic(s) OK: {', '.join(plan.topics)}")


@topics.command("create")
@_part_option
@click.pass_context
def topics_create(ctx: click.Context, parts: tuple[str, ...]) -> None:
    """Create the planned topics that are missing (with a principal allowed to), then check
    them all (exit 78 with what is still wrong: an existing topic is not changed)."""
    from .runtime.plan import check_plan, create_planned

    settings, plan = _plan(ctx, parts)
    wanted = list(plan.topics.values())

    async def run() -> tuple[list[str], list[Any]]:
        created = await create_planned(settings, wanted)
        return created, await check_plan(settings, plan)

    created, problems = _run_kafka(settings, run)
    click.echo(f"created {len(created)} topic(s){': ' + ', '.join(created) if created else ''}")
    for problem in problems:
        click.echo(f"{problem}", err=True)
    if problems:
        sys.exit(ConfigError.exit_status)
