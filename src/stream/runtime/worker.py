"""``stream worker``: set the chain up, create the topics, run the stages under faust.

faust-streaming hosts the worker through its public API: a ``faust.App`` whose boot
strategy turns its Kafka consumer, producer, tables and web server off
(:class:`_Boot`), its services (:class:`StageService`, one per stage), its tasks (the
offset watch, the web server, the webhook dispatcher), its signal handling and logging.
Nothing on the data path is a faust agent, table, topic or stream: each stage reads and
commits with its own aiokafka consumer (:mod:`stream.runtime.stage`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any, MutableMapping

import faust
from aiokafka import TopicPartition
from faust.app.base import BootStrategy
from faust.worker import Worker

from ..errors import PluginError
from ..ops.health import Health
from ..ops.logs import logging_config as logging_config_for
from ..ops.metrics import WorkerMetrics
from ..plugins import get_plugin_manager
from ..settings import Settings
from .chain import setup_pipeline
from .kafka import adopt_offsets
from .pipeline import Pipeline, split_stateful
from .security import check_connection
from .stage import GiveUp, Handler, Stage, StageFailed, stage_group
from .state import StateStore

__all__ = ["run_worker"]

log = logging.getLogger(__name__)

_FAUST_LEVELS = {"debug": "debug", "info": "info", "warn": "warn", "error": "error"}


class _Boot(BootStrategy):
    """faust without Kafka and without its web server: the stages own the data path, and
    the worker's web server is stream's (:mod:`stream.ops.web`)."""

    enable_kafka = False
    enable_web = False


class HostApp(faust.App):
    """The faust application that hosts a worker (see the module docstring)."""

    BootStrategy = _Boot


def create_host(settings: Settings) -> faust.App:
    return HostApp(settings.app_id, broker=f"kafka://{settings.broker.split(',')[0].strip()}",
                   store="memory://", datadir=settings.data_dir, web_enabled=False, autodiscover=False)


class StageService(faust.Service):
    """Runs one :class:`~stream.runtime.stage.Stage` as a service of the host: started with
    the worker; on stop (SIGTERM) the batch in flight is committed and the group left; a
    failed stage crashes the app (the worker exits 1 without committing the batch)."""

    def __init__(self, app: faust.App, stage: Stage) -> None:
        super().__init__()
        self.app, self.stage = app, stage
        self._task: asyncio.Task[None] | None = None

    async def on_started(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            await self.stage.run()
        except StageFailed as exc:
            await self.app.crash(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.critical("stage %s stopped: %r", self.stage.name, exc, exc_info=True)
            await self.app.crash(exc)

    async def on_stop(self) -> None:
        arm_stop_deadline(STOP_DEADLINE)
        await self.stage.stop()
        if self._task is not None and not self._task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.stage.settings.revoke_timeout + 5)
            except (TimeoutError, asyncio.CancelledError, Exception) as exc:
                log.warning("stage %s: did not stop cleanly (%r)", self.stage.name, exc)
                self._task.cancel()


def _ops(app: faust.App, settings: Settings, health: Health, inputs: dict[str, str]) -> None:
    """The offset watch (lag gauges, liveness) and, when ``settings.web`` is set, the web
    server with metrics, health and the dashboard."""
    from .watch import OffsetWatch

    watch = OffsetWatch(settings.kafka, {topic: stage_group(settings, stage) for stage, topic in inputs.items()},
                        health, interval=0.5)

    @app.task  # type: ignore[untyped-decorator]  # faust's decorators are untyped
    async def offset_watch() -> None:
        await watch.run()

    if settings.web:
        from ..ops.web import serve

        web_token = settings.dashboard_token  # read now: an unreadable file stops the worker at start

        @app.task  # type: ignore[untyped-decorator]
        async def web_server() -> None:
            await serve(settings.web, health.metrics, health, token=web_token)


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


_armed: list[threading.Timer] = []


def arm_stop_deadline(seconds: float) -> threading.Timer:
    """Exit the process (status :data:`EXIT_STOP_DEADLINE`) if it is still running in
    ``seconds``.

    Armed when the stages start to stop.  A stage waits up to ``revoke_timeout`` for its
    batch in flight; a shutdown that hangs beyond that (faust's consumer thread used to,
    when a worker was stopped during its group join) must not keep the process.  Nothing
    is lost by exiting: what was not committed is processed again by
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

    if _armed:
        return _armed[0]
    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    _armed.append(timer)
    return timer


