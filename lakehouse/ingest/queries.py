"""The ingest streaming queries: Kafka → bronze (one query per topic) and bronze → silver (one
``foreachBatch`` query per stream). Every query has a name, its own checkpoint and its trigger
from config (``streaming``).

Exactly once, end to end:
- bronze: Spark's Delta sink commits each micro-batch once per (query id, batch id), and the
  Kafka offsets live in the checkpoint: a restart neither skips nor repeats a Kafka record;
- silver: each micro-batch appends with Delta's idempotent writes (``txnAppId`` = query name,
  ``txnVersion`` = batch id), so a batch replayed after a crash is skipped table by table; and
  everything a batch decides (late, duplicate) depends only on earlier batches' output, so a
  replay decides the same. The latest version per key (``silver.users``, ...) is a view over the
  versions tables, so a batch writes nothing else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakehouse.contract.queries import ingest_query_name
from lakehouse.contract.schemas import EVENT_IDS
from lakehouse.contract.schemas import STREAMS as FIELDS
from lakehouse.contract.tables import (
    IMPORT_TOPIC_PREFIX,
    PROGRESS_COLUMNS,
    QUARANTINE_COLUMNS,
    STREAMS,
    TableNames,
    create_tables,
    silver_columns,
    table_names,
)
from lakehouse.ingest.poison import FailureCounts, find_poison, without
from lakehouse.ingest.transforms import (
    bronze_records,
    compacted_progress,
    duplicates,
    interval_seconds,
    late_or_duplicate,
    oldest_to_deduplicate,
    parse_records,
    with_lateness,
    with_source,
)
from lakehouse.platform import faults
from lakehouse.platform.delta import (
    append_once,
    computed_once,
    conflict_errors,
    release,
    replace_where,
    retry_on_conflict,
    table_location,
)
from lakehouse.platform.kafka.clients import kafka_stream
from lakehouse.platform.kafka.topics import ensure_topics
from lakehouse.platform.measure import Steps
from lakehouse.platform.streaming import query_plan, raise_if_failed, start_query
from lakehouse.settings import QuerySettings, Settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

#: Fault-injection steps (``FRAUDLAKE_FAULT``): a stream's silver table appended, its quarantine
#: and progress rows not yet (``silver_transactions_after_table``, ...).
AFTER_TABLE = "_after_table"
FAULT_STEPS = tuple(f"{ingest_query_name('silver', stream)}{AFTER_TABLE}" for stream in STREAMS)


def start_bronze(
    spark: SparkSession, settings: Settings, names: TableNames, stream: str, *, once: bool
) -> StreamingQuery:
    topic = getattr(settings.kafka.topics, stream).name
    plan = query_plan(settings, ingest_query_name("bronze", stream), once=once)
    source = kafka_stream(spark, settings.kafka, topic, max_records=plan.max_records)
    writer = bronze_records(source).writeStream.format("delta").outputMode("append")
    return start_query(writer, plan, lambda w: w.toTable(names.bronze(stream)))


@dataclass(frozen=True)
class SilverTimings:
    """One silver micro-batch seen from the driver: the seconds of its steps (Spark is lazy: the
    parse and the late and duplicate checks run inside the first step that needs them)."""

    query: str
    batch_id: int
    seconds: dict[str, float]


class SilverBatch:
    """The ``foreachBatch`` function of one stream's bronze → silver query."""

    def __init__(
        self,
        spark: SparkSession,
        settings: Settings,
        names: TableNames,
        stream: str,
        query: str,
        checkpoint: str | None = None,
        on_batch: Callable[[SilverTimings], None] | None = None,
        lateness_run: int | None = None,
    ) -> None:
        """``checkpoint``: the streaming query's, beside which its batches' failures are counted
        (the poison-pill guard); None for a one-off batch (an import), which fails as a whole.
        ``on_batch``: given each landed batch's :class:`SilverTimings` (a benchmark's figures).
        ``lateness_run``: for batches with many records in one partition, as
        :func:`~lakehouse.ingest.transforms.with_lateness`'s ``run``."""
        self.on_batch = on_batch
        self.lateness_run = lateness_run
        self.steps = Steps()
        self.spark = spark
        self.settings = settings
        self.failures = FailureCounts(checkpoint) if checkpoint else None
        self.names = names
        self.stream = stream
        self.query = query
        self.fields = FIELDS[stream]
        self.target = names.accepted(stream)
        self.paths = {name: table_location(spark, name) for name in (self.target, names.quarantine, names.progress)}
        self.compact_every = settings.lakehouse.progress_compact_every
        self.silver_order = [c for c, _ in silver_columns(self.fields)]
        self.quarantine_order = [c for c, _ in QUARANTINE_COLUMNS]

    def __call__(self, bronze: DataFrame, batch_id: int) -> None:
        # A concurrent writer (OPTIMIZE by `fraudlake maintain`, an import into the same table)
        # makes a commit fail; the whole batch runs again, which is safe: every append is
        # idempotent per batch.
        what = f"{self.query} batch {batch_id}"
        self.steps = Steps()
        try:
            retry_on_conflict(lambda: self._land(bronze, batch_id), what=what)
        except conflict_errors():
            raise
        except Exception as exc:
            if self.failures is None:
                raise
            failures = self.failures.add(batch_id)
            if failures < self.settings.lakehouse.poison_after_failures:
                raise
            log.warning("%s failed %d times (%s): looking for poison records", what, failures, exc)
            poison = find_poison(bronze, lambda rows: self._decide(rows, batch_id, dry_run=True))
            if poison is None:
                raise
            poison = poison.persist()
            retry_on_conflict(lambda: self._land(without(bronze, poison), batch_id, poison=poison), what=what)
            poison.unpersist()
        if self.failures is not None:
            self.failures.clear(batch_id)
        if self.on_batch is not None:
            self.on_batch(SilverTimings(self.query, batch_id, dict(self.steps.seconds)))

    def _decide(self, bronze: DataFrame, batch_id: int, *, dry_run: bool = False) -> tuple[DataFrame, ...]:
        """(accepted, rejected, progress source) of a batch's bronze rows, and the frames kept in
        memory for them (to unpersist when the batch is done); ``dry_run``: only compute them (the
        poison search)."""
        parsed = parse_records(faults.poisoned(bronze), self.fields, self.settings.data).persist()
        kept = [parsed]
        try:
            valid = parsed.where("quarantine_reason IS NULL")
            rejected = parsed.where("quarantine_reason IS NOT NULL")
            checked, accepted, progress_source = None, valid, None
            if self.stream == "transactions":
                checked = self._late_and_duplicates(valid, batch_id, kept)
                progress_source = valid
            elif self.stream in EVENT_IDS:
                key = EVENT_IDS[self.stream]
                checked = duplicates(valid, self._earlier(self.target, batch_id).select(key), key)
            if checked is not None:
                # Decided once: the checks read the table the batch then appends to.
                with self.steps("late and duplicate checks"):
                    checked = computed_once(checked)
                kept.append(checked)
                accepted = checked.where("quarantine_reason IS NULL")
                rejected = rejected.unionByName(checked.where("quarantine_reason IS NOT NULL"))
            if dry_run:
                for frame in (accepted, rejected):
                    frame.write.format("noop").mode("overwrite").save()
        except BaseException:
            _release(kept)
            raise
        if dry_run:
            _release(kept)
        return accepted, rejected, progress_source, kept

    def _land(self, bronze: DataFrame, batch_id: int, poison: DataFrame | None = None) -> None:
        from pyspark.sql import functions as F

        accepted, rejected, progress_source, kept = self._decide(bronze, batch_id)
        try:
            with self.steps("silver append (parse, checks)"):
                self._append(self.target, with_source(accepted, batch_id).select(*self.silver_order), batch_id)
            faults.reached(f"{self.query}{AFTER_TABLE}")  # silver appended; quarantine, progress not yet
            if poison is not None:
                rejected = rejected.select(*bronze.columns, "quarantine_reason").unionByName(poison)
            quarantine = with_source(rejected, batch_id).select(
                F.lit(self.stream).alias("source"),
                F.col("quarantine_reason").alias("reason"),
                "key",
                "value",
                *[c for c in self.quarantine_order if c.startswith("_")],
                F.current_timestamp().alias("quarantined_at"),
            )
            with self.steps("quarantine append"):
                # Most batches reject nothing: an empty append would still cost a Delta commit.
                # Skipping it is safe on replay, which decides the same (and skips again).
                if not rejected.isEmpty():
                    self._append(self.names.quarantine, quarantine.select(*self.quarantine_order), batch_id)
            if progress_source is not None:
                with self.steps("progress append"):
                    self._append(self.names.progress, self._progress(progress_source, batch_id), batch_id)
                if self.failures is not None and batch_id and batch_id % self.compact_every == 0:
                    with self.steps("progress compaction"):
                        self._compact_progress(batch_id)
        finally:
            _release(kept)

    def _append(self, table: str, rows: DataFrame, batch_id: int) -> None:
        # A batch replayed after a crash is skipped by Delta, table by table. Silver transactions
        # are partitioned by event day, and a batch (a backlog, an import) can span many days.
        by_partition = table == self.target and self.stream == "transactions"
        append_once(
            rows, self.paths[table], app_id=f"{self.query}->{table}", batch_id=batch_id, by_partition=by_partition
        )

    def _late_and_duplicates(self, valid: DataFrame, batch_id: int, kept: list[DataFrame]) -> DataFrame:
        from pyspark.sql import functions as F

        spark = valid.sparkSession
        prior_max = (
            spark.table(self.names.progress)
            .where((F.col("source") == self.stream) & (F.col("_batch_id") < batch_id))
            .groupBy(F.col("_topic").alias("topic"), F.col("_partition").alias("partition"))
            .agg(F.max("max_event_time").alias("prior_max_event_time"))
        )
        earlier = self._earlier(self.target, batch_id)
        # Kept: the lateness window (one sort per Kafka partition) is asked twice, by the action
        # below and by the checks that follow it (nothing writes the progress before both).
        delay = self.settings.lakehouse.watermark_delay_minutes
        timed = with_lateness(valid, prior_max, delay, self.lateness_run).persist()
        kept.append(timed)
        with self.steps("lateness window (parse)"):
            oldest = oldest_to_deduplicate(timed)
        if oldest is None:  # nothing to deduplicate: no silver partition is read
            earlier = earlier.where(F.lit(False))
        else:
            # Only event_date partitions within the dedup window are read: the state stays bounded.
            window = interval_seconds(self.settings.lakehouse.dedup_window_hours * 3600)
            earlier = earlier.where(F.col("event_date") >= F.to_date(F.lit(oldest) - window))
        return late_or_duplicate(timed, earlier.select("transaction_id"))

    def _earlier(self, table: str, batch_id: int) -> DataFrame:
        """The rows of ``table`` from the stream's earlier batches, and imports whatever their
        (wall-clock) batch id; never this batch's own rows (a recomputation after its silver append
        must decide the same)."""
        from pyspark.sql import functions as F

        return (
            self.spark.table(table)
            .where((F.col("_batch_id") < batch_id) | F.col("_topic").startswith(IMPORT_TOPIC_PREFIX))
            .where(F.col("_batch_id") != batch_id)
        )

    def _progress(self, valid: DataFrame, batch_id: int) -> DataFrame:
        from pyspark.sql import functions as F

        return (
            valid.groupBy(F.col("topic").alias("_topic"), F.col("partition").alias("_partition"))
            .agg(F.max("event_time").alias("max_event_time"), F.max("offset").alias("max_offset"))
            .select(
                F.lit(self.stream).alias("source"),
                F.lit(batch_id).cast("bigint").alias("_batch_id"),
                "_topic",
                "_partition",
                "max_event_time",
                "max_offset",
            )
            .select(*[c for c, _ in PROGRESS_COLUMNS])
        )

    def _compact_progress(self, batch_id: int) -> None:
        """Fold the progress rows of the stream's earlier batches (final: only the current batch can
        be replayed) into one per partition. A replay of this batch reads the same maxima (its own
        lateness clock comes from ``_batch_id < batch_id``), and folding again changes nothing."""
        earlier = (
            f"source = '{self.stream}' AND _batch_id < {int(batch_id)}"
            f" AND NOT startswith(_topic, '{IMPORT_TOPIC_PREFIX}')"
        )
        rows = self.spark.table(self.names.progress).where(earlier)
        replace_where(compacted_progress(rows), self.paths[self.names.progress], earlier)


