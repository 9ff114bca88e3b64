"""The real-time scorer: ``transaction_stream`` → online features → the champion model →
``fraud_alerts`` and ``gold.scored_transactions``. Run: ``fraudlake stream score [--once]``.

Two streaming queries:

- ``score`` (the latency path): the Kafka source, then one stateful step that does every
  per-event piece of work (:class:`lakehouse.scoring.processor.ScoringProcessor`: lateness,
  duplicates and the user's history from the state store; table features from an in-memory
  dimension snapshot; the compiled champion; reasons) and emits Kafka records, then one Kafka
  append: every alert to ``fraud_alerts`` and every scored row to the internal scored-rows topic.
  No Spark join, no MLlib plan, no Delta commit on the way.
- ``score_landing``: the scored-rows topic → ``gold.scored_transactions`` on its own, slower
  trigger (an insert-only MERGE keyed by ``transaction_id``).

**The champion and the dimensions.** The driver asks the registry who the champion is and
checks the dimension tables' Delta versions every ``scoring.reload_check_s`` (0: before every
micro-batch), in a thread off the latency path. A new champion is loaded, checked (it scores the
feature table, and its compiled form gives MLlib's scores), and published to the serving folder
(:mod:`lakehouse.scoring.serving`); the tasks pick it up at their next micro-batch. One that fails
is refused (logged once) and the current model keeps scoring. New dimension versions are
published the same way. Every row records its model version.

**A poison record.** A transaction that makes the stateful step fail on its own (a case no
validation rule foresaw) is found in the task by bisection, scored no further and sent on the
scored-rows topic as a quarantine record; the landing query puts it in ``silver.quarantine``
(``source='score'``, ``poison_record:<error>``, once per Kafka record) and the rest of the batch is
scored as usual (:meth:`lakehouse.scoring.processor.ScoringProcessor._poison`).

**Delivery.** Kafka offsets and the feature state live in the ``score`` query's checkpoint; a
micro-batch that did not commit runs again after a crash (same offsets, same restored state).

- ``fraud_alerts``: at least once, never lost, with a stable ``alert_id`` (from the transaction
  alone): a replayed batch appends its alerts again, and consumers drop repeats by it
  (``fraudlake alerts tail`` does). A repeat carries the same decision unless the champion
  changed between the crash and the replay.
- ``gold.scored_transactions``: exactly once. A replayed batch appends its scored rows to the
  internal topic again; the landing MERGE inserts a transaction only when the table does not hold
  it, so the first scoring to land is the one kept, and a replayed landing batch inserts nothing.
  ``run_id`` and ``batch_id`` name the landing query run and micro-batch that wrote the row.

Deterministic crash tests kill the scorer at each step with ``FRAUDLAKE_FAULT`` (see
:mod:`lakehouse.platform.faults`): ``after_state`` (state updated, nothing sent),
``after_alerts`` (records appended to Kafka, ``score`` not committed), ``after_table`` (rows
merged, ``score_landing`` not committed) and ``before_commit`` (the last step of a ``score``
batch; the alerts and the scored rows leave in one append, so it is the same point as
``after_alerts`` seen from the end of the batch).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.contract.queries import SCORE_LANDING_QUERY, SCORE_QUERY
from lakehouse.contract.tables import (
    QUARANTINE_COLUMNS,
    SCORED_COLUMNS,
    SHADOW_COLUMNS,
    create_tables,
    table_names,
)
from lakehouse.platform import faults
from lakehouse.platform.delta import retry_on_conflict, table_location
from lakehouse.scoring.champion import Champion, Publisher, Shadow
from lakehouse.scoring.kernel import DAYS_COLUMNS, MICROS_COLUMNS
from lakehouse.scoring.processor import AFTER_ALERTS, AFTER_TABLE, BEFORE_COMMIT, METRICS_TOPIC
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchTimings:
    """One ``score`` micro-batch seen from the driver: how long its one Kafka append took (the
    append runs the whole stateful step). Handed to the scorer's ``on_batch`` hook; the batch's rows,
    alerts and where the step's time went are in the query's progress (``observedMetrics``, under
    :data:`STEP_METRICS`)."""

    batch_id: int
    append_s: float


#: The name of the observed metrics of the ``score`` query: per micro-batch, summed over its tasks,
#: the seconds of each step (:data:`lakehouse.scoring.processor.STEP_NAMES`), ``rows``, ``alerts``
#: and ``poison`` (records set aside to ``silver.quarantine``).
STEP_METRICS = "score_steps"


def observe_steps(records: DataFrame) -> DataFrame:
    """The processor's output with its per-task metrics records summed into :data:`STEP_METRICS`."""
    from pyspark.sql import functions as F

    from lakehouse.scoring.processor import STEP_NAMES

    metrics = F.col("topic") == METRICS_TOPIC
    sums = [
        F.coalesce(F.sum(F.when(metrics, F.get_json_object("value", f"$.{name}").cast("double"))), F.lit(0.0)).alias(
            name
        )
        for name in (*STEP_NAMES, "rows", "alerts", "poison")
    ]
    return records.observe(STEP_METRICS, *sums)


