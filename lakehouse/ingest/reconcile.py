"""Reconciliation: every bronze record is in silver or in quarantine, exactly once.

Counted per stream by Kafka coordinates (topic, partition, offset), so a mismatch says what is
wrong: records not accounted for yet (in flight, or lost), accounted twice, or present in silver
or quarantine without a bronze record. Also: no user's transactions on two partitions
(:func:`split_users`), which the scorer's per-partition state needs.
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


@dataclass(frozen=True)
class SplitUsers:
    """Users whose streamed transactions arrived on more than one partition of the topic."""

    users: int
    examples: list[str]

    @property
    def ok(self) -> bool:
        return self.users == 0


def split_users(spark: SparkSession, settings: Settings, *, examples: int = 5) -> SplitUsers:
    """Users on several partitions of the transaction topic, from silver's Kafka coordinates.

    The scorer keeps a user's history in the state of the partition the user's records arrive on
    (lateness and duplicates are decided per partition, as in silver), so producers must key
    transactions by ``user_id``. A producer that keys otherwise, or a partition count raised on a
    live topic, splits users: each partition's state then sees only part of the user's history and
    the online features differ from the offline ones. This finds them; imported rows (another
    topic name) do not count."""
    from pyspark.sql import functions as F

    topic = settings.kafka.topics.transactions.name
    split = (
        spark.table(table_names(settings).silver("transactions"))
        .where(F.col("_topic") == topic)
        .groupBy("user_id")
        .agg(F.countDistinct("_partition").alias("partitions"))
        .where("partitions > 1")
    )
    first = [r.user_id for r in split.orderBy("user_id").limit(examples).collect()]
    return SplitUsers(split.count() if first else 0, first)
