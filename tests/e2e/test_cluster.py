"""The same jobs on a real multi-process cluster (``fraudlake cluster up``): a Spark standalone
master with two one-core workers and a three-node KRaft Kafka, on loopback, on free ports. The
ingest job runs as its own process with ``--env cluster-local``, exactly as a user starts it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import date

import pytest

from lakehouse.contract.tables import table_names
from lakehouse.ingest.queries import run_ingest
from lakehouse.platform.cluster import LocalCluster, get_json, kafka_bootstrap, master_url
from lakehouse.platform.delta import table_location
from lakehouse.platform.isolation import isolated, updated
from lakehouse.platform.jvm import alive
from lakehouse.platform.kafka.clients import admin_client
from lakehouse.platform.kafka.senders import make_sender
from lakehouse.platform.kafka.topics import ensure_topics
from lakehouse.platform.streaming import raise_if_failed
from lakehouse.platform.waits import wait_until
from lakehouse.settings import load_settings
from lakehouse.simulator.producer import ProduceLimits, produce
from lakehouse.simulator.simulation import Simulation
from tests.helpers import PROJECT_DIR, DeltaCount, environ_of, fraudlake, still_running

#: Silver columns that say when and in which micro-batch a row landed: the two runs differ there.
LANDING = ("_ingested_at", "_batch_id")


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


def send_payments(settings, seed: int, limits: ProduceLimits, kill: Callable[[], None] | None = None):
    """Simulated payments of a small world into ``settings``' topics, none failed; ``kill`` runs
    once, when 600 records are delivered (mid-stream). Returns the producer's report."""
    killed: list[int] = []

    def kill_half_way(report) -> None:
        if kill is not None and not killed and report.delivered >= 600:
            kill()
            killed.append(report.delivered)

    world = settings.simulator.model_copy(update={"users": 200, "merchants": 60, "cities": 8, "days": 2})
    simulation = Simulation(world, date(2026, 10, 1), traffic_seed=seed)
    sender = make_sender(settings.kafka, settings.producer)
    try:
        sent = produce(settings, simulation, sender, limits, first_day=0, on_progress=kill_half_way)
    finally:
        sender.close()
    assert sent.failed == 0 and sent.delivered == sent.sent, sent
    assert kill is None or killed, "the kill never ran"
    return sent


@pytest.fixture(scope="module")
def cluster_environ(test_environ, tmp_path_factory) -> Iterator[dict[str, str]]:
    """The environment of a job on the cluster (``--env cluster-local``); the cluster runs meanwhile."""
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
        "FRAUDLAKE_SPARK__CATALOG": "derby",  # the job's own catalog: the test session holds the suite's
        **{f"FRAUDLAKE_CLUSTER__{key}": str(port) for key, port in ports.items()},
    }
    settings = load_settings("cluster-local", environ=env)
    env["FRAUDLAKE_KAFKA__BOOTSTRAP_SERVERS"] = kafka_bootstrap(settings.cluster)
    env["FRAUDLAKE_SPARK__MASTER"] = master_url(settings.cluster)
    cluster = LocalCluster(settings)
    try:
        status, started = cluster.up()
        assert started and status.complete, status
        yield env
    finally:
        cluster.down()


