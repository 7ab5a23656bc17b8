"""``stream worker``: set the chain up, create the topics, run the faust worker."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import warnings
from typing import TYPE_CHECKING, Any, MutableMapping

from ..errors import PluginError
from ..ops.logs import logging_config as logging_config_for
from ..ops.metrics import WorkerMetrics
from ..plugins import get_plugin_manager
from ..settings import Settings
from .chain import setup_pipeline
from .kafka import cluster_replication, seed_offsets
from .pipeline import split_stateful
from .security import check_connection

if TYPE_CHECKING:
    from .positions import Handled

__all__ = ["run_worker"]

log = logging.getLogger(__name__)

_FAUST_LEVELS = {"debug": "debug", "info": "info", "warn": "warn", "error": "error"}


def _watch(app: Any, settings: Settings, metrics: WorkerMetrics, inputs: list[str], handled: Handled) -> None:
    """The offset watch (lag, liveness, records faust dropped) and, when ``settings.web`` is
    set, the web server with metrics, health and the dashboard (see :mod:`stream.runtime.watch`)."""
    from faust.types import TP

    from ..ops.health import Health
    from .positions import Repairs
    from .watch import OffsetWatch

    health = Health(metrics, settings.stall_timeout)

    async def assigned(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        tps = args[0] if args else kwargs.get("assigned", set())
        health.on_assigned((tp.topic, tp.partition) for tp in tps)

    async def revoked(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        health.on_revoked()

    async def rewind(topic: str, partition: int, offset: int) -> None:
        consumer: Any = app.consumer
        await consumer.rewind(TP(topic, partition), offset)

    def was_fetched(topic: str, partition: int, offset: int) -> bool:
        consumer: Any = app.consumer
        return bool(consumer.was_fetched(topic, partition, offset))

    app.on_partitions_assigned.connect(assigned)
    app.on_partitions_revoked.connect(revoked)
    # A commit held back by a dropped record (faust drops the first records after an
    # assignment now and then; stream's offset bookkeeping never commits over them) is
    # repaired within a second: records are handled in order, so one not handled while later
    # ones were is not in flight.  Until then every commit of the partition waits, and a
    # crash repeats that work (crash test, repeats per SIGKILL: 2,400 with a 10 s repair;
    # 2,500-2,800 with 2 s, when the seek back itself failed; see positions.ReadOffsets).
    repairs = Repairs(handled, was_fetched, idle_after=max(2.0, 4 * settings.batch_timeout), repair_after=0.5)
    watch = OffsetWatch(settings.kafka, settings.app_id, set(inputs), health, interval=0.5,
                        repairs=repairs, rewind=rewind)

    @app.task  # type: ignore[untyped-decorator]  # faust's decorators are untyped
    async def offset_watch() -> None:
        await watch.run()

    if settings.web:
        from ..ops.web import serve

        @app.task  # type: ignore[untyped-decorator]
        async def web_server() -> None:
            await serve(settings.web, metrics, health, token=settings.web_token)


def _check_web_address(settings: Settings) -> None:
    """A taken web port stops the worker at start with the fix, not a traceback later."""
    import socket

    from ..errors import ConfigError

    if not settings.web:
        return
    host, _, port = settings.web.rpartition(":")
    try:
        with socket.create_server((host or "127.0.0.1", int(port))):
            pass
    except OSError as exc:
        where = settings.source or "STREAM_WEB"
        raise ConfigError(f"{where}: web = {settings.web!r} cannot be used ({exc.strerror}); set another "
                          f"host:port (port 0: any free port), or an empty value to turn the web server off") from None


#: Seconds a worker may take to stop after SIGTERM/SIGINT before it exits anyway.
STOP_DEADLINE = 45.0
#: The exit status of a worker that did not stop in time.
EXIT_STOP_DEADLINE = 70


def arm_stop_deadline(seconds: float) -> threading.Timer:
    """Exit the process (status :data:`EXIT_STOP_DEADLINE`) if it is still running in
    ``seconds``.

    faust's shutdown can hang: a worker stopped while its consumer was still joining the
    group waited forever on its consumer thread, which had died of a ``CancelledError``
    (seen in CI: ``tests/integration/test_webhook_scale.py``, a second worker stopped during
    its start).  Nothing is lost by exiting: what was not committed is processed again by
    the next owner of the partitions (at-least-once; exactly-once aborts the open
    transaction).  A supervisor's grace period (Kubernetes: 30 s by default) should be
    longer than this deadline, or it will SIGKILL first.
    """
    def expire() -> None:
        log.critical("the worker did not stop within %g s of the signal (faust's shutdown is stuck); "
                     "exiting with status %d: work not committed is done again by the next owner",
                     seconds, EXIT_STOP_DEADLINE)
        logging.shutdown()
        os._exit(EXIT_STOP_DEADLINE)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    return timer


def _worker_class() -> type:
    from faust.worker import Worker

    class StreamWorker(Worker):
        """faust's worker, with a deadline on the stop a signal starts."""

        def _schedule_shutdown(self, signal: Any) -> None:
            if not self._signal_stop_time:
                arm_stop_deadline(STOP_DEADLINE)
            super()._schedule_shutdown(signal)

    return StreamWorker


