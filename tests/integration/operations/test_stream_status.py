"""`fraudlake stream status` against the real ingest on the session's broker and Spark: zero lag
after a drain, the right lag per query (Kafka records, unread bronze rows) once records wait, and
a stale verdict with exit 1 from the real CLI."""

from __future__ import annotations

import json
from datetime import date

import pytest

from lakehouse.ingest.queries import run_ingest
from lakehouse.operations.stream_status import HEALTHY, NOT_STARTED, STALE, stream_status
from lakehouse.platform.isolation import drop_schemas
from lakehouse.platform.kafka.senders import make_sender
from lakehouse.platform.kafka.topics import delete_topics, ensure_topics
from lakehouse.simulator.producer import ProduceLimits, produce
from lakehouse.simulator.simulation import Simulation
from tests.helpers import environ_of, fraudlake, ingest_world

pytestmark = pytest.mark.integration


@pytest.fixture
def status_settings(kafka_broker, spark, tmp_path):
    settings = ingest_world(kafka_broker, tmp_path, users=60, merchants=20, cities=5, days=2, transactions=600)
    ensure_topics(settings.kafka)
    yield settings
    delete_topics(settings.kafka, [t.name for t in settings.kafka.topics.all()])
    drop_schemas(spark, settings)


def by_query(report) -> dict:
    return {q.query: q for q in report.queries}


def test_stream_status_reports_lag_per_query_and_stale_queries_exit_1(status_settings, spark, cli_env) -> None:
    settings = status_settings
    simulation = Simulation(settings.simulator, date(2026, 10, 1), traffic_seed=41)
    sender = make_sender(settings.kafka, settings.producer)
    first = produce(settings, simulation, sender, ProduceLimits(count=200), first_day=0)
    run_ingest(spark, settings, once=True)

    drained = by_query(stream_status(settings))
    assert {name: (q.lag, q.state) for name, q in drained.items() if q.job == "ingest"} == {
        f"{layer}_{stream}": (0, HEALTHY)
        for layer in ("bronze", "silver")
        for stream in ("transactions", "users", "merchants", "labels")
    }
    assert drained["score"].state == NOT_STARTED and drained["score"].batch_id is None  # no scorer in this test

    # Bronze takes a second run, silver does not: silver's lag is bronze's new rows.
    second = produce(settings, simulation, sender, ProduceLimits(count=120), first_day=first.next_day)
    run_ingest(spark, settings, once=True, layers=("bronze",))
    # Then more records that nothing ingests: the bronze queries' lag is in Kafka.
    third = produce(settings, simulation, sender, ProduceLimits(count=70), first_day=second.next_day)
    sender.close()
    expected_lag = {
        "bronze_transactions": third.transactions,
        "bronze_users": third.users,
        "bronze_merchants": third.merchants,
        "silver_transactions": second.transactions,
        "silver_users": second.users,
        "silver_merchants": second.merchants,
        "bronze_labels": 0,  # the simulator's label stream is off in this world
        "silver_labels": 0,
    }

    recent = by_query(stream_status(settings))  # default max idle (300 s): all committed moments ago
    assert {name: q.lag for name, q in recent.items() if q.job == "ingest"} == expected_lag
    assert all(recent[name].state == HEALTHY for name in expected_lag)

    env = {**cli_env, **environ_of(settings)}
    result = fraudlake("stream", "status", "--max-idle-s", "0", "--json", env=env, timeout=120)
    assert result.returncode == 1, result.stderr
    queries = {q["query"]: q for q in json.loads(result.stdout)["queries"]}
    assert {name: queries[name]["lag"] for name in expected_lag} == expected_lag
    stale = {name for name, q in queries.items() if q["state"] == STALE}
    assert (
        stale == {name for name, lag in expected_lag.items() if lag > 0}
        and {"bronze_transactions", "silver_transactions"} <= stale
    )
    assert "stale: bronze_transactions" in result.stderr and "not started: score" in result.stderr

    table = fraudlake("stream", "status", env=env, timeout=120)
    assert table.returncode == 1, table.stderr
    assert "not started: score" in table.stdout and "stale:" not in table.stdout  # the ingest queries keep up


