"""A real multi-process cluster on this machine's loopback: ``fraudlake cluster up | down | status``.

- **Spark standalone**: a master and ``cluster.spark_workers`` workers, each its own JVM, started
  with the ``spark-class`` that the pyspark distribution ships. A job that runs with
  ``spark.master: spark://<host>:<port>`` (the ``cluster-local`` overlay) gets executors on the
  workers, as on a multi-host cluster; driver, executors and the catalog reach the same warehouse
  and checkpoint folders because they share this machine's file system (what an object store and a
  Hive metastore give a multi-host deployment).
- **Kafka**: ``cluster.kafka_brokers`` KRaft nodes, each broker and controller, from the same Maven
  jars as the local broker (:class:`~lakehouse.platform.kafka.broker.LocalBroker`, one per node,
  with a shared quorum). Kafka's own topics replicate to 3 with ``min.insync.replicas`` 2.

Everything is managed like the local broker and the catalog: pid files under
``<paths.data_dir>/cluster``, deadlines, and ``up`` / ``down`` are idempotent.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from lakehouse.errors import PlatformError
from lakehouse.platform.isolation import updated
from lakehouse.platform.jvm import JvmService, alive, port_open, stop_together
from lakehouse.platform.kafka.broker import LocalBroker, Quorum, new_cluster_id
from lakehouse.platform.waits import wait_until
from lakehouse.settings import LocalClusterSettings, Settings

log = logging.getLogger(__name__)

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


def master_url(cluster: LocalClusterSettings) -> str:
    return f"spark://{cluster.host}:{cluster.spark_master_port}"


def kafka_bootstrap(cluster: LocalClusterSettings) -> str:
    return ",".join(f"{cluster.host}:{cluster.kafka_port + i}" for i in range(cluster.kafka_brokers))


def spark_class() -> Path:
    """pyspark's own launcher of Spark's JVM classes (it finds its Spark home by itself)."""
    import pyspark

    launcher = Path(pyspark.__file__).parent / "bin" / "spark-class"
    if not launcher.is_file():
        raise PlatformError(f"{launcher} not found: the pyspark package is incomplete (run `make setup`)")
    return launcher


@dataclass(frozen=True)
class SparkWorker:
    """A worker as the master sees it."""

    id: str
    address: str
    state: str
    cores: int
    memory_mb: int


def alive_count(workers: list[SparkWorker]) -> int:
    return sum(w.state == "ALIVE" for w in workers)


@dataclass(frozen=True)
class ClusterStatus:
    master_url: str
    master_ui: str
    workers: list[SparkWorker]  # those registered with the master (empty when it is down)
    bootstrap: str
    brokers: dict[str, bool]  # broker address -> answers metadata requests
    pids: dict[str, int | None]  # service -> pid (None: not running)

    @property
    def alive_workers(self) -> int:
        return alive_count(self.workers)

    @property
    def complete(self) -> bool:
        return (
            all(self.pids.values())
            and all(self.brokers.values())
            and self.alive_workers == sum(name.startswith("spark-worker") for name in self.pids)
        )


def get_json(url: str, timeout_s: float = 2.0) -> dict | None:
    """The JSON document at ``url``, or None when nothing answers there (yet)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return json.load(response)
    except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
        return None


