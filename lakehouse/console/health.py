"""The pipeline health page's source: each streaming query's state from its checkpoint and the
broker (the same as ``fraudlake stream status``), alert latency over the last minutes from
``gold.scored_transactions`` (the alert's decision time minus the payment's write to Kafka), and
the last retraining runs with their quality-gate outcome from ``gold.retraining_runs``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakehouse.operations.stream_status import StreamStatus


class PipelineHealth:
    def __init__(self, settings: Settings, spark: SparkSession) -> None:
        self.settings = settings
        self.spark = spark

    def streams(self) -> StreamStatus:
        from lakehouse.operations.stream_status import stream_status

        return stream_status(self.settings)

    def latency(self, minutes: float = 15) -> dict[str, Any]:
        """Alerts decided in the last ``minutes``, and their latency p50 / p99 in milliseconds."""
        from pyspark.sql import functions as F

        from lakehouse.contract.tables import table_names

        millis = (F.unix_millis("scored_at") - F.unix_millis("transaction_created_at")).cast("double")
        row = (
            self.spark.table(table_names(self.settings).scored)
            .where(
                F.col("is_alert")
                & (F.col("scored_at") >= F.current_timestamp() - F.expr(f"INTERVAL {minutes:g} MINUTES"))
            )
            .agg(
                F.count(F.lit(1)).alias("alerts"),
                F.percentile_approx(millis, 0.5).alias("p50"),
                F.percentile_approx(millis, 0.99).alias("p99"),
            )
            .first()
        )
        return {"minutes": minutes, "alerts": row.alerts, "p50_ms": row.p50, "p99_ms": row.p99}

    def retraining(self, limit: int = 10) -> list[dict[str, Any]]:
        from pyspark.sql import functions as F

        from lakehouse.contract.tables import table_names

        columns = (
            "run_key",
            "status",
            "stopped_at",
            "challenger_ap",
            "champion_ap",
            "failed_expectations",
            "recorded_at",
        )
        rows = (
            self.spark.table(table_names(self.settings).retraining_runs)
            .orderBy(F.col("recorded_at").desc())
            .limit(limit)
            .select(*columns)
            .collect()
        )
        return [row.asDict() for row in rows]