class ScoreBatch:
    """The ``foreachBatch`` function of the ``score`` query: one Kafka append."""

    def __init__(
        self, settings: Settings, publisher: Publisher, *, on_batch: Callable[[BatchTimings], None] | None = None
    ) -> None:
        from lakehouse.platform.kafka.clients import spark_options

        self.publisher = publisher
        self.sync = settings.scoring.reload_check_s == 0
        self.on_batch = on_batch
        self.kafka_options = spark_options(settings.kafka)

    def __call__(self, records: DataFrame, batch_id: int) -> None:
        from pyspark.sql import functions as F

        if self.sync:
            self.publisher.refresh()
        began = time.perf_counter()
        records.where(F.col("topic") != METRICS_TOPIC).write.format("kafka").options(**self.kafka_options).save()
        faults.reached(AFTER_ALERTS)
        timings = BatchTimings(batch_id, time.perf_counter() - began)
        log.debug("batch %s: scored and sent in %.2f s", batch_id, timings.append_s)
        if self.on_batch is not None:
            self.on_batch(timings)
        faults.reached(BEFORE_COMMIT)


def scored_rows(records: DataFrame, columns=SCORED_COLUMNS) -> DataFrame:
    """Records of the scored-rows topic → rows of ``gold.scored_transactions`` (or, with
    ``columns``, of ``gold.shadow_scores``) without ``run_id``, ``batch_id``, one per transaction."""
    from pyspark.sql import functions as F

    wire = dict.fromkeys(MICROS_COLUMNS, "BIGINT") | dict.fromkeys(DAYS_COLUMNS, "INT")
    fields = [(name, wire.get(name, sql)) for name, sql in columns if name not in ("run_id", "batch_id")]
    parsed = records.select(
        F.from_json(F.col("value").cast("string"), ", ".join(f"{n} {t}" for n, t in fields)).alias("r")
    ).select("r.*")
    converted = {name: F.timestamp_micros(F.col(name)) for name in MICROS_COLUMNS}
    converted |= {name: F.date_from_unix_date(F.col(name)) for name in DAYS_COLUMNS}
    return parsed.select(*[converted.get(n, F.col(n)).alias(n) for n, _ in fields]).dropDuplicates(["transaction_id"])