def run_worker(settings: Settings) -> int:
    """Run until stopped (SIGTERM/SIGINT).  :return: the exit status.

    Plugins are loaded and set up (models loaded, rules compiled) before anything connects
    to Kafka, so a broken plugin or a missing model stops the worker at once with its name.
    """
    from .batches import make_handlers
    from .plan import apply_plan, topic_plan
    from .versions import check_versions

    _setup_logging(settings)
    check_versions()
    _check_web_address(settings)
    host = get_plugin_manager(settings)
    stateless, stateful = split_stateful(host.processors())

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
    table_names = tuple(dict.fromkeys(name for proc in stateful for name in proc.tables))
    store = (StateStore(settings.kafka, settings.app_id, table_names,
                        committed_only=settings.processing_guarantee == "exactly_once")
             if stateful else None)
    stage2 = (setup_pipeline(stateful, settings, "worker", lambda name: store.tables[name])  # type: ignore[union-attr]
              if stateful else None)
    # Kafka answers with the security settings (else one clear error); the worker's topics
    # are created (auto_create_topics) and checked: missing ones, a wrong cleanup policy, a
    # record limit below what the worker writes stop it here, with every fix.
    asyncio.run(check_connection(settings.kafka))
    created = asyncio.run(apply_plan(settings, topic_plan(settings, host, ["worker"]), ["worker"], "the worker"))
    if created:
        log.info("created topics: %s", ", ".join(created))
    if dispatcher is not None:
        # Where the webhook group starts is fixed before any alert can be raised.
        asyncio.run(dispatcher.prepare())
    os.makedirs(settings.data_dir, exist_ok=True)
    app = create_host(settings)
    health = Health(metrics, settings.stall_timeout)
    handlers = make_handlers(settings, host, stage1, stage2, metrics, store)
    inputs = {"raw": settings.topic_raw}
    app.add_dependency(StageService(app, Stage("raw", settings.topic_raw, settings, handlers.stage1,
                                               health=health, metrics=metrics, give_up=handlers.give_up1)))
    if stage2 is not None and store is not None:
        inputs["stateful"] = settings.stateful_topic
        # Upgrade from a faust-based worker: it read the hand-off in the application's group.
        adopted = asyncio.run(adopt_offsets(settings.kafka, settings.app_id, stage_group(settings, "stateful"),
                                            settings.stateful_topic))
        if adopted:
            log.info("stage 2 continues from the hand-off offsets of group %s: %s", settings.app_id, adopted)
        app.add_dependency(StageService(app, _stateful_stage(settings, handlers.stage2, stage2, store, health,
                                                             metrics, handlers.give_up2)))
    _ops(app, settings, health, inputs)
    if dispatcher is not None:
        webhook_dispatcher = dispatcher

        @app.task  # type: ignore[untyped-decorator]  # faust's decorators are untyped
        async def deliver_webhooks() -> None:
            # Runs until the worker stops; cancellation commits what is done (delivery.py).
            await webhook_dispatcher.run(asyncio.Event())
    log.info("stream worker %s: settings from %s; stage 1 %s; stage 2 %s", settings.worker_id(),
             settings.source or "the defaults and the environment (no settings file)",
             [p.name for p in stateless], [p.name for p in stateful])
    logging_config = logging_config_for(settings.log_level) if settings.log_format == "json" else None
    worker = Worker(app, loglevel=_FAUST_LEVELS[settings.log_level], quiet=True, redirect_stdouts=False,
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


def _setup_logging(settings: Settings) -> None:
    """Log at the configured level from the start: what the plugins say while they set up
    (the models loaded, the rules read) comes before faust configures logging, and was lost
    at the command line's WARNING.  faust's worker replaces these handlers when it starts."""
    import logging.config

    if settings.log_format == "json":
        logging.config.dictConfig(logging_config_for(settings.log_level))
        return
    logging.getLogger().setLevel({"warn": "WARNING"}.get(settings.log_level, settings.log_level.upper()))


def _stateful_stage(settings: Settings, handler: Handler | None, pipeline: Pipeline, store: StateStore,
                    health: Health, metrics: WorkerMetrics, give_up: GiveUp | None) -> Stage:
    """Stage 2: before its first batch after an assignment, the state store is restored,
    and the processors rebuild what they derive from it (``on_assigned``) when it changed."""
    assert handler is not None

    async def prepare(assigned: set[TopicPartition]) -> None:
        rebuilt = store.dirty
        applied = await store.restore()
        if rebuilt or applied:
            pipeline.assigned()

    return Stage("stateful", settings.stateful_topic, settings, handler, health=health, metrics=metrics,
                 prepare=prepare, abandoned=store.invalidate, give_up=give_up)
