"""The jobs resume from checkpoints written by the previous release.

The restructuring of issue 14 moved every module; query names, checkpoint layout, table names and
``txnAppId`` strings had to stay as they were, or a running deployment would start again from
nothing (or twice) after an upgrade. This test runs the previous release's own code (taken from
git, as an upgrade would find it) on the first part of a stream, then this release's code on the
rest, with the same data folder: nothing lost, nothing twice.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from lakehouse.platform.isolation import isolated
from lakehouse.platform.kafka.clients import admin_client
from lakehouse.platform.kafka.senders import make_sender
from lakehouse.platform.kafka.topics import delete_topics, ensure_topics
from lakehouse.simulator.producer import ProduceLimits, produce
from lakehouse.simulator.simulation import Simulation
from tests.helpers import PROJECT_DIR, release_environ


def run_job(code: Path, env: dict[str, str], *args: str) -> None:
    """``python -m <args>`` from the release in ``code``."""
    done = subprocess.run(
        [sys.executable, "-m", *args],
        env=release_environ(code, env),
        cwd=code,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{' '.join(args)} ({code}) failed:\n{done.stderr[-3000:]}"


@pytest.mark.slow
def test_ingest_resumes_from_the_previous_releases_checkpoints(
    kafka_broker, spark, tmp_path, cli_env, previous_release
) -> None:
    settings = isolated(
        kafka_broker, topics=True, schemas=False, simulator={"users": 200, "merchants": 60, "cities": 8, "days": 2}
    )
    ensure_topics(settings.kafka)
    topics = settings.kafka.topics
    simulation = Simulation(settings.simulator, date(2026, 10, 1), traffic_seed=41)
    sender = make_sender(settings.kafka, settings.producer)
    data = tmp_path / "job-data"
    env = {
        **cli_env,
        "FRAUDLAKE_PATHS__DATA_DIR": str(data),
        **{
            f"FRAUDLAKE_KAFKA__TOPICS__{name.upper()}__NAME": getattr(topics, name).name
            for name in ("transactions", "users", "merchants", "alerts")
        },
    }
    try:
        first = produce(settings, simulation, sender, ProduceLimits(count=800), first_day=0)
        sender.flush(30)
        # The session's decision service and Redis ports are keys the previous release refuses.
        older = {k: v for k, v in env.items() if not k.startswith("FRAUDLAKE_DECISIONS__")}
        run_job(previous_release, older, "jobs.stream_ingest", "--env", "test", "--once")
        second = produce(settings, simulation, sender, ProduceLimits(count=700), first_day=first.next_day)
        sender.flush(30)
        # The previous release had no label stream: its cluster has no labels topic. This release's
        # ingest creates it (configured settings) and reads it from the start.
        delete_topics(settings.kafka, [topics.labels.name])
        env["FRAUDLAKE_KAFKA__TOPICS__LABELS__NAME"] = topics.labels.name  # a key the previous release refuses
        run_job(PROJECT_DIR, env, "jobs.stream_ingest", "--env", "test", "--once")
        admin = admin_client(settings.kafka)
        try:
            assert topics.labels.name in set(admin.list_topics())
        finally:
            admin.close()
    finally:
        sender.close()

    warehouse = data / "warehouse"
    bronze = spark.read.format("delta").load(str(warehouse / "bronze.db" / "transactions"))
    silver = spark.read.format("delta").load(str(warehouse / "silver.db" / "transactions"))
    expected = first.transactions + second.transactions
    # Both releases appended to the same tables through the same checkpoints: each Kafka record once.
    assert bronze.count() == bronze.select("topic", "partition", "offset").distinct().count() == expected
    assert silver.count() == silver.select("transaction_id").distinct().count() == expected
    quarantine = spark.read.format("delta").load(str(warehouse / "silver.db" / "quarantine"))
    assert quarantine.count() == 0  # clean traffic: nothing rejected by either release
    users = spark.read.format("delta").load(str(warehouse / "silver.db" / "user_versions"))
    assert users.count() == first.users + second.users
    delete_topics(settings.kafka, [t.name for t in topics.all()])


def test_previous_release_is_a_real_older_tree(previous_release) -> None:
    """Guards the test above against comparing this release with itself."""
    assert (previous_release / "lakehouse" / "cli.py").exists()
    assert not (previous_release / "lakehouse" / "cli").exists()
