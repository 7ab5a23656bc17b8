"""``stream worker``: set the chain up, create the topics, run the faust worker."""

from __future__ import annotations

import asyncio
import logging
import os

from .chain import build_chain
from .settings import Settings

__all__ = ["run_worker"]

log = logging.getLogger(__name__)

_FAUST_LEVELS = {"debug": "debug", "info": "info", "warn": "warn", "error": "error"}


def run_worker(settings: Settings) -> int:
    """Run until stopped (SIGTERM/SIGINT).  :return: the exit status.

    Plugins are loaded and set up (models loaded) before anything connects to Kafka, so a
    broken plugin or a missing model stops the worker at once with its name.
    """
    from faust.worker import Worker

    from .app import create_app, prepare_topics

    host, pipeline = build_chain(settings, "worker")
    created = asyncio.run(prepare_topics(settings, host))
    if created:
        log.info("created topics: %s", ", ".join(created))
    os.makedirs(settings.data_dir, exist_ok=True)
    app = create_app(settings, host, pipeline)
    worker = Worker(app, loglevel=_FAUST_LEVELS[settings.log_level], quiet=True,
                    redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else 1
    finally:
        pipeline.close()
    return 0
