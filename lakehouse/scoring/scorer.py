"""The real-time scorer: ``transaction_stream`` → online features → the champion model →
``gold.scored_transactions`` and, for every score at or over the model's threshold, an alert on
``fraud_alerts``. Run: ``fraudlake stream score [--once]``.

One streaming query (``score``): the Kafka source, the online feature operator
(:func:`lakehouse.features.online.online_state_features`, the shared definitions), then a
``foreachBatch`` step that enriches the batch, applies the model once (the result is persisted
and feeds both outputs), appends the alerts to Kafka and the rows to Delta.

**Model hot reload.** Before each micro-batch (or every ``scoring.reload_check_s``) the scorer
asks the registry who the champion is. A new champion is loaded, made to score a sample of the
feature table, and swapped in for the next batch; one that does not load or score is refused
(logged once) and the current model keeps scoring. Every row records its model version.

**Delivery.** Kafka offsets and the feature state live in the query's checkpoint; a micro-batch
that did not commit is run again after a crash (same offsets, same state). Then:

- ``gold.scored_transactions``: exactly once. Appends are idempotent per (run, batch) (Delta
  ``txnAppId`` = the query's run id, ``txnVersion`` = batch id).
- ``fraud_alerts``: at least once, never lost. Alerts are appended before the Delta commit (so
  latency does not wait for it); a batch run again appends them again. When the Delta rows of the
  replayed batch are already committed, the scorer re-sends exactly those stored alerts instead
  of scoring again, so what Kafka holds matches the table even if the model changed meanwhile.
  ``alert_id`` is derived from the transaction alone: consumers drop repeats by it
  (``fraudlake alerts tail`` does).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakehouse.contract.alerts import ALERT_FIELDS, ALERT_ID_HEX, ALERT_ID_PREFIX
from lakehouse.contract.queries import SCORE_QUERY
from lakehouse.contract.tables import SCORED_COLUMNS, create_tables, table_names
from lakehouse.ml import registry
from lakehouse.ml.explain import PROFILE_TAG, Profile, learn_profile, reasons
from lakehouse.ml.pipeline import scored
from lakehouse.platform.delta import table_location
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoringModel:
    version: int
    model: PipelineModel
    threshold: float
    profile: Profile


def load_scoring_model(spark: SparkSession, settings: Settings, version: int) -> ScoringModel:
    """Load a version, check it scores the feature table, read its threshold and reason profile
    (learnt and kept as a tag the first time). RegistryError when it cannot serve."""
    model = registry.load(settings, version)
    registry.check_scores(spark, settings, model, version=version)
    tags = registry.version_info(settings, version).tags
    try:
        threshold = float(tags["threshold"])
    except (KeyError, ValueError):
        raise registry.RegistryError(f"model version {version} has no usable threshold tag") from None
    if PROFILE_TAG in tags:
        profile = Profile.from_json(tags[PROFILE_TAG])
    else:
        profile = learn_profile(model, spark.table(table_names(settings).features), rows=settings.scoring.profile_rows)
        registry.tag(settings, version, PROFILE_TAG, profile.to_json())
    return ScoringModel(version, model, threshold, profile)


class Champion:
    """The model the scorer uses: the registry's champion, reloaded when it changes."""

    def __init__(self, spark: SparkSession, settings: Settings, *, clock=time.monotonic) -> None:
        self.spark = spark
        self.settings = settings
        self.clock = clock
        self.current: ScoringModel | None = None
        self.refused: dict[int, str] = {}
        self._checked_at: float | None = None

    def get(self) -> ScoringModel:
        """The model for the next micro-batch (see the module doc: hot reload)."""
        now = self.clock()
        due = self._checked_at is None or now - self._checked_at >= self.settings.scoring.reload_check_s
        if self.current is not None and not due:
            return self.current
        self._checked_at = now
        try:
            version = registry.champion_version(self.settings, required=self.current is None)
        except Exception as exc:  # the registry is briefly unreachable: keep scoring with what we have
            if self.current is None or isinstance(exc, registry.RegistryError):
                raise
            log.warning(
                "cannot ask the registry for the champion (%s); still scoring with version %s",
                exc,
                self.current.version,
            )
            return self.current
        if self.current is not None and (version == self.current.version or version in self.refused):
            return self.current
        try:
            candidate = load_scoring_model(self.spark, self.settings, version)
        except registry.RegistryError as error:
            if self.current is None:
                raise registry.RegistryError(
                    f"{error}. Roll back with `fraudlake model rollback` or promote a working version."
                ) from None
            self.refused[version] = str(error)
            log.error(
                "champion version %s refused, still scoring with version %s: %s", version, self.current.version, error
            )
            return self.current
        previous = self.current.version if self.current else None
        self.current = candidate
        log.info(
            "scoring with model version %s (threshold %.4f)%s",
            version,
            candidate.threshold,
            f", was {previous}" if previous else "",
        )
        return candidate


