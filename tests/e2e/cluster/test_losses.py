"""Part of the cluster lost mid-stream: a Kafka broker (three replicas, min.insync.replicas 2) or a
Spark worker with its executors (a machine gone). The running jobs go on, and afterwards nothing is
lost or duplicated: in silver, in ``gold.scored_transactions``, and among the alerts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lakehouse.contract.tables import table_names
from lakehouse.ingest.queries import run_ingest
from lakehouse.platform.cluster import LocalCluster
from lakehouse.platform.delta import table_location
from lakehouse.platform.isolation import isolated, updated
from lakehouse.platform.jvm import alive
from lakehouse.platform.kafka.clients import admin_client
from lakehouse.platform.kafka.topics import ensure_topics
from lakehouse.platform.streaming import raise_if_failed
from lakehouse.platform.waits import wait_until
from lakehouse.scoring.scorer import start_scorer
from lakehouse.settings import load_settings
from lakehouse.simulator.producer import ProduceLimits
from tests.e2e.cluster.conftest import apps_named, send_payments, warehouse_table
from tests.helpers import (
    FRAUDLAKE,
    PROJECT_DIR,
    DeltaCount,
    environ_of,
    fraudlake,
    ids_seen,
    read_alerts,
    still_running,
)


def once_each(spark, scored_path: Path | str, sent, alerts: list[dict]) -> None:
    """Every payment sent scored once, and every alert the table holds delivered, each repeat (a
    replayed batch re-sends its alerts) with the same decision: unique by ``alert_id``."""
    rows = spark.read.format("delta").load(str(scored_path))
    assert rows.count() == rows.select("transaction_id").distinct().count() == sent.transactions
    expected = {r.alert_id for r in rows.where("is_alert").select("alert_id").collect()}
    assert expected, "no alert: nothing to check on the alert topic"
    decisions: dict[str, dict] = {}
    for alert in alerts:
        decision = {k: v for k, v in alert.items() if k != "emitted_at"}
        assert decisions.setdefault(alert["alert_id"], decision) == decision, alert["alert_id"]
    assert set(decisions) == expected


def all_landed(tables: list[DeltaCount], sent, check) -> None:
    """Wait until each of ``tables`` (silver, and the scored table where the scorer runs) holds as
    many rows as payments were sent."""
    wait_until(
        lambda: all(table() >= sent.transactions for table in tables),
        timeout_s=600,
        what=f"{sent.transactions} transactions in each of {[t.path.name for t in tables]}",
        check=check,
        poll_s=2.0,
    )


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_a_broker_killed_mid_stream_and_started_again_loses_and_duplicates_nothing(
    cluster_environ, champion, spark, settings, tmp_path
) -> None:
    """The producer, a running ingest and scorer (in the test session) and ``fraudlake alerts
    tail`` (its own process) lose the broker that leads the first transactions partition
    (SIGKILL) half-way through; with 3 replicas and min.insync.replicas 2 all go on, and after the
    broker is started again silver and the scored table hold every payment once and the tail
    delivered every alert once, none of them restarted."""
    on_cluster = load_settings("cluster-local", environ=cluster_environ)
    cluster = LocalCluster(on_cluster)
    replicated = {
        name: {"replication_factor": 3, "configs": {"min.insync.replicas": "2"}}
        for name in ("transactions", "users", "merchants", "labels", "alerts", "scored")
    }
    local = isolated(settings, topics=True, checkpoint_dir=tmp_path / "checkpoints")
    local = updated(
        local,
        {
            "kafka": {"bootstrap_servers": on_cluster.kafka.bootstrap, "topics": replicated},
            "registry": {
                "tracking_uri": champion.registry.tracking_uri,
                "artifact_location": champion.registry.artifact_location,
            },
        },
    )
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

    tailed = tmp_path / "alerts.jsonl"
    log = tmp_path / "tail.log"
    tail_env = {**cluster_environ, **environ_of(local)}
    with log.open("w") as out:
        tail = subprocess.Popen(
            [FRAUDLAKE, "alerts", "tail", "--format", "json", "--from-beginning", "--output-file", str(tailed)],
            env=tail_env,
            cwd=PROJECT_DIR,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    queries = [*run_ingest(spark, local, once=False), *start_scorer(spark, local, starting_offsets="earliest")]

    def healthy() -> None:
        for query in queries:
            raise_if_failed(query)
        still_running(tail, "the alerts tail", log)()

    try:
        sent = send_payments(
            local,
            23,
            ProduceLimits(count=1500, rate=150),
            kill=lambda: os.kill(victim_pid, signal.SIGKILL),
            fraud_rate=0.1,
        )
        assert cluster.status().brokers[victim.address] is False

        status, started = cluster.up()  # the killed node only
        assert started and status.complete
        names = table_names(local)
        silver = DeltaCount(spark, table_location(spark, names.silver("transactions")))
        scored = DeltaCount(spark, table_location(spark, names.scored))
        all_landed([silver, scored], sent, check=healthy)
        expected = {
            r.alert_id for r in spark.read.format("delta").load(scored.path.as_posix()).where("is_alert").collect()
        }
        wait_until(
            lambda: tailed.is_file() and ids_seen(expected)(read_lines(tailed)),
            timeout_s=120,
            what=f"the {len(expected)} alerts delivered by the tail",
            check=still_running(tail, "the alerts tail", log),
        )
    finally:
        for query in queries:
            query.stop()
        tail.terminate()
        tail.wait(timeout=60)
    rows = spark.read.format("delta").load(silver.path.as_posix())
    assert rows.count() == rows.select("transaction_id").distinct().count() == sent.transactions
    bronze = spark.table(names.bronze("transactions"))
    assert bronze.count() == bronze.select("partition", "offset").distinct().count() == sent.transactions
    delivered = read_lines(tailed)
    assert len(delivered) == len({a["alert_id"] for a in delivered})  # the tail drops repeats
    once_each(spark, scored.path, sent, delivered)


@pytest.mark.slow
def test_a_worker_lost_mid_stream_leaves_the_ingest_job_running_without_loss_or_duplicates(
    cluster_environ, spark, settings, tmp_path
) -> None:
    """A machine lost: one worker and the executors it runs are killed (SIGKILL to the worker's
    process group) while the ingest job runs on the cluster with an executor on both workers; its
    tasks run again on the other worker, it goes on, and afterwards reconcile is OK and silver
    holds every payment once. And the cluster's silver, fault and all, is what the same ingest
    lands from the same records on the test session's ``local[2]`` Spark: every field and Kafka
    position. (The same loss with the scorer job running beside ingest, which takes about two
    minutes more to start on 2 cores, is the faults lane's: ``make faults``.)"""
    lose_a_worker(cluster_environ, None, spark, settings, tmp_path)


@pytest.mark.faults
def test_a_worker_lost_mid_stream_leaves_ingest_and_the_scorer_running_without_loss_or_duplicates(
    cluster_environ, champion, spark, settings, tmp_path
) -> None:
    """A machine lost: one worker and the executors it runs are killed (SIGKILL to the worker's
    process group) while the ingest job and the scorer job run on the cluster, each with an
    executor on both workers; their tasks run again on the other worker, both jobs go on, and
    afterwards reconcile is OK, silver and the scored table hold every payment once, every alert
    is unique by ``alert_id``, and silver is what ingest lands on ``local[2]`` from the same
    records."""
    lose_a_worker(cluster_environ, champion, spark, settings, tmp_path)


#: What each job logs once its queries run.
RUNNING = {"ingest": "ingest running:", "score": "scorer running:"}


def lose_a_worker(cluster_environ, champion, spark, settings, tmp_path: Path) -> None:
    """The worker-loss run: the ingest job, and the scorer job when there is a ``champion`` to
    score with, on the cluster; the first worker killed half-way through 1,500 payments; then
    the checks of both tests above."""
    on_cluster = load_settings("cluster-local", environ=cluster_environ)
    cluster = LocalCluster(on_cluster)
    own = isolated(on_cluster, topics=True, checkpoint_dir=tmp_path / "checkpoints")
    if champion is not None:
        registry = {
            "tracking_uri": champion.registry.tracking_uri,
            "artifact_location": champion.registry.artifact_location,
        }
        own = updated(own, {"registry": registry})
    ensure_topics(own.kafka)
    admin = admin_client(own.kafka)
    try:  # the cluster's topics: three copies of every partition, on three brokers
        described = admin.describe_topics([own.kafka.topics.transactions.name])
    finally:
        admin.close()
    assert {len(p["replica_nodes"]) for p in described[0]["partitions"]} == {3}, described
    env = {
        **cluster_environ,
        **environ_of(own),
        "FRAUDLAKE_STREAMING__TRIGGER": "2 seconds",
        "FRAUDLAKE_STREAMING__MAX_RECORDS_PER_TRIGGER": "300",
    }
    names = ("ingest", "score") if champion is not None else ("ingest",)  # the jobs on the cluster
    jobs: dict[str, subprocess.Popen] = {}
    logs = {name: tmp_path / f"{name}-job.log" for name in names}

    def start(name: str, *args: str) -> None:
        with logs[name].open("w") as out:
            jobs[name] = subprocess.Popen(
                [sys.executable, "-m", f"jobs.stream_{name}", *args], env=env, cwd=PROJECT_DIR, stdout=out, stderr=out
            )

    def all_running() -> None:
        for name, job in jobs.items():
            still_running(job, f"the {name} job", logs[name])()

    began = time.time() * 1000

    def on_both_workers() -> bool:
        found = [apps_named(cluster, f"fraudlake-{name}", began) for name in names]
        return all(found) and all(len(cluster.executors_per_worker(a[0]["id"])) == 2 for a in found)

    try:
        start("ingest")  # first: it creates the lake's tables, which the scorer then finds
        wait_until(
            lambda: RUNNING["ingest"] in logs["ingest"].read_text(),
            timeout_s=300,
            what="the ingest job",
            check=all_running,
        )
        if champion is not None:
            start("score", "--starting-offsets", "earliest")
        wait_until(
            lambda: all(RUNNING[name] in logs[name].read_text() for name in names) and on_both_workers(),
            timeout_s=300,
            what=f"the jobs ({', '.join(names)}) running, each on both workers",
            check=all_running,
        )
        victim = cluster.workers[0].running_pid()
        # The worker and its executors (the worker's process group): the machine is gone.
        sent = send_payments(
            own, 29, ProduceLimits(count=1500, rate=100), kill=lambda: os.killpg(victim, signal.SIGKILL)
        )
        assert not alive(victim)  # (the master calls it dead only after spark.worker.timeout)
        wait_until(  # each driver saw its executor on the lost worker go
            lambda: all("Lost executor" in log.read_text() for log in logs.values()),
            timeout_s=120,
            what="every job losing its executor on the killed worker",
            check=all_running,
        )
        tables, data = table_names(own), on_cluster.paths.data_dir
        silver = DeltaCount(spark, warehouse_table(data, tables.silver_schema, "transactions"))
        scored = DeltaCount(spark, warehouse_table(data, tables.gold_schema, "scored_transactions"))
        all_landed([silver, scored] if champion is not None else [silver], sent, check=all_running)
    finally:
        for job in jobs.values():
            job.terminate()
        for job in jobs.values():
            job.wait(timeout=120)
        cluster.up()  # the lost worker back, for what follows
    rows = spark.read.format("delta").load(silver.path.as_posix())
    assert rows.count() == rows.select("transaction_id").distinct().count() == sent.transactions
    if champion is not None:
        alerted = spark.read.format("delta").load(scored.path.as_posix()).where("is_alert")
        expected = {r.alert_id for r in alerted.collect()}
        once_each(spark, scored.path, sent, [a for _, a in read_alerts(own, ids_seen(expected))])
    # reconcile reads the tables through the cluster's catalog; where its own Spark runs does not
    # change its verdict, and a local driver starts no executors on the workers
    checked = fraudlake("reconcile", env={**env, "FRAUDLAKE_SPARK__MASTER": "local[1]"}, timeout=600)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    same_as_local_ingest(spark, settings, own, silver.path, sent, tmp_path)


#: Silver columns that say when and in which micro-batch a row landed: two runs differ there.
LANDING = ("_ingested_at", "_batch_id")


def same_as_local_ingest(spark, settings, on_cluster, cluster_silver: Path, sent, tmp_path: Path) -> None:
    """The records of ``on_cluster``'s topics through ingest on the test session's Spark: the
    same silver rows (but when they landed) and the same user profiles as the cluster's."""
    local = isolated(settings, checkpoint_dir=tmp_path / "local-checkpoints")
    local = updated(
        local, {"kafka": {"bootstrap_servers": on_cluster.kafka.bootstrap, "topics": on_cluster.kafka.topics}}
    )
    run_ingest(spark, local, once=True)
    names = table_names(local)
    cluster_rows = spark.read.format("delta").load(cluster_silver.as_posix())
    local_rows = spark.table(names.silver("transactions"))
    compared = [c for c in local_rows.columns if c not in LANDING]  # every field, and its Kafka position
    cluster_rows, local_rows = cluster_rows.select(*compared), local_rows.select(*compared)
    assert local_rows.count() == sent.transactions
    assert cluster_rows.exceptAll(local_rows).count() == local_rows.exceptAll(cluster_rows).count() == 0
    schema = table_names(on_cluster).silver_schema
    users = warehouse_table(on_cluster.paths.data_dir, schema, "user_versions")
    assert spark.read.format("delta").load(str(users)).count() == spark.table(names.versions("users")).count()
