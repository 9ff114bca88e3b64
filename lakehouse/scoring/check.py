"""``fraudlake features check``: the scorer's own step against the offline table and MLlib.

The transactions of ``transaction_stream`` run through :class:`lakehouse.scoring.processor.ScoringProcessor`
(from the earliest offset, ``availableNow``, a throw-away checkpoint and serving folder), in its
``features`` mode: every feature the scorer computes, and the score its compiled champion gives.
Then, transaction by transaction:

- every feature against ``gold.transaction_features`` (the offline job), within
  ``features.tolerance`` (relative);
- the score against MLlib's ``transform`` of the champion on the offline features, within the same
  tolerance, and the alert decision at the champion's threshold. Without a champion yet, only the
  features are compared (the report says so).
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.contract.tables import table_names
from lakehouse.features.materialize import CheckReport, FeatureDiff, build_features, compare_features
from lakehouse.ml import registry
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def run_scoring_path(
    spark: SparkSession, settings: Settings, target: str, folder: Path, *, starting_offsets: str = "earliest"
) -> dict[str, int]:
    """Drain ``transaction_stream`` through the scorer's step into ``target`` (replaced); returns
    the count of rows per status (accepted, late_event, duplicate). ``starting_offsets`` as the
    scorer's (``silver``: a warm start, so only what silver has not processed yet is scored)."""
    from lakehouse.features.history import history_settings
    from lakehouse.features.online import online_state_features
    from lakehouse.features.warm import stream_start
    from lakehouse.platform.kafka.clients import kafka_stream
    from lakehouse.scoring.processor import ScoringProcessor, features_ddl

    spark.sql(f"DROP TABLE IF EXISTS {target}")
    topics = settings.kafka.topics
    processor = ScoringProcessor(
        serving_dir=str(folder / "serving"),
        feedback_delay_days=settings.features.feedback_delay_days,
        scored_topic=topics.scored.name,
        alerts_topic=topics.alerts.name,
        emit="features",
        **history_settings(settings),
    )
    checkpoint = str(folder / "checkpoint")
    start, initial = stream_start(spark, settings, checkpoint, folder / "warm-start.json", starting_offsets)
    rows = online_state_features(
        kafka_stream(spark, settings.kafka, topics.transactions.name, starting_offsets=start),
        settings,
        processor=processor,
        output_ddl=features_ddl(),
        initial_state=initial,
    )
    query = (
        rows.writeStream.queryName(f"feature_check_{uuid.uuid4().hex[:6]}")
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .format("delta")
        .toTable(target)
    )
    query.awaitTermination()
    if query.exception() is not None:
        raise RuntimeError(f"the scorer's step failed: {query.exception()}")
    return {r["status"]: r["count"] for r in spark.table(target).groupBy("status").count().collect()}


def compare_scores(offline: DataFrame, online: DataFrame, model, threshold: float) -> tuple[FeatureDiff, int]:
    """MLlib's scores of the offline features against the scorer's: (the difference, decisions that differ)."""
    from pyspark.sql import functions as F

    from lakehouse.ml.pipeline import scored

    theirs = scored(model, offline).select("transaction_id", F.col("score").alias("mllib"))
    both = theirs.join(online.select("transaction_id", "score"), "transaction_id")
    diff = F.abs(F.col("mllib") - F.col("score"))
    rel = F.when(diff == 0, F.lit(0.0)).otherwise(diff / F.greatest(F.abs("mllib"), F.abs("score")))
    differ = (F.col("mllib") >= threshold) != (F.col("score") >= threshold)
    stats = both.agg(
        F.coalesce(F.max(diff), F.lit(0.0)).alias("abs"),
        F.coalesce(F.max(rel), F.lit(0.0)).alias("rel"),
        F.sum(F.when(F.col("mllib").isNull() != F.col("score").isNull(), 1).otherwise(0)).alias("nulls"),
        F.sum(F.when(differ, 1).otherwise(0)).alias("differ"),
    ).first()
    return FeatureDiff("score", float(stats["abs"]), float(stats["rel"]), int(stats["nulls"] or 0)), int(
        stats["differ"] or 0
    )


def check_scoring(spark: SparkSession, settings: Settings, *, rebuild: bool = True) -> CheckReport:
    """Build the offline features (unless ``rebuild`` is off), run the scorer's step over the topic,
    and compare features and scores (see the module doc)."""
    from pyspark.sql import functions as F

    from lakehouse.scoring.champion import Champion, Publisher

    names = table_names(settings)
    if rebuild:
        build_features(spark, settings)
    folder = Path(str(settings.checkpoint_dir).removeprefix("file:")) / "feature_check" / uuid.uuid4().hex
    try:
        champion = Champion(spark, settings) if registry.champion_version(settings, required=False) else None
        publisher = Publisher(spark, settings, folder / "serving", champion)
        publisher.refresh()
        statuses = run_scoring_path(spark, settings, names.feature_check, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ingested = (
        spark.table(names.progress)
        .where(F.col("source") == "transactions")
        .groupBy(F.col("_partition").alias("on_partition"))
        .agg(F.max("max_offset").alias("max_offset"))
    )
    offline = spark.table(names.features)
    online = spark.table(names.feature_check).where("status = 'accepted'")
    report = compare_features(offline, online, ingested, settings.features.tolerance)
    report = replace(report, late_online=statuses.get("late_event", 0), duplicates_online=statuses.get("duplicate", 0))
    if champion is None or champion.current is None:
        return report
    score, differ = compare_scores(offline, online, champion.current.mllib(settings), champion.current.threshold)
    return replace(report, model_version=champion.current.version, score=score, decisions_differ=differ)
