"""The offline feature job and the offline/online feature check.

``build_features``: silver → ``gold.merchant_daily`` and ``gold.transaction_features`` (every
silver transaction, point in time correct). Deterministic and idempotent: a rerun on the same
silver version writes the same rows. ``--since`` recomputes only event days from that date on,
replaying the history they need (30 days plus the lateness allowance) without rewriting it; a
table written before a release added features is rebuilt in full instead, with its new columns.

:func:`compare_features`: the offline table against the online path's rows, feature by feature
(``fraudlake features check`` runs the scorer's own step to get those: :mod:`lakehouse.scoring.check`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

from lakehouse.contract.features import CATEGORICAL_FEATURES, FEATURE_NAMES, HISTORY_S, feature_table_columns
from lakehouse.contract.tables import create_tables
from lakehouse.features.labels import feedback_cut, known_labels
from lakehouse.features.offline import merchant_daily_stats, transaction_features
from lakehouse.platform.delta import OPTIMIZE_WRITE, latest_version, read_pinned
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildReport:
    rows: int
    silver_rows: int
    silver_version: int
    features_version: int
    since: date | None


def build_features(spark: SparkSession, settings: Settings, *, since: date | None = None) -> BuildReport:
    """Compute the feature table from silver (all of it, or event days from ``since`` on)."""
    from pyspark.sql import functions as F

    names = create_tables(spark, settings)
    # Pin one silver version for the whole job, so the counts below reconcile exactly.
    silver, silver_version = read_pinned(spark, names.silver("transactions"))
    # A fraud counts in its merchant's rates only if its label was reported within the feedback
    # delay: then every count a transaction's fraud rate reads was known before the transaction's day.
    known_by = feedback_cut(settings.features.feedback_delay_days)
    labelled = known_labels(spark, settings, silver, known_by, versions={names.silver("transactions"): silver_version})
    merchant_daily_stats(labelled).write.format("delta").mode("overwrite").saveAsTable(names.merchant_daily)

    missing = [c for c in feature_table_columns() if c not in spark.table(names.features).columns]
    if missing and since is not None:
        log.warning("features: the table predates %s: rebuilding all of it, not from %s", ", ".join(missing), since)
        since = None
    source = silver
    if since is not None:
        replay_days = HISTORY_S // 86_400 + int(settings.lakehouse.watermark_delay_minutes // (24 * 60)) + 1
        source = silver.where(F.col("event_date") >= F.lit(since - timedelta(days=replay_days)))
    features = transaction_features(
        source,
        user_versions=spark.table(names.versions("users")),
        merchant_versions=spark.table(names.versions("merchants")),
        merchant_daily=spark.table(names.merchant_daily),
        max_events=settings.features.max_history_events,
        feedback_delay_days=settings.features.feedback_delay_days,
    )
    if since is not None:
        features = features.where(F.col("event_date") >= F.lit(since))
    # Grouped by event day before writing (one file a day, not one a day per shuffle task).
    writer = features.write.format("delta").mode("overwrite").option(OPTIMIZE_WRITE, "true")
    if missing:  # a release with new features: the full rebuild takes the table's new schema
        writer = writer.option("overwriteSchema", "true")
    if since is not None:
        writer = writer.option("replaceWhere", f"event_date >= '{since.isoformat()}'")
    writer.saveAsTable(names.features)

    in_range = silver if since is None else silver.where(F.col("event_date") >= F.lit(since))
    silver_rows = in_range.count()
    written = spark.table(names.features)
    rows = (written if since is None else written.where(F.col("event_date") >= F.lit(since))).count()
    if rows != silver_rows:
        raise RuntimeError(f"feature rows {rows} != silver transactions {silver_rows} in range: please report this")
    report = BuildReport(rows, silver_rows, silver_version, latest_version(spark, names.features), since)
    log.info(
        "features: %s rows from silver version %s → %s version %s",
        rows,
        silver_version,
        names.features,
        report.features_version,
    )
    return report


# --------------------------------------------------------------------------- the check


@dataclass(frozen=True)
class FeatureDiff:
    feature: str
    max_abs: float
    max_rel: float
    null_mismatches: int

    def ok(self, tolerance: float) -> bool:
        return self.null_mismatches == 0 and self.max_rel <= tolerance


@dataclass(frozen=True)
class CheckReport:
    offline_rows: int
    online_rows: int
    compared: int
    missing_online: int  # in silver, not produced online
    missing_offline: int  # accepted online and already ingested, yet not in silver
    not_yet_ingested: int  # online rows past what silver has processed (a running ingest's lag)
    late_online: int
    duplicates_online: int
    tolerance: float
    diffs: list[FeatureDiff] = field(default_factory=list)
    model_version: int | None = None  # the champion whose scores were compared (None: no champion yet)
    score: FeatureDiff | None = None
    decisions_differ: int = 0  # transactions one path alerts on and the other does not

    @property
    def ok(self) -> bool:
        scores_ok = self.score is None or (self.score.ok(self.tolerance) and self.decisions_differ == 0)
        features_ok = all(d.ok(self.tolerance) for d in self.diffs)
        return self.missing_online == 0 and self.missing_offline == 0 and features_ok and scores_ok


def compare_features(offline: DataFrame, online: DataFrame, ingested: DataFrame, tolerance: float) -> CheckReport:
    """Per feature, the largest absolute and relative difference between the two paths over the
    transactions both computed, and the rows only one path has. ``ingested``: on_partition,
    max_offset (how far silver has processed each partition)."""
    from pyspark.sql import functions as F

    key = ["transaction_id"]
    off = offline.select(*key, *[F.col(c).alias(f"off_{c}") for c in FEATURE_NAMES]).persist()
    on = online.select(
        *key,
        F.col("kafka_partition").alias("on_partition"),
        F.col("kafka_offset").alias("on_offset"),
        *[F.col(c).alias(f"on_{c}") for c in FEATURE_NAMES],
    ).persist()
    try:
        both = off.join(on, key)
        only_online = on.join(off, key, "left_anti").join(ingested, "on_partition", "left")
        past_ingest = F.col("max_offset").isNull() | (F.col("on_offset") > F.col("max_offset"))
        counts = only_online.agg(
            F.sum(F.when(past_ingest, 1).otherwise(0)).alias("later"),
            F.sum(F.when(~past_ingest, 1).otherwise(0)).alias("missing"),
        ).first()
        aggregates = []
        for name in FEATURE_NAMES:
            a, b = F.col(f"off_{name}"), F.col(f"on_{name}")
            mismatched_null = a.isNull() != b.isNull()
            if name in CATEGORICAL_FEATURES:
                different = F.when(~mismatched_null & (a != b), 1.0).otherwise(0.0)
                aggregates += [F.max(different).alias(f"abs_{name}"), F.max(different).alias(f"rel_{name}")]
            else:
                diff = F.abs(a.cast("double") - b.cast("double"))
                scale = F.greatest(F.abs(a.cast("double")), F.abs(b.cast("double")))
                rel = F.when(diff == 0, F.lit(0.0)).otherwise(diff / scale)
                aggregates += [
                    F.coalesce(F.max(diff), F.lit(0.0)).alias(f"abs_{name}"),
                    F.coalesce(F.max(rel), F.lit(0.0)).alias(f"rel_{name}"),
                ]
            aggregates.append(F.sum(F.when(mismatched_null, 1).otherwise(0)).alias(f"null_{name}"))
        stats = both.agg(F.count("*").alias("compared"), *aggregates).first()
        diffs = [
            FeatureDiff(
                name,
                float(stats[f"abs_{name}"] or 0.0),
                float(stats[f"rel_{name}"] or 0.0),
                int(stats[f"null_{name}"] or 0),
            )
            for name in FEATURE_NAMES
        ]
        missing_online = off.join(on, key, "left_anti").count()
        return CheckReport(
            offline_rows=off.count(),
            online_rows=on.count(),
            compared=int(stats["compared"]),
            missing_online=missing_online,
            missing_offline=int(counts["missing"] or 0),
            not_yet_ingested=int(counts["later"] or 0),
            late_online=0,
            duplicates_online=0,
            tolerance=tolerance,
            diffs=diffs,
        )
    finally:
        off.unpersist()
        on.unpersist()
