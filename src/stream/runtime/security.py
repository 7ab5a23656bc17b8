"""How stream's Kafka clients connect: the bootstrap servers, TLS and SASL.

Every Kafka client the project creates (the faust app, aiokafka producers, consumers and
admin clients, the webhook dispatcher, the command line, :mod:`stream.testing`) takes its
connection options from one :class:`KafkaTarget`, built from the settings
(:attr:`stream.settings.Settings.kafka`).  Passwords live in :class:`KafkaSecurity`, whose
``repr`` never shows them; nothing here logs them.

At start, :func:`check_connection` opens one connection to a bootstrap server and turns the
failures a user can fix (wrong password, an untrusted certificate, a TLS client talking to a
plain listener) into a :class:`~stream.errors.ConnectError` that says which setting to fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..errors import EX_CONFIG, EX_NOPERM, ConnectError

__all__ = ["MECHANISMS", "PROTOCOLS", "KafkaSecurity", "KafkaTarget", "check_connection", "client_options"]

#: Kafka's ``security.protocol`` values stream supports.
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
#: SASL mechanisms stream supports.
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSecurity:
    """TLS and SASL options of a Kafka client (the ``security_protocol``, ``sasl_*`` and
    ``ssl_*`` settings)."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    ssl_check_hostname: bool = True

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The client's TLS context: the system's trusted CAs, or ``ssl_cafile``; the client
        certificate and key for mutual TLS; host name checks unless turned off."""
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH, cafile=self.ssl_cafile or None)
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile or None)
        context.check_hostname = self.ssl_check_hostname
        return context

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's producers, consumers and admin clients."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context
        if self.uses_sasl:
            options.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                           sasl_plain_password=self.sasl_password)
        return options

    def faust_credentials(self) -> Any:
        """faust's ``broker_credentials`` for these options (``None`` for ``PLAINTEXT``)."""
        from faust.auth import SASLCredentials, SSLCredentials

        if self.uses_sasl:
            return SASLCredentials(username=self.sasl_username, password=self.sasl_password,
                                   ssl_context=self.ssl_context, mechanism=self.sasl_mechanism)
        if self.uses_tls:
            return SSLCredentials(self.ssl_context)
        return None

    def describe(self) -> str:
        """For messages: the protocol, the mechanism and user; never the password."""
        if self.uses_sasl:
            return f"{self.protocol} ({self.sasl_mechanism} as {self.sasl_username!r})"
        return self.protocol


@dataclass(frozen=True)
class KafkaTarget:
    """A Kafka cluster and how to connect to it."""

    bootstrap: str
    security: KafkaSecurity = KafkaSecurity()

    def options(self) -> dict[str, Any]:
        """``bootstrap_servers`` and the security options, for any aiokafka client."""
        return {"bootstrap_servers": self.bootstrap, **self.security.client_options()}


def client_options(target: str | KafkaTarget) -> dict[str, Any]:
    """aiokafka keyword arguments for ``target`` (a bare ``host:port`` list is plaintext)."""
    if isinstance(target, str):
        return {"bootstrap_servers": target}
    return target.options()


def _split(server: str) -> tuple[str, int]:
    host, _, port = server.strip().rpartition(":")
    return host.strip("[]"), int(port)


async def check_connection(target: KafkaTarget, timeout: float = 15.0) -> None:
    """Connect to the bootstrap servers (the first that answers) and authenticate.

    Public APIs only: a TCP (and, for SSL and SASL_SSL, a TLS) connection made with the
    standard library names an address that does not answer or a certificate that is not
    trusted; then an aiokafka admin client's bootstrap (metadata, after the SASL login)
    tells whether the broker takes the configured protocol and credentials.

    :raises ConnectError: no server answered, the broker's certificate is not trusted, the
        listener does not speak the configured protocol, or the SASL login was refused; the
        message names the setting to fix and never a password.
    """
    from aiokafka.admin import AIOKafkaAdminClient

    sec = target.security
    how = sec.describe()
    failures: list[str] = []
    for server in target.bootstrap.split(","):
        host, port = _split(server)
        context = sec.ssl_context if sec.uses_tls else None
        try:
            _reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=context,
                                        server_hostname=host if context is not None else None), timeout)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
        except ssl.SSLCertVerificationError as exc:
            raise ConnectError(
                f"the TLS certificate of the Kafka broker at {server} is not trusted ({exc.verify_message}); "
                "set ssl_cafile (STREAM_SSL_CAFILE) to the CA certificate that signed it"
                + (", or check that the broker's certificate names this host" if "hostname" in str(exc).lower()
                   or "IP address mismatch" in str(exc) else ""), exit_status=EX_CONFIG) from None
        except ssl.SSLError as exc:
            raise ConnectError(
                f"TLS with the Kafka broker at {server} failed ({exc.reason or exc}); check that this port is "
                f"a {sec.protocol} listener and that ssl_certfile/ssl_keyfile are what the broker expects",
                exit_status=EX_CONFIG) from None
        except (TimeoutError, OSError) as exc:
            failures.append(f"{server}: {type(exc).__name__}: {exc}")
            continue
        admin = AIOKafkaAdminClient(bootstrap_servers=server.strip(), request_timeout_ms=int(timeout * 1000),
                                    **sec.client_options())
        try:
            await asyncio.wait_for(admin.start(), timeout)
        except Exception as exc:
            if sec.uses_sasl:
                raise ConnectError(
                    f"the Kafka broker at {server} refused the login {how}: {type(exc).__name__}; check "
                    "sasl_username and sasl_password (STREAM_SASL_USERNAME, STREAM_SASL_PASSWORD or "
                    "sasl_password_file) and sasl_mechanism", exit_status=EX_NOPERM) from None
            failures.append(f"{server}: {type(exc).__name__}: {exc}")
            continue
        finally:
            await admin.close()
        return
    hint = ""
    if sec.protocol == "PLAINTEXT":
        hint = "; if the cluster needs TLS or SASL, set security_protocol (STREAM_SECURITY_PROTOCOL)"
    else:
        hint = f"; check that these ports are {sec.protocol} listeners"
    raise ConnectError(f"cannot connect to Kafka at {target.bootstrap} with {how} ({'; '.join(failures)}){hint}")
