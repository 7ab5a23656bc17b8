"""Every setting stream reads: typed, defaulted, documented and validated at start.

Settings come from, in increasing priority:

1. the defaults below;
2. a TOML settings file: ``--config FILE``, else ``$STREAM_CONFIG``, else the first that
   exists of ``./stream.toml``, ``$XDG_CONFIG_HOME/stream/stream.toml`` (``~/.config/...``)
   and ``/etc/stream/stream.toml`` (:func:`config_search_path`).  Top-level keys are the
   setting names below; ``[plugins.NAME]`` tables hold each plugin's own settings;
3. environment variables ``STREAM_<NAME>`` (for example ``STREAM_BROKER``), and
   ``STREAM_PLUGIN_<PLUGIN>__<KEY>`` for a plugin's settings (``STREAM_PLUGIN_NER__MODEL``,
   ``STREAM_PLUGIN_WORD_COUNT__MIN``); the older ``STREAM_PLUGIN_<PLUGIN>_<KEY>`` (the
   plugin's name ends at the first ``_``) is read for a variable without ``__``.

An invalid value stops the program with a :class:`~stream.errors.ConfigError` naming the
file and line (or the variable) and the fix.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError
from .runtime.security import MECHANISMS, PROTOCOLS, KafkaSecurity, KafkaTarget
from .toml import key_line, read_toml

__all__ = ["Settings", "load_settings", "parse_broker"]


#: Bytes allowed beside a record's value: key, headers, Kafka's record batch overhead.
_RECORD_ENVELOPE = 64 * 1024


def _default_state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return os.path.join(base, "stream")


@dataclass(frozen=True)
class Settings:
    """The worker's and the command line's settings.  See ``docs/operations.md``."""

    #: Kafka bootstrap servers: ``host:port`` or ``kafka://host:port`` (faust's form), or a
    #: comma-separated list of either; kept as ``host:port,host:port``.
    broker: str = "127.0.0.1:9092"
    #: How every Kafka client connects: ``PLAINTEXT``, ``SSL``, ``SASL_PLAINTEXT`` or
    #: ``SASL_SSL`` (docs/operations.md, "Connecting to a production cluster").
    security_protocol: str = "PLAINTEXT"
    #: SASL mechanism with ``SASL_*`` protocols: ``PLAIN``, ``SCRAM-SHA-256`` or ``SCRAM-SHA-512``.
    sasl_mechanism: str = "PLAIN"
    #: SASL user name.
    sasl_username: str = ""
    #: SASL password; prefer ``sasl_password_file`` or ``STREAM_SASL_PASSWORD`` to writing it
    #: in a settings file.  Never logged or shown.
    sasl_password: str = field(default="", repr=False)
    #: A file holding the SASL password (its first line), read at start.
    sasl_password_file: str = ""
    #: CA certificates (PEM) that signed the brokers' certificates; empty: the system's.
    ssl_cafile: str = ""
    #: Client certificate (PEM) for mutual TLS, with ``ssl_keyfile``.
    ssl_certfile: str = ""
    #: The client certificate's private key (PEM, not encrypted).
    ssl_keyfile: str = ""
    #: Check that the broker's certificate names the host connected to.
    ssl_check_hostname: bool = True
    #: Faust application id; also the consumer group of the workers.
    app_id: str = "stream"
    #: Topic that receives input articles.
    topic_raw: str = "articles.raw"
    #: Topic that receives enriched articles.
    topic_enriched: str = "articles.enriched"
    #: Topic that receives alerts.
    topic_alerts: str = "alerts"
    #: Topic that receives dead letters (articles that could not be processed).
    topic_dlq: str = "articles.dlq"
    #: Topic for duplicates when ``route_duplicates`` is on.
    topic_duplicates: str = "articles.duplicates"
    #: What ``stream dlq replay`` replayed (compacted), so that a second run skips it.
    topic_dlq_replayed: str = "articles.dlq.replayed"
    #: Send duplicates (``dedup.status`` exact or near) to ``topic_duplicates`` instead of
    #: ``topic_enriched`` (where they are otherwise published, marked).
    route_duplicates: bool = False
    #: Internal topic between the worker's stages (one partition: the stateful stage).
    #: Empty: ``APP_ID-stateful``, so that it belongs to one application (consumer group).
    topic_stateful: str = ""
    #: Partitions for the topics stream creates (enough for a few workers).
    partitions: int = 6
    #: Replication factor of the topics stream creates; 0 (the default): the number of
    #: brokers, at most 3.
    replication_factor: int = 0
    #: ``min.insync.replicas`` of the topics stream creates (with ``acks=all``, a write needs
    #: this many replicas); 0 (the default): one less than the replication factor, at most
    #: 2, at least 1.
    min_insync_replicas: int = 0
    #: Create missing topics at start (the worker, the ingester, the webhook dispatcher).
    #: ``false``: check them instead, and stop with the list of missing or misconfigured
    #: topics (for a cluster where an administrator creates topics: ``stream topics create``).
    auto_create_topics: bool = True
    #: Articles per batch handed to the processors.
    batch_size: int = 64
    #: Seconds to wait for a batch to fill before processing what has arrived.
    batch_timeout: float = 0.5
    #: Seconds without a heartbeat after which a worker counts as dead and its partitions
    #: move to the others (Kafka's group session timeout; the broker allows 6 to 300).
    session_timeout: float = 30.0
    #: Seconds a worker may take between two polls of a stage's consumer (one batch) before
    #: Kafka counts it as gone (Kafka's ``max.poll.interval.ms``).
    max_poll_interval: float = 300.0
    #: Not used since the worker commits after every batch (kept so that settings files
    #: naming it still load).
    commit_interval: float = 1.0
    #: Seconds a worker waits, when partitions are taken from it, for the batch in flight
    #: to be confirmed and committed; past it the batch is left uncommitted and its records
    #: are processed again by the next owner.
    revoke_timeout: float = 30.0
    #: Exactly-once: seconds a transaction may stay open before the broker aborts it
    #: (``transaction.timeout.ms``; at most the broker's ``transaction.max.timeout.ms``,
    #: 15 minutes by default).  A batch must be processed and written within it.
    transaction_timeout: float = 60.0
    #: ``at_least_once`` (the default) or ``exactly_once``: each batch's outputs and the
    #: offsets of its input records are committed in one Kafka transaction per input
    #: partition (docs/operations.md says when to pick which).
    processing_guarantee: str = "at_least_once"
    #: Largest accepted input record, in bytes; checked before parsing.
    max_article_bytes: int = 1_000_000
    #: Largest record the worker publishes (an enriched record carries the text, the clean
    #: text and the entities: about two to three times the article); a bigger one goes to
    #: the dead letters.  The topics stream creates accept records of this size (their
    #: ``max.message.bytes``), and the worker checks existing topics against it at start.
    max_record_bytes: int = 8_000_000
    #: Where the worker keeps its local files (faust's data directory).
    data_dir: str = field(default_factory=_default_state_dir)
    #: Log level: debug, info, warn, error.
    log_level: str = "info"
    #: Log format: ``text`` (for people) or ``json`` (one JSON object per line).
    log_format: str = "text"
    #: The worker's web server (metrics, health, dashboard): ``host:port``; the port 0
    #: picks a free one; empty turns the server off.
    web: str = "127.0.0.1:6066"
    #: A token the dashboard and its JSON ask for (``Authorization: Bearer TOKEN`` or
    #: ``/?token=TOKEN``); empty: open.  Metrics and health stay open.  Never logged.
    web_token: str = field(default="", repr=False)
    #: A file holding the dashboard token (its first line), read at start.
    web_token_file: str = ""
    #: Seconds a worker may have lag on its partitions while its committed offsets stay
    #: put before ``/health/live`` reports it unhealthy.
    stall_timeout: float = 120.0
    #: Name of this worker in ``processing.worker``; defaults to host:pid.
    worker_name: str = ""
    #: The alert rules file (read by the alerts plugin); empty: its built-in rules.
    rules: str = ""
    #: The webhook subscriptions file; when set, ``stream worker`` also delivers alerts.
    webhooks: str = ""
    #: Allow webhook targets on loopback addresses (local development and tests only).
    webhooks_allow_loopback: bool = False
    #: Private networks (CIDR) webhook targets may be in, for a deployment's own receivers
    #: (such as the compose network); every other private address stays refused.
    webhooks_allow_networks: tuple[str, ...] = ()
    #: Topics of webhook delivery: pending retries, exhausted deliveries, endpoint events.
    topic_webhooks_retry: str = "webhooks.retry"
    topic_webhooks_failed: str = "webhooks.failed"
    topic_webhooks_events: str = "webhooks.events"
    #: The compacted topic of the stories (``stream-stories``): each story's summary after
    #: every change, keyed by story id.
    topic_stories: str = "stories"
    #: ``stream ingest``: the compacted topic of the sources file's entries (the ingesters
    #: share its partitions as one consumer group, ``APP_ID-ingest``).
    topic_sources: str = "sources"
    #: ``stream ingest``: the compacted topic of what each entry already sent.
    topic_sources_seen: str = "sources.seen"
    #: The ingester's web server (``POST /articles``, metrics, health, its page): ``host:port``;
    #: the port 0 picks a free one; empty turns it off.
    ingest_web: str = "127.0.0.1:6067"
    #: The bearer token ``POST /articles`` asks for; empty (and no ``ingest_token_file``):
    #: pushing is off.  Never logged.
    ingest_token: str = field(default="", repr=False)
    #: A file holding the push token (its first line), read at start.
    ingest_token_file: str = ""
    #: Plugin names to load; empty loads every installed plugin (autoload).
    plugins: tuple[str, ...] = ()
    #: Plugin names never to load, even when installed.
    plugins_block: tuple[str, ...] = ()
    #: Per-plugin settings, ``{plugin_name: {key: value}}``.
    plugin_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: The settings file these settings were read from, if any.
    source: str | None = None
    #: Where each setting's value came from ("default", "FILE:LINE", "environment variable
    #: STREAM_X", "option --x"); ``stream config show`` prints it.
    origins: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def plugin_config(self, name: str) -> Mapping[str, Any]:
        """The settings of plugin ``name`` (an empty mapping when it has none)."""
        return self.plugin_settings.get(name, {})

    @property
    def stateful_topic(self) -> str:
        """The internal topic of the stateful stage: ``topic_stateful`` or ``APP_ID-stateful``."""
        return self.topic_stateful or f"{self.app_id}-stateful"

    @property
    def topic_max_message_bytes(self) -> int:
        """``max.message.bytes`` of the topics the worker writes: a record of
        ``max_record_bytes`` with its key, headers and Kafka's batch overhead."""
        return self.max_record_bytes + _RECORD_ENVELOPE

    @cached_property
    def security(self) -> KafkaSecurity:
        """The TLS and SASL options of every Kafka client (the password read from
        ``sasl_password_file`` when that is set)."""
        password = self.sasl_password
        if self.sasl_password_file:
            password = _read_password(self.sasl_password_file)
        return KafkaSecurity(
            protocol=self.security_protocol, sasl_mechanism=self.sasl_mechanism,
            sasl_username=self.sasl_username, sasl_password=password, ssl_cafile=self.ssl_cafile,
            ssl_certfile=self.ssl_certfile, ssl_keyfile=self.ssl_keyfile,
            ssl_check_hostname=self.ssl_check_hostname)

    @property
    def dashboard_token(self) -> str:
        """The dashboard's token (``web_token``, or the first line of ``web_token_file``);
        empty: the dashboard is open.

        :raises ConfigError: both are set, or the file cannot be read."""
        if self.web_token and self.web_token_file:
            raise ConfigError("both web_token and web_token_file are set; keep one", path=self.source)
        if self.web_token_file:
            return _read_password(self.web_token_file, "web_token_file")
        return self.web_token

    @property
    def push_token(self) -> str:
        """The token of ``POST /articles`` (``ingest_token``, or the first line of
        ``ingest_token_file``); empty: pushing is off.

        :raises ConfigError: both are set, or the file cannot be read."""
        if self.ingest_token and self.ingest_token_file:
            raise ConfigError("both ingest_token and ingest_token_file are set; keep one",
                              path=self.source)
        if self.ingest_token_file:
            return _read_password(self.ingest_token_file, "ingest_token_file")
        return self.ingest_token

    @cached_property
    def kafka(self) -> KafkaTarget:
        """The cluster of the ``broker`` setting with the security options."""
        return KafkaTarget(self.broker, self.security)

    def worker_id(self) -> str:
        return self.worker_name or f"{socket.gethostname()}:{os.getpid()}"

    def replace(self, **changes: Any) -> Settings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)


