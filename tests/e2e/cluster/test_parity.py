"""The scorer on the cluster as on one machine: it runs as its own process with ``--env
cluster-local``, with executors on both workers (the workers' own status says so), and scores what
the same code scores on the test session's ``local[2]`` Spark from the same warm start. (Ingest's
parity with local Spark is checked after its worker-loss run, in ``test_losses.py``.)"""

from __future__ import annotations

import time

import pytest
from pyspark.sql import functions as F

from lakehouse.contract.tables import table_names
from lakehouse.platform.cluster import LocalCluster
from lakehouse.platform.isolation import isolated, updated
from lakehouse.platform.kafka.topics import ensure_topics
from lakehouse.scoring.scorer import start_scorer
from lakehouse.settings import load_settings
from lakehouse.simulator.producer import ProduceLimits
from tests.e2e.cluster.conftest import apps_named, run_job, send_payments, succeeded, warehouse_table
from tests.helpers import environ_of
from tests.integration.scoring.job_world import history_clones


def ran_on_both_workers(cluster: LocalCluster, app_name: str, since_ms: float) -> None:
    apps = apps_named(cluster, app_name, since_ms)
    assert len(apps) == 1, apps
    per_worker = cluster.executors_per_worker(apps[0]["id"])
    assert len(per_worker) == 2, per_worker


@pytest.mark.slow
def test_the_scorer_on_the_cluster_runs_on_both_workers_and_scores_as_local_spark(
    cluster_environ, champion, spark, tmp_path
) -> None:
    """A new day of payments after the champion's history, scored twice from the same warm start
    (user state from silver, scoring from where silver ends): by ``stream score --once`` on the
    cluster, on clones of the history's tables in the cluster's catalog and with its own output
    topics, and by the same scorer on the test session's Spark. Every payment gets the same score,
    decision and reasons."""
    on_cluster = load_settings("cluster-local", environ=cluster_environ)
    cluster = LocalCluster(on_cluster)
    sent = send_payments(champion, 37, ProduceLimits(count=400), first_day=2, fraud_rate=0.1)

    outputs = {name: {"name": f"{getattr(champion.kafka.topics, name).name}_cluster"} for name in ("alerts", "scored")}
    job = updated(champion, {"kafka": {"topics": outputs}, "spark": {"checkpoint_dir": str(tmp_path / "checkpoints")}})
    env = {**cluster_environ, **environ_of(job)}
    ensure_topics(load_settings("cluster-local", environ=env).kafka)  # the output topics, replicated as on the cluster
    names, clones = table_names(champion), history_clones(spark, champion)
    succeeded(
        run_job("tests.integration.scoring.job_world", *clones, env={**env, "FRAUDLAKE_SPARK__MASTER": "local[1]"})
    )
    began = time.time() * 1000
    succeeded(run_job("jobs.stream_score", "--once", env=env))
    ran_on_both_workers(cluster, "fraudlake-score", began)

    local = isolated(champion, schemas=False, checkpoint_dir=tmp_path / "local-checkpoints")
    for query in start_scorer(spark, local, once=True, starting_offsets="silver"):
        query.awaitTermination()
        assert query.exception() is None, query.exception()

    path = warehouse_table(on_cluster.paths.data_dir, names.gold_schema, "scored_transactions")
    on_cluster_rows = spark.read.format("delta").load(str(path)).alias("c")
    local_rows = spark.table(names.scored).alias("l")
    assert on_cluster_rows.count() == local_rows.count() == sent.transactions
    assert local_rows.where("is_alert").count() > 0, "no alert: the decisions compared would be trivial"
    both = on_cluster_rows.join(local_rows, "transaction_id")
    differ = both.where(
        (F.abs(F.col("c.score") - F.col("l.score")) > 1e-9)
        | ~F.col("c.is_alert").eqNullSafe(F.col("l.is_alert"))
        | ~F.col("c.alert_id").eqNullSafe(F.col("l.alert_id"))
        | ~F.col("c.model_version").eqNullSafe(F.col("l.model_version"))
        | ~F.col("c.reasons").eqNullSafe(F.col("l.reasons"))
    )
    assert both.count() == sent.transactions
    assert differ.count() == 0, differ.select("transaction_id", "c.score", "l.score").limit(5).collect()