def _release(frames: list[DataFrame]) -> None:
    for frame in frames:
        release(frame)


def start_silver(
    spark: SparkSession,
    settings: Settings,
    names: TableNames,
    stream: str,
    *,
    once: bool,
    on_batch: Callable[[SilverTimings], None] | None = None,
) -> StreamingQuery:
    from pyspark.sql import functions as F

    plan = query_plan(settings, ingest_query_name("silver", stream), once=once)
    files = settings.streaming.queries.get(plan.name, QuerySettings()).max_files_per_trigger or 1000
    source = spark.readStream.option("maxFilesPerTrigger", files).table(names.bronze(stream))
    source = source.where(~F.col("topic").startswith(IMPORT_TOPIC_PREFIX))  # imports did their own silver step
    batch = SilverBatch(spark, settings, names, stream, plan.name, plan.checkpoint, on_batch)
    return start_query(source.writeStream.foreachBatch(batch), plan, lambda w: w.start())


def ensure_ingest_topics(settings: Settings) -> None:
    """Create any topic ingest reads that the cluster lacks (``fraud_labels`` after an upgrade)
    with its configured settings, as the scorer creates its own; existing topics are left as
    they are."""
    ensure_topics(settings.kafka, [getattr(settings.kafka.topics, stream) for stream in STREAMS])