_LOG_LEVELS = ("debug", "info", "warn", "error")
_CHOICES: dict[str, tuple[str, ...]] = {
    "log_level": _LOG_LEVELS,
    "log_format": ("text", "json"),
    "processing_guarantee": ("at_least_once", "exactly_once"),
}
#: Choices written in upper case (Kafka's own spelling); accepted in any case.
_UPPER_CHOICES: dict[str, tuple[str, ...]] = {
    "security_protocol": PROTOCOLS,
    "sasl_mechanism": MECHANISMS,
}
#: Settings that name a file which must exist.
_FILES = ("sasl_password_file", "ssl_cafile", "ssl_certfile", "ssl_keyfile")
_FIELDS = {f.name: f for f in fields(Settings) if f.name not in ("plugin_settings", "source", "origins")}
#: The settings that are secrets: never printed (``repr=False`` in :class:`Settings`).
SECRETS = frozenset(f.name for f in fields(Settings) if not f.repr and f.name != "origins")


def config_search_path(env: Mapping[str, str]) -> list[Path]:
    """Where a settings file is looked for when neither ``--config`` nor ``STREAM_CONFIG``
    names one, in order: ``./stream.toml``, ``$XDG_CONFIG_HOME/stream/stream.toml`` (default
    ``~/.config``), ``/etc/stream/stream.toml``."""
    xdg = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return [Path("stream.toml"), Path(xdg) / "stream" / "stream.toml", Path("/etc/stream/stream.toml")]