def test_stream_status_calls_a_query_broken_when_its_topic_was_recreated_or_its_checkpoint_damaged(
    kafka_broker, tmp_path, cli_env
) -> None:
    """Defects: after a topic was recreated under a query, its lag read 0 and the query passed as
    healthy; a truncated checkpoint file made the command die with a traceback."""
    from lakehouse.contract.queries import ingest_query_name
    from lakehouse.operations.stream_status import BROKEN, local_path
    from lakehouse.platform.isolation import isolated
    from lakehouse.platform.streaming import query_plan
    from tests.helpers import write_checkpoint

    settings = isolated(kafka_broker, topics=True, checkpoint_dir=tmp_path / "checkpoints")
    ensure_topics(settings.kafka)  # new topics: every partition ends at offset 0
    try:
        topic = settings.kafka.topics.transactions.name
        partitions = settings.kafka.topics.transactions.partitions

        def checkpoint(query: str):
            return local_path(query_plan(settings, query).checkpoint)

        # Where the old topic had left the query: 500 records into each partition.
        write_checkpoint(
            checkpoint(ingest_query_name("bronze", "transactions")),
            {0: {topic: {str(p): 500 for p in range(partitions)}}},
            committed=[0],
        )
        users = checkpoint(ingest_query_name("bronze", "users"))
        write_checkpoint(users, {0: {settings.kafka.topics.users.name: {"0": 0}}}, committed=[0])
        (users / "offsets" / "0").write_text('v1\n{"batchWatermarkMs":0}\n{"user_info')  # cut short

        report = by_query(stream_status(settings))

        recreated = report["bronze_transactions"]
        assert (recreated.state, recreated.lag) == (BROKEN, 0)
        assert "partition 0: checkpoint at offset 500, past the end (0): the topic was recreated" in recreated.detail
        assert report["bronze_users"].state == BROKEN and "is unreadable" in report["bronze_users"].detail
        result = fraudlake("stream", "status", "--json", env={**cli_env, **environ_of(settings)}, timeout=120)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert "broken: bronze_transactions (partition 0: checkpoint at offset 500" in result.stderr
    finally:
        delete_topics(settings.kafka, [t.name for t in settings.kafka.topics.all()])


def test_reconcile_counts_what_silver_has_not_read_yet_as_in_flight_not_lost(status_settings, spark) -> None:
    """Defect: with ingest running at its normal lag, reconcile failed (bronze ahead of silver
    counted as unaccounted), so the weekly DAG failed whenever the stream was live."""
    from lakehouse.contract.tables import table_names
    from lakehouse.ingest.reconcile import reconcile

    settings = status_settings
    simulation = Simulation(settings.simulator, date(2026, 10, 1), traffic_seed=43)
    sender = make_sender(settings.kafka, settings.producer)
    first = produce(settings, simulation, sender, ProduceLimits(count=150), first_day=0)
    run_ingest(spark, settings, once=True)
    second = produce(settings, simulation, sender, ProduceLimits(count=80), first_day=first.next_day)
    sender.close()
    run_ingest(spark, settings, once=True, layers=("bronze",))  # silver has not read these yet

    live = {r.stream: r for r in reconcile(spark, settings)}

    assert (live["transactions"].in_flight, live["transactions"].unaccounted) == (second.transactions, 0)
    assert all(r.ok for r in live.values()), live
    names = table_names(settings)
    one = spark.table(names.silver("transactions")).first().transaction_id
    spark.sql(f"DELETE FROM {names.silver('transactions')} WHERE transaction_id = '{one}'")  # a silver row lost
    lost = {r.stream: r for r in reconcile(spark, settings)}["transactions"]
    assert (lost.unaccounted, lost.in_flight, lost.ok) == (1, second.transactions, False)
