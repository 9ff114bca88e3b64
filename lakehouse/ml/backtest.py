"""`fraudlake backtest`: re-score history with any registry model, on the feature table as it was
at a Delta version or timestamp (time travel), write the scores to ``gold.backtest_scores`` and
return the fraud metrics at the model's own threshold, judged with the labels known when it runs
(``labels.source``: with label events, the latest event of each payment).

A backtest is identified by (model version, days, table version): running it again replaces its
rows instead of adding them (``replaceWhere`` on ``backtest_id``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from lakehouse.contract.tables import table_names
from lakehouse.features.labels import known_labels
from lakehouse.ml import registry
from lakehouse.ml.metrics import Evaluation
from lakehouse.ml.pipeline import ScoredWindow, scored, with_label
from lakehouse.platform.delta import read_version
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SCORE_COLUMNS = (
    "backtest_id",
    "model_version",
    "features_version",
    "transaction_id",
    "user_id",
    "merchant_id",
    "event_time",
    "event_date",
    "amount",
    "is_fraud",
    "fraud_scenario",
    "score",
    "threshold",
    "alert",
)


@dataclass(frozen=True)
class BacktestResult:
    backtest_id: str
    model_version: int
    features_version: int
    rows: int
    evaluation: Evaluation
    table: str


def backtest(
    spark: SparkSession,
    settings: Settings,
    *,
    model: str,
    date_from: date,
    date_to: date,
    as_of_version: int | None = None,
    as_of_timestamp: str | None = None,
) -> BacktestResult:
    from pyspark.sql import functions as F

    if as_of_version is not None and as_of_timestamp is not None:
        raise registry.RegistryError("give --as-of-version or --as-of-timestamp, not both")
    version = registry.champion_version(settings) if model == "champion" else int(model)
    threshold = registry.version_info(settings, version).threshold
    names = table_names(settings)
    features = read_version(spark, names.features, version=as_of_version, timestamp=as_of_timestamp)
    features_version = (
        as_of_version if as_of_version is not None else _version_at(spark, names.features, as_of_timestamp)
    )
    window = features.where((F.col("event_date") >= F.lit(date_from)) & (F.col("event_date") <= F.lit(date_to)))
    # Judged with the labels known now (labels.source): the features are as they were, the truth
    # is the best there is (with label events, a payment never reported stays legitimate).
    window = known_labels(spark, settings, window, F.current_timestamp())
    backtest_id = hashlib.sha1(f"{version}|{date_from}|{date_to}|{features_version}".encode()).hexdigest()[:16]

    rows = (
        scored(registry.load(settings, version), with_label(window))
        .withColumn("backtest_id", F.lit(backtest_id))
        .withColumn("model_version", F.lit(version))
        .withColumn("features_version", F.lit(features_version).cast("bigint"))
        .withColumn("threshold", F.lit(threshold))
        .withColumn("alert", F.col("score") >= F.lit(threshold))
        .select(*SCORE_COLUMNS)
        .persist()
    )
    try:
        table = f"{names.gold_schema}.backtest_scores"
        writer = rows.write.format("delta")
        if spark.catalog.tableExists(table):
            writer = writer.mode("overwrite").option("replaceWhere", f"backtest_id = '{backtest_id}'")
        writer.saveAsTable(table)
        collected = ScoredWindow.collect(rows)
        count = len(collected.y)
    finally:
        rows.unpersist()
    evaluation = collected.evaluate(threshold, settings.training)
    return BacktestResult(backtest_id, version, features_version, count, evaluation, table)


def _version_at(spark: SparkSession, table: str, timestamp: str | None) -> int:
    """The table version read at ``timestamp`` (the latest when None)."""
    history = spark.sql(f"DESCRIBE HISTORY {table}")
    if timestamp is not None:
        history = history.where(f"timestamp <= timestamp'{timestamp}'")
    row = history.orderBy("version", ascending=False).first()
    if row is None:
        raise registry.RegistryError(f"{table} has no version at or before {timestamp}")
    return int(row.version)