def alert_id_column(transaction_id: Column) -> Column:
    """Spark's twin of :func:`lakehouse.contract.alerts.alert_id`."""
    from pyspark.sql import functions as F

    return F.substring(F.sha2(F.concat(F.lit(ALERT_ID_PREFIX), transaction_id), 256), 1, ALERT_ID_HEX)


def score_rows(features: DataFrame, model: ScoringModel, *, top_reasons: int, run_id: str, batch_id: int) -> DataFrame:
    """Feature rows (+ ``kafka_timestamp``) → rows of ``gold.scored_transactions``."""
    from pyspark.sql import functions as F

    out = scored(model.model, features)
    alert = F.col("score") >= F.lit(model.threshold)
    values = {
        "transaction_created_at": F.col("kafka_timestamp"),
        "threshold": F.lit(model.threshold),
        "model_version": F.lit(model.version),
        "is_alert": alert,
        "alert_id": F.when(alert, alert_id_column(F.col("transaction_id"))),
        "reasons": F.when(alert, reasons(model.profile, top_reasons)),
        "scored_at": F.current_timestamp(),
        "run_id": F.lit(run_id),
        "batch_id": F.lit(batch_id),
    }
    return out.select(*[values.get(name, F.col(name)).cast(sql).alias(name) for name, sql in SCORED_COLUMNS])


def alert_records(scored_rows: DataFrame) -> DataFrame:
    """Alert rows of ``gold.scored_transactions`` → Kafka records (key user_id, JSON value)."""
    from pyspark.sql import functions as F

    fields = [F.col("scored_at").alias("emitted_at") if name == "emitted_at" else F.col(name) for name in ALERT_FIELDS]
    return scored_rows.where("is_alert").select(
        F.col("user_id").alias("key"), F.to_json(F.struct(*fields)).alias("value")
    )


@dataclass(frozen=True)
class BatchTimings:
    """Where one micro-batch's time went (seconds): Kafka read, online state, table features,
    model and reasons (``features_s``); appending the alerts; the Delta commit. Logged for every
    batch and handed to the scorer's ``on_batch`` hook."""

    batch_id: int
    rows: int
    features_s: float
    alerts_s: float
    delta_s: float


