"""The embedded single-node Kafka broker (KRaft, combined broker + controller) as its own JVM.

``fraudlake kafka up | down | status`` call :class:`LocalBroker`. Its classpath is the Maven-resolved
``kafka.broker.jars_dir`` and nothing else (Spark's jars stay apart). Storage is formatted once
(``kafka.tools.StorageTool format --standalone``); ``server.properties`` is rewritten on every start
from settings, so a change of ports in config takes effect on the next ``up``.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from lakehouse.errors import BrokerUnavailableError, PlatformError
from lakehouse.kafka.topics import list_topics
from lakehouse.settings import Settings

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.25


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    address: str
    topics: list[str] | None
    data_dir: Path


class LocalBroker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kafka = settings.kafka
        self.config = settings.kafka.broker
        self.home = settings.broker_data_dir
        self.log_dirs = self.home / "data"
        self.logs = self.home / "logs"
        self.properties_file = self.home / "server.properties"
        self.pid_file = self.home / "broker.pid"

    # ------------------------------------------------------------------ public

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    def up(self) -> tuple[BrokerStatus, bool]:
        """Start the broker unless it runs; wait until it answers metadata. Returns (status, started)."""
        self._require_embedded()
        pid = self._running_pid()
        if pid is not None:
            return self._wait_ready(pid), False
        for port in (self.config.port, self.config.controller_port):
            if _port_open(self.config.host, port):
                raise PlatformError(
                    f"port {self.config.host}:{port} is already in use by another process; "
                    f"set kafka.broker.port / kafka.broker.controller_port (FRAUDLAKE_KAFKA__BROKER__PORT)"
                )
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self._write_properties()
        if not self.is_formatted():
            self._format()
        pid = self._launch()
        return self._wait_ready(pid), True

    def down(self) -> bool:
        """Stop the broker cleanly (SIGTERM: controlled shutdown); True when one was running."""
        self._require_embedded()
        pid = self._running_pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.config.stop_timeout_s
        while _alive(pid):
            if time.monotonic() > deadline:
                log.warning("broker pid %d did not stop within %ss; killing it", pid, self.config.stop_timeout_s)
                os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, 10)
                break
            time.sleep(POLL_INTERVAL_S)
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self) -> BrokerStatus:
        pid = self._running_pid() if self.config.enabled else None
        topics: list[str] | None = None
        try:
            topics = list_topics(self._probe_settings(timeout_s=2.0))
        except BrokerUnavailableError:
            topics = None
        return BrokerStatus(pid is not None and topics is not None, pid, self.address, topics, self.home)

    def is_formatted(self) -> bool:
        return (self.log_dirs / "meta.properties").is_file()

    # ------------------------------------------------------------------ internals

    def _require_embedded(self) -> None:
        if not self.config.enabled:
            raise PlatformError(
                f"the embedded broker is disabled in the {self.settings.env!r} environment "
                f"(kafka.broker.enabled: false); Kafka is at {self.kafka.bootstrap}"
            )

    def _java(self) -> str:
        java_home = os.environ.get("JAVA_HOME")
        java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
        if not java or not Path(java).exists():
            raise PlatformError("java not found: install Java 17 or set JAVA_HOME")
        return java

    def _classpath(self) -> str:
        jars = self.config.jars_dir
        if not jars.is_dir() or not any(jars.glob("kafka_2.13-*.jar")):
            raise PlatformError(f"Kafka broker jars missing in {jars}: run `make jars` (or `make setup`)")
        return str(jars / "*")

    def _jvm(self, main_class: str, *args: str, heap: str = "256m") -> list[str]:
        return [
            self._java(),
            f"-Xmx{heap}",
            "-Xms64m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.config.log4j_config}",
            f"-Dkafka.logs.dir={self.logs}",
            "-cp",
            self._classpath(),
            main_class,
            *args,
        ]

    def _server_properties(self) -> dict[str, str]:
        host, port, cport = self.config.host, self.config.port, self.config.controller_port
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.config.node_id),
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.quorum.bootstrap.servers": f"{host}:{cport}",
            "log.dirs": str(self.log_dirs),
            "num.partitions": "1",
            # Topics are created from config by `fraudlake topics ensure`; a typo must not create one.
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.retention.check.interval.ms": "60000",
        }
        props.update(self.config.properties)
        return props

    def _write_properties(self) -> None:
        lines = ["# Written by fraudlake from settings on each `fraudlake kafka up`; edit conf/, not this file."]
        lines += [f"{k}={v}" for k, v in self._server_properties().items()]
        self.properties_file.write_text("\n".join(lines) + "\n")

    def _format(self) -> None:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        command = self._jvm(
            "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.properties_file), "--standalone"
        )
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise PlatformError(f"formatting Kafka storage in {self.log_dirs} failed: {result.stdout}{result.stderr}")
        log.info("formatted Kafka storage in %s (cluster id %s)", self.log_dirs, cluster_id)

    def _launch(self) -> int:
        out = open(self.logs / "kafka.out", "ab")  # noqa: SIM115 - handed to the child process
        try:
            process = subprocess.Popen(
                self._jvm("kafka.Kafka", str(self.properties_file), heap=self.config.heap),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.home,
                start_new_session=True,  # Ctrl-C in the terminal that ran `up` must not stop the broker
            )
        finally:
            out.close()
        self.pid_file.write_text(str(process.pid))
        log.info("started Kafka broker pid %d at %s", process.pid, self.address)
        return process.pid

    def _wait_ready(self, pid: int) -> BrokerStatus:
        deadline = time.monotonic() + self.config.start_timeout_s
        probe = self._probe_settings(timeout_s=1.0)
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if not _alive(pid):
                self.pid_file.unlink(missing_ok=True)
                raise PlatformError(f"the Kafka broker exited during start-up; see {self.logs}:\n{self._log_tail()}")
            try:
                topics = list_topics(probe)
                return BrokerStatus(True, pid, self.address, topics, self.home)
            except BrokerUnavailableError as exc:
                last_error = exc
            time.sleep(POLL_INTERVAL_S)
        raise PlatformError(
            f"the Kafka broker (pid {pid}) did not answer metadata requests at {self.address} within "
            f"{self.config.start_timeout_s:g}s ({last_error}); see {self.logs}"
        )

    def _probe_settings(self, timeout_s: float):
        kafka = self.kafka.model_copy(update={"connect_timeout_s": timeout_s, "bootstrap_servers": self.address})
        return kafka

    def _running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if _alive(pid) and _is_our_broker(pid, self.properties_file):
            return pid
        self.pid_file.unlink(missing_ok=True)  # stale: the broker died or the pid was reused
        return None

    def _log_tail(self, lines: int = 20) -> str:
        for name in ("kafka.out", "server.log"):
            path = self.logs / name
            if path.is_file() and path.stat().st_size:
                return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log output)"


def _alive(pid: int) -> bool:
    try:
        # Reap our own exited child first: a zombie still answers kill(pid, 0).
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        try:
            return "\nState:\tZ" not in status.read_text()
        except OSError:
            return False
    return True


def _wait_gone(pid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL_S)


def _is_our_broker(pid: int, properties_file: Path) -> bool:
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():  # no procfs (macOS): trust the pid file
        return True
    try:
        args = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    return b"kafka.Kafka" in args and str(properties_file).encode() in args


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
