"""Reconciliation: every bronze record is in silver or in quarantine, exactly once.

Counted per stream by Kafka coordinates (topic, partition, offset), so a mismatch says what is
wrong: records not accounted for yet (in flight, or lost), accounted twice, or present in silver
or quarantine without a bronze record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakehouse.contract.tables import STREAMS, table_names
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

COORDINATES = ["topic", "partition", "offset"]


@dataclass(frozen=True)
class Reconciliation:
    stream: str
    bronze: int
    silver: int
    quarantine: int
    unaccounted: int  # in bronze, in neither silver nor quarantine
    double_counted: int  # coordinates found more than once in silver + quarantine
    orphans: int  # in silver or quarantine, not in bronze
    bronze_duplicates: int  # the same Kafka record twice in bronze

    @property
    def ok(self) -> bool:
        return (
            self.bronze == self.silver + self.quarantine
            and self.unaccounted == self.double_counted == self.orphans == self.bronze_duplicates == 0
        )


def reconcile(spark: SparkSession, settings: Settings) -> list[Reconciliation]:
    from pyspark.sql import functions as F

    names = table_names(settings)
    results = []
    for stream in STREAMS:
        silver_table = names.silver(stream) if stream == "transactions" else names.versions(stream)

        def coordinates(table: str, where: str | None = None):
            df = spark.table(table)
            if where:
                df = df.where(where)
            return df.select(*(F.col(f"_{c}").alias(c) for c in COORDINATES))

        bronze = spark.table(names.bronze(stream)).groupBy(*COORDINATES).agg(F.count("*").alias("b"))
        accounted = (
            coordinates(silver_table)
            .withColumn("s", F.lit(1))
            .unionByName(coordinates(names.quarantine, f"source = '{stream}'").withColumn("s", F.lit(0)))
            .groupBy(*COORDINATES)
            .agg(F.sum("s").alias("s"), F.sum(1 - F.col("s")).alias("q"))
        )
        # One pass: a full outer join by Kafka coordinates classifies every record at once.
        row = (
            bronze.join(accounted, COORDINATES, "full_outer")
            .agg(
                F.coalesce(F.sum("b"), F.lit(0)).alias("bronze"),
                F.coalesce(F.sum("s"), F.lit(0)).alias("silver"),
                F.coalesce(F.sum("q"), F.lit(0)).alias("quarantine"),
                F.count(F.when(F.col("b").isNotNull() & F.col("s").isNull(), 1)).alias("unaccounted"),
                F.count(F.when(F.col("s") + F.col("q") > 1, 1)).alias("double_counted"),
                F.count(F.when(F.col("b").isNull(), 1)).alias("orphans"),
                F.count(F.when(F.col("b") > 1, 1)).alias("bronze_duplicates"),
            )
            .first()
        )
        counts = {k: int(v) for k, v in row.asDict().items()}
        results.append(Reconciliation(stream, **counts))
    return results
