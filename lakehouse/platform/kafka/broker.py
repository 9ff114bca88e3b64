"""The embedded single-node Kafka broker (KRaft, combined broker + controller) as its own JVM.

``fraudlake kafka up | down | status`` call :class:`LocalBroker`. Its classpath is the Maven-resolved
``kafka.broker.jars_dir`` and nothing else (Spark's jars stay apart). Storage is formatted once
(``kafka.tools.StorageTool format --standalone``); ``server.properties`` is rewritten on every start
from settings, so a change of ports in config takes effect on the next ``up``. With
``kafka.broker.secure`` it listens with SASL_SSL only, with ACLs (:mod:`lakehouse.platform.kafka.secure`).
"""

from __future__ import annotations

import base64
import logging
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from lakehouse.errors import BrokerUnavailableError, PlatformError
from lakehouse.platform.jvm import JvmService, alive, jar_classpath, java_executable, port_open
from lakehouse.platform.kafka.secure import (
    TlsFiles,
    admin_settings,
    format_arguments,
    grant,
    make_tls,
    secure_properties,
)
from lakehouse.platform.kafka.topics import list_topics
from lakehouse.platform.waits import wait_until
from lakehouse.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    address: str
    topics: list[str] | None
    data_dir: Path


def new_cluster_id() -> str:
    """A KRaft cluster id: a UUID in URL-safe base64, as ``kafka-storage random-uuid`` prints."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


@dataclass(frozen=True)
class Quorum:
    """The controller voters of a multi-node KRaft cluster whose nodes are each broker and
    controller (``fraudlake cluster up``): ``1@host:port,2@host:port,...``, how many there are, and
    the cluster id that every node's storage is formatted with."""

    voters: str
    size: int
    cluster_id: str

    @property
    def replication(self) -> int:
        return min(3, self.size)

    @property
    def min_insync(self) -> int:
        return max(1, self.replication - 1)


