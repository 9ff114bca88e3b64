"""A scorer started on a new checkpoint warms its state from silver (real broker, Spark, Delta):
users known only from imported files and users whose history is older than the stream get the
same 30-day features online as the offline job gives, from their first streamed transaction on,
and the stream is scored from where silver ends."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pyspark.sql import functions as F

from lakehouse.contract.features import FEATURE_NAMES
from lakehouse.contract.tables import table_names
from lakehouse.features.materialize import build_features, compare_features
from lakehouse.features.warm import WarmStart, plan_warm_start, warm_state
from lakehouse.ingest.files import import_files
from lakehouse.ingest.queries import run_ingest
from lakehouse.platform.isolation import drop_schemas
from lakehouse.platform.kafka.senders import make_sender
from lakehouse.platform.kafka.topics import delete_topics, ensure_topics, offset_ranges
from lakehouse.scoring.champion import Publisher
from lakehouse.scoring.check import run_scoring_path
from lakehouse.simulator.files import write_offline_batch
from lakehouse.simulator.producer import ProduceLimits, produce
from lakehouse.simulator.simulation import Simulation
from tests.helpers import ingest_world

pytestmark = pytest.mark.integration
START = date(2026, 9, 1)
IMPORTED_DAYS = 20


def send(settings, day: int, count: int) -> int:
    sender = make_sender(settings.kafka, settings.producer)
    try:
        simulation = Simulation(settings.simulator, START, traffic_seed=100 + day)
        return produce(settings, simulation, sender, ProduceLimits(count=count), first_day=day).transactions
    finally:
        sender.close()


@pytest.mark.slow
def test_a_new_scorer_warms_its_state_from_silver_and_its_features_equal_the_offline_jobs(
    kafka_broker, spark, tmp_path
) -> None:
    settings = ingest_world(kafka_broker, tmp_path, days=IMPORTED_DAYS, transactions=6000)
    names = table_names(settings)
    topic = settings.kafka.topics.transactions.name
    ensure_topics(settings.kafka)
    try:
        # 20 days known only from files, then a day streamed and ingested, then a day streamed only.
        files = tmp_path / "files"
        write_offline_batch(Simulation(settings.simulator, START), files)
        import_files(
            spark,
            settings,
            transactions=str(files / "transactions.parquet"),
            users=str(files / "users.parquet"),
            merchants=str(files / "merchants.parquet"),
        )
        send(settings, IMPORTED_DAYS, 280)
        run_ingest(spark, settings, once=True)
        ingested_ends = {p: end for p, (_, end) in offset_ranges(settings.kafka, topic)[topic].items()}
        fresh = send(settings, IMPORTED_DAYS + 1, 250)

        build_features(spark, settings)  # the merchant day counts the snapshot holds, as a daily build gives
        folder = tmp_path / "scorer"
        Publisher(spark, settings, folder / "serving", None).refresh()  # the dimension snapshot; no model
        statuses = run_scoring_path(spark, settings, names.feature_check, folder, starting_offsets="silver")

        warm = WarmStart.load(folder / "warm-start.json")
        assert warm is not None and warm.offsets == ingested_ends  # scored from where silver ends
        assert sum(statuses.values()) == fresh and statuses.get("duplicate", 0) == 0, statuses

        run_ingest(spark, settings, once=True)
        build_features(spark, settings, since=START + timedelta(days=IMPORTED_DAYS))  # the streamed days
        online = spark.table(names.feature_check).where("status = 'accepted'")
        offline = spark.table(names.features).join(online.select("transaction_id"), "transaction_id", "left_semi")
        ingested = spark.createDataFrame([], "on_partition INT, max_offset BIGINT")
        report = compare_features(offline, online, ingested, settings.features.tolerance)
        assert report.compared == report.online_rows == statuses["accepted"] > 0
        assert report.missing_online == report.missing_offline == 0
        assert [d.feature for d in report.diffs] == list(FEATURE_NAMES)
        worst = max(report.diffs, key=lambda d: d.max_rel)
        assert report.ok and worst.max_rel <= 1e-9, worst

        # Not trivially equal: most users' 30-day history reaches back into the imported days,
        # which the topic never held.
        streamed = spark.table(names.silver("transactions")).where(f"_topic = '{topic}'")
        per_user = streamed.groupBy("user_id").count().withColumnRenamed("count", "streamed")
        beyond = online.join(per_user, "user_id").where("user_tx_count_30d >= streamed")
        assert beyond.count() > 0.5 * report.compared

        # Ingest running beside a new scorer: a silver batch whose rows have landed but whose
        # progress row has not yet is left to the stream (its offsets are after the starting ones).
        last = spark.table(names.progress).where(f"_topic = '{topic}'").agg({"_batch_id": "max"}).first()[0]
        early = streamed.limit(1).selectExpr("*", "'T-early' AS early_id").drop("transaction_id")
        early = early.withColumnRenamed("early_id", "transaction_id").withColumn("_batch_id", F.lit(last + 1))
        silver_table = spark.table(names.silver("transactions"))
        early.select(*silver_table.columns).write.format("delta").mode("append").saveAsTable(
            names.silver("transactions")
        )
        pinned = plan_warm_start(spark, settings)
        assert pinned.last_batch == last
        state = warm_state(spark, settings, pinned)
        held = {r.transaction_id for r in state.select("transaction_id").collect()}
        assert "T-early" not in held and len(held) > fresh
    finally:
        delete_topics(settings.kafka, [t.name for t in settings.kafka.topics.all()])
        drop_schemas(spark, settings)