class LocalCluster:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = settings.cluster
        self.home = settings.cluster_data_dir
        spark_home = self.home / "spark"
        stop_s = self.config.stop_timeout_s
        self.master = JvmService("spark-master", spark_home, (MASTER_CLASS, str(self.config.spark_master_port)), stop_s)
        self.workers = [
            JvmService(f"spark-worker-{i + 1}", spark_home, (WORKER_CLASS, str(self._worker_port(i))), stop_s)
            for i in range(self.config.spark_workers)
        ]
        quorum = self._quorum()
        self.brokers = [LocalBroker(self._node_settings(i), quorum) for i in range(self.config.kafka_brokers)]

    # ------------------------------------------------------------------ public

    @property
    def master_ui(self) -> str:
        return f"http://{self.config.host}:{self.config.spark_master_webui_port}"

    def worker_ui(self, index: int) -> str:
        return f"http://{self.config.host}:{self.config.spark_worker_webui_port + index}"

    def up(self) -> tuple[ClusterStatus, bool]:
        """Start whatever is not running and wait until all of it answers: the brokers (all
        launched first: a node answers only once a majority of the quorum runs), then the master
        and the workers. Returns (status, whether anything was started)."""
        self.home.mkdir(parents=True, exist_ok=True)
        launched = [broker.launch() for broker in self.brokers]
        for broker, (pid, _) in zip(self.brokers, launched, strict=True):
            broker.wait_ready(pid)
        started = any(was_started for _, was_started in launched)
        started |= self._start_spark(
            self.master, self._master_command(), self.config.spark_master_port, "spark_master_port"
        )
        self._wait_master()
        for index, worker in enumerate(self.workers):
            started |= self._start_spark(
                worker, self._worker_command(index), self._worker_port(index), "spark_worker_port"
            )
        self._wait_workers()
        return self.status(), started

    def down(self) -> bool:
        """Stop the workers, the master and the brokers (SIGTERM, then SIGKILL at the deadline);
        True when anything was running. Data (topics, the brokers' logs) stays for the next ``up``."""
        spark = stop_together([*self.workers, self.master])
        return stop_together([broker.service for broker in self.brokers]) or spark

    def status(self) -> ClusterStatus:
        pids = {service.name: service.running_pid() for service in (self.master, *self.workers)}
        nodes = [broker.status() for broker in self.brokers]
        pids |= {f"kafka-{i + 1}": node.pid for i, node in enumerate(nodes)}
        brokers = {node.address: node.topics is not None for node in nodes}
        return ClusterStatus(
            master_url(self.config), self.master_ui, self.spark_workers(), kafka_bootstrap(self.config), brokers, pids
        )

    def spark_workers(self) -> list[SparkWorker]:
        """The workers registered with the master (none when it does not answer)."""
        state = get_json(f"{self.master_ui}/json/") or {}
        return [
            SparkWorker(w["id"], f"{w['host']}:{w['port']}", w["state"], int(w["cores"]), int(w["memory"]))
            for w in state.get("workers", [])
        ]

    def executors_per_worker(self, app_id: str) -> dict[str, int]:
        """How many executors of the application ``app_id`` each worker ran or runs, by worker id
        (from each worker's own state: the master forgets finished executors)."""
        counts: dict[str, int] = {}
        for index in range(self.config.spark_workers):
            state = get_json(f"{self.worker_ui(index)}/json/") or {}
            executors = [*state.get("executors", []), *state.get("finishedexecutors", [])]
            mine = sum(e.get("appid") == app_id for e in executors)
            if mine:
                counts[state.get("id", f"worker-{index + 1}")] = mine
        return counts

    # ------------------------------------------------------------------ internals

    def _worker_port(self, index: int) -> int:
        return self.config.spark_worker_port + index

    def _quorum(self) -> Quorum:
        c = self.config
        voters = ",".join(f"{i + 1}@{c.host}:{c.kafka_controller_port + i}" for i in range(c.kafka_brokers))
        return Quorum(voters, c.kafka_brokers, self._cluster_id())

    def _cluster_id(self) -> str:
        """The Kafka cluster's id, made once and kept beside the nodes' folders."""
        path = self.home / "kafka-cluster-id"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(new_cluster_id())
        return path.read_text().strip()

    def _node_settings(self, index: int) -> Settings:
        c = self.config
        node = {
            "enabled": True,
            "secure": False,
            "host": c.host,
            "port": c.kafka_port + index,
            "controller_port": c.kafka_controller_port + index,
            "node_id": index + 1,
            "heap": c.kafka_heap,
            "data_dir": self.home / f"kafka-{index + 1}",
            "start_timeout_s": c.start_timeout_s,
            "stop_timeout_s": c.stop_timeout_s,
        }
        return updated(self.settings, {"kafka": {"bootstrap_servers": None, "broker": node}})

    def _master_command(self) -> list[str]:
        c = self.config
        return [
            str(spark_class()),
            MASTER_CLASS,
            *("--host", c.host, "--port", str(c.spark_master_port), "--webui-port", str(c.spark_master_webui_port)),
        ]

    def _worker_command(self, index: int) -> list[str]:
        c = self.config
        work = self.home / "spark" / f"work-{index + 1}"
        return [
            str(spark_class()),
            WORKER_CLASS,
            *("--host", c.host, "--port", str(self._worker_port(index))),
            *("--webui-port", str(c.spark_worker_webui_port + index)),
            *("--cores", str(c.spark_worker_cores), "--memory", c.spark_worker_memory),
            *("--work-dir", str(work)),
            master_url(c),
        ]

    def _spark_environ(self) -> dict[str, str]:
        options = ["-Duser.timezone=UTC"]
        if self.settings.spark.log4j_config is not None:
            options.append(f"-Dlog4j2.configurationFile={self.settings.spark.log4j_config.as_uri()}")
        conf_dir = self.home / "spark" / "conf"  # empty: no spark-defaults of the machine leak in
        conf_dir.mkdir(parents=True, exist_ok=True)
        return {
            "SPARK_LOCAL_IP": self.config.host,
            "SPARK_DAEMON_MEMORY": self.config.spark_daemon_memory,
            "SPARK_DAEMON_JAVA_OPTS": " ".join(options),
            "SPARK_CONF_DIR": str(conf_dir),
            "SPARK_LOCAL_DIRS": str(self.home / "spark" / "tmp"),
            "SPARK_NO_DAEMONIZE": "1",
        }

    def _start_spark(self, service: JvmService, command: list[str], port: int, port_key: str) -> bool:
        if service.running_pid() is not None:
            return False
        if port_open(self.config.host, port):
            raise PlatformError(
                f"port {self.config.host}:{port} is already in use by another process; set cluster.{port_key} "
                f"(FRAUDLAKE_CLUSTER__{port_key.upper()})"
            )
        service.launch(command, env={**os.environ, **self._spark_environ()})
        return True

    def _wait_master(self) -> None:
        pid = self.master.running_pid()
        wait_until(
            lambda: (get_json(f"{self.master_ui}/json/") or {}).get("status") == "ALIVE",
            timeout_s=self.config.start_timeout_s,
            what=f"the Spark master answering at {self.master_ui}",
            check=lambda: self._still_alive(self.master, pid),
        )

    def _wait_workers(self) -> None:
        wanted = len(self.workers)
        pids = {worker.name: worker.running_pid() for worker in self.workers}

        def check() -> None:
            for worker in self.workers:
                self._still_alive(worker, pids[worker.name])

        wait_until(
            lambda: alive_count(self.spark_workers()) >= wanted,
            timeout_s=self.config.start_timeout_s,
            what=f"{wanted} Spark workers registered with the master at {master_url(self.config)}",
            check=check,
            poll_s=1.0,
        )

    @staticmethod
    def _still_alive(service: JvmService, pid: int | None) -> None:
        if pid is None or not alive(pid):
            raise PlatformError(f"{service.name} exited during start-up; see {service.logs}:\n{service.log_tail()}")
