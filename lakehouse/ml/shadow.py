"""Champion against its shadow on the live stream: ``gold.shadow_scores`` (both scores of every
transaction scored while a shadow version ran) judged on the labels that have matured since.

Only transactions at least ``labels.maturity_days`` old at the cut count, with their labels as
known at the cut (:mod:`lakehouse.features.labels`): the same rule as training's validation. The
comparison gives both average precisions and both daily card precisions at the alert budget
(``training.threshold.daily_alerts`` users a day), on the same transactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from lakehouse.contract.tables import table_names
from lakehouse.features.labels import matured_labels
from lakehouse.ml import registry
from lakehouse.ml.metrics import average_precision, daily_top_k_precision
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass(frozen=True)
class ShadowComparison:
    shadow_version: int
    champion_versions: tuple[int, ...]
    matured_before: datetime
    rows: int
    frauds: int
    first_day: date | None
    last_day: date | None
    champion_ap: float | None
    shadow_ap: float | None
    champion_precision_at_budget: float | None
    shadow_precision_at_budget: float | None

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1 if self.first_day and self.last_day else 0


def compare_shadow(
    spark: SparkSession, settings: Settings, version: int | None = None, *, as_of: datetime | None = None
) -> ShadowComparison:
    """Compare ``version`` (default: the current shadow version) with the champions it ran beside."""
    from pyspark.sql import functions as F

    if version is None:
        version = registry.shadow_version(settings)
        if version is None:
            raise registry.RegistryError(
                f"model {settings.registry.model_name} has no shadow version: start one with "
                "`fraudlake model shadow VERSION`, or name the version to compare"
            )
    shadowed = spark.table(table_names(settings).shadow).where(F.col("shadow_model_version") == version)
    rows, matured = matured_labels(spark, settings, shadowed, as_of or datetime.now(UTC))
    frame = rows.select("event_date", "user_id", "model_version", "score", "shadow_score", "is_fraud").toPandas()
    y = frame["is_fraud"].fillna(False).to_numpy(bool)
    day, user = frame["event_date"].astype(str).to_numpy(), frame["user_id"].to_numpy()
    budget = settings.training.threshold.daily_alerts

    def judged(column: str) -> tuple[float | None, float | None]:
        if not y.any():
            return None, None
        score = frame[column].to_numpy(float)
        return average_precision(y, score), daily_top_k_precision(y, score, day, user, budget)

    champion_ap, champion_precision = judged("score")
    shadow_ap, shadow_precision = judged("shadow_score")
    days = sorted(frame["event_date"].unique())
    return ShadowComparison(
        shadow_version=version,
        champion_versions=tuple(sorted(int(v) for v in frame["model_version"].unique())),
        matured_before=matured,
        rows=len(frame),
        frauds=int(y.sum()),
        first_day=days[0] if days else None,
        last_day=days[-1] if days else None,
        champion_ap=champion_ap,
        shadow_ap=shadow_ap,
        champion_precision_at_budget=champion_precision,
        shadow_precision_at_budget=shadow_precision,
    )
