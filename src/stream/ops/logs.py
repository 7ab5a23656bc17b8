"""Log output: readable text by default, JSON lines with ``log_format = "json"``.

A log call about an article passes ``extra={"article_id": ...}`` (see :func:`about`); the
JSON lines carry it as a field, and the text lines name the article in the message.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = ["JsonFormatter", "about", "configure_logging", "logging_config"]

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def about(article_id: str | None, **more: Any) -> dict[str, Any]:
    """``extra=`` for a log call about one article."""
    return {"article_id": article_id, **more}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, article_id and any other
    ``extra`` field, and the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def logging_config(level: str) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` for JSON lines on stdout (given to faust's worker)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "json", "stream": sys.stdout}},
        "root": {"level": {"warn": "WARNING"}.get(level, level.upper()), "handlers": ["default"]},
    }


def configure_logging(settings: Any) -> None:
    """Log at the ``log_level`` setting, as JSON lines with ``log_format = "json"`` (the
    commands that run without faust: ``stream ingest``)."""
    import logging.config

    for noisy in ("httpx", "aiokafka"):  # a line per request, per subscription change
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if settings.log_format == "json":
        logging.config.dictConfig(logging_config(settings.log_level))
        return
    root = logging.getLogger()
    for handler in root.handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.setLevel({"warn": "WARNING"}.get(settings.log_level, settings.log_level.upper()))
