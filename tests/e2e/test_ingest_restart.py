"""Kill the real ingest job in the middle of a batch, restart it once: nothing lost, nothing twice.

The job runs as its own process (`python -m jobs.stream_ingest`, its own Spark driver and embedded
catalog under a private data folder), exactly as `fraudlake stream ingest` starts it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import date

import pytest

from lakehouse.platform.isolation import isolated
from lakehouse.platform.kafka.senders import make_sender
from lakehouse.platform.kafka.topics import delete_topics, ensure_topics
from lakehouse.simulator.producer import ProduceLimits, produce
from lakehouse.simulator.simulation import Simulation
from tests.helpers import PROJECT_DIR, DeltaCount


@pytest.mark.slow
def test_ingest_killed_mid_batch_restarts_without_loss_or_duplicates(kafka_broker, spark, tmp_path, cli_env) -> None:
    settings = isolated(kafka_broker, schemas=False, topics=True)
    settings = settings.model_copy(
        update={
            "simulator": settings.simulator.model_copy(
                update={"users": 300, "merchants": 90, "cities": 10, "days": 3, "transactions": 6000}
            )
        }
    )
    ensure_topics(settings.kafka)
    topics = settings.kafka.topics
    simulation = Simulation(settings.simulator, date(2026, 10, 1), traffic_seed=31)
    sender = make_sender(settings.kafka, settings.producer)
    first = produce(settings, simulation, sender, ProduceLimits(count=1500), first_day=0)
    # Schema drift: producers that add a field must not break ingestion.
    # (Stamped at the stream's current time: they are new payments, not late ones.)
    drifted = [
        json.loads(v) | {"wallet": {"type": "apple_pay", "token_age_days": 3}}
        for v in simulation.transaction_json(simulation.day(0).take(list(range(20))))
    ]
    for record in drifted:
        record["transaction_id"] = "D" + record["transaction_id"]
        record["timestamp"] = first.last_event
        sender.send(topics.transactions.name, record["user_id"].encode(), json.dumps(record).encode())
    sender.flush(30)

    data = tmp_path / "job-data"
    env = {
        **cli_env,
        "FRAUDLAKE_PATHS__DATA_DIR": str(data),
        "FRAUDLAKE_STREAMING__TRIGGER": "1 second",
        "FRAUDLAKE_STREAMING__MAX_RECORDS_PER_TRIGGER": "600",
        **{
            f"FRAUDLAKE_KAFKA__TOPICS__{name.upper()}__NAME": getattr(topics, name).name
            for name in ("transactions", "users", "merchants", "labels", "alerts")
        },
    }
    command = [sys.executable, "-m", "jobs.stream_ingest", "--env", "test"]
    bronze = data / "warehouse" / "bronze.db" / "transactions"
    silver = data / "warehouse" / "silver.db" / "transactions"
    log = tmp_path / "ingest-job.log"
    # The job kills its whole process group (FRAUDLAKE_FAULT) right after its first silver append of
    # transactions: before that batch's quarantine and progress rows and before its commit.
    killed_at = {**env, "FRAUDLAKE_FAULT": "silver_transactions_after_table"}
    with log.open("w") as out:
        job = subprocess.Popen(command, env=killed_at, cwd=PROJECT_DIR, start_new_session=True, stdout=out, stderr=out)
    try:
        job.wait(timeout=300)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    assert "killing the job at step 'silver_transactions_after_table'" in log.read_text()
    partial = DeltaCount(spark, silver)()
    second = produce(settings, simulation, sender, ProduceLimits(count=1000), first_day=first.next_day)
    sender.close()

    # The one restart: it drains the rest, replaying the killed batch.
    drain = subprocess.run([*command, "--once"], env=env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=600)
    assert drain.returncode == 0, drain.stderr[-3000:]

    expected = first.transactions + second.transactions + len(drifted)
    bronze_rows = spark.read.format("delta").load(str(bronze))
    silver_rows = spark.read.format("delta").load(str(silver))
    assert partial < expected  # the kill really happened mid-stream
    assert bronze_rows.count() == bronze_rows.select("topic", "partition", "offset").distinct().count() == expected
    assert silver_rows.count() == silver_rows.select("transaction_id").distinct().count() == expected
    assert silver_rows.where("transaction_id LIKE 'D%'").count() == len(drifted)
    assert DeltaCount(spark, data / "warehouse" / "silver.db" / "quarantine")() == 0
    users = spark.read.format("delta").load(str(data / "warehouse" / "silver.db" / "user_versions"))
    assert users.count() == first.users + second.users
    delete_topics(settings.kafka, [t.name for t in topics.all()])