def _kind(annotation: str) -> type:
    """The type a setting's value is converted to, from its annotation in :class:`Settings`
    (the one place setting types are stated)."""
    return {"str": str, "int": int, "float": float, "bool": bool, "tuple[str, ...]": tuple}[annotation]


_TYPES: dict[str, type] = {name: _kind(str(f.type)) for name, f in _FIELDS.items()}


_HOST_PORT = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(?P<port>\d{1,5})")


def parse_broker(value: str) -> str:
    """The bootstrap servers of the ``broker`` setting as ``host:port,host:port``.

    Accepts ``host:port``, ``kafka://host:port`` (faust's URL form) and comma-separated lists
    of either (``[::1]:9092`` for IPv6).  :raises ValueError: with the accepted forms.
    """
    servers = []
    for item in value.split(","):
        entry = item.strip()
        if entry.lower().startswith("kafka://"):
            entry = entry[len("kafka://"):].rstrip("/")
        match = _HOST_PORT.fullmatch(entry)
        if match is None or not 0 < int(match.group("port")) < 65536:
            raise ValueError(
                f"{item.strip()!r} is not a Kafka bootstrap server; use host:port (127.0.0.1:9092), "
                "kafka://host:port, or a comma-separated list of either "
                "(kafka-1:9092,kafka-2:9092)")
        servers.append(entry)
    return ",".join(servers)


