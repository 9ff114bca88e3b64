"""Labels as known at a time: what training, its validation, the quality gates and the merchant
fraud rates may see of a payment's label.

In a bank, a payment's label comes late: a chargeback weeks later, a customer's report days
later, an analyst's decision; some frauds are never reported and a few reports are wrong. The
label of a payment *as known at time t* is therefore the latest label event for it reported before
t (``fraud`` or ``legitimate``); a payment with none is taken as legitimate. Where labels come
from is ``labels.source``:

- ``inline``: each transaction's own ``is_fraud`` (an imported file's label column, a stream that
  carries its labels), taken as known at any cut (the file's labels are history already);
- ``stream``: the label events of ``fraud_labels`` (``silver.label_versions``);
- ``auto`` (the default): imported transactions use their label column, streamed ones the label
  stream once it holds any event (before that, inline: a stream that carries its own labels).

The simulator's inline ``is_fraud`` is ground truth: with the label stream on, it is read only by
evaluation against the truth (backtests), never by training or a feature.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from lakehouse.contract.tables import IMPORT_TOPIC_PREFIX, table_names
from lakehouse.platform.delta import read_version
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

FRAUD = "fraud"
#: The column :func:`known_labels` adds on request: the row's label came from the label events.
ORIGIN = "label_from_stream"


def labels_as_of(rows: DataFrame, events: DataFrame, cut: Column, inline: Column) -> DataFrame:
    """``rows`` with ``is_fraud`` as known at ``cut`` (pure).

    Needs ``rows``: transaction_id (unique), is_fraud; ``events``: transaction_id, label,
    reported_at, _partition, _offset. ``cut`` may differ per row. Where ``inline`` holds, the row
    keeps its own is_fraud; elsewhere is_fraud is true when the latest event of its transaction
    reported before the cut (ties: the later Kafka record) says fraud, false otherwise.
    """
    from pyspark.sql import functions as F

    marked = rows.withColumn("_cut", cut).withColumn("_inline", inline)
    known = (
        marked.select("transaction_id", "_cut")
        .join(events.select("transaction_id", "label", "reported_at", "_partition", "_offset"), "transaction_id")
        .where(F.col("reported_at") < F.col("_cut"))
        .groupBy("transaction_id")
        .agg(F.max_by("label", F.struct("reported_at", "_partition", "_offset")).alias("_known"))
    )
    stream_label = F.coalesce(F.col("_known") == F.lit(FRAUD), F.lit(False))
    return (
        marked.join(known, "transaction_id", "left")
        .withColumn("is_fraud", F.when(F.col("_inline"), F.col("is_fraud")).otherwise(stream_label))
        .drop("_cut", "_inline", "_known")
    )


def feedback_cut(feedback_delay_days: int) -> Column:
    """The cut of a payment's label for its merchant's fraud rates: the start of the day after its
    day plus ``feedback_delay_days``. A fraud reported later never counts, so every count that a
    transaction's fraud rate reads (days at least that old, :mod:`lakehouse.features.offline`) was
    known before the transaction's day began. Needs ``event_date``."""
    from pyspark.sql import functions as F

    return F.to_timestamp(F.date_add("event_date", feedback_delay_days + 1))


def label_events(spark: SparkSession, settings: Settings, version: int | None = None) -> DataFrame | None:
    """The label events that count under ``labels.source`` (``silver.label_versions``, at
    ``version`` when given); None when every label is inline."""
    source = settings.labels.source
    name = table_names(settings).versions("labels")
    if source == "inline" or not spark.catalog.tableExists(name):
        return None
    events = read_version(spark, name, version=version)
    if source == "auto" and events.limit(1).count() == 0:
        return None
    return events


def inline_rows(settings: Settings, topic: Column) -> Column:
    """Which rows keep their own label when there are label events: under ``auto``, those that
    came from an import (``topic``: the silver row's ``_topic``); under ``stream``, none."""
    from pyspark.sql import functions as F

    return topic.startswith(IMPORT_TOPIC_PREFIX) if settings.labels.source == "auto" else F.lit(False)


def known_labels(
    spark: SparkSession,
    settings: Settings,
    rows: DataFrame,
    cut: Column,
    *,
    versions: dict[str, int] | None = None,
    keep_origin: bool = False,
) -> DataFrame:
    """``rows`` (transaction_id, is_fraud; ``_topic`` if they are silver rows) with the labels known
    at ``cut`` under ``labels.source``. ``versions``: table name → the Delta version to read (a
    pinned training); the latest otherwise. ``keep_origin`` adds ``label_from_stream``: whether
    the row's label came from the label events (else it is its own)."""
    from pyspark.sql import functions as F

    versions = versions or {}
    names = table_names(settings)
    events = label_events(spark, settings, versions.get(names.versions("labels")))
    if events is None:
        return rows.withColumn(ORIGIN, F.lit(False)) if keep_origin else rows
    joined = "_topic" not in rows.columns
    if joined:  # feature rows: where each came from is in silver
        silver = read_version(spark, names.silver("transactions"), version=versions.get(names.silver("transactions")))
        rows = rows.join(silver.select("transaction_id", "_topic"), "transaction_id", "left")
    inline = inline_rows(settings, F.col("_topic"))
    out = labels_as_of(rows.withColumn(ORIGIN, ~F.coalesce(inline, F.lit(False))), events, cut, inline)
    out = out if keep_origin else out.drop(ORIGIN)
    return out.drop("_topic") if joined else out


def matured_labels(
    spark: SparkSession, settings: Settings, scored: DataFrame, cut: datetime
) -> tuple[DataFrame, datetime]:
    """Scored rows (``transaction_id``, ``event_time``) old enough at ``cut`` for their labels to
    have matured (``labels.maturity_days``), with ``is_fraud`` as known at the cut; and the instant
    they are older than. How the live stream's scores are judged (shadow versions, live precision)."""
    from pyspark.sql import functions as F

    matured = cut - timedelta(days=settings.labels.maturity_days)
    silver = spark.table(table_names(settings).silver("transactions")).select("transaction_id", "is_fraud", "_topic")
    rows = scored.where(F.col("event_time") < F.lit(matured)).join(silver, "transaction_id", "left")
    return known_labels(spark, settings, rows, F.lit(cut)), matured