def run_worker(settings: Settings) -> int:
    """Run until stopped (SIGTERM/SIGINT).  :return: the exit status.

    Plugins are loaded and set up (models loaded, rules compiled) before anything connects
    to Kafka, so a broken plugin or a missing model stops the worker at once with its name.
    """
    from .agents import wire_agents
    from .app import ChangelogWrites, create_app, make_table
    from .topics import check_record_limits, prepare_topics
    from .versions import check_versions

    check_versions()
    _check_web_address(settings)
    host = get_plugin_manager(settings)
    stateless, stateful = split_stateful(host.processors())
    app = create_app(settings)

    def no_tables(name: str) -> MutableMapping[str, Any]:  # pragma: no cover - split guarantees it
        raise PluginError(name, "a stateless processor asked for a table")

    metrics = WorkerMetrics()
    dispatcher = None
    if settings.webhooks:  # validated now, before Kafka: a bad file stops the worker at start
        from ..webhooks.config import load_subscriptions
        from ..webhooks.delivery import Dispatcher

        dispatcher = Dispatcher(settings, load_subscriptions(settings.webhooks),
                                allow_loopback=settings.webhooks_allow_loopback, metrics=metrics)
    stage1 = setup_pipeline(stateless, settings, "worker", no_tables)
    writes = ChangelogWrites()
    stage2 = (setup_pipeline(stateful, settings, "worker", lambda name: make_table(app, name, writes))
              if stateful else None)
    table_names = tuple(dict.fromkeys(name for proc in stateful for name in proc.tables))
    # Kafka answers with the security settings (else one clear error), and the replication
    # of the topics the worker (and faust) create is fixed from the cluster's size.
    asyncio.run(check_connection(settings.kafka))
    replication, min_insync = asyncio.run(cluster_replication(
        settings.kafka, settings.replication_factor, settings.min_insync_replicas))
    settings = settings.replace(replication_factor=replication, min_insync_replicas=min_insync)
    # Read by faust when it declares its own topics (the assignor's leader topic) at start;
    # the warning about a late change is about values already used, which this is not.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        app.conf.topic_replication_factor = replication
    created = asyncio.run(prepare_topics(settings, host, stateful=stage2 is not None, tables=table_names))
    if created:
        log.info("created topics: %s", ", ".join(created))
    asyncio.run(check_record_limits(settings, stateful=stage2 is not None))
    inputs = [settings.topic_raw] + ([settings.stateful_topic] if stage2 is not None else [])
    seeded = asyncio.run(seed_offsets(settings.kafka, settings.app_id, inputs))
    if seeded:
        log.info("committed start offsets for partitions without one: %s", ", ".join(sorted(seeded)))
    if dispatcher is not None:
        # Where the webhook group starts is fixed before any alert can be raised.
        asyncio.run(dispatcher.prepare())
    os.makedirs(settings.data_dir, exist_ok=True)
    handled = wire_agents(app, settings, host, stage1, stage2, metrics, writes)
    _watch(app, settings, metrics, inputs, handled)
    if dispatcher is not None:
        webhook_dispatcher = dispatcher

        @app.task  # type: ignore[untyped-decorator]  # faust's decorators are untyped
        async def deliver_webhooks() -> None:
            # Runs until the worker stops; cancellation commits what is done (delivery.py).
            await webhook_dispatcher.run(asyncio.Event())
    log.info("stream worker %s: stage 1 %s; stage 2 %s", settings.worker_id(),
             [p.name for p in stateless], [p.name for p in stateful])
    logging_config = logging_config_for(settings.log_level) if settings.log_format == "json" else None
    worker = _worker_class()(app, loglevel=_FAUST_LEVELS[settings.log_level], quiet=True, redirect_stdouts=False,
                     logging_config=logging_config)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else 1
    finally:
        stage1.close()
        if stage2 is not None:
            stage2.close()
    return 0