def run_ingest(
    spark: SparkSession,
    settings: Settings,
    *,
    once: bool,
    layers: tuple[str, ...] = ("bronze", "silver"),
    on_batch: Callable[[SilverTimings], None] | None = None,
) -> list[StreamingQuery]:
    """Start the ingest queries. ``once``: drain what is there now (bronze first, then silver) and
    return when done; otherwise start them all and return the running queries. ``on_batch``: as
    :class:`SilverBatch`'s."""
    names = create_tables(spark, settings)
    queries: list[StreamingQuery] = []
    for layer in layers:
        started = [
            start_bronze(spark, settings, names, stream, once=once)
            if layer == "bronze"
            else start_silver(spark, settings, names, stream, once=once, on_batch=on_batch)
            for stream in STREAMS
        ]
        if once:  # silver must see everything bronze has landed
            for query in started:
                query.awaitTermination()
                raise_if_failed(query)
        queries.extend(started)
    return queries


def ingest_restarter(spark: SparkSession, settings: Settings) -> Callable[[StreamingQuery], StreamingQuery]:
    """Starts a failed ingest query again by its name, from its checkpoint (for
    :func:`lakehouse.platform.streaming.supervise`): the other five run on meanwhile."""
    names = table_names(settings)
    starters = {
        ingest_query_name(layer, stream): (start, stream)
        for layer, start in (("bronze", start_bronze), ("silver", start_silver))
        for stream in STREAMS
    }

    def restart(query: StreamingQuery) -> StreamingQuery:
        start, stream = starters[query.name]
        return start(spark, settings, names, stream, once=False)

    return restart
