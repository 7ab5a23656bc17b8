"""stream: news articles in, enriched records and alerts out, over Apache Kafka.

The public API for plugin authors: :data:`hookimpl`, :class:`Processor`, :class:`Context`,
:class:`TopicSpec`, the record types, the errors, :class:`Settings`, and the TOML helpers
for a plugin's own configuration files (:mod:`stream.toml`).
"""

from __future__ import annotations

import pluggy

from .errors import BrokerError, ConfigError, PluginError, RecordError, StreamError
from .processor import PLUGIN_API, Context, Processor, TopicSpec
from .records import SCHEMA_VERSION, Alert, Article, DeadLetter
from .settings import Settings, load_settings
from .toml import entry_key_line, key_line, line_containing, parse_toml, read_toml

__version__ = "0.2.0"

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
    "entry_key_line",
    "hookimpl",
    "key_line",
    "line_containing",
    "load_settings",
    "parse_toml",
    "read_toml",
]