class LandBatch:
    """The ``foreachBatch`` function of the ``score_landing`` query (see the module doc: delivery)."""

    def __init__(self, spark: SparkSession, settings: Settings, checkpoint: str) -> None:
        names = table_names(settings)
        self.location = table_location(spark, names.scored)
        self.shadow = table_location(spark, names.shadow)
        self.quarantine = table_location(spark, names.quarantine)
        self.source_topic = settings.kafka.topics.transactions.name
        self.checkpoint = checkpoint
        self.run_id: str | None = None

    def __call__(self, records: DataFrame, batch_id: int) -> None:
        from pyspark.sql import functions as F

        spark = records.sparkSession
        if self.run_id is None:
            self.run_id = query_run_id(spark, self.checkpoint)
        # Each record's JSON read once for its two marks: set aside by the scorer, shadow-scored.
        marks = F.json_tuple(F.col("value").cast("string"), "quarantine_reason", "shadow_score")
        records = records.select("*", marks.alias("_poison", "_shadow")).persist()
        try:
            poison = F.col("_poison").isNotNull()
            self._land(records.where(~poison), batch_id, SCORED_COLUMNS, self.location)
            shadowed = records.where(~poison & F.col("_shadow").isNotNull())
            if shadowed.take(1):
                self._land(
                    shadowed, batch_id, SHADOW_COLUMNS, self.shadow, "t.shadow_model_version = s.shadow_model_version"
                )
            if records.where(poison).take(1):
                self._quarantine(records.where(poison), batch_id)
        finally:
            records.unpersist()
        faults.reached(AFTER_TABLE)

    def _land(self, records: DataFrame, batch_id: int, columns, location: str, match: str | None = None) -> None:
        """Insert the batch's rows (``columns``) into the table at ``location``, once per
        transaction (and ``match``)."""
        from delta.tables import DeltaTable
        from pyspark.sql import functions as F

        spark = records.sparkSession
        rows = scored_rows(records, columns).withColumn("run_id", F.lit(self.run_id))
        rows = rows.withColumn("batch_id", F.lit(batch_id))
        rows = rows.select(*[F.col(name).cast(sql) for name, sql in columns]).persist()
        try:
            # The batch's days as literals: Delta prunes the target to their partitions (it does not
            # from the join condition alone), so a MERGE reads today's rows, not the whole table.
            days = sorted(r.event_date.isoformat() for r in rows.select("event_date").distinct().collect())
            condition = landing_condition(days) + (f" AND {match}" if match else "")
            if days:
                # Insert-only by transaction id: repeating it after a conflict (OPTIMIZE) inserts nothing twice.
                retry_on_conflict(
                    lambda: (
                        DeltaTable.forPath(spark, location)
                        .alias("t")
                        .merge(rows.alias("s"), condition)
                        .whenNotMatchedInsertAll()
                        .execute()
                    ),
                    what=f"score_landing batch {batch_id}",
                )
        finally:
            rows.unpersist()

    def _quarantine(self, records: DataFrame, batch_id: int) -> None:
        """Poison records (the scorer set them aside) → ``silver.quarantine`` with ``source='score'``,
        once per Kafka record (insert-only by its coordinates: a replayed score batch sends them again)."""
        from delta.tables import DeltaTable

        rows = poison_rows(records, self.source_topic, batch_id)
        condition = (
            "t.source = s.source AND t._topic = s._topic AND t._partition = s._partition AND t._offset = s._offset"
        )
        retry_on_conflict(
            lambda: (
                DeltaTable.forPath(records.sparkSession, self.quarantine)
                .alias("t")
                .merge(rows.alias("s"), condition)
                .whenNotMatchedInsertAll()
                .execute()
            ),
            what=f"score_landing batch {batch_id} (quarantine)",
        )


#: ``silver.quarantine.source`` of the records the scorer set aside.
SCORE_SOURCE = "score"


def poison_rows(records: DataFrame, source_topic: str, batch_id: int) -> DataFrame:
    """Poison records of the scored-rows topic → ``silver.quarantine`` rows (one per Kafka record)."""
    from pyspark.sql import functions as F

    value = F.col("value").cast("string")
    record = lambda name: F.get_json_object(value, f"$.record.{name}")  # noqa: E731
    columns = {
        "source": F.lit(SCORE_SOURCE),
        "reason": F.get_json_object(value, "$.quarantine_reason"),
        "key": F.col("key").cast("string"),
        "value": F.get_json_object(value, "$.record"),
        "_topic": F.lit(source_topic),
        "_partition": record("kafka_partition").cast("int"),
        "_offset": record("kafka_offset").cast("bigint"),
        "_kafka_timestamp": record("kafka_timestamp").cast("timestamp"),
        "_ingested_at": F.col("timestamp"),
        "_batch_id": F.lit(batch_id).cast("bigint"),
        "quarantined_at": F.current_timestamp(),
    }
    rows = records.select(*[expr.alias(name) for name, expr in columns.items()])
    return rows.dropDuplicates(["_partition", "_offset"]).select(*[c for c, _ in QUARANTINE_COLUMNS])


def landing_condition(days: list[str]) -> str:
    """The landing MERGE's match: the same transaction on one of the batch's ``days`` (ISO dates)."""
    listed = ", ".join(f"DATE'{day}'" for day in days)
    return f"t.event_date IN ({listed}) AND t.event_date = s.event_date AND t.transaction_id = s.transaction_id"


