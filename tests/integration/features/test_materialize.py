"""Offline and online features on the real broker, Spark and Delta: the same transactions through
both paths give the same features (relative tolerance 1e-9) on produced days that include late,
out-of-order and duplicate records; `fraudlake features check` says so, and fails when they differ."""

from __future__ import annotations

import json
from datetime import date

import pytest
from typer.testing import CliRunner

from lakehouse.cli import app
from lakehouse.contract.features import FEATURE_NAMES, feature_table_columns
from lakehouse.contract.tables import table_names
from lakehouse.features.materialize import build_features
from lakehouse.ingest.queries import run_ingest
from lakehouse.platform.isolation import drop_schemas
from lakehouse.platform.kafka.senders import make_sender
from lakehouse.platform.kafka.topics import delete_topics, ensure_topics
from lakehouse.scoring.check import check_scoring
from lakehouse.simulator.producer import ProduceLimits, produce
from lakehouse.simulator.simulation import Simulation
from tests.helpers import environ_of, ingest_world

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ingested(kafka_broker, spark, tmp_path_factory):
    """Three simulated days with 3% bad records (late, out-of-order, duplicates...) produced to
    this module's topics and ingested into its own schemas."""
    folder = tmp_path_factory.mktemp("features")
    settings = ingest_world(kafka_broker, folder)
    ensure_topics(settings.kafka)
    simulation = Simulation(settings.simulator, date(2026, 10, 1), traffic_seed=31)
    sender = make_sender(settings.kafka, settings.producer)
    manifest = folder / "manifest.jsonl"
    produce(settings, simulation, sender, ProduceLimits(count=3000), first_day=0, bad_rate=0.03, manifest_path=manifest)
    sender.close()
    kinds = {json.loads(line)["kind"] for line in manifest.read_text().splitlines()}
    assert {"late_event", "out_of_order", "duplicate"} <= kinds
    run_ingest(spark, settings, once=True)
    yield settings
    delete_topics(settings.kafka, [t.name for t in settings.kafka.topics.all()])
    drop_schemas(spark, settings)


@pytest.mark.slow
def test_features_offline_and_online_agree_on_days_with_late_and_out_of_order_events(ingested, spark) -> None:
    settings = ingested
    report = check_scoring(spark, settings)
    assert report.model_version is None and report.score is None  # no champion in this world

    names = table_names(settings)
    silver = spark.table(names.silver("transactions")).count()
    assert report.offline_rows == report.online_rows == report.compared == silver
    assert report.missing_online == report.missing_offline == report.not_yet_ingested == 0
    assert report.late_online > 0 and report.duplicates_online > 0  # marked online exactly as silver did
    assert [d.feature for d in report.diffs] == list(FEATURE_NAMES)
    worst = max(report.diffs, key=lambda d: d.max_rel)
    assert report.ok and worst.max_rel <= 1e-9, worst
    # Not trivially equal: history and table joins found something for most transactions.
    table = spark.table(names.features)
    for condition in (
        "user_tx_count_24h > 0",
        "home_distance_km IS NOT NULL",
        "merchant_category IS NOT NULL",
        "merchant_tx_count_1d > 0",
        "is_new_device_ip = 0",
    ):
        assert table.where(condition).count() > silver * 0.3, condition


@pytest.mark.slow
def test_features_build_since_a_day_rewrites_the_same_rows(ingested, spark) -> None:
    settings = ingested
    names = table_names(settings)
    full = build_features(spark, settings)
    before = sorted(spark.table(names.features).collect())
    partial = build_features(spark, settings, since=date(2026, 10, 2))
    assert 0 < partial.rows < full.rows
    assert sorted(spark.table(names.features).collect()) == before

    # A table written by a release without some of today's features: a build from a day rebuilds
    # all of it, with the new columns (an upgrade needs no manual step).
    older = spark.table(names.features).drop("merchant_fraud_rate_1d", "merchant_fraud_rate_7d")
    older = spark.createDataFrame(older.collect(), older.schema)
    older.write.format("delta").mode("overwrite").option("overwriteSchema", "true").saveAsTable(names.features)
    upgraded = build_features(spark, settings, since=date(2026, 10, 2))
    assert upgraded.since is None and upgraded.rows == full.rows
    assert spark.table(names.features).columns == feature_table_columns()
    assert sorted(spark.table(names.features).collect()) == before


@pytest.mark.slow
def test_features_check_command_passes_then_fails_on_a_skewed_feature(ingested, spark, monkeypatch) -> None:
    for key, value in environ_of(ingested).items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()

    result = runner.invoke(app, ["features", "check"])
    assert result.exit_code == 0, result.output
    assert "agree" in result.output and "user_amount_zscore_30d" in result.output

    # Skew one feature of one transaction in the offline table: the check names it and fails.
    names = table_names(ingested)
    victim = spark.table(names.features).agg({"transaction_id": "min"}).first()[0]
    spark.sql(
        f"UPDATE {names.features} SET user_amount_sum_7d = user_amount_sum_7d * 1.000001 + 0.01"
        f" WHERE transaction_id = '{victim}'"
    )
    result = runner.invoke(app, ["features", "check", "--no-rebuild"])
    assert result.exit_code == 1, result.output
    assert "differ" in result.output
    row = next(line for line in result.output.splitlines() if "user_amount_sum_7d" in line)
    assert "NO" in row
