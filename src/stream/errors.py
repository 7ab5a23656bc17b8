"""The errors stream raises, one tree with one root.

::

    StreamError
     ├── ConfigError (also ValueError)     bad settings, rules or plugin configuration
     ├── PluginError                       a plugin failed to load, configure or process
     ├── RecordError (also ValueError)     an input record cannot be decoded or validated
     ├── BrokerError (also RuntimeError)   the local Kafka broker could not be fetched/started
 ├── ConnectError (also RuntimeError)  Kafka cannot be reached or refused the TLS/SASL login
     ├── DeliveryError (also RuntimeError) Kafka refused a record the worker sent, for good
     ├── DependencyError (also RuntimeError) a library at a version stream was not tested with
     └── WebhookError                      a webhook target was refused or a delivery failed
                                           (stream.webhooks.errors)

Every message says what happened, where, and what to do about it.

Each class has the exit status of a command it stops (``exit_status``), after sysexits(3),
so that systemd's ``RestartPreventExitStatus`` and orchestrators can tell "fix the
configuration" from "restart me"; docs/operations.md has the table.
"""

from __future__ import annotations

import os

#: The exit statuses of ``stream`` (sysexits(3) where one fits; docs/operations.md).
EX_OK = 0
#: A failure at run time that a restart may cure (a stage failed, a record was refused).
EX_FAILURE = 1
#: A mistyped command line (click's status).
EX_USAGE = 2
#: ``stream broker status``: the broker is not running (the LSB status code).
EX_NOT_RUNNING = 3
#: Input data could not be processed (``stream process``: dead letters).
EX_DATAERR = 65
#: A service is unavailable: Kafka did not answer, a feed of ``ingest --once`` failed, the
#: local broker could not start.
EX_UNAVAILABLE = 69
#: The worker did not stop within its deadline after SIGTERM.
EX_SOFTWARE = 70
#: Kafka refused the login (wrong user, password or mechanism).
EX_NOPERM = 77
#: Configuration or installation to fix: settings, rules, webhooks, plugins, topics, a
#: library version.  Restarting does not help.
EX_CONFIG = 78

__all__ = ["EX_CONFIG", "EX_DATAERR", "EX_FAILURE", "EX_NOPERM", "EX_NOT_RUNNING", "EX_OK", "EX_SOFTWARE",
           "EX_UNAVAILABLE", "EX_USAGE", "BrokerError", "ConfigError", "ConnectError", "DeliveryError",
           "DependencyError", "PluginError", "RecordError", "StreamError"]


class StreamError(Exception):
    """Root of every error stream raises on purpose."""

    #: The exit status of a command this error stops.
    exit_status = EX_FAILURE


class ConfigError(StreamError, ValueError):
    """Invalid configuration.  Carries the file and line when they are known.

    :param message: what is wrong and how to fix it.
    :param path: the configuration file, or ``None`` for an environment variable.
    :param line: 1-based line number in ``path``, when known.
    :param exit_status: :data:`EX_CONFIG`, or :data:`EX_NOPERM` for a missing ACL.
    """

    exit_status = EX_CONFIG

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None, line: int | None = None,
                 exit_status: int = EX_CONFIG):
        self.exit_status = exit_status  # EX_NOPERM when what to fix is a missing ACL
        self.path = str(path) if path is not None else None
        self.line = line
        self.reason = message
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line else f"{self.path}: "
        super().__init__(where + message)


class PluginError(StreamError):
    """A plugin failed.  ``plugin`` names it (the entry-point name).  At start (a plugin
    that does not load or set up) that is an installation or configuration to fix."""

    exit_status = EX_CONFIG

    def __init__(self, plugin: str, message: str):
        self.plugin = plugin
        self.reason = message
        super().__init__(f"plugin {plugin!r}: {message}")


class RecordError(StreamError, ValueError):
    """An input record cannot be decoded or validated.

    ``topic``, ``partition`` and ``offset`` say where it came from when it came from Kafka.
    """

    exit_status = EX_DATAERR

    def __init__(
        self,
        message: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ):
        self.reason = message
        self.topic = topic
        self.partition = partition
        self.offset = offset
        super().__init__(message)


class BrokerError(StreamError, RuntimeError):
    """The local Apache Kafka broker could not be fetched, started or stopped."""

    exit_status = EX_UNAVAILABLE


class ConnectError(StreamError, RuntimeError):
    """Kafka cannot be reached with the configured servers and security settings: no server
    answered, its TLS certificate is not trusted, or it refused the SASL login (see
    :func:`stream.runtime.security.check_connection`).

    ``exit_status``: :data:`EX_UNAVAILABLE` when no server answered, :data:`EX_NOPERM`
    when the login was refused, :data:`EX_CONFIG` when TLS failed (a CA or a listener to fix).
    """

    exit_status = EX_UNAVAILABLE

    def __init__(self, message: str, *, exit_status: int = EX_UNAVAILABLE):
        self.exit_status = exit_status
        super().__init__(message)


class DeliveryError(StreamError, RuntimeError):
    """A record the worker sent was refused by Kafka for good (after the client's retries),
    or not answered in time.  The worker stops without committing the batch it belongs to.

    ``topic``: where it was sent; ``what``: what it carried (``article ID``); ``cause``: the
    client's error.
    """

    def __init__(self, topic: str, what: str, cause: BaseException):
        self.topic = topic
        self.what = what
        self.cause = cause
        about = f" ({what})" if what else ""
        hint = ""
        if "TooLarge" in type(cause).__name__ or "too large" in str(cause).lower():
            hint = (f"; the record is larger than topic {topic!r} accepts: raise its max.message.bytes "
                    "(kafka-configs.sh --alter --entity-type topics --add-config max.message.bytes=N) or lower "
                    "the setting max_record_bytes")
        super().__init__(f"a record to {topic!r}{about} was not written: "
                         f"{type(cause).__name__}: {cause}{hint}")


class DependencyError(StreamError, RuntimeError):
    """An installed library is missing or at a version stream does not support (see
    :mod:`stream.runtime.versions`)."""

    exit_status = EX_CONFIG