@pytest.mark.slow
def test_ingest_on_the_cluster_runs_on_both_workers_and_lands_what_local_spark_lands(
    cluster_environ, spark, settings, tmp_path
) -> None:
    on_cluster = load_settings("cluster-local", environ=cluster_environ)
    cluster = LocalCluster(on_cluster)
    assert [w.state for w in cluster.status().workers] == ["ALIVE", "ALIVE"]
    ensure_topics(on_cluster.kafka)
    admin = admin_client(on_cluster.kafka)
    try:  # three copies of every partition, on three brokers
        described = admin.describe_topics([on_cluster.kafka.topics.transactions.name])
    finally:
        admin.close()
    replicas = {len(p["replica_nodes"]) for p in described[0]["partitions"]}
    assert replicas == {3}, described

    sent = send_payments(on_cluster, 19, ProduceLimits(count=800))

    job = subprocess.run(
        [sys.executable, "-m", "jobs.stream_ingest", "--once"],
        env=cluster_environ,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert job.returncode == 0, job.stderr[-3000:]
    state = get_json(f"{cluster.master_ui}/json/") or {}
    apps = [a for a in state.get("completedapps", []) if a["name"] == "fraudlake-ingest"]
    assert len(apps) == 1, apps
    per_worker = cluster.executors_per_worker(apps[0]["id"])
    assert len(per_worker) == 2, per_worker  # executors on both workers

    # The same records through the same ingest on the test session's local Spark.
    local = isolated(settings, checkpoint_dir=tmp_path / "checkpoints")
    local = updated(local, {"kafka": {"bootstrap_servers": on_cluster.kafka.bootstrap}})
    run_ingest(spark, local, once=True)
    names = table_names(local)
    warehouse = on_cluster.paths.data_dir / "warehouse"
    cluster_silver = spark.read.format("delta").load(str(warehouse / "silver.db" / "transactions"))
    local_silver = spark.table(names.silver("transactions"))
    assert cluster_silver.count() == sent.transactions
    compared = [c for c in local_silver.columns if c not in LANDING]  # every field, and its Kafka position
    on_cluster_rows, local_rows = cluster_silver.select(*compared), local_silver.select(*compared)
    assert on_cluster_rows.exceptAll(local_rows).count() == local_rows.exceptAll(on_cluster_rows).count() == 0
    cluster_users = spark.read.format("delta").load(str(warehouse / "silver.db" / "user_versions"))
    assert cluster_users.count() == spark.table(names.versions("users")).count() == sent.users


@pytest.mark.slow
def test_a_broker_killed_mid_stream_and_started_again_loses_and_duplicates_nothing(
    cluster_environ, spark, settings, tmp_path
) -> None:
    """The producer and a running ingest lose the broker that leads the first transactions
    partition (SIGKILL) half-way through; with 3 replicas and min.insync.replicas 2 both go on,
    and after the broker is started again silver holds every payment once."""
    on_cluster = load_settings("cluster-local", environ=cluster_environ)
    cluster = LocalCluster(on_cluster)
    replicated = {
        name: {"replication_factor": 3, "configs": {"min.insync.replicas": "2"}}
        for name in ("transactions", "users", "merchants", "labels")
    }
    local = isolated(settings, topics=True, checkpoint_dir=tmp_path / "checkpoints")
    local = updated(local, {"kafka": {"bootstrap_servers": on_cluster.kafka.bootstrap, "topics": replicated}})
    ensure_topics(local.kafka)
    topic = local.kafka.topics.transactions.name
    admin = admin_client(local.kafka)
    try:
        leader = next(
            p["leader_id"] for p in admin.describe_topics([topic])[0]["partitions"] if p["partition_index"] == 0
        )
    finally:
        admin.close()
    victim = cluster.brokers[leader - 1]
    victim_pid = victim.service.running_pid()

    queries = run_ingest(spark, local, once=False)
    sent = send_payments(
        local, 23, ProduceLimits(count=1500, rate=150), kill=lambda: os.kill(victim_pid, signal.SIGKILL)
    )
    assert cluster.status().brokers[victim.address] is False

    status, started = cluster.up()  # the killed node only
    assert started and status.complete
    silver = DeltaCount(spark, table_location(spark, table_names(local).silver("transactions")))
    try:
        wait_until(
            lambda: silver() >= sent.transactions,
            timeout_s=300,
            what=f"{sent.transactions} transactions in silver",
            check=lambda: [raise_if_failed(q) for q in queries],
            poll_s=1.0,
        )
    finally:
        for query in queries:
            query.stop()
    rows = spark.read.format("delta").load(silver.path.as_posix())
    assert rows.count() == rows.select("transaction_id").distinct().count() == sent.transactions
    bronze = spark.table(table_names(local).bronze("transactions"))
    assert bronze.count() == bronze.select("partition", "offset").distinct().count() == sent.transactions


@pytest.mark.slow
def test_a_worker_lost_mid_stream_leaves_the_ingest_job_running_without_loss_or_duplicates(
    cluster_environ, spark, settings, tmp_path
) -> None:
    """A machine lost: one worker and the executor it runs are killed (SIGKILL to the worker's
    process group) while the ingest job runs on the cluster; its tasks run again on the other
    worker, the job goes on, and reconcile finds every payment once."""
    on_cluster = load_settings("cluster-local", environ=cluster_environ)
    cluster = LocalCluster(on_cluster)
    own = isolated(on_cluster, topics=True, checkpoint_dir=tmp_path / "checkpoints")
    ensure_topics(own.kafka)
    env = {
        **cluster_environ,
        **environ_of(own),
        "FRAUDLAKE_PATHS__DATA_DIR": str(tmp_path / "job-data"),
        "FRAUDLAKE_STREAMING__TRIGGER": "2 seconds",
        "FRAUDLAKE_STREAMING__MAX_RECORDS_PER_TRIGGER": "300",
    }
    log = tmp_path / "ingest-job.log"
    with log.open("w") as out:
        job = subprocess.Popen(
            [sys.executable, "-m", "jobs.stream_ingest"], env=env, cwd=PROJECT_DIR, stdout=out, stderr=out
        )
    try:
        victim = cluster.workers[0].running_pid()
        limits = ProduceLimits(count=1500, rate=100)
        # The worker and its executor (the worker's process group): the machine is gone.
        sent = send_payments(own, 29, limits, kill=lambda: os.killpg(victim, signal.SIGKILL))
        assert not alive(victim)  # (the master calls it dead only after spark.worker.timeout)
        silver = DeltaCount(
            spark, tmp_path / "job-data" / "warehouse" / f"{own.lakehouse.schemas.silver}.db" / "transactions"
        )
        wait_until(
            lambda: silver() >= sent.transactions,
            timeout_s=420,
            what=f"{sent.transactions} transactions in silver",
            check=still_running(job, "the ingest job", log),
            poll_s=2.0,
        )
    finally:
        job.terminate()
        job.wait(timeout=120)
        cluster.up()  # the lost worker back, for what follows
    rows = spark.read.format("delta").load(silver.path.as_posix())
    assert rows.count() == rows.select("transaction_id").distinct().count() == sent.transactions
    checked = fraudlake("reconcile", env=env, timeout=600)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