def _convert(name: str, value: Any, *, where: str) -> Any:
    kind = _TYPES[name]
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.strip().lower() in ("1", "true", "yes", "on")
        raise ValueError(f"{where} must be true or false (1/0, yes/no); got {value!r}")
    if kind is tuple:
        if isinstance(value, str):
            items = tuple(v.strip() for v in value.split(",") if v.strip())
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            items = tuple(value)
        else:
            items = None
        if items is not None and name == "webhooks_allow_networks":
            from .webhooks.safety import parse_networks

            try:
                parse_networks(items)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
        if items is not None:
            return items
        raise ValueError(f"{where} must be a list of names, such as [\"clean\", \"ner\"]")
    if kind is int:
        if isinstance(value, bool):
            raise ValueError(f"{where} must be a whole number, not {value!r}")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where} must be a whole number, such as 6; got {value!r}") from None
        if number < 0 or (number == 0 and name not in ("replication_factor", "min_insync_replicas")):
            raise ValueError(f"{where} must be greater than 0; got {number}")
        return number
    if kind is float:
        try:
            number_f = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where} must be a number of seconds, such as 0.5; got {value!r}") from None
        if number_f < 0:
            raise ValueError(f"{where} must not be negative; got {number_f}")
        return number_f
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a string; got {value!r}")
    if name in _UPPER_CHOICES:
        if value.upper() not in _UPPER_CHOICES[name]:
            raise ValueError(f"{where} must be one of {', '.join(_UPPER_CHOICES[name])}; got {value!r}")
        return value.upper()
    if name in _FILES and value and not Path(value).is_file():
        raise ValueError(f"{where}: no such file {value!r}; give the path of an existing file")
    if name in _CHOICES:
        if value.lower() not in _CHOICES[name]:
            raise ValueError(f"{where} must be one of {', '.join(_CHOICES[name])}; got {value!r}")
        return value.lower()
    if name == "broker":
        try:
            return parse_broker(value)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    if name == "web" and value and not re.fullmatch(r"[^\s:]*:\d{1,5}", value):
        raise ValueError(f"{where} must be host:port, such as 127.0.0.1:6066 (port 0: any free port), "
                         f"or empty to turn the web server off; got {value!r}")
    if not value and name not in ("worker_name", "rules", "topic_stateful", "webhooks", "web", "sasl_username",
                                  "sasl_password", "web_token", *_FILES):
        raise ValueError(f"{where} must not be empty")
    return value


