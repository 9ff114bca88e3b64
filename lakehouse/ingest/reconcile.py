"""Reconciliation: every bronze record is in silver or in quarantine, exactly once.

Counted per stream by Kafka coordinates (topic, partition, offset), so a mismatch says what is
wrong: records lost (in bronze, read by silver's query, yet in neither silver nor quarantine),
accounted twice, or present in silver or quarantine without a bronze record. Records that silver's
query has not read yet are *in flight*, not lost: a running ingest always has some. How far the
query has read comes from its checkpoint (the last bronze version it read in full); bronze as of
that version is what must be accounted for. When the checkpoint cannot tell (none yet, still in
its first snapshot, unreadable, not a local folder), every bronze record must be. Also: no user's
transactions on two partitions (:func:`split_users`), which the scorer's per-partition state needs,
and no partition whose clock runs in the future (:func:`clocks_ahead`), which would make every later
record of it late.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakehouse.contract.queries import ingest_query_name
from lakehouse.contract.tables import IMPORT_TOPIC_PREFIX, STREAMS, table_names
from lakehouse.errors import FraudlakeError
from lakehouse.platform.checkpoints import last_commit, local_path, processed_delta_version
from lakehouse.platform.delta import latest_version, read_version
from lakehouse.platform.streaming import query_plan
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
    unaccounted: int  # read by silver's query, yet in neither silver nor quarantine: lost
    double_counted: int  # coordinates found more than once in silver + quarantine
    orphans: int  # in silver or quarantine, not in bronze
    bronze_duplicates: int  # the same Kafka record twice in bronze
    in_flight: int = 0  # in bronze, not read by silver's query yet

    @property
    def ok(self) -> bool:
        return (
            self.bronze == self.silver + self.quarantine + self.in_flight
            and self.unaccounted == self.double_counted == self.orphans == self.bronze_duplicates == 0
        )


def silver_read_version(settings: Settings, stream: str) -> int | None:
    """The last bronze version the stream's silver query has read in full (-1: none), from its
    checkpoint; None when there is no checkpoint folder or it cannot tell."""
    try:
        checkpoint = local_path(query_plan(settings, ingest_query_name("silver", stream)).checkpoint)
        if not checkpoint.is_dir():  # another checkpoint folder, or no stream: nothing to go by
            return None
        batch = last_commit(checkpoint)
    except FraudlakeError:
        return None
    return -1 if batch is None else processed_delta_version(batch.source_offset)


def reconcile(spark: SparkSession, settings: Settings) -> list[Reconciliation]:
    from pyspark.sql import functions as F

    names = table_names(settings)
    results = []
    for stream in STREAMS:
        silver_table = names.accepted(stream)

        def coordinates(table: str, where: str | None = None):
            df = spark.table(table)
            if where:
                df = df.where(where)
            return df.select(*(F.col(f"_{c}").alias(c) for c in COORDINATES))

        bronze = spark.table(names.bronze(stream)).groupBy(*COORDINATES).agg(F.count("*").alias("b"))
        read = silver_read_version(settings, stream)
        if read is not None and read < latest_version(spark, names.bronze(stream)):
            # What silver's query has read: bronze as of that version, and every imported row (an
            # import accounts for its rows as it writes them).
            imported = spark.table(names.bronze(stream)).where(F.col("topic").startswith(IMPORT_TOPIC_PREFIX))
            seen = imported.select(*COORDINATES)
            if read >= 0:
                seen = seen.unionByName(read_version(spark, names.bronze(stream), version=read).select(*COORDINATES))
            bronze = bronze.join(seen.distinct().withColumn("read", F.lit(True)), COORDINATES, "left")
        else:
            bronze = bronze.withColumn("read", F.lit(True))
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
                F.count(F.when(F.col("b").isNotNull() & F.col("s").isNull() & F.col("read").isNotNull(), 1)).alias(
                    "unaccounted"
                ),
                F.count(F.when(F.col("b").isNotNull() & F.col("s").isNull() & F.col("read").isNull(), 1)).alias(
                    "in_flight"
                ),
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


@dataclass(frozen=True)
class ClocksAhead:
    """Kafka partitions whose latest accepted event time lies in the future (beyond
    ``data.max_ahead_minutes``): every later record of such a partition is marked late."""

    partitions: list[str]  # "topic/partition: latest event time"

    @property
    def ok(self) -> bool:
        return not self.partitions


def clocks_ahead(spark: SparkSession, settings: Settings) -> ClocksAhead:
    """The partitions whose clock (``silver.ingest_progress``) is ahead of now: records accepted
    before the ``future_time`` rule existed, or through a broker that takes far-future Kafka
    timestamps. docs/operations.md says how to recover."""
    from pyspark.sql import functions as F

    from lakehouse.ingest.transforms import interval_seconds

    ahead = F.current_timestamp() + interval_seconds(settings.data.max_ahead_minutes * 60)
    rows = (
        spark.table(table_names(settings).progress)
        .groupBy("_topic", "_partition")
        .agg(F.max("max_event_time").alias("clock"))
        .where(F.col("clock") > ahead)
        .orderBy("_topic", "_partition")
        .collect()
    )
    return ClocksAhead([f"{r._topic}/{r._partition}: {r.clock.isoformat()}" for r in rows])
