"""Warm start: the online feature state of a new scorer, built from silver.

The topic keeps 7 days and imported files never went through it, yet a user's 30-day features
need 30 days of history. A scorer that starts on a new checkpoint therefore starts from what
silver holds:

- **state**: per Kafka partition of ``transaction_stream``, its latest event time (silver's own
  lateness clock, from ``silver.ingest_progress``) and the history of every user assigned to it,
  exactly what :func:`lakehouse.features.history.advance` would hold after replaying the user's
  silver transactions in the offline arrival order (:data:`lakehouse.features.offline.SILVER_ARRIVAL`), pruned as the
  state prunes it (:func:`lakehouse.features.history.prune`, and the partition's own horizon);
- **offsets**: the stream starts right after the last record silver has processed on each
  partition (the first offset the topic still holds when retention has passed it; the earliest
  on a partition silver has not read). What silver already holds is history, not scored again.

A user goes to the partition that carried their latest streamed transaction, and a user known
only from imported files to the partition the Kafka producers' default partitioner picks for
their key (murmur2 of ``user_id``, as the Java client, Spark's Kafka sink, kafka-python and
``fraudlake produce`` use), so their next transaction meets their history.

Both inputs are pinned: :class:`WarmStart` records the Delta versions of silver and the progress
table it read, so a restart whose first micro-batch never committed rebuilds the same state.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.contract.features import HISTORY_S
from lakehouse.contract.tables import table_names
from lakehouse.features.history import US
from lakehouse.features.offline import SILVER_ARRIVAL
from lakehouse.platform.delta import read_pinned, read_version
from lakehouse.platform.kafka.topics import offset_ranges
from lakehouse.platform.streaming import has_batch
from lakehouse.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

#: The rows of the initial state: one per history entry (``user_id`` set) and one per partition
#: with silver's latest event time (``user_id`` null, ``partition_max_us`` set).
WARM_STATE_DDL = (
    "kafka_partition INT, user_id STRING, time_us BIGINT, amount DOUBLE, merchant_id STRING, device_ip STRING, "
    "transaction_id STRING, seq BIGINT, partition_max_us BIGINT"
)
EARLIEST = -2  # Spark's Kafka source: the first offset the topic holds


@dataclass(frozen=True)
class WarmStart:
    """What a warm start read: silver's and the progress table's versions, and where the stream starts."""

    topic: str
    partitions: int
    silver_version: int
    progress_version: int
    offsets: dict[int, int]  # partition -> first offset to score (EARLIEST: all the topic holds)
    last_batch: int | None = None  # the stream's last silver batch in the pinned progress (None: none yet)

    def starting_offsets(self) -> str:
        """The Kafka source's ``startingOffsets`` JSON."""
        return json.dumps({self.topic: {str(p): o for p, o in sorted(self.offsets.items())}})

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_suffix(".tmp")
        scratch.write_text(json.dumps(asdict(self)))
        scratch.replace(path)

    @classmethod
    def load(cls, path: Path) -> WarmStart | None:
        if not path.exists():
            return None
        record = json.loads(path.read_text())
        return cls(**{**record, "offsets": {int(p): int(o) for p, o in record["offsets"].items()}})


#: ``--starting-offsets`` of the scorer: a warm start from silver, or the topic from its first or
#: its next record (a cold start: history only from what the topic holds).
STARTS = ("silver", "earliest", "latest")


def stream_start(
    spark: SparkSession, settings: Settings, checkpoint: str, record: Path, starting_offsets: str
) -> tuple[str, DataFrame | None]:
    """(the Kafka source's ``startingOffsets``, the initial state or None) of a stateful query on
    ``checkpoint``. ``silver`` warms a checkpoint that has not committed a batch yet: from the
    inputs pinned in ``record`` when its first batch was already planned (a restart), else from
    silver now (and ``record`` keeps what was read). A committed checkpoint needs neither: Spark
    resumes it from its own offsets and state."""
    from lakehouse.errors import ConfigError

    if starting_offsets not in STARTS:
        raise ConfigError(f"--starting-offsets must be one of {', '.join(STARTS)}, not {starting_offsets!r}")
    if starting_offsets != "silver":
        return starting_offsets, None
    if has_batch(spark, checkpoint, "commits"):
        return "earliest", None  # ignored: the checkpoint's offsets win
    warm = WarmStart.load(record) if has_batch(spark, checkpoint, "offsets") else None
    if warm is None:
        warm = plan_warm_start(spark, settings)
        warm.save(record)
    log.info(
        "warm start from silver (version %s, progress version %s): scoring %s from offsets %s",
        warm.silver_version,
        warm.progress_version,
        warm.topic,
        ", ".join(f"{p}:{'earliest' if o == EARLIEST else o}" for p, o in sorted(warm.offsets.items())),
    )
    return warm.starting_offsets(), warm_state(spark, settings, warm)


