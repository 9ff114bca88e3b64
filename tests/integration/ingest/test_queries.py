"""Kafka → bronze → silver on the real broker, Spark and Delta: exact counts per table and per
quarantine reason for a produced set holding every kind of bad record."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date

import pytest

from lakehouse.contract.tables import table_names
from lakehouse.ingest.queries import run_ingest
from lakehouse.ingest.reconcile import SplitUsers, clocks_ahead, reconcile, split_users
from lakehouse.platform import isolation
from lakehouse.platform.faults import POISON_ENV
from lakehouse.platform.kafka.clients import producer
from lakehouse.platform.kafka.senders import make_sender
from lakehouse.platform.kafka.topics import delete_topics, ensure_topics
from lakehouse.simulator.bad_records import ACCEPTED
from lakehouse.simulator.producer import ProduceLimits, produce
from lakehouse.simulator.simulation import Simulation
from tests.helpers import ingest_world

pytestmark = pytest.mark.integration


@pytest.fixture
def ingest_settings(kafka_broker, spark, tmp_path):
    settings = ingest_world(kafka_broker, tmp_path)
    ensure_topics(settings.kafka)
    yield settings
    delete_topics(settings.kafka, [t.name for t in settings.kafka.topics.all()])
    isolation.drop_schemas(spark, settings)


def count(spark, table: str, where: str = "true") -> int:
    return spark.table(table).where(where).count()


def test_ingest_lands_every_record_in_silver_or_quarantine_with_its_reason(ingest_settings, spark, tmp_path) -> None:
    settings = ingest_settings
    simulation = Simulation(settings.simulator, date(2026, 10, 1), traffic_seed=21)
    sender = make_sender(settings.kafka, settings.producer)
    manifest_path = tmp_path / "manifest.jsonl"
    report = produce(
        settings, simulation, sender, ProduceLimits(count=5000), first_day=0, bad_rate=0.02, manifest_path=manifest_path
    )
    sender.close()
    manifest = [json.loads(line) for line in manifest_path.read_text().splitlines()]
    assert report.failed == 0 and {m["kind"] for m in manifest} >= {"late_event", "duplicate", "out_of_order"}
    # A producer that does not key by user_id: one user's two new payments on two partitions.
    split = [json.loads(v) for v in simulation.transaction_json(simulation.day(0).take([0, 0]))]
    direct = producer(settings.kafka)
    for partition, record in enumerate(split):
        record |= {"transaction_id": f"S{partition}{record['transaction_id']}", "timestamp": report.last_event}
        direct.send(settings.kafka.topics.transactions.name, json.dumps(record).encode(), partition=partition)
    direct.flush(30)
    direct.close()

    run_ingest(spark, settings, once=True)

    names = table_names(settings)
    by_stream = Counter(m["stream"] for m in manifest)
    accepted = Counter(m["stream"] for m in manifest if m["expected"] == ACCEPTED)
    expected_reasons = Counter((m["stream"], m["expected"]) for m in manifest if m["expected"] != ACCEPTED)

    assert count(spark, names.bronze("transactions")) == 5000 + len(split) + by_stream["transactions"]
    assert count(spark, names.bronze("users")) == report.users + by_stream["users"]
    assert count(spark, names.bronze("merchants")) == report.merchants + by_stream["merchants"]
    assert count(spark, names.silver("transactions")) == 5000 + len(split) + accepted["transactions"]
    assert count(spark, names.versions("users")) == report.users
    assert count(spark, names.versions("merchants")) == report.merchants
    quarantined = Counter(
        (r.source, r.reason) for r in spark.table(names.quarantine).select("source", "reason").collect()
    )
    assert quarantined == expected_reasons
    # Silver holds each transaction once; the latest tables one row per user and merchant.
    silver = spark.table(names.silver("transactions"))
    assert silver.select("transaction_id").distinct().count() == silver.count()
    assert count(spark, names.silver("users")) == len(simulation.population.user_id)
    assert count(spark, names.silver("merchants")) == len(simulation.population.merchant_id)
    assert all(r.ok for r in reconcile(spark, settings)), reconcile(spark, settings)
    # A record dated weeks ahead (ahead_of_clock) was quarantined: no partition clock runs ahead.
    assert clocks_ahead(spark, settings).ok, clocks_ahead(spark, settings)
    # Found and named: the split user, and no user of the producer keyed by user_id.
    assert split_users(spark, settings) == SplitUsers(1, [split[0]["user_id"]])


@pytest.mark.slow
def test_ingest_rerun_is_idempotent_and_profile_changes_update_latest_keeping_history(ingest_settings, spark) -> None:
    settings = ingest_settings
    simulation = Simulation(
        settings.simulator.model_copy(update={"profile_change_probability": 0.5}), date(2026, 10, 1), traffic_seed=22
    )
    sender = make_sender(settings.kafka, settings.producer)
    names = table_names(settings)
    day_zero = produce(settings, simulation, sender, ProduceLimits(count=1000), first_day=0)  # nobody moved yet
    run_ingest(spark, settings, once=True)
    run_ingest(spark, settings, once=True)  # nothing new: nothing changes
    assert count(spark, names.silver("transactions")) == 1000

    produce(settings, simulation, sender, ProduceLimits(count=2500), first_day=day_zero.next_day)  # moves published
    sender.close()
    run_ingest(spark, settings, once=True)

    assert count(spark, names.bronze("transactions")) == count(spark, names.silver("transactions")) == 3500
    assert count(spark, names.quarantine) == 0
    assert all(r.ok for r in reconcile(spark, settings))
    moved = spark.sql(
        f"SELECT user_id, max(updated_at) AS latest FROM {names.versions('users')} "
        "GROUP BY user_id HAVING count(DISTINCT updated_at) > 1"
    ).collect()
    assert moved, "some users moved during the produced days"
    current = {r.user_id: r.updated_at for r in spark.table(names.silver("users")).collect()}
    assert all(current[r.user_id] == r.latest for r in moved)


def test_a_record_that_fails_its_batch_again_and_again_is_quarantined_and_the_rest_lands(
    ingest_settings, spark, monkeypatch
) -> None:
    """The poison-pill guard: a record no validation rule foresaw (injected: it makes silver's
    transforms raise) fails its batch; at the second failure (poison_after_failures: 2) the batch
    is bisected, the record goes to quarantine with the error, and every other record lands."""
    settings = ingest_settings.model_copy(
        update={"lakehouse": ingest_settings.lakehouse.model_copy(update={"poison_after_failures": 2})}
    )
    monkeypatch.setenv(POISON_ENV, "POISON-7f3a")
    simulation = Simulation(settings.simulator, date(2026, 10, 1), traffic_seed=22)
    records = [json.loads(v) for v in simulation.transaction_json(simulation.day(0).take(list(range(40))))]
    records[17]["transaction_id"] = "POISON-7f3a"
    direct = producer(settings.kafka)
    for record in records:
        direct.send(
            settings.kafka.topics.transactions.name, json.dumps(record).encode(), key=record["user_id"].encode()
        )
    direct.flush(30)
    direct.close()
    run_ingest(spark, settings, once=True, layers=("bronze",))

    with pytest.raises(Exception, match="poison record"):  # the first failure: taken for a passing fault
        run_ingest(spark, settings, once=True, layers=("silver",))
    for query in spark.streams.active:  # the other streams' queries drain on their own
        query.awaitTermination()
    run_ingest(spark, settings, once=True, layers=("silver",))

    names = table_names(settings)
    quarantined = spark.table(names.quarantine).select("reason", "_offset", "value").collect()
    assert len(quarantined) == 1 and "POISON-7f3a" in quarantined[0].value
    assert quarantined[0].reason.startswith("poison_record:") and "poison record" in quarantined[0].reason
    assert count(spark, names.silver("transactions")) == len(records) - 1
    assert all(r.ok for r in reconcile(spark, settings)), reconcile(spark, settings)


def test_late_labels_land_in_silver_once_each_and_a_later_report_supersedes_keeping_history(
    ingest_settings, spark, tmp_path
) -> None:
    """Chargebacks and customers' reports (shortened delays, so that a few days of traffic see
    them) come after their payments; a resent event is a duplicate, an unknown label is
    quarantined, an analyst's later decision supersedes a chargeback and both stay in history."""
    labels = {"emit": True, "chargeback_days_median": 1.0, "report_days_median": 0.3, "fraud_reported": 1.0}
    simulator = ingest_settings.simulator.model_copy(
        update={"labels": ingest_settings.simulator.labels.model_copy(update=labels)}
    )
    settings = ingest_settings.model_copy(update={"simulator": simulator})
    simulation = Simulation(settings.simulator, date(2026, 10, 1), traffic_seed=23)
    sender = make_sender(settings.kafka, settings.producer)
    report = produce(settings, simulation, sender, ProduceLimits(count=2000), first_day=0, labels_path=tmp_path / "q")
    sender.close()
    assert report.labels > 0 and report.labels_pending > 0  # the last payments' reports are still to come

    run_ingest(spark, settings, once=True, layers=("bronze",))
    names = table_names(settings)
    sent = [json.loads(r.value) for r in spark.table(names.bronze("labels")).orderBy("offset").collect()]
    first = sent[0]
    correction = {
        **first,
        "label_id": f"analyst-{first['transaction_id']}",
        "label": "legitimate",
        "source": "analyst",
        "analyst": "a.lopez",
        "reported_at": "2026-11-20T09:00:00.000Z",
    }
    direct = producer(settings.kafka)
    for record in (first, correction, {**first, "label_id": "bad-1", "label": "maybe"}):  # a resend, a decision, junk
        direct.send(settings.kafka.topics.labels.name, json.dumps(record).encode(), key=first["user_id"].encode())
    direct.flush(30)
    direct.close()
    run_ingest(spark, settings, once=True)

    quarantined = Counter(
        r.reason for r in spark.table(names.quarantine).where("source = 'labels'").select("reason").collect()
    )
    assert quarantined == {"duplicate": 1, "unknown_label": 1}
    assert count(spark, names.versions("labels")) == report.labels + 1
    latest = {r.transaction_id: r for r in spark.table(names.silver("labels")).collect()}
    assert len(latest) == len({s["transaction_id"] for s in sent})
    assert (
        latest[first["transaction_id"]].label == "legitimate" and latest[first["transaction_id"]].analyst == "a.lopez"
    )
    history = spark.table(names.versions("labels")).where(f"transaction_id = '{first['transaction_id']}'")
    assert sorted(r.source for r in history.collect()) == ["analyst", first["source"]]
    # Late, as in life: every report comes after its payment.
    delays = spark.sql(
        f"SELECT min(l.reported_at - t.event_time) AS shortest, count(*) AS n FROM {names.versions('labels')} l "
        f"JOIN {names.silver('transactions')} t USING (transaction_id)"
    ).first()
    assert delays.n == report.labels + 1 and delays.shortest.total_seconds() >= 60
    assert all(r.ok for r in reconcile(spark, settings)), reconcile(spark, settings)


