"""The local Apache Kafka broker for development and tests (``stream broker``).

A single node in KRaft mode (broker and controller in one process) on 127.0.0.1.  The
official artifacts come from ``$KAFKA_HOME/libs`` when ``KAFKA_HOME`` points at a Kafka
install, otherwise from Maven Central: ``org.apache.kafka:kafka_2.13`` and its runtime
dependencies, fetched once with ``mvn dependency:copy-dependencies`` into a cache.

Files (all under the broker directory, ``$STREAM_BROKER_DIR`` or
``~/.local/state/stream/broker-PORT``): ``server.properties``, ``log4j2.properties``,
``data/`` (the log and the metadata), ``server.log`` (the broker's log), ``broker.pid``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .errors import BrokerError

__all__ = ["KAFKA_VERSION", "BrokerStatus", "LocalBroker"]

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
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""

_SERVER = """# written by `stream broker start`; edits are overwritten
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
"""

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


async def _metadata_ok(bootstrap: str, timeout: float) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(client.start(), timeout)
        await asyncio.wait_for(client.list_topics(), timeout)
        return True
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await client.close()


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str
    log: Path


class LocalBroker:
    """A single-node KRaft broker on 127.0.0.1.

    :param port: the client port; the controller listens on ``port + 1`` unless given.
    """

    def __init__(
        self,
        port: int = 9092,
        *,
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

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    @property
    def _pid_path(self) -> Path:
        return self.directory / "broker.pid"

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
        if (target / ".complete").exists():
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

    def _pid(self) -> int | None:
        try:
            pid = int(self._pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def status(self) -> BrokerStatus:
        pid = self._pid()
        return BrokerStatus(
            running=pid is not None and _port_open(self.port),
            pid=pid, bootstrap=self.bootstrap, log=self.log_path,
        )

    def _java(self) -> str:
        home = os.environ.get("JAVA_HOME")
        java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
        if not java or not Path(java).exists():
            raise BrokerError("Java (17 or later) is needed to run Kafka; install a JDK or set JAVA_HOME")
        return java

    def start(self, timeout: float = 90.0) -> str:
        """Start the broker and wait until a client can fetch metadata.

        :return: a message for the user.  Starting a running broker is a no-op.
        :raises BrokerError: a port is taken by another program, or the broker did not come up.
        """
        pid = self._pid()
        if pid is not None and asyncio.run(_metadata_ok(self.bootstrap, 5.0)):
            return f"broker already running on {self.bootstrap} (pid {pid}); nothing to do"
        for port in (self.port, self.controller_port):
            if pid is None and _port_open(port):
                raise BrokerError(
                    f"port {port} on 127.0.0.1 is already in use by another program; stop it, or "
                    f"start the broker on other ports with `stream broker start --port N` "
                    f"(the controller uses N+1)"
                )
        if pid is not None:  # ours, but not answering: restart it
            self.stop()
        libs = self.libs()
        java = self._java()
        data = self.directory / "data"
        self.directory.mkdir(parents=True, exist_ok=True)
        props = self.directory / "server.properties"
        props.write_text(_SERVER.format(port=self.port, controller_port=self.controller_port, data=data))
        log4j = self.directory / "log4j2.properties"
        log4j.write_text(_LOG4J.format(log=self.log_path))
        classpath = f"{libs}/*"
        if not (data / "meta.properties").exists():
            cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            fmt = subprocess.run(
                [java, "-cp", classpath, "kafka.tools.StorageTool", "format",
                 # one argument: a base64url id may start with "-" (1 in 64), which the
                 # tool would otherwise read as an option
                 f"--cluster-id={cluster}",
                 "-c", str(props), "--ignore-formatted"],
                capture_output=True, text=True,
            )
            if fmt.returncode != 0:
                raise BrokerError(f"formatting the broker storage failed:\n{fmt.stdout}{fmt.stderr}")
        heap = os.environ.get("KAFKA_HEAP_OPTS", "-Xms256m -Xmx1g").split()
        command = shlex.join([java, *heap, "-XX:+UseG1GC", "-Djava.awt.headless=true",
                              f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath,
                              "kafka.Kafka", str(props)])
        stdout = shlex.quote(str(self.directory / "stdout.log"))
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
        self._pid_path.write_text(str(pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                self._pid_path.unlink(missing_ok=True)
                raise BrokerError(
                    f"the broker exited during start; see {self.log_path} and "
                    f"{self.directory / 'stdout.log'}:\n{self._tail()}"
                )
            if _port_open(self.port) and asyncio.run(_metadata_ok(self.bootstrap, 3.0)):
                return f"broker started on {self.bootstrap} (pid {pid}); log: {self.log_path}"
            time.sleep(0.5)
        self.stop()
        raise BrokerError(f"the broker did not answer within {timeout:.0f}s; see {self.log_path}:\n{self._tail()}")

    def _tail(self, lines: int = 15) -> str:
        for path in (self.directory / "stdout.log", self.log_path):
            try:
                text = path.read_text(errors="replace").strip().splitlines()
            except OSError:
                continue
            if text:
                return "\n".join(text[-lines:])
        return "(no log)"

    def stop(self, timeout: float = 30.0) -> str:
        """Stop the broker cleanly (SIGTERM; SIGKILL after ``timeout`` seconds)."""
        pid = self._pid()
        if pid is None:
            self._pid_path.unlink(missing_ok=True)
            return f"no broker running on {self.bootstrap}; nothing to do"
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.2)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        self._pid_path.unlink(missing_ok=True)
        return f"broker on {self.bootstrap} stopped (pid {pid})"