def query_run_id(spark: SparkSession, checkpoint: str) -> str:
    """The streaming query's id, kept in its checkpoint: stable across restarts, new with a new checkpoint."""
    return json.loads(spark.read.text(f"{checkpoint.rstrip('/')}/metadata").first().value)["id"]


def serving_folder(settings: Settings, checkpoint: str) -> Path:
    """Where the driver publishes for the tasks (``scoring.serving_dir``, else next to the checkpoint)."""
    if settings.scoring.serving_dir is not None:
        return Path(settings.scoring.serving_dir)
    if "://" in checkpoint and not checkpoint.startswith("file:"):
        from lakehouse.errors import FraudlakeError

        raise FraudlakeError(
            f"the score query's checkpoint {checkpoint} is not a local path: set scoring.serving_dir to a folder "
            "every executor can read"
        )
    return Path(checkpoint.removeprefix("file:").rstrip("/") + "-serving")


def start_scorer(
    spark: SparkSession,
    settings: Settings,
    *,
    once: bool = False,
    starting_offsets: str = "earliest",
    on_batch: Callable[[BatchTimings], None] | None = None,
) -> list[StreamingQuery]:
    """Start the ``score`` and ``score_landing`` queries (after publishing the champion: no
    champion, no start). With ``once``, ``score`` drains the topic first and ``score_landing``
    then lands everything it sent; both are returned (await them).

    ``starting_offsets`` decides where a new ``score`` checkpoint starts: ``silver`` (a warm start:
    the user state from silver, scoring from where silver ends, see
    :mod:`lakehouse.features.warm`), ``earliest`` (the whole topic, history from it alone) or
    ``latest``. A checkpoint that has committed resumes where it was, whatever is given.

    ``on_batch`` is an observability hook: it receives each ``score`` micro-batch's
    :class:`BatchTimings` in the driver (to export metrics or collect a benchmark's figures). It
    must be quick: the next batch waits for it."""
    from lakehouse.features.history import history_settings
    from lakehouse.features.online import online_state_features
    from lakehouse.features.warm import stream_start
    from lakehouse.platform.kafka.clients import kafka_stream
    from lakehouse.platform.kafka.topics import ensure_topics
    from lakehouse.platform.streaming import query_plan, raise_if_failed, start_query
    from lakehouse.scoring.processor import RECORDS_DDL, ScoringProcessor

    create_tables(spark, settings)
    topics = settings.kafka.topics
    ensure_topics(settings.kafka, [topics.scored])
    plan = query_plan(settings, SCORE_QUERY, once=once)
    folder = serving_folder(settings, plan.checkpoint)
    publisher = Publisher(spark, settings, folder, Champion(spark, settings), Shadow(spark, settings))
    publisher.refresh()
    processor = ScoringProcessor(
        serving_dir=str(folder),
        feedback_delay_days=settings.features.feedback_delay_days,
        scored_topic=topics.scored.name,
        alerts_topic=topics.alerts.name,
        poison_marker=faults.poison_marker(),
        **history_settings(settings),
    )
    start, initial = stream_start(spark, settings, plan.checkpoint, folder / "warm-start.json", starting_offsets)
    source = kafka_stream(
        spark, settings.kafka, topics.transactions.name, max_records=plan.max_records, starting_offsets=start
    )
    states = observe_steps(
        online_state_features(source, settings, processor=processor, output_ddl=RECORDS_DDL, initial_state=initial)
    )
    score = start_query(
        states.writeStream.foreachBatch(ScoreBatch(settings, publisher, on_batch=on_batch)), plan, lambda w: w.start()
    )
    if once:
        score.awaitTermination()
        raise_if_failed(score)
    elif settings.scoring.reload_check_s > 0:
        publisher.keep_fresh(score)
    landing = query_plan(settings, SCORE_LANDING_QUERY, once=once)
    scored = kafka_stream(spark, settings.kafka, topics.scored.name, max_records=landing.max_records)
    land = start_query(
        scored.writeStream.foreachBatch(LandBatch(spark, settings, landing.checkpoint)), landing, lambda w: w.start()
    )
    return [score, land]
