"""Live precision of each model version on the stream: of the alerts a version raised
(``gold.scored_transactions``) whose labels have matured (``labels.maturity_days``), how many were
fraud as known now; and of the matured frauds it scored, how many it alerted. A matured alert
that nobody reported is taken as legitimate, the labels' own rule (:mod:`lakehouse.features.labels`);
the days that have not matured yet are left out, since their labels are still coming."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from lakehouse.contract.tables import table_names
from lakehouse.features.labels import matured_labels
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass(frozen=True)
class LiveMetrics:
    model_version: int
    scored: int
    alerts: int
    frauds: int
    caught: int  # alerts that were fraud
    first_day: date
    last_day: date

    @property
    def precision(self) -> float | None:
        return self.caught / self.alerts if self.alerts else None

    @property
    def recall(self) -> float | None:
        return self.caught / self.frauds if self.frauds else None


def by_version(rows: DataFrame) -> DataFrame:
    """Counts per ``model_version`` of rows (model_version, is_alert, is_fraud, event_date) (pure)."""
    from pyspark.sql import functions as F

    alert, fraud = F.coalesce("is_alert", F.lit(False)), F.coalesce("is_fraud", F.lit(False))
    return rows.groupBy("model_version").agg(
        F.count(F.lit(1)).alias("scored"),
        F.sum(alert.cast("long")).alias("alerts"),
        F.sum(fraud.cast("long")).alias("frauds"),
        F.sum((alert & fraud).cast("long")).alias("caught"),
        F.min("event_date").alias("first_day"),
        F.max("event_date").alias("last_day"),
    )


def live_metrics(
    spark: SparkSession, settings: Settings, as_of: datetime | None = None
) -> tuple[list[LiveMetrics], datetime]:
    """Every version's live counts, newest version first, and the instant the judged payments are
    older than."""
    scored = spark.table(table_names(settings).scored).select(
        "transaction_id", "event_time", "event_date", "model_version", "is_alert"
    )
    rows, matured = matured_labels(spark, settings, scored, as_of or datetime.now(UTC))
    found = by_version(rows).orderBy("model_version", ascending=False).collect()
    return [LiveMetrics(**row.asDict()) for row in found], matured