class LocalBroker:
    def __init__(self, settings: Settings, quorum: Quorum | None = None) -> None:
        """``quorum``: this node is one of a multi-node cluster (its ``kafka.broker`` names the
        node: id, ports, folder); None: the single-node broker, its own quorum."""
        self.settings = settings
        self.quorum = quorum
        self.kafka = settings.kafka
        self.config = settings.kafka.broker
        self.home = settings.broker_data_dir
        self.log_dirs = self.home / "data"
        self.logs = self.home / "logs"
        self.properties_file = self.home / "server.properties"
        self.tls = TlsFiles(self.home / "tls")
        self.service = JvmService(
            "broker", self.home, ("kafka.Kafka", str(self.properties_file)), self.config.stop_timeout_s
        )

    # ------------------------------------------------------------------ public

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    def up(self) -> tuple[BrokerStatus, bool]:
        """Start the broker unless it runs; wait until it answers metadata. Returns (status, started)."""
        pid, started = self.launch()
        status = self.wait_ready(pid)
        if started and self.config.secure:
            users = grant(self.kafka, self._admin_settings(self.config.start_timeout_s))
            log.info("SCRAM users and ACLs set up: %s", ", ".join(users) or "none")
        return status, started

    def launch(self) -> tuple[int, bool]:
        """Start the broker's JVM unless it runs, without waiting for it (the nodes of a quorum
        answer only once a majority of them runs). Returns (pid, started)."""
        self._require_embedded()
        pid = self.service.running_pid()
        if pid is not None:
            return pid, False
        for port in (self.config.port, self.config.controller_port):
            if port_open(self.config.host, port):
                keys = (
                    "kafka.broker.port / kafka.broker.controller_port (FRAUDLAKE_KAFKA__BROKER__PORT)"
                    if self.quorum is None  # a cluster node's ports come from the cluster's first ones
                    else "cluster.kafka_port / cluster.kafka_controller_port (FRAUDLAKE_CLUSTER__KAFKA_PORT)"
                )
                raise PlatformError(f"port {self.config.host}:{port} is already in use by another process; set {keys}")
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        if self.config.secure:
            make_tls(self.tls.folder, self.config.host)
        self._write_properties()
        if not self.is_formatted():
            self._format()
        return self.service.launch(self._jvm("kafka.Kafka", str(self.properties_file), heap=self.config.heap)), True

    def down(self) -> bool:
        """Stop the broker cleanly (SIGTERM: controlled shutdown); True when one was running."""
        self._require_embedded()
        return self.service.stop()

    def status(self) -> BrokerStatus:
        pid = self.service.running_pid() if self.config.enabled else None
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

    def _jvm(self, main_class: str, *args: str, heap: str = "256m") -> list[str]:
        return [
            java_executable(),
            f"-Xmx{heap}",
            "-Xms64m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.config.log4j_config}",
            f"-Dkafka.logs.dir={self.logs}",
            "-cp",
            jar_classpath(self.config.jars_dir, "kafka_2.13-", "Kafka broker"),
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
            **self._quorum_properties(),
            "log.dirs": str(self.log_dirs),
            "num.partitions": "1",
            # Topics are created from config by `fraudlake topics ensure`; a typo must not create one.
            "auto.create.topics.enable": "false",
            "offsets.topic.num.partitions": "4",
            "group.initial.rebalance.delay.ms": "0",
            "log.retention.check.interval.ms": "60000",
        }
        if self.config.secure:
            props.update(secure_properties(self.tls, host, port, cport))
        props.update(self.config.properties)
        return props

    def _quorum_properties(self) -> dict[str, str]:
        """Who votes for the controller, and the replication of Kafka's own topics that follows."""
        if self.quorum is None:
            replication, min_insync = 1, 1
            voters = {"controller.quorum.bootstrap.servers": f"{self.config.host}:{self.config.controller_port}"}
        else:
            replication, min_insync = self.quorum.replication, self.quorum.min_insync
            voters = {"controller.quorum.voters": self.quorum.voters, "min.insync.replicas": str(min_insync)}
        return {
            **voters,
            "offsets.topic.replication.factor": str(replication),
            "transaction.state.log.replication.factor": str(replication),
            "transaction.state.log.min.isr": str(min_insync),
            "share.coordinator.state.topic.replication.factor": str(replication),
            "share.coordinator.state.topic.min.isr": str(min_insync),
        }

    def _write_properties(self) -> None:
        lines = ["# Written by fraudlake from settings on each `fraudlake kafka up`; edit conf/, not this file."]
        lines += [f"{k}={v}" for k, v in self._server_properties().items()]
        self.properties_file.write_text("\n".join(lines) + "\n")

    def _format(self) -> None:
        cluster_id = self.quorum.cluster_id if self.quorum else new_cluster_id()
        command = self._jvm(
            # "--cluster-id=": an id may start with "-", which the tool's parser would take for an option.
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={cluster_id}",
            "-c",
            str(self.properties_file),
            *(["--standalone"] if self.quorum is None else []),  # a quorum's voters are in its properties
            *(format_arguments(self.tls) if self.config.secure else []),
        )
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise PlatformError(f"formatting Kafka storage in {self.log_dirs} failed: {result.stdout}{result.stderr}")
        log.info("formatted Kafka storage in %s (cluster id %s)", self.log_dirs, cluster_id)

    def wait_ready(self, pid: int) -> BrokerStatus:
        probe = self._probe_settings(timeout_s=1.0)
        last_error: list[Exception] = []

        def still_alive() -> None:
            if not alive(pid):
                self.service.pid_file.unlink(missing_ok=True)
                raise PlatformError(
                    f"the Kafka broker exited during start-up; see {self.logs}:\n{self.service.log_tail()}"
                )

        def answering() -> BrokerStatus | None:
            try:
                return BrokerStatus(True, pid, self.address, list_topics(probe), self.home)
            except BrokerUnavailableError as exc:
                last_error[:] = [exc]
                return None

        return wait_until(
            answering,
            timeout_s=self.config.start_timeout_s,
            what=f"the Kafka broker answering at {self.address}",
            check=still_alive,
            on_timeout=lambda: PlatformError(
                f"the Kafka broker (pid {pid}) did not answer metadata requests at {self.address} within "
                f"{self.config.start_timeout_s:g}s ({last_error[0] if last_error else None}); see {self.logs}"
            ),
        )

    def _probe_settings(self, timeout_s: float):
        if self.config.secure:
            return self._admin_settings(timeout_s)
        return self.kafka.model_copy(update={"connect_timeout_s": timeout_s, "bootstrap_servers": self.address})

    def _admin_settings(self, timeout_s: float):
        """The internal admin user's client settings (the secured broker's probe and set-up)."""
        admin = admin_settings(self.kafka, self.tls, self.address)
        return admin.model_copy(update={"connect_timeout_s": timeout_s})