def load_settings(
    config: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Read the settings file (if any) and the environment, validate, return :class:`Settings`.

    :param config: the settings file; ``None`` means ``$STREAM_CONFIG`` or ``./stream.toml``.
    :param environ: the environment to read (``os.environ`` by default).
    :param overrides: values given on the command line; they win over everything.
    :raises ConfigError: naming the file and line or the variable, and the fix.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    plugin_settings: dict[str, dict[str, Any]] = {}
    source: str | None = None
    #: Where each value came from: (file, line) or (None, variable / option).
    origin: dict[str, tuple[Path | None, int | str | None]] = {}

    path: Path | None = None
    file_text = ""
    if config is not None:
        path = Path(config)
    elif env.get("STREAM_CONFIG"):
        path = Path(env["STREAM_CONFIG"])
    else:
        path = next((p for p in config_search_path(env) if p.is_file()), None)
    if path is not None:
        if not path.is_file():
            raise ConfigError(
                "the settings file does not exist; create it or point STREAM_CONFIG/--config at "
                "an existing file",
                path=path,
            )
        data, text = read_toml(path, "settings file")
        file_text = text
        source = str(path)
        for key, value in data.items():
            if key == "plugins" and isinstance(value, dict):
                for plugin, table in value.items():
                    if not isinstance(table, dict):
                        raise ConfigError(
                            f"[plugins.{plugin}] must be a table of that plugin's settings",
                            path=path,
                            line=key_line(text, plugin, "plugins"),
                        )
                    plugin_settings[plugin] = dict(table)
                continue
            if key not in _FIELDS:
                known = ", ".join(sorted(_FIELDS))
                raise ConfigError(
                    f"unknown setting {key!r}; known settings are: {known} "
                    "(plugin settings go in a [plugins.NAME] table)",
                    path=path,
                    line=key_line(text, key),
                )
            try:
                values[key] = _convert(key, value, where=f"setting {key!r}")
                origin[key] = (path, key_line(text, key))
            except ValueError as exc:
                raise ConfigError(str(exc), path=path, line=key_line(text, key)) from None

    for name in _FIELDS:
        var = f"STREAM_{name.upper()}"
        if var in env:
            try:
                values[name] = _convert(name, env[var], where=f"environment variable {var}")
                origin[name] = (None, f"environment variable {var}")
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
    for var, value in env.items():
        # STREAM_PLUGIN_<NAME>__<KEY> (a plugin name may hold "_": word_count), else the
        # older STREAM_PLUGIN_<NAME>_<KEY>, whose name ends at its first "_".
        match = (re.match(r"^STREAM_PLUGIN_([A-Z0-9][A-Z0-9_]*?)__([A-Z0-9][A-Z0-9_]*)$", var) if "__" in var
                 else re.match(r"^STREAM_PLUGIN_([A-Z0-9]+)_([A-Z0-9_]+)$", var))
        if match:
            plugin, key = match.group(1).lower(), match.group(2).lower()
            plugin_settings.setdefault(plugin, {})[key] = value

    for name, value in overrides.items():
        if value is None:
            continue
        if name not in _FIELDS:
            raise TypeError(f"unknown setting {name!r}")
        values[name] = _convert(name, value, where=f"option --{name.replace('_', '-')}")
        origin[name] = (None, f"option --{name.replace('_', '-')}")

    origins = {name: "default" for name in _FIELDS}
    for name, (file, where) in origin.items():
        origins[name] = f"{file}:{where}" if file is not None else str(where)
    for plugin, table in plugin_settings.items():
        for key in table:
            from_env = next((v for v in (f"STREAM_PLUGIN_{plugin.upper()}__{key.upper()}",
                                         f"STREAM_PLUGIN_{plugin.upper()}_{key.upper()}") if v in env), None)
            line = key_line(file_text, key, f"plugins.{plugin}") if file_text else None
            origins[f"plugins.{plugin}.{key}"] = (f"environment variable {from_env}" if from_env else
                                                  f"{source}:{line}" if line else str(source))
    settings = Settings(**values, plugin_settings=plugin_settings, source=source, origins=origins)
    _check_security(settings, origin)
    return settings


def _read_password(path: str, setting: str = "sasl_password_file") -> str:
    """The first line of ``path`` (a password or token), without its line end."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {setting}: {exc.strerror}", path=path) from None
    return text.split("\n", 1)[0].rstrip("\r")


def _check_security(settings: Settings, origin: Mapping[str, tuple[Path | None, int | str | None]]) -> None:
    """The security settings agree with each other; the TLS files can be loaded.

    :raises ConfigError: at the file and line (or the variable) of the setting to fix.
    """
    def fail(name: str, message: str) -> ConfigError:
        path, where = origin.get(name, (None, None))
        if path is not None:
            return ConfigError(message, path=path, line=where if isinstance(where, int) else None)
        return ConfigError(f"{where}: {message}" if where else message)

    sec = settings.security_protocol
    if sec in ("SASL_PLAINTEXT", "SASL_SSL"):
        if not settings.sasl_username:
            raise fail("security_protocol", f"security_protocol = {sec!r} needs sasl_username (and sasl_password "
                       "or sasl_password_file); set them in the settings file or as STREAM_SASL_USERNAME and "
                       "STREAM_SASL_PASSWORD")
        if settings.sasl_password and settings.sasl_password_file:
            raise fail("sasl_password_file", "both sasl_password and sasl_password_file are set; keep one")
        if not settings.sasl_password and not settings.sasl_password_file:
            raise fail("security_protocol", f"security_protocol = {sec!r} needs sasl_password or "
                       "sasl_password_file (or STREAM_SASL_PASSWORD)")
    else:
        for name in ("sasl_username", "sasl_password", "sasl_password_file"):
            if getattr(settings, name) and name in origin:
                raise fail(name, f"{name} is set but security_protocol = {sec!r} does not use SASL; set "
                           "security_protocol to SASL_SSL (or SASL_PLAINTEXT), or remove it")
    if sec not in ("SSL", "SASL_SSL"):
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if getattr(settings, name):
                raise fail(name, f"{name} is set but security_protocol = {sec!r} does not use TLS; set "
                           "security_protocol to SSL or SASL_SSL, or remove it")
        return
    if settings.ssl_keyfile and not settings.ssl_certfile:
        raise fail("ssl_keyfile", "ssl_keyfile is set without ssl_certfile; mutual TLS needs both")
    try:
        settings.security.ssl_context  # noqa: B018 - loads the CA, the certificate and the key
    except ssl.SSLError as exc:
        name = "ssl_certfile" if settings.ssl_certfile and "PEM" not in str(exc) else "ssl_cafile"
        if "KEY_VALUES_MISMATCH" in str(exc) or "key" in str(exc).lower():
            name = "ssl_keyfile" if settings.ssl_keyfile else "ssl_certfile"
        raise fail(name, f"the TLS files cannot be loaded ({exc.reason or exc}); give PEM files: ssl_cafile the "
                   "CA certificates, ssl_certfile the client certificate, ssl_keyfile its unencrypted key") from None