class ScoreBatch:
    """The ``foreachBatch`` function of the scorer (see the module doc)."""

    def __init__(
        self,
        spark: SparkSession,
        settings: Settings,
        champion: Champion,
        checkpoint: str,
        *,
        on_batch: Callable[[BatchTimings], None] | None = None,
    ) -> None:
        from lakehouse.features.online import DimensionTables
        from lakehouse.platform.kafka.clients import spark_options

        self.on_batch = on_batch
        self.settings = settings
        self.champion = champion
        self.checkpoint = checkpoint
        self.table = table_names(settings).scored
        # Tables by location, resolved once: no catalog round trips in the per-batch path.
        self.location = table_location(spark, self.table)
        self.dimensions = DimensionTables(spark, settings)
        self.kafka_options = {**spark_options(settings.kafka), "topic": settings.kafka.topics.alerts.name}
        self.run_id: str | None = None
        self.batches = 0

    def publish(self, scored_rows: DataFrame) -> None:
        alert_records(scored_rows).write.format("kafka").options(**self.kafka_options).save()

    def __call__(self, state_rows: DataFrame, batch_id: int) -> None:
        from pyspark.sql import functions as F

        from lakehouse.features.online import enrich_batch

        spark = state_rows.sparkSession
        if self.run_id is None:
            # The first batch after a (re)start may be one that already committed its rows
            # before a crash: then send its stored alerts again instead of scoring afresh.
            self.run_id = query_run_id(spark, self.checkpoint)
            stored = (
                spark.read.format("delta")
                .load(self.location)
                .where((F.col("run_id") == self.run_id) & (F.col("batch_id") == batch_id))
            )
            if not stored.isEmpty():
                log.info("batch %s was written before a restart: re-sending its stored alerts", batch_id)
                # The batch's stateful step must still run: Spark checks that every state store
                # committed the batch (it writes the state the first run wrote: same offsets, same
                # restored state). Skipping it failed the restart with "Not all StateStores committed".
                state_rows.write.format("noop").mode("overwrite").save()
                self.publish(stored)
                return
        model = self.champion.get()
        began = time.perf_counter()
        rows = score_rows(
            enrich_batch(state_rows, self.settings, self.dimensions),
            model,
            top_reasons=self.settings.scoring.top_reasons,
            run_id=self.run_id,
            batch_id=batch_id,
        ).persist()
        try:
            scored_rows = rows.count()
            scored_s = time.perf_counter()
            self.publish(rows)  # first: the alert latency does not wait for the Delta commit
            published_s = time.perf_counter()
            (
                rows.write.format("delta")
                .mode("append")
                .option("txnAppId", f"score-{self.run_id}")
                .option("txnVersion", batch_id)
                .save(self.location)
            )
        finally:
            rows.unpersist()
        self.batches += 1
        timings = BatchTimings(
            batch_id, scored_rows, scored_s - began, published_s - scored_s, time.perf_counter() - published_s
        )
        log.info(
            "batch %s: %s rows with model %s; features + score %.2f s, alerts %.2f s, Delta %.2f s",
            batch_id,
            scored_rows,
            model.version,
            timings.features_s,
            timings.alerts_s,
            timings.delta_s,
        )
        if self.on_batch is not None:
            self.on_batch(timings)


def query_run_id(spark: SparkSession, checkpoint: str) -> str:
    """The streaming query's id, kept in its checkpoint: stable across restarts, new with a new checkpoint."""
    return json.loads(spark.read.text(f"{checkpoint.rstrip('/')}/metadata").first().value)["id"]


def start_scorer(
    spark: SparkSession,
    settings: Settings,
    *,
    once: bool = False,
    starting_offsets: str = "earliest",
    on_batch: Callable[[BatchTimings], None] | None = None,
) -> StreamingQuery:
    """Start the scoring query (after loading the champion: no champion, no start).

    ``on_batch`` is an observability hook: it receives each scored micro-batch's
    :class:`BatchTimings` after its Delta commit, in the driver (to export metrics, show progress,
    or collect a benchmark's figures). It must be quick: the next batch waits for it."""
    from lakehouse.features.online import online_state_features
    from lakehouse.platform.kafka.clients import spark_options
    from lakehouse.platform.streaming import query_plan, start_query

    create_tables(spark, settings)
    champion = Champion(spark, settings)
    champion.get()
    plan = query_plan(settings, SCORE_QUERY, once=once)
    kafka = (
        spark.readStream.format("kafka")
        .options(**spark_options(settings.kafka))
        .option("subscribe", settings.kafka.topics.transactions.name)
        .option("startingOffsets", starting_offsets)
        .option("maxOffsetsPerTrigger", plan.max_records)
        .option("failOnDataLoss", "true")
        .load()
    )
    writer = online_state_features(kafka, settings).writeStream.foreachBatch(
        ScoreBatch(spark, settings, champion, plan.checkpoint, on_batch=on_batch)
    )
    return start_query(writer, plan, lambda w: w.start())