def test_progress_stays_bounded_by_compaction_and_every_decision_stays_the_same(ingest_settings, spark) -> None:
    from lakehouse.contract.tables import create_tables
    from lakehouse.ingest.queries import start_bronze, start_silver
    from lakehouse.platform.isolation import updated
    from lakehouse.settings import QuerySettings

    settings = updated(ingest_settings, {"streaming": {"max_records_per_trigger": 500}})  # bronze batches
    simulation = Simulation(settings.simulator, date(2026, 10, 1), traffic_seed=23)
    sender = make_sender(settings.kafka, settings.producer)
    produce(settings, simulation, sender, ProduceLimits(count=1500), first_day=0, bad_rate=0.05)
    sender.close()

    def silver_of(world, *starts) -> tuple[dict, Counter, int]:
        names = table_names(world)
        create_tables(spark, world)
        for start in starts:
            query = start(spark, world, names, "transactions", once=True)
            query.awaitTermination()
            assert query.exception() is None, query.exception()
        accepted = {r.transaction_id: r._offset for r in spark.table(names.silver("transactions")).collect()}
        rejected = Counter((r.reason, r._partition, r._offset) for r in spark.table(names.quarantine).collect())
        return accepted, rejected, sum(1 for p in query.recentProgress if p["numInputRows"])

    # Silver in one batch per bronze file (about one per partition and bronze batch), folding every 2.
    one_file = {"silver_transactions": QuerySettings(max_files_per_trigger=1)}
    folding = updated(settings, {"lakehouse": {"progress_compact_every": 2}, "streaming": {"queries": one_file}})
    # The same bronze rows in a single silver batch, to a silver schema and checkpoints of its own.
    single_silver = f"{settings.lakehouse.schemas.silver}_single"
    single = updated(
        settings,
        {
            "lakehouse": {"schemas": {"silver": single_silver}},
            "spark": {"checkpoint_dir": f"{settings.checkpoint_dir}_1"},
        },
    )
    try:
        *folded, batches = silver_of(folding, start_bronze, start_silver)
        *at_once, _ = silver_of(single, start_silver)
        progress = {
            name: spark.table(table_names(world).progress).where("source = 'transactions'")
            for name, world in (("folding", folding), ("single", single))
        }
        partitions = settings.kafka.topics.transactions.partitions
        maxima = {
            name: sorted(rows.groupBy("_partition").agg({"max_event_time": "max", "max_offset": "max"}).collect())
            for name, rows in progress.items()
        }
        # Without folding, a row per batch and partition (a batch here reads one partition's file);
        # folded, one per partition plus the batches since the last fold.
        rows = progress["folding"].count()
        assert batches >= 5 and rows < batches and rows <= 3 * partitions
        assert maxima["folding"] == maxima["single"]
        # Late and duplicate decisions depend on the log alone: the same in 5+ folded batches as in one.
        assert folded == at_once and {reason for reason, _, _ in folded[1]} >= {"late_event", "duplicate"}
    finally:
        spark.sql(f"DROP SCHEMA IF EXISTS {single_silver} CASCADE")
