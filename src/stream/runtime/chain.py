"""Building the chain, and turning a processed batch into the records to publish.

Shared by the worker (:mod:`stream.runtime.batches`) and the embedded mode (``stream process``), so
both produce byte-for-byte the same records.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, MutableMapping

from ..plugins import PluginHost, get_plugin_manager
from ..processor import Context, Processor
from ..records import Article, DeadLetter, dumps, utcnow
from ..settings import Settings
from .pipeline import BatchResult, Pipeline

__all__ = ["Outputs", "build_chain", "collect_outputs", "sanitize", "setup_pipeline"]

_SECRETISH = re.compile(
    r"(?i)((?:secret|password|passwd|token|api[_-]?key|authorization)\s*[=:]\s*)\S+"
    r"|whsec_[A-Za-z0-9+/=]+"
)


def sanitize(message: str, limit: int = 500) -> str:
    """An exception message fit for a dead letter or a log: secrets masked, one line, short."""
    text = _SECRETISH.sub(lambda m: (m.group(1) or "") + "***", message)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def setup_pipeline(
    processors: list[Processor],
    settings: Settings,
    mode: Literal["worker", "embedded"],
    make_table: Callable[[str], MutableMapping[str, Any]],
) -> Pipeline:
    """Set up ``processors`` (in order) as a :class:`Pipeline`; each gets the tables it
    declared, made by ``make_table(name)``.

    :raises PluginError: a processor failed to set up (naming it).
    :raises ConfigError: a processor's configuration is invalid (naming the file and line).
    """
    pipeline = Pipeline(processors)
    pipeline.setup(
        lambda proc: Context(
            settings=settings,
            config=settings.plugin_config(proc.name),
            log=logging.getLogger(f"stream.plugins.{proc.name}"),
            mode=mode,
            tables={name: make_table(name) for name in proc.tables},
        )
    )
    return pipeline


def build_chain(settings: Settings, mode: Literal["worker", "embedded"] = "embedded") -> tuple[PluginHost, Pipeline]:
    """Load the plugins and set up the whole chain in-process, tables in memory only
    (``stream process`` and ``stream.testing``).

    :raises PluginError: a plugin failed to load or to set up (naming it).
    """
    from .state import StateTable

    host = get_plugin_manager(settings)
    tables: dict[str, StateTable] = {}
    pipeline = setup_pipeline(host.processors(), settings, mode,
                              lambda n: tables.setdefault(n, StateTable(n, changelog=False)))
    return host, pipeline


@dataclass(slots=True)
class Outputs:
    """What one batch produces, each record with the article it comes from."""

    #: ``(key, value, article)`` of each enriched record.
    enriched: list[tuple[bytes, bytes, Article]] = field(default_factory=list)
    #: duplicates, when the ``route_duplicates`` setting sends them to their own topic.
    duplicates: list[tuple[bytes, bytes, Article]] = field(default_factory=list)
    #: ``(key, value, alert, article)`` of each alert.
    alerts: list[tuple[bytes, bytes, dict[str, Any], Article]] = field(default_factory=list)
    #: ``(topic, key, encoded value, article, value)`` of each record a processor emitted
    #: (:meth:`Article.emit`).
    records: list[tuple[str, bytes, bytes | None, Article, Any]] = field(default_factory=list)
    dead: list[tuple[Article, DeadLetter]] = field(default_factory=list)


def _encode(article: Article, worker: str, now: str) -> tuple[bytes, list[tuple[bytes, bytes, dict[str, Any]]],
                                                            list[tuple[str, bytes, bytes | None, Any]]]:
    alerts = [(str(alert.get("rule_id", "")).encode(), dumps(alert), alert) for alert in article.alerts]
    records = [(topic, key.encode(), None if value is None else dumps(value), value)
               for topic, key, value in article.outputs]
    return dumps(article.to_dict(worker=worker, processed_at=now)), alerts, records


def collect_outputs(
    result: BatchResult,
    *,
    worker: str,
    max_record_bytes: int,
    original: dict[int, bytes],
    route_duplicates: bool = False,
) -> Outputs:
    """Encode the enriched records and alerts of a processed batch; build dead letters.

    Never raises for an article: one whose record cannot be encoded (a plugin put a value
    JSON cannot hold, such as a set, into ``extra``) or is over ``max_record_bytes`` becomes
    a dead letter (stage ``publish``), and the others are published.

    :param original: ``id(article) -> original bytes``, for dead letters.
    """
    out = Outputs()
    now = utcnow()

    def dead(article: Article, error_type: str, message: str) -> None:
        out.dead.append((article, DeadLetter(
            error_type=error_type, message=message, stage="publish",
            original=original.get(id(article), b""), article_id=article.id,
        )))

    for article in result.articles:
        try:
            value, alerts, records = _encode(article, worker, now)
        except Exception as exc:  # orjson's TypeError/JSONEncodeError: a value JSON cannot hold
            dead(article, "EncodeError", sanitize(
                f"the enriched record cannot be encoded as JSON ({exc}); a processor put a value JSON "
                "cannot hold (such as a set or an object) into the article"))
            continue
        if len(value) > max_record_bytes:
            dead(article, "RecordTooLarge", f"the enriched record is {len(value)} bytes, over the limit of "
                                            f"{max_record_bytes} (setting max_record_bytes)")
            continue
        if route_duplicates and article.dedup.get("status") in ("exact", "near"):
            out.duplicates.append((article.id.encode(), value, article))
        else:
            out.enriched.append((article.id.encode(), value, article))
        out.alerts.extend((key, encoded, alert, article) for key, encoded, alert in alerts)
        out.records.extend((topic, key, encoded_value, article, value)
                           for topic, key, encoded_value, value in records)
    for failure in result.failures:
        out.dead.append((failure.article, DeadLetter(
            error_type=type(failure.error).__name__,
            message=sanitize(str(failure.error)),
            stage=failure.stage,
            original=original.get(id(failure.article), b""),
            article_id=failure.article.id,
        )))
    return out
