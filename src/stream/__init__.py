"""stream: news articles in, enriched records and alerts out, over Apache Kafka.

The public API for plugin authors: :data:`hookimpl`, :class:`Processor`, :class:`Context`,
:class:`TopicSpec`, the record types and the errors.
"""

from __future__ import annotations

import pluggy

from .errors import BrokerError, ConfigError, PluginError, RecordError, StreamError
from .processor import PLUGIN_API, Context, Processor, TopicSpec
from .records import SCHEMA_VERSION, Alert, Article, DeadLetter
from .settings import Settings, load_settings

__version__ = "0.1.0"

#: Marks a function as a stream hook implementation (see ``stream.hookspecs``).
hookimpl = pluggy.HookimplMarker("stream")

__all__ = [
    "PLUGIN_API",
    "SCHEMA_VERSION",
    "Alert",
    "Article",
    "BrokerError",
    "ConfigError",
    "Context",
    "DeadLetter",
    "PluginError",
    "Processor",
    "RecordError",
    "Settings",
    "StreamError",
    "TopicSpec",
    "__version__",
    "hookimpl",
    "load_settings",
]
