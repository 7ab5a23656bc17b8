"""The local Apache Kafka broker for development and tests (``stream broker``).

A single node in KRaft mode (broker and controller in one process) on 127.0.0.1, or three
(``--nodes 3``: a three-voter quorum, each node broker and controller), with an optional
``SASL_SSL`` listener (``--sasl-ssl``: a locally made CA and broker certificate, SCRAM users
created when the storage is formatted).  The
official artifacts come from ``$KAFKA_HOME/libs`` when ``KAFKA_HOME`` points at a Kafka
install, otherwise from Maven Central: ``org.apache.kafka:kafka_2.13`` and its runtime
dependencies, fetched once with ``mvn dependency:copy-dependencies`` into a cache.

Files (all under the broker directory, ``$STREAM_BROKER_DIR`` or
``~/.local/state/stream/broker-PORT``; per node in ``node-N/`` for three nodes):
``server.properties``, ``log4j2.properties``, ``data/`` (the log and the metadata),
``server.log`` (the broker's log), ``broker.pid``; ``layout.json`` (the shape it was made
with), ``tls/`` (CA, broker and client certificates), ``client/`` (the SASL password and
``client.env``, the ``STREAM_*`` settings of a client of the SASL_SSL listener).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BrokerError
from ..runtime.security import KafkaSecurity, KafkaTarget

__all__ = ["ADMIN_USER", "KAFKA_VERSION", "SASL_USER", "BrokerStatus", "LocalBroker", "Node", "make_certificates"]

#: The Apache Kafka release fetched from Maven Central (``STREAM_KAFKA_VERSION`` overrides).
KAFKA_VERSION = "4.1.1"
#: log4j's slf4j binding, so that the broker's log goes to ``server.log``.
_LOG4J_VERSION = "2.24.3"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>stream.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""

_SERVER = """# written by `stream broker start`; edits are overwritten
process.roles=broker,controller
node.id={node_id}
controller.quorum.voters={voters}
listeners={listeners}
advertised.listeners={advertised}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL
log.dirs={data}
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor={replicas}
offsets.topic.num.partitions=10
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={min_isr}
share.coordinator.state.topic.replication.factor={replicas}
share.coordinator.state.topic.min.isr={min_isr}
group.initial.rebalance.delay.ms=0
log.retention.hours=168
"""

#: The SASL_SSL listener: SCRAM users are created at format time; PLAIN checks the same
#: user from its JAAS line; the broker's key and certificate chain in one PEM file.
_SASL_SSL = """sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config={plain_module} required user_{user}="{password}";
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location={keystore}
"""

#: With ``acls``: Kafka's authorizer on, nothing allowed without an ACL, and two super
#: users: the administrator (a SCRAM user beside the application's) and ANONYMOUS, the
#: principal of the controller and PLAINTEXT listeners (local, the brokers' own traffic).
_ACLS = """authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:{admin};User:ANONYMOUS
"""

#: The administrator of a broker with ``acls`` (its password: ``client/admin-password``).
ADMIN_USER = "admin"

_LOG4J = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def _state_home() -> Path:
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process
        return True
    try:  # a zombie child counts as dead
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


async def _metadata_ok(bootstrap: str, timeout: float, brokers: int = 1) -> bool:
    """True when a client gets metadata from ``bootstrap`` naming at least ``brokers`` brokers."""
    from aiokafka.admin import AIOKafkaAdminClient

    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(client.start(), timeout)
        await asyncio.wait_for(client.list_topics(), timeout)
        if brokers > 1:
            cluster = await asyncio.wait_for(client.describe_cluster(), timeout)
            return len(cluster["brokers"]) >= brokers
        return True
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await client.close()


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise BrokerError("openssl is needed to make the local broker's TLS certificates; install it "
                          "(Debian: apt-get install openssl)")
    proc = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BrokerError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def make_certificates(directory: Path, hosts: tuple[str, ...] = ()) -> None:
    """A local CA (``ca.pem``), a broker key and certificate for 127.0.0.1, localhost and
    ``hosts`` signed by it (``broker-keystore.pem``: key, certificate, CA, the PEM keystore
    Kafka reads), and a client key and certificate for mutual TLS (``client.pem``,
    ``client.key``)."""
    directory.mkdir(parents=True, exist_ok=True)
    names = ",".join(["IP:127.0.0.1", "DNS:localhost", *(f"DNS:{h}" for h in hosts)])
    days = "825"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", days, "-subj", "/CN=stream local CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    for name, usage, san in (("broker", "serverAuth", names),
                             ("client", "clientAuth", "DNS:stream-client")):
        (directory / f"{name}.ext").write_text(f"subjectAltName={san}\nextendedKeyUsage={usage}\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={'localhost' if name == 'broker' else 'stream-client'}", cwd=directory)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", days, "-extfile", f"{name}.ext", cwd=directory)
    keystore = "".join((directory / f).read_text() for f in ("broker.key", "broker.pem", "ca.pem"))
    (directory / "broker-keystore.pem").write_text(keystore)
    for key in [*directory.glob("*.key"), directory / "broker-keystore.pem"]:
        key.chmod(0o600)


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str
    log: Path


@dataclass(frozen=True)
class Node:
    """One KRaft node (broker and controller in one process) of a local cluster."""

    node_id: int
    port: int
    controller_port: int
    sasl_port: int
    directory: Path

    @property
    def pid_path(self) -> Path:
        return self.directory / "broker.pid"

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"


#: The SCRAM (and PLAIN) user of the SASL_SSL listener.
SASL_USER = "stream"


class LocalBroker:
    """A local KRaft cluster on 127.0.0.1: one node by default, or ``nodes`` (each broker
    and controller in one process, a three-voter quorum for three nodes).

    Node ``i`` (0-based) listens for clients on ``port + 10 * i`` (PLAINTEXT), its controller
    on the next port, and with ``sasl_ssl`` on the one after (``SASL_SSL``: TLS with a locally
    made CA, SCRAM-SHA-512/256 and PLAIN logins of the user ``stream``).  Brokers talk to
    each other over the PLAINTEXT listener (loopback only).

    :param nodes: ``None`` means what the directory was made with (else 1).
    :param sasl_ssl: ``None`` means what the directory was made with (else no).
    :param acls: Kafka's ``StandardAuthorizer`` on (with ``sasl_ssl``): the application's
        user (:data:`SASL_USER`) may do only what ACLs allow; :data:`ADMIN_USER` is a super
        user (``admin_properties``: its client settings, for ``kafka-acls.sh``).
    """

    def __init__(
        self,
        port: int = 9092,
        *,
        nodes: int | None = None,
        sasl_ssl: bool | None = None,
        acls: bool | None = None,
        controller_port: int | None = None,
        directory: Path | str | None = None,
        cache: Path | str | None = None,
        version: str | None = None,
    ):
        self.port = port
        self.controller_port = controller_port or port + 1
        env_dir = os.environ.get("STREAM_BROKER_DIR")
        self.directory = Path(directory or env_dir or _state_home() / "stream" / f"broker-{port}")
        self.version = version or os.environ.get("STREAM_KAFKA_VERSION") or KAFKA_VERSION
        self.cache = Path(cache or os.environ.get("STREAM_KAFKA_CACHE") or _cache_home() / "stream" / "kafka")
        layout = self._layout()
        self.node_count = nodes if nodes is not None else int(layout.get("nodes", 1))
        self.sasl_ssl = sasl_ssl if sasl_ssl is not None else bool(layout.get("sasl_ssl", False))
        self.acls = acls if acls is not None else bool(layout.get("acls", False))
        if self.acls and not self.sasl_ssl:
            raise BrokerError("--acls needs --sasl-ssl: the ACLs name the SASL users")
        if self.node_count not in (1, 3):
            raise BrokerError(f"--nodes {self.node_count}: the local launcher runs 1 or 3 nodes")
        self.nodes = [
            Node(i + 1, port + 10 * i, self.controller_port + 10 * i, port + 2 + 10 * i,
                 self.directory if self.node_count == 1 else self.directory / f"node-{i + 1}")
            for i in range(self.node_count)
        ]

    def _layout(self) -> dict[str, Any]:
        try:
            data = json.loads((self.directory / "layout.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def bootstrap(self) -> str:
        """The PLAINTEXT listeners of every node."""
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    @property
    def sasl_bootstrap(self) -> str:
        """The SASL_SSL listeners of every node (with ``sasl_ssl``)."""
        return ",".join(f"127.0.0.1:{n.sasl_port}" for n in self.nodes)

    @property
    def tls_dir(self) -> Path:
        return self.directory / "tls"

    @property
    def password_file(self) -> Path:
        """The SASL password of :data:`SASL_USER` (made at format time, mode 0600)."""
        return self.directory / "client" / "sasl-password"

    @property
    def admin_password_file(self) -> Path:
        """The SASL password of :data:`ADMIN_USER` (with ``acls``; mode 0600)."""
        return self.directory / "client" / "admin-password"

    @property
    def admin_properties(self) -> Path:
        """The client settings of :data:`ADMIN_USER` over SASL_SSL, for Kafka's own tools
        (``--command-config``)."""
        return self.directory / "client" / "admin.properties"

    def acl_command(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run Kafka's ``AclCommand`` (what ``kafka-acls.sh`` runs) as the administrator
        against the SASL_SSL listener: ``args`` are what follows ``--command-config FILE``."""
        classpath = os.pathsep.join(str(p) for p in sorted(self.libs().glob("*.jar")))
        return subprocess.run([self._java(), "-cp", classpath, "org.apache.kafka.tools.AclCommand",
                               "--bootstrap-server", self.sasl_bootstrap, "--command-config",
                               str(self.admin_properties), *args], capture_output=True, text=True, timeout=120)

    def target(self, secure: bool | None = None) -> KafkaTarget:
        """How a client reaches this cluster: over SASL_SSL (SCRAM-SHA-512) when the broker
        has that listener (or ``secure``), else PLAINTEXT."""
        if secure is None:
            secure = self.sasl_ssl
        if not secure:
            return KafkaTarget(self.bootstrap)
        return KafkaTarget(self.sasl_bootstrap, KafkaSecurity(
            protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username=SASL_USER,
            sasl_password=self.password_file.read_text().strip(), ssl_cafile=str(self.tls_dir / "ca.pem")))

    def client_env(self, secure: bool | None = None) -> dict[str, str]:
        """``STREAM_*`` variables that point stream at this cluster (the password as a file)."""
        if secure is None:
            secure = self.sasl_ssl
        if not secure:
            return {"STREAM_BROKER": self.bootstrap}
        return {
            "STREAM_BROKER": self.sasl_bootstrap,
            "STREAM_SECURITY_PROTOCOL": "SASL_SSL",
            "STREAM_SASL_MECHANISM": "SCRAM-SHA-512",
            "STREAM_SASL_USERNAME": SASL_USER,
            "STREAM_SASL_PASSWORD_FILE": str(self.password_file),
            "STREAM_SSL_CAFILE": str(self.tls_dir / "ca.pem"),
        }

    @property
    def log_path(self) -> Path:
        return self.nodes[0].log_path

    # -- artifacts ---------------------------------------------------------------------

    def libs(self) -> Path:
        """The directory of Kafka's jars, fetching them first when needed.

        :raises BrokerError: Maven is missing or the fetch failed.
        """
        home = os.environ.get("KAFKA_HOME")
        if home:
            libs = Path(home) / "libs"
            if not any(libs.glob("kafka_2.13-*.jar")):
                raise BrokerError(
                    f"KAFKA_HOME={home} has no libs/kafka_2.13-*.jar; point KAFKA_HOME at an "
                    "Apache Kafka install, or unset it to fetch Kafka from Maven Central"
                )
            return libs
        target = self.cache / self.version
        libs = target / "libs"
        # kafka-tools (AclCommand) joined the fetched jars later: a cache without it is fetched again.
        if (target / ".complete").exists() and any(libs.glob("kafka-tools-[0-9]*.jar")):
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError(
                "Maven (mvn) is needed to fetch Apache Kafka from Maven Central; install Maven "
                "(and a JDK 17+), or set KAFKA_HOME to an existing Kafka install"
            )
        target.mkdir(parents=True, exist_ok=True)
        (target / "pom.xml").write_text(_POM.format(kafka=self.version, log4j=_LOG4J_VERSION))
        if libs.exists():
            shutil.rmtree(libs)
        proc = subprocess.run(
            [mvn, "-B", "-q", "dependency:copy-dependencies", "-DincludeScope=runtime",
             f"-DoutputDirectory={libs}"],
            cwd=target, capture_output=True, text=True,
        )
        if proc.returncode != 0 or not any(libs.glob("kafka_2.13-*.jar")):
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise BrokerError(
                f"fetching org.apache.kafka:kafka_2.13:{self.version} with Maven failed "
                f"(exit {proc.returncode}):\n{tail}"
            )
        (target / ".complete").write_text(self.version)
        return libs

    # -- lifecycle ---------------------------------------------------------------------

    @staticmethod
    def _node_pid(node: Node) -> int | None:
        try:
            pid = int(node.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def pids(self) -> dict[int, int | None]:
        """``{node_id: pid or None}``."""
        return {n.node_id: self._node_pid(n) for n in self.nodes}

    def status(self) -> BrokerStatus:
        pids = self.pids()
        running = all(pids.values()) and all(_port_open(n.port) for n in self.nodes)
        return BrokerStatus(running=running, pid=pids[1], bootstrap=self.bootstrap, log=self.log_path)

    def _java(self) -> str:
        home = os.environ.get("JAVA_HOME")
        java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
        if not java or not Path(java).exists():
            raise BrokerError("Java (17 or later) is needed to run Kafka; install a JDK or set JAVA_HOME")
        return java

    def _properties(self, node: Node) -> str:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        listeners = [f"PLAINTEXT://127.0.0.1:{node.port}", f"CONTROLLER://127.0.0.1:{node.controller_port}"]
        advertised = [f"PLAINTEXT://127.0.0.1:{node.port}"]
        if self.sasl_ssl:
            listeners.append(f"SASL_SSL://127.0.0.1:{node.sasl_port}")
            advertised.append(f"SASL_SSL://127.0.0.1:{node.sasl_port}")
        replicas = min(3, self.node_count)
        text = _SERVER.format(node_id=node.node_id, voters=voters, listeners=",".join(listeners),
                              advertised=",".join(advertised), data=node.directory / "data",
                              replicas=replicas, min_isr=max(1, replicas - 1))
        if self.sasl_ssl:
            text += _SASL_SSL.format(plain_module="org.apache.kafka.common.security.plain.PlainLoginModule",
                                     user=SASL_USER, password=self.password_file.read_text().strip(),
                                     keystore=self.tls_dir / "broker-keystore.pem")
        if self.acls:
            text += _ACLS.format(admin=ADMIN_USER)
        return text

    def _prepare(self, java: str, classpath: str) -> None:
        """First start: the layout file, the TLS files and the SASL password (with
        ``sasl_ssl``), and every node's storage formatted with one cluster id."""
        layout = self._layout()
        formatted = any((n.directory / "data" / "meta.properties").exists() for n in self.nodes)
        wanted = {"nodes": self.node_count, "sasl_ssl": self.sasl_ssl, "acls": self.acls}
        if formatted and layout and {k: layout.get(k, False if k == "acls" else None) for k in wanted} != wanted:
            raise BrokerError(
                f"the broker in {self.directory} was made with --nodes {layout.get('nodes')}"
                f"{' --sasl-ssl' if layout.get('sasl_ssl') else ''}; stop it and remove that directory to "
                "change its shape, or start it with the same options")
        if formatted and not layout and wanted != {"nodes": 1, "sasl_ssl": False, "acls": False}:
            raise BrokerError(f"the broker in {self.directory} is a plain single node; stop it and remove "
                              "that directory to change its shape")
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "layout.json").write_text(json.dumps(wanted))
        if self.sasl_ssl and not self.password_file.exists():
            make_certificates(self.tls_dir)
            self.password_file.parent.mkdir(parents=True, exist_ok=True)
            self.password_file.touch(mode=0o600)
            self.password_file.write_text(secrets.token_hex(16) + "\n")
            env = "".join(f"{k}={v}\n" for k, v in self.client_env(secure=True).items())
            (self.directory / "client" / "client.env").write_text(env)
        if self.acls and not self.admin_password_file.exists():
            self.admin_password_file.touch(mode=0o600)
            self.admin_password_file.write_text(secrets.token_hex(16) + "\n")
            self.admin_properties.touch(mode=0o600)
            self.admin_properties.write_text(
                "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
                "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{ADMIN_USER}" password="{self.admin_password_file.read_text().strip()}";\n'
                f"ssl.truststore.type=PEM\nssl.truststore.location={self.tls_dir / 'ca.pem'}\n")
        cluster_file = self.directory / "cluster.id"
        if not cluster_file.exists():
            cluster_file.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
        cluster = cluster_file.read_text().strip()
        for node in self.nodes:
            node.directory.mkdir(parents=True, exist_ok=True)
            props = node.directory / "server.properties"
            props.write_text(self._properties(node))
            props.chmod(0o600)
            (node.directory / "log4j2.properties").write_text(_LOG4J.format(log=node.log_path))
            if (node.directory / "data" / "meta.properties").exists():
                continue
            scram = []
            if self.sasl_ssl:
                password = self.password_file.read_text().strip()
                users = [(SASL_USER, password)]
                if self.acls:
                    users.append((ADMIN_USER, self.admin_password_file.read_text().strip()))
                for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256"):
                    scram += [arg for user, secret in users
                              for arg in ("--add-scram", f"{mechanism}=[name={user},password={secret}]")]
            fmt = subprocess.run(
                [java, "-cp", classpath, "kafka.tools.StorageTool", "format",
                 # one argument: a base64url id may start with "-" (1 in 64), which the
                 # tool would otherwise read as an option
                 f"--cluster-id={cluster}", "-c", str(props), "--ignore-formatted", *scram],
                capture_output=True, text=True,
            )
            if fmt.returncode != 0:
                output = fmt.stdout + fmt.stderr
                if self.sasl_ssl:  # the tool may echo its --add-scram arguments
                    output = output.replace(self.password_file.read_text().strip(), "***")
                if self.acls:
                    output = output.replace(self.admin_password_file.read_text().strip(), "***")
                raise BrokerError(f"formatting the storage of node {node.node_id} failed:\n{output}")

    def _launch(self, node: Node, java: str, classpath: str) -> int:
        heap = os.environ.get("KAFKA_HEAP_OPTS", "-Xms256m -Xmx1g").split()
        log4j = node.directory / "log4j2.properties"
        command = shlex.join([java, *heap, "-XX:+UseG1GC", "-Djava.awt.headless=true",
                              f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath,
                              "kafka.Kafka", str(node.directory / "server.properties")])
        stdout = shlex.quote(str(node.directory / "stdout.log"))
        # Detached: sh starts Kafka in the background and exits, so Kafka is not our child
        # (no zombie, no Popen left running) and outlives this process.
        launcher = subprocess.run(
            ["/bin/sh", "-c", f"{command} >>{stdout} 2>&1 </dev/null & echo $!"],
            capture_output=True, text=True, start_new_session=True, check=False,
        )
        try:
            pid = int(launcher.stdout.strip())
        except ValueError:
            raise BrokerError(f"could not start Java: {launcher.stderr.strip()}") from None
        node.pid_path.write_text(str(pid))
        return pid

    def start(self, timeout: float = 90.0, recovery_limit: float = 900.0) -> str:
        """Start every node that is not running and wait until a client gets metadata
        naming all of them: ``timeout`` seconds, or up to ``recovery_limit`` while every
        node's log keeps growing (a broker with many partitions recovers its logs first).

        :return: a message for the user.  Starting a running broker is a no-op.
        :raises BrokerError: a port is taken by another program, or a node did not come up.
        """
        pids = self.pids()
        brokers = self.node_count
        if all(pids.values()) and asyncio.run(_metadata_ok(self.bootstrap, 5.0, brokers)):
            return f"broker already running on {self.describe()} (pid {pids[1]}); nothing to do"
        for node in self.nodes:
            if pids[node.node_id] is not None:
                continue
            for port in (node.port, node.controller_port) + ((node.sasl_port,) if self.sasl_ssl else ()):
                if _port_open(port):
                    raise BrokerError(
                        f"port {port} on 127.0.0.1 is already in use by another program; stop it, or "
                        f"start the broker on other ports with `stream broker start --port N` "
                        f"(node i uses N+10i, its controller the next port, SASL_SSL the one after)"
                    )
        if self.node_count == 1 and pids[1] is not None:  # ours, but not answering: restart it
            self.stop()
            pids = self.pids()
        libs = self.libs()
        java = self._java()
        classpath = f"{libs}/*"
        self._prepare(java, classpath)
        started = {}
        for node in self.nodes:
            if pids[node.node_id] is None:
                started[node.node_id] = self._launch(node, java, classpath)
        began = time.monotonic()
        deadline = began + timeout
        while time.monotonic() < deadline or self._recovering(started, began + recovery_limit):
            for node in self.nodes:
                pid = started.get(node.node_id)
                if pid is not None and not _pid_alive(pid):
                    node.pid_path.unlink(missing_ok=True)
                    raise BrokerError(
                        f"node {node.node_id} exited during start; see {node.log_path} and "
                        f"{node.directory / 'stdout.log'}:\n{self._tail(node)}"
                    )
            if all(_port_open(n.port) for n in self.nodes) and asyncio.run(
                    _metadata_ok(self.bootstrap, 3.0, brokers)):
                pid_text = ", ".join(str(p) for p in self.pids().values())
                return f"broker started on {self.describe()} (pid {pid_text}); log: {self.log_path}"
            time.sleep(0.5)
        self.stop()
        partitions = sum(1 for n in self.nodes for _ in (n.directory / "data").glob("*-*"))
        hint = (f" It holds {partitions} partition directories: a broker recovers each at start. "
                f"Delete old topics, or stop it and remove {self.nodes[0].directory} for a new one."
                if partitions > 2000 else "")
        raise BrokerError(f"the broker did not answer within {time.monotonic() - began:.0f}s.{hint} "
                          f"See {self.log_path}:\n{self._tail(self.nodes[0])}")

    def _recovering(self, started: dict[int, int], limit: float) -> bool:
        """Every node we started is alive and wrote to its log in the last 30 s (before
        ``limit``, a ``time.monotonic()`` value)."""
        if not started or time.monotonic() >= limit:
            return False
        now = time.time()
        for node in self.nodes:
            try:
                fresh = now - node.log_path.stat().st_mtime < 30
            except OSError:
                fresh = False
            if node.node_id in started and not (_pid_alive(started[node.node_id]) and fresh):
                return False
        return True

    def describe(self) -> str:
        """The listeners, for messages."""
        text = self.bootstrap
        if self.node_count > 1:
            text = f"{self.node_count} nodes, {text}"
        if self.sasl_ssl:
            text += f"; SASL_SSL on {self.sasl_bootstrap} (client settings: {self.directory / 'client' / 'client.env'})"
        return text

    def _tail(self, node: Node, lines: int = 15) -> str:
        for path in (node.directory / "stdout.log", node.log_path):
            try:
                text = path.read_text(errors="replace").strip().splitlines()
            except OSError:
                continue
            if text:
                return "\n".join(text[-lines:])
        return "(no log)"

    def kill_node(self, node_id: int, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to one node (fault tests); :return: its pid."""
        node = self.nodes[node_id - 1]
        pid = self._node_pid(node)
        if pid is None:
            raise BrokerError(f"node {node_id} is not running")
        os.kill(pid, sig)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.1)
        node.pid_path.unlink(missing_ok=True)
        return pid

    def freeze(self, node_id: int = 1) -> int:
        """Stop one node's process in its tracks (SIGSTOP: a broker that hangs; fault tests);
        :meth:`thaw` resumes it.  :return: its pid."""
        pid = self._node_pid(self.nodes[node_id - 1])
        if pid is None:
            raise BrokerError(f"node {node_id} is not running")
        os.kill(pid, signal.SIGSTOP)
        return pid

    def thaw(self, node_id: int = 1) -> int:
        """Resume a node :meth:`freeze` stopped (SIGCONT).  :return: its pid."""
        pid = self._node_pid(self.nodes[node_id - 1])
        if pid is None:
            raise BrokerError(f"node {node_id} is not running")
        os.kill(pid, signal.SIGCONT)
        return pid

    def stop(self, timeout: float = 30.0) -> str:
        """Stop every node cleanly (SIGTERM; SIGKILL after ``timeout`` seconds)."""
        pids = {n.node_id: self._node_pid(n) for n in self.nodes}
        if not any(pids.values()):
            for n in self.nodes:
                n.pid_path.unlink(missing_ok=True)
            return f"no broker running on {self.bootstrap}; nothing to do"
        for pid in pids.values():
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(p is not None and _pid_alive(p) for p in pids.values()):
            time.sleep(0.2)
        for pid in pids.values():
            if pid is not None and _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        for n in self.nodes:
            n.pid_path.unlink(missing_ok=True)
        pid_text = ", ".join(str(p) for p in pids.values() if p is not None)
        return f"broker on {self.bootstrap} stopped (pid {pid_text})"
