"""The multi-process cluster of ``fraudlake cluster up`` for the tests of this folder: a Spark
standalone master with two workers and a three-node KRaft Kafka on loopback, on free ports, with
the catalog server that the jobs on it share; and a champion model trained in the test session on
the cluster's Kafka, for the scorer. Started once for the folder, stopped after it. The jobs run as
their own processes with ``--env cluster-local``, exactly as a user starts them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest

from lakehouse.features.materialize import build_features
from lakehouse.ingest.queries import run_ingest
from lakehouse.ml import registry
from lakehouse.ml.training import train
from lakehouse.platform.catalog_server import LocalCatalogServer
from lakehouse.platform.cluster import LocalCluster, kafka_bootstrap, master_url
from lakehouse.platform.isolation import isolated, updated
from lakehouse.platform.kafka.senders import make_sender
from lakehouse.platform.kafka.topics import ensure_topics
from lakehouse.settings import Settings, load_settings
from lakehouse.simulator.producer import ProduceLimits, produce
from lakehouse.simulator.simulation import Simulation
from tests.helpers import PROJECT_DIR, free_port

#: The small world every test here sends payments from: 500 payments a simulated day.
WORLD = {"users": 200, "merchants": 60, "cities": 8, "days": 2, "transactions": 1000}


def free_range(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        free = True
        for port in range(first, first + count):
            with socket.socket() as sock:
                free = free and sock.connect_ex(("127.0.0.1", port)) != 0
        if free:
            return first
    raise RuntimeError(f"no {count} consecutive free ports on 127.0.0.1")


def send_payments(
    settings: Settings,
    seed: int,
    limits: ProduceLimits,
    kill: Callable[[], None] | None = None,
    *,
    first_day: int = 0,
    **world: object,
):
    """Simulated payments of the small world (``WORLD``, changed by ``world``) into ``settings``'
    topics from ``first_day`` on, none failed; ``kill`` runs once, when 600 records are delivered
    (mid-stream). Returns the producer's report."""
    killed: list[int] = []

    def kill_half_way(report) -> None:
        if kill is not None and not killed and report.delivered >= 600:
            kill()
            killed.append(report.delivered)

    simulation = Simulation(
        settings.simulator.model_copy(update={**WORLD, **world}), date(2026, 10, 1), traffic_seed=seed
    )
    sender = make_sender(settings.kafka, settings.producer)
    try:
        sent = produce(settings, simulation, sender, limits, first_day=first_day, on_progress=kill_half_way)
    finally:
        sender.close()
    assert sent.failed == 0 and sent.delivered == sent.sent, sent
    assert kill is None or killed, "the kill never ran"
    return sent


def run_job(module: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A job (``python -m jobs.<module>`` or a test helper module) to its end, as its own process."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=env,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=900,
    )


def succeeded(done: subprocess.CompletedProcess[str]) -> None:
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line or "Error" in line]
    assert done.returncode == 0, "\n".join(errors[:15]) + "\n...\n" + done.stderr[-2500:]


def apps_named(cluster: LocalCluster, name: str, since_ms: float = 0) -> list[dict]:
    """The applications called ``name`` that the master knows, running or completed, started at
    or after ``since_ms`` (epoch milliseconds: the tests here share one cluster)."""
    from lakehouse.platform.cluster import get_json

    state = get_json(f"{cluster.master_ui}/json/") or {}
    apps = [*state.get("activeapps", []), *state.get("completedapps", [])]
    return [a for a in apps if a["name"] == name and a["starttime"] >= since_ms]


@pytest.fixture(scope="package")
def cluster_environ(test_environ, tmp_path_factory) -> Iterator[dict[str, str]]:
    """The environment of a job on the cluster (``--env cluster-local``, the cluster's own data
    folder and catalog server); the cluster and the catalog server run meanwhile."""
    data = tmp_path_factory.mktemp("cluster-env")
    ports = {
        "SPARK_MASTER_PORT": free_range(1),
        "SPARK_MASTER_WEBUI_PORT": free_range(1),
        "SPARK_WORKER_PORT": free_range(2),
        "SPARK_WORKER_WEBUI_PORT": free_range(2),
        "KAFKA_PORT": free_range(3),
        "KAFKA_CONTROLLER_PORT": free_range(3),
    }
    env = {
        **os.environ,
        **test_environ,
        "FRAUDLAKE_ENV": "cluster-local",
        "FRAUDLAKE_PATHS__DATA_DIR": str(data),
        "FRAUDLAKE_SPARK__CATALOG_SERVER__PORT": str(free_port()),
        **{f"FRAUDLAKE_CLUSTER__{key}": str(port) for key, port in ports.items()},
    }
    settings = load_settings("cluster-local", environ=env)
    env["FRAUDLAKE_KAFKA__BOOTSTRAP_SERVERS"] = kafka_bootstrap(settings.cluster)
    env["FRAUDLAKE_SPARK__MASTER"] = master_url(settings.cluster)
    cluster, catalog = LocalCluster(settings), LocalCatalogServer(settings)
    try:
        status, started = cluster.up()
        assert started and status.complete, status
        catalog.up()
        yield env
    finally:
        catalog.down()
        cluster.down()


@pytest.fixture(scope="package")
def champion(cluster_environ, spark, settings, tmp_path_factory) -> Settings:
    """The test session's settings on the cluster's Kafka, with their own topics and schemas and a
    registry whose champion was trained here on two simulated days (10% fraud): what the scorer
    on the cluster scores with. The model is trained once, in the test session's Spark: the tests
    here are about where the jobs run, not about training."""
    on_cluster = load_settings("cluster-local", environ=cluster_environ)
    folder = tmp_path_factory.mktemp("cluster-champion")
    local = isolated(
        settings,
        topics=True,
        checkpoint_dir=folder / "checkpoints",
        registry_dir=folder,
        training={"gap_days": 0, "validation_days": 1, "gbt": {"max_iter": 5, "max_depth": 3}},
    )
    local = updated(local, {"kafka": {"bootstrap_servers": on_cluster.kafka.bootstrap}})
    ensure_topics(local.kafka)
    send_payments(local, 31, ProduceLimits(count=1000), fraud_rate=0.1)
    run_ingest(spark, local, once=True)
    build_features(spark, local)
    registry.set_champion(local, train(spark, local, promote=False).version, reason="test: the scorer on a cluster")
    return local


def warehouse_table(data_dir: Path | str, schema: str, table: str) -> Path:
    """Where a job of the cluster environment keeps ``schema.table`` (the catalog's default location)."""
    return Path(data_dir) / "warehouse" / f"{schema}.db" / table