def plan_warm_start(spark: SparkSession, settings: Settings) -> WarmStart:
    """Pin silver and the progress table at their current versions and work out where the stream
    starts on each partition of ``transaction_stream``."""
    from pyspark.sql import functions as F

    from lakehouse.errors import FraudlakeError

    names = table_names(settings)
    topic = settings.kafka.topics.transactions.name
    ranges = offset_ranges(settings.kafka, topic).get(topic)
    if not ranges:
        raise FraudlakeError(f"topic {topic} does not exist: create it (fraudlake topics ensure) before the scorer")
    progress, progress_version = read_pinned(spark, names.progress)
    # Progress first, silver second: a silver batch appends its rows before its progress row, so
    # silver at this later version holds every batch the progress holds (and maybe one more,
    # which warm_state leaves to the stream).
    streamed = progress.where((F.col("source") == "transactions") & (F.col("_topic") == topic)).persist()
    try:
        handled = {
            int(row["_partition"]): int(row["last"])
            for row in streamed.groupBy("_partition").agg(F.max("max_offset").alias("last")).collect()
        }
        last_batch = streamed.agg(F.max("_batch_id")).first()[0]
    finally:
        streamed.unpersist()
    _, silver_version = read_pinned(spark, names.silver("transactions"))
    offsets = {}
    for partition, (first, end) in ranges.items():
        after = handled.get(partition)
        offsets[partition] = EARLIEST if after is None else min(max(after + 1, first), end)
    return WarmStart(
        topic, len(ranges), silver_version, progress_version, offsets, None if last_batch is None else int(last_batch)
    )


def warm_state(spark: SparkSession, settings: Settings, warm: WarmStart) -> DataFrame:
    """The initial state rows (:data:`WARM_STATE_DDL`) of ``warm``'s pinned silver, to be grouped
    by ``kafka_partition`` for the stateful operator."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from lakehouse.features.history import history_settings

    limits = history_settings(settings)
    lateness_us, max_events = limits["lateness_us"], limits["max_events"]
    names = table_names(settings)
    silver = read_version(spark, names.silver("transactions"), version=warm.silver_version)
    # The stream's rows of batches the pinned progress holds (their offsets are behind the starting
    # offsets; a later batch's rows are read from the topic again), and every imported row.
    streamed = F.col("_topic") == warm.topic
    in_progress = F.lit(False) if warm.last_batch is None else F.col("_batch_id") <= warm.last_batch
    silver = silver.where(~streamed | in_progress)
    progress = read_version(spark, names.progress, version=warm.progress_version)
    maxima = (
        progress.where((F.col("source") == "transactions") & (F.col("_topic") == warm.topic))
        .groupBy(F.col("_partition").alias("kafka_partition"))
        .agg(F.unix_micros(F.max("max_event_time")).alias("partition_max_us"))
        .where(F.col("kafka_partition") < warm.partitions)
    )
    entries = silver.select(
        "user_id",
        F.unix_micros("event_time").alias("time_us"),
        F.col("amount").cast("double").alias("amount"),
        "merchant_id",
        "device_ip",
        "transaction_id",
        "_topic",
        "_partition",
        "_offset",
        "_kafka_timestamp",
        "_ingested_at",
    )
    user = Window.partitionBy("user_id")
    entries = (
        # The offline replay's arrival order: every one of the user's rows counts for max_events.
        entries.withColumn("seq", F.row_number().over(user.orderBy(*SILVER_ARRIVAL)) - 1)
        .withColumn("_last_seq", F.max("seq").over(user))
        .withColumn("_latest", F.max("time_us").over(user))
        .withColumn(
            "_streamed_to",
            F.max_by(
                F.when(F.col("_topic") == warm.topic, F.col("_partition")),
                F.when(F.col("_topic") == warm.topic, F.struct("_kafka_timestamp", "_partition", "_offset")),
            ).over(user),
        )
        # As prune(): what no later transaction of the user can see.
        .where(
            (F.col("seq") > F.col("_last_seq") - max_events)
            & (F.col("time_us") > F.col("_latest") - HISTORY_S * US - lateness_us)
        )
        .withColumn("kafka_partition", F.coalesce("_streamed_to", _kafka_partition(warm.partitions)("user_id")))
    )
    # A partition's own horizon: its next accepted transaction is no older than its latest event
    # time minus the lateness allowance.
    horizon = maxima.select(
        "kafka_partition", (F.col("partition_max_us") - HISTORY_S * US - lateness_us).alias("_horizon")
    )
    entries = entries.join(F.broadcast(horizon), "kafka_partition", "left").where(
        F.col("_horizon").isNull() | (F.col("time_us") > F.col("_horizon"))
    )
    columns = [c.strip().split(" ")[0] for c in WARM_STATE_DDL.split(",")]
    history = entries.withColumn("partition_max_us", F.lit(None).cast("bigint")).select(*columns)
    clocks = maxima.select(
        "kafka_partition", *[F.lit(None).cast(t).alias(c) for c, t in _entry_columns()], "partition_max_us"
    )
    return history.unionByName(clocks)


def _entry_columns() -> list[tuple[str, str]]:
    pairs = [c.strip().split(" ") for c in WARM_STATE_DDL.split(",")]
    return [(name, sql) for name, sql in pairs if name not in ("kafka_partition", "partition_max_us")]


def kafka_partition_of(keys: pd.Series, partitions: int) -> pd.Series:
    """The partition Kafka's default partitioner gives each key (murmur2, positive, modulo)."""
    from lakehouse.platform.kafka.topics import partition_of

    return keys.map(lambda key: partition_of(key, partitions)).astype("int32")


def _kafka_partition(partitions: int):
    from pyspark.sql.functions import pandas_udf

    return pandas_udf(lambda keys: kafka_partition_of(keys, partitions), "int")
